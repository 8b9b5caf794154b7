package translator_test

// Rows E (ICMPv4 -> ICMPv6, RFC 7915 §4.2) and F (ICMPv6 -> ICMPv4, §5.2)
// of the conformance checklist, and the helpers that the E-L files share
// (prefixed ex: expectations, pk: packets).
//
// The ICMP errors here travel the way they do in the datacenter model: an
// IPv4 router (or client) reports on a packet a server sent to a client, so
// the ICMPv4 error goes to the server's public address; an IPv6 node (a
// server, or a datacenter router) reports on a packet a client sent to a
// server, so the ICMPv6 error goes to the client's pseudo-prefix address.

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net/netip"
	"testing"

	"github.com/map646/map646/translator"
	pt "github.com/map646/map646/translator/packettest"
)

func init() { conformanceCases = append(conformanceCases, casesEF()) }

// Addresses beyond those of the base configuration.
var (
	inetRouter4   = netip.MustParseAddr("203.0.113.5")        // a router on the IPv4 Internet
	inetRouter4x6 = netip.MustParseAddr("64:ff9b::cb00:7105") // ... as the IPv6 side sees it
	server4x6     = netip.MustParseAddr("64:ff9b::c633:640a") // server4 through the pseudo prefix
	server4bx6    = netip.MustParseAddr("64:ff9b::c633:640b") // server4b through the pseudo prefix
	unmapped4     = netip.MustParseAddr("198.51.100.99")      // public, but in no mapping
	unmapped6     = netip.MustParseAddr("2001:db8:1::99")     // a datacenter host with no mapping
	prefix4       = netip.MustParseAddr("198.51.100.20")      // in the 198.51.100.16/28 entry ...
	prefix6       = netip.MustParseAddr("2001:db8:2::4")      // ... which maps it here
)

// Packets the errors quote. A server's datagram to a client as it left the
// translator on the IPv4 side (what an IPv4 router quotes), and the same
// datagram as the server sent it, with the hop limit the quote carries: the
// translated quote must equal the second, checksum included.

func pkServerUDP4(n int) []byte {
	return pt.UDP4(pt.IPv4{TTL: 63, ID: 0x4d2, Src: server4, Dst: client4}, 53, 40000, exPayload(n))
}

func pkServerUDP6(n int) []byte {
	return pt.UDP6(pt.IPv6{Hop: 63, Src: server6, Dst: client6}, 53, 40000, exPayload(n))
}

// A client's datagram to a server as it left the translator on the IPv6 side
// (what an IPv6 node quotes), and as the IPv4 translation of that quote must
// read: Identification 0 and DF exactly when longer than 1260 bytes (RFC 7915
// §5.1), TTL not decremented.

func pkClientUDP6(n int) []byte {
	return pt.UDP6(pt.IPv6{Hop: 63, Src: client6, Dst: server6}, 40000, 53, exPayload(n))
}

func pkClientUDP4(n int) []byte {
	return pt.UDP4(pt.IPv4{TTL: 63, DF: 28+n > 1260, Src: client4, Dst: server4}, 40000, 53, exPayload(n))
}

// pkErr4 is an ICMPv4 error from the IPv4 router to the server.
func pkErr4(typ, code uint8, rest [4]byte, body []byte) []byte {
	return pt.ICMP4(pt.IPv4{TTL: 60, Src: inetRouter4, Dst: server4}, typ, code, rest, body)
}

// pkErr6 is an ICMPv6 error from src (the server, or a datacenter router)
// to the client.
func pkErr6(src netip.Addr, typ, code uint8, rest [4]byte, body []byte) []byte {
	return pt.ICMP6(pt.IPv6{Hop: 64, Src: src, Dst: client6}, typ, code, rest, body)
}

// exPayload returns n bytes that differ from one offset to the next, so that
// a shifted or reordered copy does not pass for the original.
func exPayload(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + 3)
	}
	return b
}

// exOne returns the only packet emitted.
func exOne(t *testing.T, out []output) *pt.Packet {
	t.Helper()
	if len(out) != 1 {
		t.Fatalf("%d packets emitted, want 1", len(out))
	}
	return out[0].P
}

func exAddrs(t *testing.T, what string, p *pt.Packet, src, dst netip.Addr) {
	t.Helper()
	if p.Src != src || p.Dst != dst {
		t.Errorf("%s: %v -> %v, want %v -> %v", what, p.Src, p.Dst, src, dst)
	}
}

// exICMP checks that p is an ICMP message of the given type and code with a
// checksum Check verified from scratch, and returns its header.
func exICMP(t *testing.T, p *pt.Packet, typ, code uint8) *pt.ICMP {
	t.Helper()
	if p.ICMP == nil {
		t.Fatalf("not an ICMP message: protocol %d", p.Proto)
	}
	if p.ICMP.Type != typ || p.ICMP.Code != code {
		t.Fatalf("ICMP %d/%d, want %d/%d", p.ICMP.Type, p.ICMP.Code, typ, code)
	}
	if !p.ChecksumChecked || !p.ChecksumOK {
		t.Errorf("ICMP checksum not verified (%s)", p.NotChecked)
	}
	return p.ICMP
}

// exBytes compares two byte strings and names the first difference.
func exBytes(t *testing.T, what string, got, want []byte) {
	t.Helper()
	if bytes.Equal(got, want) {
		return
	}
	i := 0
	for i < len(got) && i < len(want) && got[i] == want[i] {
		i++
	}
	t.Errorf("%s differs at byte %d (%d bytes, want %d)\n got: % x\nwant: % x",
		what, i, len(got), len(want), got[i:min(len(got), i+24)], want[i:min(len(want), i+24)])
}

// exGolden compares the only packet emitted with a golden vector.
func exGolden(t *testing.T, out []output, want []byte) {
	t.Helper()
	exOne(t, out)
	if !bytes.Equal(out[0].Raw, want) {
		t.Errorf("output differs from the golden vector\n got:\n%s\nwant:\n%s", pt.Format(out[0].Raw), pt.Format(want))
	}
}

// wantErr describes a translated or generated ICMP error.
type wantErr struct {
	src, dst  netip.Addr
	ttl       uint8 // outer TTL or Hop Limit
	typ, code uint8
	quote     []byte // the quoted packet as it must read, without RFC 4884 padding
}

