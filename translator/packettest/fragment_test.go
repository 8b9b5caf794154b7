package packettest

import (
	"bytes"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/ip4defrag"
	"github.com/gopacket/gopacket/layers"
)

func payload(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i * 7)
	}
	return b
}

func TestFragment4(t *testing.T) {
	// A copied option (Security, 0x82) goes into every fragment, a
	// non-copied one (Record Route, 0x07) only into the first.
	ip := IPv4{ID: 0xbeef, TTL: 64, Src: src4, Dst: dst4,
		Options: []byte{0x82, 4, 0xaa, 0xbb, 0x07, 7, 4, 0, 0, 0, 0}}
	pkt := UDP4(ip, 1, 2, payload(3000))
	frags := Fragment4(pkt, 1280)
	if len(frags) != 3 {
		t.Fatalf("%d fragments, want 3", len(frags))
	}
	for i, f := range frags {
		p, err := Check(f)
		if err != nil {
			t.Fatalf("fragment %d: %v", i, err)
		}
		if len(f) > 1280 || p.ID != 0xbeef || p.ChecksumChecked || p.MF != (i < 2) {
			t.Errorf("fragment %d: %d bytes %+v", i, len(f), p)
		}
		wantOpts := []byte{0x82, 4, 0xaa, 0xbb}
		if i == 0 {
			wantOpts = ip.Options
		}
		if !bytes.Equal(p.Options, pad(wantOpts, 4)) {
			t.Errorf("fragment %d options %x, want %x", i, p.Options, wantOpts)
		}
	}
	got, err := Reassemble([][]byte{frags[2], frags[0], frags[1]})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, pkt) {
		t.Errorf("reassembled differs:\n%s\nwant\n%s", Format(got), Format(pkt))
	}

	// A fragment split again keeps its offset and its MF.
	again := Fragment4(frags[1], 600)
	parts := append([][]byte{frags[0], frags[2]}, again...)
	if got, err := Reassemble(parts); err != nil || !bytes.Equal(got, pkt) {
		t.Errorf("refragmented: %v", err)
	}
	if f := Fragment4(UDP4(ip4, 1, 2, data), 1500); len(f) != 1 || f[0][6]&0x20 != 0 {
		t.Errorf("a packet that fits was fragmented")
	}
}

// TestFragment4AgainstGopacket reassembles Fragment4's output with gopacket's
// own defragmenter, which knows nothing of this package.
func TestFragment4AgainstGopacket(t *testing.T) {
	pkt := TCP4(IPv4{ID: 7, TTL: 64, Src: src4, Dst: dst4}, tcpHdr, payload(4000))
	d := ip4defrag.NewIPv4Defragmenter()
	var out *layers.IPv4
	for _, f := range Fragment4(pkt, 1000) {
		l := gopacket.NewPacket(f, layers.LayerTypeIPv4, gopacket.Default).Layer(layers.LayerTypeIPv4).(*layers.IPv4)
		o, err := d.DefragIPv4(l)
		if err != nil {
			t.Fatal(err)
		}
		if o != nil {
			out = o
		}
	}
	if out == nil || !bytes.Equal(out.Payload, pkt[20:]) {
		t.Fatalf("gopacket reassembled %v", out)
	}
}

func TestFragment6(t *testing.T) {
	ip := IPv6{Hop: 64, Src: src6, Dst: hop6,
		Ext: []Ext{HopByHop(nil), DestOpts(nil), Routing(0, 1, dst6), DestOpts([]byte{0x1e, 0})}}
	pkt := UDP6(ip, 1, 2, payload(3000))
	frags := Fragment6(pkt, 1280, 0xc0ffee)
	if len(frags) != 3 {
		t.Fatalf("%d fragments, want 3", len(frags))
	}
	for i, f := range frags {
		p, err := Check(f)
		if err != nil {
			t.Fatalf("fragment %d: %v", i, err)
		}
		// The per-fragment part is IPv6, Hop-by-Hop, Destination Options
		// and Routing; the Fragment header comes right after the Routing header.
		if len(f) > 1280 || p.Frag == nil || p.Frag.ID != 0xc0ffee || p.Frag.More != (i < 2) ||
			p.Ext[3].Proto != ProtoFragment || p.Ext[3].Offset != 40+8+8+24 || p.ChecksumChecked {
			t.Errorf("fragment %d: %d bytes %+v %+v", i, len(f), p.Frag, p.Ext)
		}
	}
	rand.Shuffle(len(frags), func(i, j int) { frags[i], frags[j] = frags[j], frags[i] })
	got, err := Reassemble(frags)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, pkt) {
		t.Errorf("reassembled differs:\n%s\nwant\n%s", Format(got), Format(pkt))
	}

	// A packet that fits becomes an atomic fragment, checksum checkable.
	small := Fragment6(UDP6(ip6, 1, 2, data), 1280, 1)
	p, err := Check(small[0])
	if len(small) != 1 || err != nil || p.Frag == nil || p.Frag.More || !p.ChecksumChecked {
		t.Errorf("atomic fragment: %v %+v", err, p)
	}
	if got, err := Reassemble(small); err != nil || !bytes.Equal(got, UDP6(ip6, 1, 2, data)) {
		t.Errorf("atomic fragment reassembled: %v", err)
	}
}

func TestReassembleRejects(t *testing.T) {
	f4 := Fragment4(UDP4(IPv4{ID: 1, TTL: 64, Src: src4, Dst: dst4}, 1, 2, payload(3000)), 1000)
	other := Fragment4(UDP4(IPv4{ID: 2, TTL: 64, Src: src4, Dst: dst4}, 1, 2, payload(3000)), 1000)
	f6 := Fragment6(UDP6(ip6, 1, 2, payload(3000)), 1000, 1)
	overlap := Fragment6(UDP6(ip6, 1, 2, payload(3000)), 1200, 1)
	for _, c := range []struct {
		name  string
		frags [][]byte
		want  string
	}{
		{"none", nil, "no fragments"},
		{"gap", [][]byte{f4[0], f4[2], f4[3]}, "gap"},
		{"no last", f4[:3], "more-fragments"},
		{"twice", append([][]byte{f4[1]}, f4...), "overlap"},
		{"other datagram", [][]byte{f4[0], other[1], f4[2], f4[3]}, "ID 2"},
		{"not a fragment", [][]byte{UDP4(ip4, 1, 2, nil)}, "not a fragment"},
		{"mixed versions", [][]byte{f4[0], f6[1]}, "IPv6 among IPv4"},
		{"IPv6 overlap", [][]byte{overlap[0], f6[1], f6[2], f6[3]}, "overlap"},
		{"corrupt", [][]byte{f4[0], corrupt(f4[1], 10)}, "fragment 1: IPv4 header checksum"},
	} {
		_, err := Reassemble(c.frags)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one mentioning %q", c.name, err, c.want)
		}
	}
}
