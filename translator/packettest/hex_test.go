package packettest

import (
	"bytes"
	"strings"
	"testing"
)

func TestHex(t *testing.T) {
	got := Hex(`
		// IPv4 header
		4500 0014  # total length 20
		0x00, 0x01, 0x40,0x00
		40 fd // TTL, protocol
		0000 c0000201 c6336402
	`)
	want := []byte{0x45, 0, 0, 0x14, 0, 1, 0x40, 0, 0x40, 0xfd, 0, 0, 192, 0, 2, 1, 198, 51, 100, 2}
	if !bytes.Equal(got, want) {
		t.Errorf("Hex = %x, want %x", got, want)
	}
	for _, bad := range []string{"4", "4g", "45 0x"} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Hex(%q) did not panic", bad)
				}
			}()
			Hex(bad)
		}()
	}
}

// TestFormatRoundTrip checks that Format writes what Hex reads back, with
// the sections named, for packets with every kind of part.
func TestFormatRoundTrip(t *testing.T) {
	inner := TCP4(IPv4{TTL: 3, Src: dst4, Dst: src4, Options: []byte{0x94, 4, 0, 0}}, tcpHdr, data)
	body, n := Extended(inner[:60], 4, ExtObject(2, 1, []byte{0, 0, 0, 7}))
	inner6 := UDP6(IPv6{Hop: 3, Src: dst6, Dst: src6, Ext: []Ext{Routing(0, 0, hop6)}}, 1, 2, data)
	for _, c := range []struct {
		pkt  []byte
		want []string
	}{
		{ICMP4(ip4, 11, 0, [4]byte{0, n}, body), []string{"// IPv4 header", "// ICMPv4 header", "// quoted IPv4 options",
			"// quoted TCP header", "// quoted payload", "// padding", "// RFC 4884 extension"}},
		{ICMP6(ip6, 1, 0, [4]byte{}, inner6[:50]), []string{"// quoted IPv6 header", "// quoted rest"}},
		{UDP6(IPv6{Hop: 1, Src: src6, Dst: dst6, Ext: []Ext{HopByHop(nil), Fragment(0, false, 1)}}, 1, 2, data),
			[]string{"// Hop-by-Hop Options header", "// Fragment header", "// UDP header", "// payload"}},
		{Raw4(ip4, 253, data), []string{"// payload"}},
		{corrupt(UDP4(ip4, 1, 2, data), 3), []string{"// rejected by Check: IPv4 total length"}},
	} {
		f := Format(c.pkt)
		if got := Hex(f); !bytes.Equal(got, c.pkt) {
			t.Errorf("Hex(Format(pkt)) differs:\n%s", f)
		}
		for _, w := range c.want {
			if !strings.Contains(f, w) {
				t.Errorf("Format lacks %q:\n%s", w, f)
			}
		}
	}
}