// exError checks the only packet emitted against w and returns it.
func exError(t *testing.T, out []output, w wantErr) *pt.Packet {
	t.Helper()
	p := exOne(t, out)
	if want := 6; w.src.Is4() != (p.Version == 4) {
		if w.src.Is4() {
			want = 4
		}
		t.Fatalf("IPv%d packet, want IPv%d", p.Version, want)
	}
	exAddrs(t, "outer header", p, w.src, w.dst)
	if p.TTL != w.ttl {
		t.Errorf("outer TTL/Hop Limit %d, want %d", p.TTL, w.ttl)
	}
	exICMP(t, p, w.typ, w.code)
	if p.Quote == nil {
		t.Fatal("the error quotes no packet")
	}
	if w.quote != nil {
		exBytes(t, "quoted packet", p.Quote.Raw, w.quote)
	}
	return p
}

// dropCase is a case whose input must be dropped for r.
func dropCase(name string, in []byte, r translator.Reason) conformanceCase {
	return conformanceCase{name: name, in: in, verdict: translator.Drop, reason: r}
}

// ICMPv6 and ICMPv4 error types, written out from RFC 4443 §2.1 and RFC 792
// (not taken from the translator).
const (
	v6DestUnreach  = 1
	v6PacketTooBig = 2
	v6TimeExceeded = 3
	v6ParamProblem = 4
	v4DestUnreach  = 3
	v4TimeExceeded = 11
	v4ParamProblem = 12
)

