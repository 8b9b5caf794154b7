package tun

import (
	"bytes"
	"fmt"
	"testing"

	pt "github.com/map646/map646/translator/packettest"
)

// TestSegment: every segment of a TCP or UDP super-packet equals, byte for
// byte, the packet packettest builds from scratch for that piece of the
// payload, and passes packettest.Check (checksums verified independently).
func TestSegment(t *testing.T) {
	ts := []byte{8, 10, 0, 0, 0, 1, 0, 0, 0, 2, 1, 1} // timestamps, padded
	tcp := func(seq uint32, flags uint8) pt.TCP {
		return pt.TCP{Sport: 40000, Dport: 80, Seq: seq, Ack: 77, Flags: flags, Window: 512, Options: ts}
	}
	ip4 := func(id uint16) pt.IPv4 { return pt.IPv4{TTL: 64, DF: true, ID: id, Src: client4, Dst: server4} }
	ip4opt := func(id uint16) pt.IPv4 {
		ip := ip4(id)
		ip.Options = []byte{1, 1, 1, 1} // four No Operation options
		return ip
	}
	ip6 := pt.IPv6{Hop: 64, TC: 0x20, Src: server6, Dst: client6}
	ip6hbh := ip6
	ip6hbh.Ext = []pt.Ext{pt.HopByHop([]byte{1, 4, 0, 0, 0, 0})} // PadN
	const seq0 = 0xfffff000                                      // wraps during the packet

	type build func(i int, last bool, chunk []byte) []byte
	cases := []struct {
		name      string
		size, gso int
		build     build
		l4, at    int
	}{
		{"tcp4", 3*1448 + 700, 1448, func(i int, last bool, c []byte) []byte {
			return pt.TCP4(ip4(1000+uint16(i)), tcp(seq0+uint32(i*1448), segFlags(i, last)), c)
		}, 20, 16},
		{"tcp4-exact-multiple", 4 * 1000, 1000, func(i int, last bool, c []byte) []byte {
			return pt.TCP4(ip4(0xfffe+uint16(i)), tcp(seq0+uint32(i*1000), segFlags(i, last)), c)
		}, 20, 16},
		{"tcp4-options", 2*1400 + 1, 1400, func(i int, last bool, c []byte) []byte {
			return pt.TCP4(ip4opt(7+uint16(i)), tcp(seq0+uint32(i*1400), segFlags(i, last)), c)
		}, 24, 16},
		{"tcp6", 5*1428 + 3, 1428, func(i int, last bool, c []byte) []byte {
			return pt.TCP6(ip6, tcp(seq0+uint32(i*1428), segFlags(i, last)), c)
		}, 40, 16},
		{"tcp6-hop-by-hop", 2*1400 + 9, 1400, func(i int, last bool, c []byte) []byte {
			return pt.TCP6(ip6hbh, tcp(seq0+uint32(i*1400), segFlags(i, last)), c)
		}, 48, 16},
		{"udp4", 3*1472 + 11, 1472, func(i int, last bool, c []byte) []byte {
			return pt.UDP4(ip4(500+uint16(i)), 40000, 53, c)
		}, 20, 6},
		{"udp6", 40 * 1452, 1452, func(i int, last bool, c []byte) []byte {
			return pt.UDP6(ip6, 53, 40000, c)
		}, 40, 6},
		{"tcp4-one-segment", 900, 1448, func(i int, last bool, c []byte) []byte {
			return pt.TCP4(ip4(1000), tcp(seq0, segFlags(0, true)), c)
		}, 20, 16},
		{"udp6-not-gso", 900, 0, func(i int, last bool, c []byte) []byte {
			return pt.UDP6(ip6, 53, 40000, c)
		}, 40, 6},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			data := payload(c.size)
			// The super-packet: the headers of the first segment with the
			// flags of the last (PSH, FIN) plus CWR, as the kernel builds it.
			super := partialize(c.build(0, true, data), c.l4, c.at)
			out := buffers(64, 1600)
			n, err := Segment(packet(super, c.gso, true), out)
			if err != nil {
				t.Fatal(err)
			}
			segSize := c.gso
			if segSize == 0 {
				segSize = c.size
			}
			if want := (c.size + segSize - 1) / segSize; n != want {
				t.Fatalf("%d segments, want %d", n, want)
			}
			var got []byte
			for i := range n {
				chunk := data[i*segSize : min((i+1)*segSize, len(data))]
				want := c.build(i, i == n-1, chunk)
				if !bytes.Equal(out[i], want) {
					t.Fatalf("segment %d of %d differs\ngot:\n%s\nwant:\n%s", i, n, pt.Format(out[i]), pt.Format(want))
				}
				p, err := pt.Check(out[i])
				if err != nil {
					t.Fatalf("segment %d: %v", i, err)
				}
				if !p.ChecksumChecked || !p.ChecksumOK {
					t.Fatalf("segment %d: checksum not verified: %s", i, p.NotChecked)
				}
				got = append(got, p.Payload...)
			}
			if !bytes.Equal(got, data) {
				t.Fatal("segments do not add up to the payload")
			}
		})
	}
}

