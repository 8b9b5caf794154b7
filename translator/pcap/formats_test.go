package pcap

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// Link-layer headers built by hand from the layouts in
// https://www.tcpdump.org/linktypes/LINKTYPE_LINUX_SLL.html and
// LINKTYPE_LINUX_SLL2.html; TestCookedHeadersDecode checks them against
// gopacket's own decoders.
func sllHeader(protocol uint16) []byte {
	h := make([]byte, 16)
	binary.BigEndian.PutUint16(h[0:], 0)  // packet type: to us
	binary.BigEndian.PutUint16(h[2:], 1)  // ARPHRD_ETHER
	binary.BigEndian.PutUint16(h[4:], 6)  // link-layer address length
	copy(h[6:], []byte{2, 0, 0, 0, 0, 1}) // address, padded to 8 bytes
	binary.BigEndian.PutUint16(h[14:], protocol)
	return h
}

func sll2Header(protocol uint16) []byte {
	h := make([]byte, 20)
	binary.BigEndian.PutUint16(h[0:], protocol)
	binary.BigEndian.PutUint32(h[4:], 3) // interface index
	binary.BigEndian.PutUint16(h[8:], 1) // ARPHRD_ETHER
	h[10] = 4                            // packet type: sent by us
	h[11] = 6                            // link-layer address length
	copy(h[12:], []byte{2, 0, 0, 0, 0, 1})
	return h
}

func ethHeader(etherType uint16) []byte {
	return binary.BigEndian.AppendUint16(make([]byte, 12), etherType)
}

var arpBody = []byte{0, 1, 8, 0, 6, 4, 0, 1} // the start of an ARP request

// frames returns, for a link type, an IPv4 frame, an IPv6 frame and an ARP
// frame (nil where the link type cannot carry ARP).
func frames(lt layers.LinkType) (v4, v6, arp []byte) {
	cat := func(a, b []byte) []byte { return append(append([]byte{}, a...), b...) }
	switch lt {
	case layers.LinkTypeEthernet:
		return cat(ethHeader(0x0800), ipv4Pkt), cat(ethHeader(0x86dd), ipv6Pkt), cat(ethHeader(0x0806), arpBody)
	case layers.LinkTypeLinuxSLL:
		return cat(sllHeader(0x0800), ipv4Pkt), cat(sllHeader(0x86dd), ipv6Pkt), cat(sllHeader(0x0806), arpBody)
	case layers.LinkTypeLinuxSLL2:
		return cat(sll2Header(0x0800), ipv4Pkt), cat(sll2Header(0x86dd), ipv6Pkt), cat(sll2Header(0x0806), arpBody)
	case layers.LinkTypeIPv4:
		return ipv4Pkt, nil, nil
	case layers.LinkTypeIPv6:
		return nil, ipv6Pkt, nil
	}
	return ipv4Pkt, ipv6Pkt, nil // raw
}

// TestCookedHeadersDecode: gopacket decodes the hand-built SLL and SLL2
// frames to the IP packet inside, so the layouts the tests use are the
// documented ones and not a mirror of the reader's.
func TestCookedHeadersDecode(t *testing.T) {
	for _, lt := range []layers.LinkType{layers.LinkTypeLinuxSLL, layers.LinkTypeLinuxSLL2, layers.LinkTypeEthernet} {
		v4, v6, _ := frames(lt)
		for _, c := range []struct {
			frame []byte
			layer gopacket.LayerType
			want  []byte
		}{{v4, layers.LayerTypeIPv4, ipv4Pkt}, {v6, layers.LayerTypeIPv6, ipv6Pkt}} {
			p := gopacket.NewPacket(c.frame, lt, gopacket.Default)
			ip := p.Layer(c.layer)
			if ip == nil {
				t.Errorf("%v: gopacket finds no %v in % x: %v", lt, c.layer, c.frame, p)
				continue
			}
			if got := append(ip.LayerContents(), ip.LayerPayload()...); !bytes.Equal(got, c.want) {
				t.Errorf("%v: gopacket's %v is % x, want % x", lt, c.layer, got, c.want)
			}
		}
	}
}

type capture struct {
	name string
	// write writes frames of one link type, with their timestamps.
	write func(t *testing.T, lt layers.LinkType, frames [][]byte, times []time.Time) []byte
}