func casesEF() []conformanceCase {
	var cs []conformanceCase
	add := func(c ...conformanceCase) { cs = append(cs, c...) }

	// E1: Echo Request and Reply (RFC 7915 §4.2: "Adjust the Type values to
	// 128 and 129, respectively, and adjust the ICMP checksum both to take
	// the type change into account and to include the ICMPv6 pseudo-header").
	add(conformanceCase{
		name:    "E1-echo-request-4to6-golden",
		in:      pt.ICMP4(pt.IPv4{TTL: 64, ID: 0x1234, Src: client4, Dst: server4}, 8, 0, pt.Rest16(0x0102, 0x0304), []byte("abcdefgh")),
		verdict: translator.Forward,
		check: func(t *testing.T, out []output) {
			exGolden(t, out, pt.Hex(`
				60 00 00 00  00 10 3a 3f                          # IPv6: TC 0, flow 0, payload 16, NH 58, hop 63
				00 64 ff 9b 00 00 00 00 00 00 00 00 c0 00 02 07   # src 64:ff9b::192.0.2.7 (RFC 6052)
				20 01 0d b8 00 01 00 00 00 00 00 00 00 00 00 10   # dst 2001:db8:1::10 (EAM)
				80 00 fa 47  01 02 03 04                          # ICMPv6 128/0, checksum with pseudo-header, id 0x0102 seq 0x0304
				61 62 63 64 65 66 67 68                           # data, unchanged
			`))
		},
	}, conformanceCase{
		name:    "E1-echo-reply-4to6",
		in:      pt.ICMP4(pt.IPv4{TTL: 64, Src: client4, Dst: server4}, 0, 0, pt.Rest16(7, 9), exPayload(56)),
		verdict: translator.Forward,
		check: func(t *testing.T, out []output) {
			p := exOne(t, out)
			exAddrs(t, "echo reply", p, client6, server6)
			m := exICMP(t, p, 129, 0)
			if m.ID != 7 || m.Seq != 9 {
				t.Errorf("id/seq %d/%d, want 7/9", m.ID, m.Seq)
			}
			exBytes(t, "echo data", p.Payload, exPayload(56))
		},
	})

	// E2: informational types other than echo are silently dropped; so is IGMP.
	for _, typ := range []uint8{9, 10, 13, 14, 15, 16, 17, 18, 19, 30, 37, 42, 43, 253} {
		add(dropCase(fmt.Sprintf("E2-informational-type-%d-dropped", typ),
			pt.ICMP4(pt.IPv4{TTL: 64, Src: client4, Dst: server4}, typ, 0, [4]byte{}, exPayload(12)),
			translator.ReasonICMPType))
	}
	add(dropCase("E2-igmp-dropped",
		pt.Raw4(pt.IPv4{TTL: 64, Src: client4, Dst: server4}, 2, []byte{0x11, 0, 0xee, 0xff, 0, 0, 0, 0}),
		translator.ReasonIGMP))

	add(casesE3()...)
	add(casesE4()...)

	// E5: Source Quench, Redirect (every code) and Alternate Host Address.
	for _, tc := range [][2]uint8{{4, 0}, {5, 0}, {5, 1}, {5, 2}, {5, 3}, {6, 0}} {
		add(dropCase(fmt.Sprintf("E5-type-%d-code-%d-dropped", tc[0], tc[1]),
			pkErr4(tc[0], tc[1], [4]byte{192, 0, 2, 254}, pkServerUDP4(8)), translator.ReasonICMPType))
	}

	// E6: Time Exceeded, code kept. The golden vector shows the quoted
	// packet's addresses in reverse roles and its hop limit untouched.
	add(conformanceCase{
		name: "E6-time-exceeded-4to6-golden",
		in: pkErr4(v4TimeExceeded, 0, [4]byte{},
			pt.UDP4(pt.IPv4{TTL: 61, ID: 0x4d2, Src: server4, Dst: client4}, 53, 40000, []byte{0xde, 0xad, 0xbe, 0xef})),
		verdict: translator.Forward,
		check: func(t *testing.T, out []output) {
			exGolden(t, out, pt.Hex(`
				60 00 00 00  00 3c 3a 3b                          # IPv6: payload 60, NH 58, hop 59 (TTL 60 - 1)
				00 64 ff 9b 00 00 00 00 00 00 00 00 cb 00 71 05   # src 64:ff9b::203.0.113.5, the IPv4 router
				20 01 0d b8 00 01 00 00 00 00 00 00 00 00 00 10   # dst 2001:db8:1::10, the server (EAM)
				03 00 21 8d  00 00 00 00                          # ICMPv6 3/0 (Time Exceeded, code kept), unused
				60 00 00 00  00 0c 11 3d                          # quoted IPv6: payload 12, NH 17, hop 61 (not decremented)
				20 01 0d b8 00 01 00 00 00 00 00 00 00 00 00 10   # quoted src: the server, mapped like a destination (EAM)
				00 64 ff 9b 00 00 00 00 00 00 00 00 c0 00 02 07   # quoted dst: the client, mapped like a source (RFC 6052)
				00 35 9c 40  00 0c d5 f1                          # quoted UDP 53 -> 40000, checksum for the IPv6 pseudo-header
				de ad be ef                                       # quoted data
			`))
		},
	})
	add(conformanceCase{
		name:    "E6-time-exceeded-code-1-4to6",
		in:      pkErr4(11, 1, [4]byte{}, pkServerUDP4(100)),
		verdict: translator.Forward,
		check: func(t *testing.T, out []output) {
			exError(t, out, wantErr{inetRouter4x6, server6, 59, v6TimeExceeded, 1, pkServerUDP6(100)})
		},
	})

	add(casesE7()...)

	// E8: error types RFC 7915 does not name are dropped: unassigned 1, 2, 7,
	// Datagram Conversion Error 31 (RFC 1475) and Photuris 40 (RFC 2521).
	for _, typ := range []uint8{1, 2, 7, 31, 40} {
		add(dropCase(fmt.Sprintf("E8-unknown-error-type-%d-dropped", typ),
			pkErr4(typ, 0, [4]byte{}, pkServerUDP4(8)), translator.ReasonICMPType))
	}

	add(casesE9()...)

	// F1: Echo Request and Reply (RFC 7915 §5.2: "Adjust the Type values to 0
	// and 8, respectively, and adjust the ICMP checksum both to take the type
	// change into account and to exclude the ICMPv6 pseudo-header").
	add(conformanceCase{
		name:    "F1-echo-request-6to4-golden",
		in:      pt.ICMP6(pt.IPv6{Hop: 64, Src: server6, Dst: client6}, 128, 0, pt.Rest16(0x0a0b, 0x0c0d), []byte("ping6to4")),
		verdict: translator.Forward,
		check: func(t *testing.T, out []output) {
			exGolden(t, out, pt.Hex(`
				45 00 00 24  00 00 00 00  3f 01 8f 94   # IPv4: total 36, ID 0, no DF (<= 1260), TTL 63, proto 1
				c6 33 64 0a                             # src 198.51.100.10, the server (EAM)
				c0 00 02 07                             # dst 192.0.2.7, the client (RFC 6052)
				08 00 5d 6e  0a 0b 0c 0d                # ICMPv4 8/0, checksum without pseudo-header, id/seq kept
				70 69 6e 67 36 74 6f 34                 # data, unchanged
			`))
		},
	}, conformanceCase{
		name:    "F1-echo-reply-6to4",
		in:      pt.ICMP6(pt.IPv6{Hop: 64, Src: server6, Dst: client6}, 129, 0, pt.Rest16(7, 9), exPayload(56)),
		verdict: translator.Forward,
		check: func(t *testing.T, out []output) {
			p := exOne(t, out)
			exAddrs(t, "echo reply", p, server4, client4)
			m := exICMP(t, p, 0, 0)
			if m.ID != 7 || m.Seq != 9 {
				t.Errorf("id/seq %d/%d, want 7/9", m.ID, m.Seq)
			}
			exBytes(t, "echo data", p.Payload, exPayload(56))
		},
	})

	// F2: MLD (130-132, 143), ND (133-137) and unknown informational types.
	for _, typ := range []uint8{130, 131, 132, 133, 134, 135, 136, 137, 139, 140, 143, 160, 200, 255} {
		add(dropCase(fmt.Sprintf("F2-informational-type-%d-dropped", typ),
			pt.ICMP6(pt.IPv6{Hop: 255, Src: server6, Dst: client6}, typ, 0, [4]byte{}, exPayload(16)),
			translator.ReasonICMPType))
	}

	add(casesF3()...)
	add(casesF4()...)

	// F5: Time Exceeded, code kept. Golden: code 1 (reassembly time
	// exceeded) from the server, whose fragments from the client went missing.
	add(conformanceCase{
		name: "F5-time-exceeded-6to4-golden",
		in: pkErr6(server6, 3, 1, [4]byte{},
			pt.UDP6(pt.IPv6{Hop: 62, Src: client6, Dst: server6}, 40000, 53, []byte{1, 2, 3, 4, 5, 6, 7, 8})),
		verdict: translator.Forward,
		check: func(t *testing.T, out []output) {
			exGolden(t, out, pt.Hex(`
				45 00 00 40  00 00 00 00  3f 01 8f 78   # IPv4: total 64, ID 0, no DF, TTL 63, proto 1
				c6 33 64 0a                             # src 198.51.100.10, the server (EAM)
				c0 00 02 07                             # dst 192.0.2.7, the client
				0b 01 e1 65  00 00 00 00                # ICMPv4 11/1 (Time Exceeded, code kept), unused
				45 00 00 24  00 00 00 00  3e 11 90 84   # quoted IPv4: total 36, ID 0, no DF, TTL 62 (not decremented), proto 17
				c0 00 02 07                             # quoted src: the client, mapped like a destination
				c6 33 64 0a                             # quoted dst: the server, mapped like a source (EAM)
				9c 40 00 35  00 10 66 ff                # quoted UDP 40000 -> 53, checksum for the IPv4 pseudo-header
				01 02 03 04 05 06 07 08                 # quoted data
			`))
		},
	}, conformanceCase{
		name:    "F5-time-exceeded-code-0-6to4",
		in:      pkErr6(server6, 3, 0, [4]byte{}, pkClientUDP6(100)),
		verdict: translator.Forward,
		check: func(t *testing.T, out []output) {
			exError(t, out, wantErr{server4, client4, 63, v4TimeExceeded, 0, pkClientUDP4(100)})
		},
	})

	add(casesF6()...)

	// F7: unknown ICMPv6 error types (below 128, RFC 4443 §2.1) are dropped,
	// the private-experimentation ones (100, 101) and 127 included.
	for _, typ := range []uint8{0, 5, 6, 100, 101, 127} {
		add(dropCase(fmt.Sprintf("F7-unknown-error-type-%d-dropped", typ),
			pkErr6(server6, typ, 0, [4]byte{}, pkClientUDP6(8)), translator.ReasonICMPType))
	}

	add(casesF8()...)
	return cs
}