// segFlags: ACK everywhere, CWR on the first segment, PSH and FIN on the
// last.
func segFlags(i int, last bool) uint8 {
	f := uint8(pt.ACK)
	if i == 0 {
		f |= pt.CWR
	}
	if last {
		f |= pt.PSH | pt.FIN
	}
	return f
}

// TestSegmentRefuses: what Segment cannot do is an error, never a wrong
// packet.
func TestSegmentRefuses(t *testing.T) {
	tcp := pt.TCP4(pt.IPv4{TTL: 64, Src: client4, Dst: server4}, pt.TCP{Flags: pt.ACK}, payload(3000))
	icmp := pt.ICMP4(pt.IPv4{TTL: 64, Src: client4, Dst: server4}, 8, 0, [4]byte{}, payload(3000))
	routing := pt.UDP6(pt.IPv6{Hop: 64, Src: server6, Dst: client6, Ext: []pt.Ext{pt.Routing(0, 0)}}, 1, 2, payload(3000))
	for _, c := range []struct {
		name string
		pkt  Packet
		out  [][]byte
		want error
	}{
		{"too-few-buffers", packet(tcp, 1000, true), buffers(2, 1600), errTooFewBuffers},
		{"buffer-too-small", packet(tcp, 1000, true), buffers(3, 1000), errSmallBuffer},
		{"icmp", packet(icmp, 1000, true), buffers(4, 1600), errNotTCPUDP},
		{"routing-header", packet(routing, 1000, true), buffers(4, 1600), errNotTCPUDP},
		{"truncated", packet(tcp[:1000], 500, true), buffers(4, 1600), errBadIP},
		{"not-ip", packet(bytes.Repeat([]byte{0x50}, 100), 10, true), buffers(20, 1600), errBadIP},
	} {
		if _, err := Segment(c.pkt, c.out); err != c.want {
			t.Errorf("%s: err %v, want %v", c.name, err, c.want)
		}
	}
}

func TestSegmentDoesNotAllocate(t *testing.T) {
	for _, pkt := range [][]byte{
		pt.TCP6(pt.IPv6{Hop: 64, Src: server6, Dst: client6}, pt.TCP{Flags: pt.ACK}, payload(60000)),
		pt.UDP4(pt.IPv4{TTL: 64, Src: client4, Dst: server4}, 1, 2, payload(60000)),
	} {
		p := packet(pkt, 1400, true)
		out := buffers(64, 1500)
		if a := testing.AllocsPerRun(100, func() {
			if _, err := Segment(p, out); err != nil {
				t.Fatal(err)
			}
		}); a != 0 {
			t.Errorf("Segment allocates %v times per call", a)
		}
	}
}

func BenchmarkSegment(b *testing.B) {
	for _, size := range []int{1448 * 2, 1448 * 44} {
		b.Run(fmt.Sprint(size), func(b *testing.B) {
			p := packet(pt.TCP4(pt.IPv4{TTL: 64, Src: client4, Dst: server4}, pt.TCP{Flags: pt.ACK}, payload(size)), 1448, true)
			out := buffers(64, 1500)
			b.ReportAllocs()
			b.SetBytes(int64(size))
			for b.Loop() {
				Segment(p, out)
			}
		})
	}
}