var captures = []capture{
	{"pcap", func(t *testing.T, lt layers.LinkType, frames [][]byte, times []time.Time) []byte {
		var b bytes.Buffer
		w := pcapgo.NewWriter(&b)
		return writePcap(t, w, &b, lt, frames, times)
	}},
	{"pcap-ns", func(t *testing.T, lt layers.LinkType, frames [][]byte, times []time.Time) []byte {
		var b bytes.Buffer
		w := pcapgo.NewWriterNanos(&b)
		return writePcap(t, w, &b, lt, frames, times)
	}},
	{"pcapng", func(t *testing.T, lt layers.LinkType, frames [][]byte, times []time.Time) []byte {
		var b bytes.Buffer
		w, err := pcapgo.NewNgWriter(&b, lt)
		if err != nil {
			t.Fatal(err)
		}
		for i, f := range frames {
			if err := w.WritePacket(gopacket.CaptureInfo{Timestamp: times[i], CaptureLength: len(f), Length: len(f)}, f); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.Flush(); err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	}},
}

func writePcap(t *testing.T, w *pcapgo.Writer, b *bytes.Buffer, lt layers.LinkType, frames [][]byte, times []time.Time) []byte {
	t.Helper()
	if err := w.WriteFileHeader(MaxSnapLen, lt); err != nil {
		t.Fatal(err)
	}
	for i, f := range frames {
		if err := w.WritePacket(gopacket.CaptureInfo{Timestamp: times[i], CaptureLength: len(f), Length: len(f)}, f); err != nil {
			t.Fatal(err)
		}
	}
	return b.Bytes()
}

// TestFormats: captures written by pcapgo (classic pcap in microseconds
// and nanoseconds, pcapng) of every link type read back as the IP packets,
// with their times (to the writer's resolution) and their record numbers;
// an ARP frame among them is skipped and counted, and the numbering
// counts it.
func TestFormats(t *testing.T) {
	base := time.Date(2026, 12, 7, 8, 0, 0, 123456789, time.UTC)
	for _, c := range captures {
		for _, lt := range []layers.LinkType{layers.LinkTypeRaw, layers.LinkTypeIPv4, layers.LinkTypeIPv6,
			layers.LinkTypeEthernet, layers.LinkTypeLinuxSLL, layers.LinkTypeLinuxSLL2} {
			t.Run(c.name+"/"+strconv.Itoa(int(lt)), func(t *testing.T) {
				v4, v6, arp := frames(lt)
				var in [][]byte
				var want [][]byte
				var wantIndex []int
				for _, f := range []struct{ frame, ip []byte }{{v4, ipv4Pkt}, {arp, nil}, {v6, ipv6Pkt}} {
					if f.frame == nil {
						continue
					}
					if f.ip != nil {
						want = append(want, f.ip)
						wantIndex = append(wantIndex, len(in))
					}
					in = append(in, f.frame)
				}
				times := make([]time.Time, len(in))
				for i := range times {
					times[i] = base.Add(time.Duration(i) * time.Second)
				}
				r, err := NewReader(bytes.NewReader(c.write(t, lt, in, times)))
				if err != nil {
					t.Fatal(err)
				}
				resolution := time.Nanosecond
				if c.name == "pcap" {
					resolution = time.Microsecond
				}
				for i, w := range want {
					rec, err := r.Next()
					if err != nil {
						t.Fatalf("record %d: %v", i, err)
					}
					if !bytes.Equal(rec.Data, w) || rec.Index != wantIndex[i] ||
						!rec.Time.Equal(times[wantIndex[i]].Truncate(resolution)) {
						t.Errorf("got record %d at %v: % x\nwant record %d at %v: % x",
							rec.Index, rec.Time, rec.Data, wantIndex[i], times[wantIndex[i]].Truncate(resolution), w)
					}
				}
				// (pcapng: the first interface's, known once a record is read)
				if r.LinkType() != int(lt) {
					t.Errorf("link type %d, want %d", r.LinkType(), lt)
				}
				if rec, err := r.Next(); err == nil || err.Error() != "EOF" {
					t.Errorf("after the last packet: %v %v, want EOF", rec, err)
				}
				if wantSkipped := len(in) - len(want); r.NotIP() != wantSkipped {
					t.Errorf("%d frames skipped as not IP, want %d", r.NotIP(), wantSkipped)
				}
			})
		}
	}
}

// TestPcapngInterfaces: a pcapng file mixes interfaces of different link
// types (tcpdump -i any and an Ethernet capture merged); each record is
// unwrapped by its own interface's type, and one of a type the reader does
// not know stops the file with an error naming the record and interface.
func TestPcapngInterfaces(t *testing.T) {
	var b bytes.Buffer
	w, err := pcapgo.NewNgWriter(&b, layers.LinkTypeLinuxSLL2)
	if err != nil {
		t.Fatal(err)
	}
	eth, err := w.AddInterface(pcapgo.NgInterface{LinkType: layers.LinkTypeEthernet})
	if err != nil {
		t.Fatal(err)
	}
	wifi, err := w.AddInterface(pcapgo.NgInterface{LinkType: layers.LinkTypeIEEE80211Radio})
	if err != nil {
		t.Fatal(err)
	}
	sll2v4, _, _ := frames(layers.LinkTypeLinuxSLL2)
	_, ethv6, _ := frames(layers.LinkTypeEthernet)
	for _, p := range []struct {
		iface int
		frame []byte
	}{{0, sll2v4}, {eth, ethv6}, {wifi, ipv4Pkt}} {
		ci := gopacket.CaptureInfo{Timestamp: time.Unix(1, 0), CaptureLength: len(p.frame), Length: len(p.frame), InterfaceIndex: p.iface}
		if err := w.WritePacket(ci, p.frame); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	recs, err := readAll(t, b.Bytes())
	if len(recs) != 2 || !bytes.Equal(recs[0].Data, ipv4Pkt) || !bytes.Equal(recs[1].Data, ipv6Pkt) {
		t.Errorf("records %v, want the IPv4 then the IPv6 packet", recs)
	}
	if err == nil || !strings.HasPrefix(err.Error(), "pcap: record 2 at byte ") ||
		!strings.HasSuffix(err.Error(), ": link type 127 of interface 2 is not supported (want 1 ETHERNET, 101 RAW, 113 LINUX_SLL, 228 IPV4, 229 IPV6 or 276 LINUX_SLL2)") {
		t.Errorf("got %v", err)
	}
}

// ngFile builds a pcapng file by hand (little-endian): a section header,
// one interface of link type 101, then the blocks given.
func ngFile(blocks ...[]byte) []byte {
	le := binary.LittleEndian
	block := func(typ uint32, body []byte) []byte {
		n := uint32(12 + len(body))
		b := le.AppendUint32(le.AppendUint32(nil, typ), n)
		return le.AppendUint32(append(b, body...), n)
	}
	shb := le.AppendUint32(nil, 0x1a2b3c4d)
	shb = le.AppendUint16(le.AppendUint16(shb, 1), 0)
	shb = le.AppendUint64(shb, ^uint64(0)) // section length unknown
	idb := le.AppendUint32(le.AppendUint16(le.AppendUint16(nil, LinkTypeRaw), 0), 0)
	out := append(block(0x0a0d0d0a, shb), block(1, idb)...)
	for _, b := range blocks {
		out = append(out, b...)
	}
	return out
}

// epb is an Enhanced Packet Block holding data, with the captured length
// field set to capLen (the block holds data whatever capLen says).
func epb(capLen uint32, data []byte) []byte {
	le := binary.LittleEndian
	body := le.AppendUint32(nil, 0)                 // interface
	body = le.AppendUint64(body, 0)                 // timestamp
	body = le.AppendUint32(body, capLen)            // captured length
	body = le.AppendUint32(body, uint32(len(data))) // original length
	body = append(body, data...)
	for len(body)%4 != 0 {
		body = append(body, 0)
	}
	n := uint32(12 + len(body))
	b := le.AppendUint32(le.AppendUint32(nil, 6), n)
	return le.AppendUint32(append(b, body...), n)
}

// TestPcapngErrors: a pcapng file cut inside a block (which pcapgo alone
// reads as a clean end), or whose lengths cannot be, stops with an error
// that names the record and the byte offset of the bad block, after the
// good records.
func TestPcapngErrors(t *testing.T) {
	good := epb(24, ipv4Pkt)
	start := len(ngFile()) + len(good) // where the bad block starts
	for _, tc := range []struct {
		name string
		in   []byte
		want string
	}{
		{"cut in a block header", ngFile(good, epb(24, ipv4Pkt)[:5]), "truncated block header (5 of 8 bytes)"},
		{"cut in a packet", ngFile(good, epb(24, ipv4Pkt)[:40]), "truncated block (40 of 56 bytes)"},
		{"cut in the interface statistics at the end", ngFile(good, []byte{5, 0, 0, 0, 32, 0, 0, 0, 0, 0}),
			"truncated block (10 of 32 bytes)"},
		{"captured length above the maximum", ngFile(good, epb(MaxSnapLen+1, ipv4Pkt)),
			"captured length 262145 exceeds the maximum 262144"},
		{"captured length above its block", ngFile(good, epb(4000, ipv4Pkt)),
			"captured length 4000 exceeds its block of 56 bytes"},
		{"block length not a multiple of 4", ngFile(good, []byte{6, 0, 0, 0, 30, 0, 0, 0}),
			"block length 30 is invalid (a multiple of 4, at least 12)"},
		{"cut by the capture", ngFile(good, func() []byte {
			b := epb(24, ipv4Pkt)
			binary.LittleEndian.PutUint32(b[24:], 1500)
			return b
		}()), "packet was cut by the capture (24 of 1500 bytes captured); capture whole packets (tcpdump -s 0)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			recs, err := readAll(t, tc.in)
			want := "pcap: record 1 at byte " + strconv.Itoa(start) + ": " + tc.want
			if err == nil || err.Error() != want {
				t.Errorf("got  %v\nwant %s", err, want)
			}
			if len(recs) != 1 || !bytes.Equal(recs[0].Data, ipv4Pkt) {
				t.Errorf("records before the error: %v, want the first packet", recs)
			}
		})
	}
}

// TestTcpdumpAny reads captures made by tcpdump 4.99.3 (libpcap 1.10.3)
// with `tcpdump -i any -s 0` (SLL2, its default) and `-y LINUX_SLL` in a
// network namespace while one IPv4 and one IPv6 ping crossed a veth pair:
// an ARP request and reply (skipped), then the four echoes as whole IP
// packets (84 and 104 bytes: 64 bytes of ICMP each).
func TestTcpdumpAny(t *testing.T) {
	for _, name := range []string{"testdata/any-sll2.pcap", "testdata/any-sll.pcap"} {
		t.Run(name, func(t *testing.T) {
			b, err := os.ReadFile(name)
			if err != nil {
				t.Fatal(err)
			}
			recs, err := readAll(t, b)
			if err != nil {
				t.Fatal(err)
			}
			want := []struct {
				index    int
				src, dst string
				proto    byte // IPv4 protocol or IPv6 next header
				len      int
			}{
				{2, "192.0.2.1", "192.0.2.2", 1, 84},
				{3, "192.0.2.2", "192.0.2.1", 1, 84},
				{4, "2001:db8::1", "2001:db8::2", 58, 104},
				{5, "2001:db8::2", "2001:db8::1", 58, 104},
			}
			if len(recs) != len(want) {
				t.Fatalf("%d records, want %d: %v", len(recs), len(want), recs)
			}
			for i, w := range want {
				p := recs[i].Data
				var src, dst netip.Addr
				var proto byte
				switch {
				case len(p) >= 20 && p[0]>>4 == 4:
					src, dst, proto = netip.AddrFrom4([4]byte(p[12:16])), netip.AddrFrom4([4]byte(p[16:20])), p[9]
				case len(p) >= 40 && p[0]>>4 == 6:
					src, dst, proto = netip.AddrFrom16([16]byte(p[8:24])), netip.AddrFrom16([16]byte(p[24:40])), p[6]
				}
				if recs[i].Index != w.index || src.String() != w.src || dst.String() != w.dst || proto != w.proto || len(p) != w.len {
					t.Errorf("record %d: %s > %s proto %d, %d bytes; want record %d: %s > %s proto %d, %d bytes",
						recs[i].Index, src, dst, proto, len(p), w.index, w.src, w.dst, w.proto, w.len)
				}
				if recs[i].Time.Year() != 2026 {
					t.Errorf("record %d: time %v, want the capture's (December 2026)", recs[i].Index, recs[i].Time)
				}
			}
		})
	}
}