// casesE3: ICMPv4 Destination Unreachable, every code 0..15 and an unknown
// one, against RFC 7915 §4.2 written out here.
func casesE3() []conformanceCase {
	type want struct {
		drop      bool
		typ, code uint8
		ptr, mtu  uint32
	}
	unreach := func(code uint8) want { return want{typ: v6DestUnreach, code: code} }
	table := map[uint8]want{
		0:  unreach(0),                                // Net Unreachable -> No route to destination
		1:  unreach(0),                                // Host Unreachable -> No route
		2:  {typ: v6ParamProblem, code: 1, ptr: 6},    // Protocol Unreachable -> 4/1, pointer to Next Header
		3:  unreach(4),                                // Port Unreachable -> Port unreachable
		4:  {typ: v6PacketTooBig, code: 0, mtu: 1420}, // Fragmentation Needed (MTU 1400 + 20) -> Packet Too Big
		5:  unreach(0),                                // Source Route Failed -> No route
		6:  unreach(0),                                // Destination Network Unknown
		7:  unreach(0),                                // Destination Host Unknown
		8:  unreach(0),                                // Source Host Isolated
		9:  unreach(1),                                // Network Administratively Prohibited
		10: unreach(1),                                // Host Administratively Prohibited
		11: unreach(0),                                // Network Unreachable for TOS
		12: unreach(0),                                // Host Unreachable for TOS
		13: unreach(1),                                // Communication Administratively Prohibited
		14: {drop: true},                              // Host Precedence Violation: silently drop
		15: unreach(1),                                // Precedence cutoff in effect
		16: {drop: true},                              // other codes: silently drop
		99: {drop: true},
	}
	var cs []conformanceCase
	for _, code := range []uint8{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 99} {
		w := table[code]
		rest := [4]byte{}
		if code == 4 {
			rest = pt.Rest16(0, 1400)
		}
		in := pkErr4(v4DestUnreach, code, rest, pkServerUDP4(20))
		name := fmt.Sprintf("E3-dest-unreach-code-%d", code)
		if w.drop {
			cs = append(cs, dropCase(name+"-dropped", in, translator.ReasonICMPType))
			continue
		}
		cs = append(cs, conformanceCase{
			name:    fmt.Sprintf("%s-to-%d-%d", name, w.typ, w.code),
			in:      in,
			verdict: translator.Forward,
			check: func(t *testing.T, out []output) {
				p := exError(t, out, wantErr{inetRouter4x6, server6, 59, w.typ, w.code, pkServerUDP6(20)})
				if w.typ == v6ParamProblem && p.ICMP.Pointer != w.ptr {
					t.Errorf("pointer %d, want %d", p.ICMP.Pointer, w.ptr)
				}
				if w.typ == v6PacketTooBig && p.ICMP.MTU != w.mtu {
					t.Errorf("MTU %d, want %d", p.ICMP.MTU, w.mtu)
				}
				if w.typ == v6DestUnreach && p.ICMP.Rest != [4]byte{} {
					t.Errorf("unused field % x, want zero", p.ICMP.Rest)
				}
			},
		})
	}
	return cs
}

// casesE4: the Packet Too Big MTU of RFC 7915 §4.2: "maximum(1280,
// minimum((MTU value in the Packet Too Big message) + 20,
// MTU_of_IPv6_nexthop, (MTU_of_IPv4_nexthop) + 20))", and for an MTU of zero
// "the greatest plateau value [of RFC 1191] that is less than the returned
// Total Length field".
func casesE4() []conformanceCase {
	mtus := func(v6, v4 int) func(*translator.Config) {
		return func(c *translator.Config) { c.IPv6MTU, c.IPv4MTU = v6, v4 }
	}
	type tc struct {
		name     string
		cfg      func(*translator.Config)
		adv      uint16
		totalLen int // of the quoted packet, whose first 28 bytes are quoted (RFC 792)
		want     uint32
	}
	tcs := []tc{
		{"adv-plus-20", nil, 1400, 1400, 1420},
		{"adv-plus-20-capped-by-ipv6-mtu", nil, 1496, 1496, 1500},          // min(1516, 1500, 1520)
		{"capped-by-ipv4-mtu-plus-20", mtus(9000, 1400), 2000, 2000, 1420}, // min(2020, 9000, 1420)
		{"capped-by-ipv6-mtu", mtus(1400, 1500), 1480, 1480, 1400},         // min(1500, 1400, 1520)
		{"jumbo", mtus(9000, 9000), 8000, 8000, 8020},
		{"never-below-1280", nil, 1000, 1000, 1280},
		{"never-below-1280-from-1259", nil, 1259, 1259, 1280},
		{"exactly-1280", nil, 1260, 1260, 1280},
		{"first-above-1280", nil, 1261, 1261, 1281},
		{"tiny-68", nil, 68, 100, 1280},
		// MTU zero: a router that predates RFC 1191. The plateaus are
		// 65535 32000 17914 8166 4352 2002 1492 1006 508 296 68.
		{"zero-plateau-1492", mtus(9000, 9000), 0, 1500, 1512},         // 1492 + 20
		{"zero-plateau-2002", mtus(9000, 9000), 0, 4000, 2022},         // 2002 + 20
		{"zero-plateau-below-exact", mtus(9000, 9000), 0, 2002, 1512},  // strictly less than 2002: 1492
		{"zero-plateau-1006-to-1280", mtus(9000, 9000), 0, 1200, 1280}, // 1006 + 20 < 1280
		{"zero-plateau-capped", nil, 0, 4000, 1500},                    // 2022 capped by the IPv6 MTU
	}
	var cs []conformanceCase
	for _, c := range tcs {
		orig := pkServerUDP4(c.totalLen - 28)
		cs = append(cs, conformanceCase{
			name:    "E4-ptb-mtu-" + c.name,
			config:  c.cfg,
			in:      pkErr4(v4DestUnreach, 4, pt.Rest16(0, c.adv), orig[:28]),
			verdict: translator.Forward,
			check: func(t *testing.T, out []output) {
				p := exError(t, out, wantErr{inetRouter4x6, server6, 59, v6PacketTooBig, 0, pkServerUDP6(c.totalLen - 28)[:48]})
				if p.ICMP.MTU != c.want {
					t.Errorf("Packet Too Big MTU %d, want %d", p.ICMP.MTU, c.want)
				}
			},
		})
	}
	return cs
}

// fig3 is RFC 7915 Figure 3 (IPv4 pointer -> IPv6 pointer), written out from
// the RFC; an absent or "n/a" entry means the packet is dropped.
var fig3 = map[uint8]uint32{
	0: 0, // Version/IHL -> Version/Traffic Class
	1: 1, // Type Of Service -> Traffic Class/Flow Label
	2: 4, // Total Length -> Payload Length
	3: 4,
	// 4,5 Identification, 6 Flags/Fragment Offset, 7 Fragment Offset: n/a
	8: 7, // Time to Live -> Hop Limit
	9: 6, // Protocol -> Next Header
	// 10,11 Header Checksum: n/a
	12: 8, 13: 8, 14: 8, 15: 8, // Source Address
	16: 24, 17: 24, 18: 24, 19: 24, // Destination Address
}

// casesE7: Parameter Problem, RFC 7915 §4.2: codes 0 and 2 -> 4/0 with the
// pointer per Figure 3 ("If the Original IPv4 Pointer Value is not listed or
// the Translated IPv6 Pointer Value is listed as 'n/a', silently drop"); code
// 1 and other codes -> silently drop. Every pointer value 0..19, options and
// beyond.
func casesE7() []conformanceCase {
	var cs []conformanceCase
	for _, code := range []uint8{0, 2} {
		for ptr := 0; ptr < 24; ptr++ {
			cs = append(cs, e7Case(code, uint8(ptr)))
		}
		cs = append(cs, e7Case(code, 255))
	}
	for _, code := range []uint8{1, 3, 255} {
		cs = append(cs, dropCase(fmt.Sprintf("E7-param-problem-code-%d-dropped", code),
			pkErr4(v4ParamProblem, code, [4]byte{8}, pkServerUDP4(20)), translator.ReasonICMPType))
	}
	return cs
}

func e7Case(code, ptr uint8) conformanceCase {
	in := pkErr4(v4ParamProblem, code, [4]byte{ptr}, pkServerUDP4(20))
	name := fmt.Sprintf("E7-param-problem-code-%d-ptr-%d", code, ptr)
	want, ok := fig3[ptr]
	if !ok {
		return dropCase(name+"-dropped", in, translator.ReasonICMPParamPointer)
	}
	return conformanceCase{
		name:    fmt.Sprintf("%s-to-%d", name, want),
		in:      in,
		verdict: translator.Forward,
		check: func(t *testing.T, out []output) {
			p := exError(t, out, wantErr{inetRouter4x6, server6, 59, v6ParamProblem, 0, pkServerUDP6(20)})
			if p.ICMP.Pointer != want {
				t.Errorf("pointer %d, want %d (RFC 7915 Figure 3)", p.ICMP.Pointer, want)
			}
		},
	}
}

// casesE9: RFC 4884 extensions, ICMPv4 -> ICMPv6. RFC 7915 §4.2: "the
// ICMPv6 Extension length attribute MUST be adjusted accordingly (e.g.,
// longer due to the translation from IPv4 to IPv6). If the ICMPv4 Extension
// exceeds the maximum size of an ICMPv6 message on the outgoing interface,
// the ICMPv4 extension SHOULD be simply truncated. For extensions not
// defined in [RFC4884], the translator passes the extensions as opaque bit
// strings". RFC 4884 §4: the original datagram field is zero padded to a
// 64-bit boundary (ICMPv6) and to at least 128 octets, and only Destination
// Unreachable and Time Exceeded carry it in ICMPv6.
func casesE9() []conformanceCase {
	mpls := pt.ExtObject(1, 1, []byte{0x00, 0x11, 0x11, 0xff}) // RFC 4950 MPLS label stack entry
	ext4 := func(quote []byte, objs ...[]byte) (body []byte, length uint8, ext []byte) {
		body, length = pt.Extended(quote, 4, objs...)
		return body, length, body[int(length)*4:]
	}
	var cs []conformanceCase

	// A short original datagram, padded to 128 octets in both versions.
	{
		body, n, ext := ext4(pkServerUDP4(60), mpls) // 88 bytes, padded to 128
		cs = append(cs, conformanceCase{
			name:    "E9-time-exceeded-extension-padded-4to6",
			in:      pkErr4(v4TimeExceeded, 0, [4]byte{0, n}, body),
			verdict: translator.Forward,
			check: func(t *testing.T, out []output) {
				quote := pkServerUDP6(60) // 108 bytes
				p := exError(t, out, wantErr{inetRouter4x6, server6, 59, v6TimeExceeded, 0, quote})
				exExtension(t, p, 128, ext, len(quote))
				if len(out[0].Raw) != 40+8+128+len(ext) {
					t.Errorf("ICMPv6 error of %d bytes, want %d", len(out[0].Raw), 40+8+128+len(ext))
				}
			},
		})
	}
	// A longer one, padded to a multiple of 8 only: 300 bytes of IPv4 quote
	// become 320 of IPv6 (length 40 words of 8 instead of 75 words of 4).
	{
		body, n, ext := ext4(pkServerUDP4(272), mpls, pt.ExtObject(2, 1, []byte{0, 0, 0, 7}))
		cs = append(cs, conformanceCase{
			name:    "E9-dest-unreach-extension-length-adjusted-4to6",
			in:      pkErr4(v4DestUnreach, 3, [4]byte{0, n}, body),
			verdict: translator.Forward,
			check: func(t *testing.T, out []output) {
				p := exError(t, out, wantErr{inetRouter4x6, server6, 59, v6DestUnreach, 4, pkServerUDP6(272)})
				exExtension(t, p, 320, ext, 320)
			},
		})
	}
	// Quote and extension together too long for 1280: the quote gives way,
	// the extension stays whole (as Jool's graybox test idz).
	{
		orig := pkServerUDP4(972) // 1000 bytes, of which 576 are quoted
		body, n, ext := ext4(orig[:576], pt.ExtObject(3, 1, exPayload(632)))
		cs = append(cs, conformanceCase{
			name:    "E9-extension-kept-quote-truncated-to-1280-4to6",
			in:      pkErr4(v4TimeExceeded, 0, [4]byte{0, n}, body),
			verdict: translator.Forward,
			check: func(t *testing.T, out []output) {
				if len(ext) != 640 {
					t.Fatalf("test setup: extension of %d bytes", len(ext))
				}
				// 40 + 8 + 592 + 640 = 1280
				p := exError(t, out, wantErr{inetRouter4x6, server6, 59, v6TimeExceeded, 0, pkServerUDP6(972)[:592]})
				exExtension(t, p, 592, ext, 592)
				if len(out[0].Raw) != 1280 {
					t.Errorf("ICMPv6 error of %d bytes, want 1280", len(out[0].Raw))
				}
			},
		})
	}
	// An extension that cannot fit beside 128 octets of quote within 1280
	// bytes: "SHOULD be simply truncated". A cut extension structure would
	// fail its own checksum, so removing it (as Jool does) is accepted too;
	// what must hold is the size cap, the quote, and that whatever extension
	// bytes remain are the original ones.
	{
		body, n, ext := ext4(pkServerUDP4(100), pt.ExtObject(3, 1, exPayload(1100))) // 128 + 1108
		cs = append(cs, conformanceCase{
			name:    "E9-extension-too-long-4to6",
			in:      pkErr4(v4TimeExceeded, 0, [4]byte{0, n}, body),
			verdict: translator.Forward,
			check: func(t *testing.T, out []output) {
				p := exOne(t, out)
				exICMP(t, p, v6TimeExceeded, 0)
				if len(out[0].Raw) > 1280 {
					t.Errorf("ICMPv6 error of %d bytes, more than 1280", len(out[0].Raw))
				}
				if p.Quote == nil {
					t.Fatal("no quote")
				}
				exBytes(t, "quoted packet", p.Quote.Raw, pkServerUDP6(100))
				if !bytes.HasPrefix(ext, p.Extension) {
					t.Errorf("extension bytes are not a prefix of the original extension")
				}
			},
		})
	}
	// The boundary (Jool's graybox tests idd, idg, idh): beside a 128-octet
	// quote, an extension of 1104 bytes fills the 1280 exactly; 1105 bytes
	// cannot fit whole.
	for _, size := range []int{1104, 1105} {
		body, n, ext := ext4(pkServerUDP4(60), pt.ExtObject(3, 1, exPayload(size-8))) // quote 88 -> 108, padded to 128
		cs = append(cs, conformanceCase{
			name:    fmt.Sprintf("E9-extension-%d-bytes-4to6", size),
			in:      pkErr4(v4TimeExceeded, 0, [4]byte{0, n}, body),
			verdict: translator.Forward,
			check: func(t *testing.T, out []output) {
				if len(ext) != size {
					t.Fatalf("test setup: extension of %d bytes", len(ext))
				}
				quote := pkServerUDP6(60)
				p := exError(t, out, wantErr{inetRouter4x6, server6, 59, v6TimeExceeded, 0, quote})
				if len(out[0].Raw) > 1280 {
					t.Errorf("ICMPv6 error of %d bytes, more than 1280", len(out[0].Raw))
				}
				if size == 1104 {
					exExtension(t, p, 128, ext, len(quote))
					if len(out[0].Raw) != 1280 {
						t.Errorf("ICMPv6 error of %d bytes, want 1280", len(out[0].Raw))
					}
				} else if !bytes.HasPrefix(ext, p.Extension) {
					t.Error("extension bytes are not a prefix of the original extension")
				}
			},
		})
	}
	// ICMPv6 Parameter Problem and Packet Too Big have no length attribute
	// (RFC 4884 §4): the extension cannot follow and is left out; the quote
	// is then the translated datagram without padding.
	{
		body, n, _ := ext4(pkServerUDP4(40), mpls)
		cs = append(cs, conformanceCase{
			name:    "E9-param-problem-extension-left-out-4to6",
			in:      pkErr4(v4ParamProblem, 0, [4]byte{8, n}, body),
			verdict: translator.Forward,
			check: func(t *testing.T, out []output) {
				quote := pkServerUDP6(40)
				p := exError(t, out, wantErr{inetRouter4x6, server6, 59, v6ParamProblem, 0, quote})
				if p.ICMP.Pointer != 7 {
					t.Errorf("pointer %d, want 7", p.ICMP.Pointer)
				}
				if len(p.Payload) != len(quote) {
					t.Errorf("%d bytes after the ICMPv6 header, want the %d-byte quote alone", len(p.Payload), len(quote))
				}
			},
		})
		body, n, _ = ext4(pkServerUDP4(40), mpls)
		cs = append(cs, conformanceCase{
			name:    "E9-frag-needed-extension-left-out-4to6",
			in:      pkErr4(v4DestUnreach, 4, [4]byte{0, n, 0x05, 0x78}, body), // MTU 1400
			verdict: translator.Forward,
			check: func(t *testing.T, out []output) {
				quote := pkServerUDP6(40)
				p := exError(t, out, wantErr{inetRouter4x6, server6, 59, v6PacketTooBig, 0, quote})
				if p.ICMP.MTU != 1420 {
					t.Errorf("MTU %d, want 1420", p.ICMP.MTU)
				}
				if len(p.Payload) != len(quote) {
					t.Errorf("%d bytes after the ICMPv6 header, want the %d-byte quote alone", len(p.Payload), len(quote))
				}
			},
		})
	}
	return cs
}

// exExtension checks the RFC 4884 layout of an ICMP error: the length
// attribute in bytes, the quote (quoteLen bytes) zero padded up to it, and
// the extension copied unchanged after it.
func exExtension(t *testing.T, p *pt.Packet, length int, ext []byte, quoteLen int) {
	t.Helper()
	if p.ICMP.Length != length {
		t.Errorf("RFC 4884 length %d bytes, want %d", p.ICMP.Length, length)
	}
	exBytes(t, "extension", p.Extension, ext)
	if len(p.Payload) < length {
		t.Fatalf("%d bytes after the ICMP header, less than the length %d", len(p.Payload), length)
	}
	for i, c := range p.Payload[quoteLen:length] {
		if c != 0 {
			t.Errorf("padding byte %d is %#02x, want 0", quoteLen+i, c)
			break
		}
	}
}

// casesF3: ICMPv6 Destination Unreachable, every code RFC 4443 and later
// RFCs define (0-8) and an unknown one, against RFC 7915 §5.2.
func casesF3() []conformanceCase {
	table := map[uint8]int{ // ICMPv4 code, or -1: silently drop
		0:   1,  // No route to destination -> Host unreachable
		1:   10, // Administratively prohibited -> Host administratively prohibited
		2:   1,  // Beyond scope of source address -> Host unreachable
		3:   1,  // Address unreachable -> Host unreachable
		4:   3,  // Port unreachable -> Port unreachable
		5:   -1, // Source address failed ingress/egress policy: "Other Code values"
		6:   -1, // Reject route to destination
		7:   -1, // Error in Source Routing Header (RFC 6554)
		8:   -1, // Headers too long (RFC 8883)
		200: -1,
	}
	var cs []conformanceCase
	for _, code := range []uint8{0, 1, 2, 3, 4, 5, 6, 7, 8, 200} {
		in := pkErr6(server6, v6DestUnreach, code, [4]byte{}, pkClientUDP6(20))
		want := table[code]
		name := fmt.Sprintf("F3-dest-unreach-code-%d", code)
		if want < 0 {
			cs = append(cs, dropCase(name+"-dropped", in, translator.ReasonICMPType))
			continue
		}
		cs = append(cs, conformanceCase{
			name:    fmt.Sprintf("%s-to-3-%d", name, want),
			in:      in,
			verdict: translator.Forward,
			check: func(t *testing.T, out []output) {
				p := exError(t, out, wantErr{server4, client4, 63, v4DestUnreach, uint8(want), pkClientUDP4(20)})
				if p.ICMP.Rest != [4]byte{} {
					t.Errorf("unused field % x, want zero", p.ICMP.Rest)
				}
			},
		})
	}
	return cs
}

// casesF4: Packet Too Big -> Fragmentation Needed, RFC 7915 §5.2:
// "minimum(advertised MTU-20, MTU_of_IPv4_nexthop, (MTU_of_IPv6_nexthop)-20)",
// in the low 16 bits with the high 16 bits zero (RFC 1191).
func casesF4() []conformanceCase {
	mtus := func(v6, v4 int) func(*translator.Config) {
		return func(c *translator.Config) { c.IPv6MTU, c.IPv4MTU = v6, v4 }
	}
	type tc struct {
		name string
		cfg  func(*translator.Config)
		adv  uint32
		want uint16
	}
	tcs := []tc{
		{"adv-minus-20", nil, 1400, 1380},
		{"minimum-1280", nil, 1280, 1260},
		{"adv-1500", nil, 1500, 1480},                                 // min(1480, 1500, 1480)
		{"capped-by-ipv4-mtu", mtus(9000, 1400), 1500, 1400},          // min(1480, 1400, 8980)
		{"capped-by-ipv6-mtu-minus-20", mtus(1400, 9000), 1500, 1380}, // min(1480, 9000, 1380)
		{"jumbo", mtus(9000, 9000), 9000, 8980},
		{"adv-above-16-bits", mtus(65535, 65535), 0x10000 + 1400, 65515}, // min(66916, 65535, 65515)
	}
	var cs []conformanceCase
	for _, c := range tcs {
		cs = append(cs, conformanceCase{
			name:    "F4-ptb-mtu-" + c.name,
			config:  c.cfg,
			in:      pkErr6(router6, v6PacketTooBig, 0, pt.Rest32(c.adv), pkClientUDP6(1400)[:1232]),
			verdict: translator.Forward,
			check: func(t *testing.T, out []output) {
				p := exError(t, out, wantErr{pool6791, client4, 63, v4DestUnreach, 4, pkClientUDP4(1400)[:548]})
				if p.ICMP.MTU != uint32(c.want) || binary.BigEndian.Uint16(p.ICMP.Rest[:2]) != 0 {
					t.Errorf("rest of header % x, want MTU %d with zero above it", p.ICMP.Rest, c.want)
				}
			},
		})
	}
	return cs
}

// fig6 is RFC 7915 Figure 6 (IPv6 pointer -> IPv4 pointer), written out from
// the RFC; absent or "n/a" means drop.
var fig6 = func() map[uint32]uint32 {
	m := map[uint32]uint32{
		0: 0, // Version/Traffic Class -> Version/IHL, Type Of Service
		1: 1, // Traffic Class/Flow Label -> Type Of Service
		// 2,3 Flow Label: n/a
		4: 2, 5: 2, // Payload Length -> Total Length
		6: 9, // Next Header -> Protocol
		7: 8, // Hop Limit -> Time to Live
	}
	for p := uint32(8); p <= 23; p++ {
		m[p] = 12 // Source Address
	}
	for p := uint32(24); p <= 39; p++ {
		m[p] = 16 // Destination Address
	}
	return m
}()

// casesF6: Parameter Problem, RFC 7915 §5.2: code 0 -> 12/0 with the pointer
// per Figure 6 ("If the Original IPv6 Pointer Value is not listed or the
// Translated IPv4 Pointer Value is listed as 'n/a', silently drop"); code 1
// -> 3/2; code 2 -> silently drop. Every pointer 0..39 and some beyond.
func casesF6() []conformanceCase {
	var cs []conformanceCase
	ptrs := []uint32{40, 41, 48, 255, 256, 0x01000008, 0xffffffff}
	for p := uint32(0); p < 40; p++ {
		ptrs = append(ptrs, p)
	}
	for _, ptr := range ptrs {
		in := pkErr6(server6, v6ParamProblem, 0, pt.Rest32(ptr), pkClientUDP6(20))
		name := fmt.Sprintf("F6-param-problem-code-0-ptr-%d", ptr)
		want, ok := fig6[ptr]
		if !ok {
			cs = append(cs, dropCase(name+"-dropped", in, translator.ReasonICMPParamPointer))
			continue
		}
		cs = append(cs, conformanceCase{
			name:    fmt.Sprintf("%s-to-%d", name, want),
			in:      in,
			verdict: translator.Forward,
			check: func(t *testing.T, out []output) {
				p := exError(t, out, wantErr{server4, client4, 63, v4ParamProblem, 0, pkClientUDP4(20)})
				if p.ICMP.Pointer != want || p.ICMP.Rest[1] != 0 || p.ICMP.Rest[2] != 0 || p.ICMP.Rest[3] != 0 {
					t.Errorf("rest of header % x, want pointer %d then zeros (RFC 7915 Figure 6)", p.ICMP.Rest, want)
				}
			},
		})
	}
	cs = append(cs, conformanceCase{
		name:    "F6-param-problem-code-1-to-3-2",
		in:      pkErr6(server6, v6ParamProblem, 1, pt.Rest32(6), pkClientUDP6(20)),
		verdict: translator.Forward,
		check: func(t *testing.T, out []output) {
			exError(t, out, wantErr{server4, client4, 63, v4DestUnreach, 2, pkClientUDP4(20)})
		},
	})
	for _, code := range []uint8{2, 3, 10, 255} {
		cs = append(cs, dropCase(fmt.Sprintf("F6-param-problem-code-%d-dropped", code),
			pkErr6(server6, v6ParamProblem, code, pt.Rest32(40), pkClientUDP6(20)), translator.ReasonICMPType))
	}
	return cs
}

// casesF8: RFC 4884 extensions, ICMPv6 -> ICMPv4. RFC 7915 §5.2: "the
// ICMPv6 Extension length attribute MUST be adjusted accordingly (e.g.,
// shorter due to the translation from IPv6 to IPv4). For extensions not
// defined in [RFC4884], the translator passes the extensions as opaque bit
// strings". The ICMPv4 error stays within 576 bytes (RFC 1812 §4.3.2.3).
func casesF8() []conformanceCase {
	ext6 := func(quote []byte, objs ...[]byte) (body []byte, length uint8, ext []byte) {
		body, length = pt.Extended(quote, 8, objs...)
		return body, length, body[int(length)*8:]
	}
	iface := pt.ExtObject(2, 1, []byte{0, 0, 0, 7}) // RFC 5837 interface information, ifIndex 7
	var cs []conformanceCase
	{
		body, n, ext := ext6(pkClientUDP6(60), iface) // 108 bytes, padded to 128: length 16
		cs = append(cs, conformanceCase{
			name:    "F8-dest-unreach-extension-padded-6to4",
			in:      pkErr6(server6, v6DestUnreach, 4, [4]byte{n}, body),
			verdict: translator.Forward,
			check: func(t *testing.T, out []output) {
				quote := pkClientUDP4(60) // 88 bytes, padded to 128: length 32
				p := exError(t, out, wantErr{server4, client4, 63, v4DestUnreach, 3, quote})
				exExtension(t, p, 128, ext, len(quote))
				if len(out[0].Raw) != 20+8+128+len(ext) {
					t.Errorf("ICMPv4 error of %d bytes, want %d", len(out[0].Raw), 20+8+128+len(ext))
				}
			},
		})
	}
	{
		body, n, ext := ext6(pkClientUDP6(152), iface) // 200 bytes: length 25
		cs = append(cs, conformanceCase{
			name:    "F8-time-exceeded-extension-length-adjusted-6to4",
			in:      pkErr6(router6, v6TimeExceeded, 0, [4]byte{n}, body),
			verdict: translator.Forward,
			check: func(t *testing.T, out []output) {
				p := exError(t, out, wantErr{pool6791, client4, 63, v4TimeExceeded, 0, pkClientUDP4(152)}) // 180 bytes
				exExtension(t, p, 180, ext, 180)
			},
		})
	}
	// The quote gives way to keep the extension whole within 576 bytes
	// (Jool's graybox test ic2): 20 + 8 + 508 + 40.
	{
		body, n, ext := ext6(pkClientUDP6(488), pt.ExtObject(3, 1, exPayload(32)))
		cs = append(cs, conformanceCase{
			name:    "F8-extension-kept-quote-truncated-to-576-6to4",
			in:      pkErr6(server6, v6DestUnreach, 4, [4]byte{n}, body),
			verdict: translator.Forward,
			check: func(t *testing.T, out []output) {
				p := exError(t, out, wantErr{server4, client4, 63, v4DestUnreach, 3, pkClientUDP4(488)[:508]})
				exExtension(t, p, 508, ext, 508)
				if len(out[0].Raw) != 576 {
					t.Errorf("ICMPv4 error of %d bytes, want 576", len(out[0].Raw))
				}
			},
		})
	}
	// Boundaries (Jool's ic4 and ic5): a 420-byte extension fits beside
	// 128 octets of quote in 576 bytes; a 421-byte one does not and the
	// error goes out without it (or with a cut copy), still within 576.
	for _, size := range []int{420, 421} {
		body, n, ext := ext6(pkClientUDP6(80), pt.ExtObject(3, 1, exPayload(size-8))) // quote 128
		cs = append(cs, conformanceCase{
			name:    fmt.Sprintf("F8-extension-%d-bytes-6to4", size),
			in:      pkErr6(server6, v6DestUnreach, 4, [4]byte{n}, body),
			verdict: translator.Forward,
			check: func(t *testing.T, out []output) {
				if len(ext) != size {
					t.Fatalf("test setup: extension of %d bytes", len(ext))
				}
				quote := pkClientUDP4(80) // 108 bytes
				p := exError(t, out, wantErr{server4, client4, 63, v4DestUnreach, 3, quote})
				if len(out[0].Raw) > 576 {
					t.Errorf("ICMPv4 error of %d bytes, more than 576", len(out[0].Raw))
				}
				if size == 420 {
					exExtension(t, p, 128, ext, len(quote))
					if len(out[0].Raw) != 576 {
						t.Errorf("ICMPv4 error of %d bytes, want 576", len(out[0].Raw))
					}
				} else if !bytes.HasPrefix(ext, p.Extension) {
					t.Error("extension bytes are not a prefix of the original extension")
				}
			},
		})
	}
	return cs
}
