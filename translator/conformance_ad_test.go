package translator_test

// Golden tests for rows A (address mapping), B (IPv4 -> IPv6 header), C
// (IPv6 -> IPv4 header) and D (IPv6 fragments -> IPv4) of the conformance
// checklist. The helpers here, prefixed "ad", are shared with
// conformance_ij_test.go.

import (
	"bytes"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/map646/map646/translator"
	"github.com/map646/map646/translator/packettest"
)

func init() { conformanceCases = append(conformanceCases, casesAD) }

var casesAD = slices.Concat(adRowsA(), adRowsB(), adRowsC(), adRowsD())

// adData is the payload most cases carry.
var adData = []byte("map646!!")

// A router on the IPv4 Internet that sends ICMP errors, and its IPv6 form.
var (
	adRouter4   = netip.MustParseAddr("192.0.2.99")
	adRouter4as = netip.MustParseAddr("64:ff9b::c000:263")
)

// ---------------------------------------------------------------------------
// Case constructors. The checks get the input too, so that they can compare
// the output with it.

func adFwd(name string, cfg func(*translator.Config), in []byte, check func(t *testing.T, in []byte, out []output)) conformanceCase {
	return conformanceCase{name: name, config: cfg, in: in, verdict: translator.Forward,
		check: func(t *testing.T, out []output) { check(t, in, out) }}
}

func adDrop(name string, cfg func(*translator.Config), in []byte, r translator.Reason) conformanceCase {
	return conformanceCase{name: name, config: cfg, in: in, verdict: translator.Drop, reason: r}
}

// adAnswered4 and adAnswered6 are drops answered with the default error of
// RFC 7915 §4.4 (ICMPv4 3/13) or §5.4 (ICMPv6 1/1) from our own address.
func adAnswered4(name string, cfg func(*translator.Config), in []byte, r translator.Reason) conformanceCase {
	return adICMPErr(name, cfg, in, r, func(t *testing.T, in []byte, out []output) {
		adGenerated(t, adOne(t, out), in, own4, 3, 13)
	})
}

// The inputs of adAnswered6 may be ones packettest.Check refuses (an
// extension header after the Fragment header, RFC 7112), so the sender's
// address is read from the raw bytes.
func adAnswered6(name string, cfg func(*translator.Config), in []byte, r translator.Reason) conformanceCase {
	return adICMPErr(name, cfg, in, r, func(t *testing.T, in []byte, out []output) {
		p := adOne(t, out)
		adAddrs(t, p, own6, netip.AddrFrom16([16]byte(in[8:24])))
		adICMPType(t, p, 1, 1)
		if p.Quote == nil || !bytes.HasPrefix(in, p.Quote.Raw) {
			t.Errorf("the error does not quote the dropped packet from its first byte")
		}
	})
}

// adHopByHopNotFirst is a packet with a Hop-by-Hop header after another
// extension header, answered with ICMPv6 Parameter Problem code 1 whose
// pointer is ptr, the offset of the Next Header field holding 0. Such a
// packet is one packettest.Check refuses, so it is read from the raw bytes.
func adHopByHopNotFirst(name string, in []byte, ptr uint32) conformanceCase {
	return adICMPErr(name, nil, in, translator.ReasonBadOptions, func(t *testing.T, in []byte, out []output) {
		if in[ptr] != packettest.ProtoHopByHop {
			t.Fatalf("test input: byte %d is %d, not the Next Header value of Hop-by-Hop", ptr, in[ptr])
		}
		p := adOne(t, out)
		adAddrs(t, p, own6, netip.AddrFrom16([16]byte(in[8:24])))
		adICMPType(t, p, 4, 1)
		adEq(t, "pointer", p.ICMP.Pointer, ptr)
		if p.Quote == nil || !bytes.HasPrefix(in, p.Quote.Raw) {
			t.Errorf("the error does not quote the dropped packet from its first byte")
		}
	})
}

// adICMPErr is a case where the translator drops in for r and answers with
// an ICMP error of its own.
func adICMPErr(name string, cfg func(*translator.Config), in []byte, r translator.Reason, check func(t *testing.T, in []byte, out []output)) conformanceCase {
	return conformanceCase{name: name, config: cfg, in: in, verdict: translator.ICMPError, reason: r,
		check: func(t *testing.T, out []output) { check(t, in, out) }}
}

func adMapped(ms []translator.Mapping, c conformanceCase) conformanceCase {
	c.mappings = ms
	return c
}

// ---------------------------------------------------------------------------
// Configuration changes.

func adConfig(fs ...func(*translator.Config)) func(*translator.Config) {
	return func(c *translator.Config) {
		for _, f := range fs {
			f(c)
		}
	}
}

func adSIIT(c *translator.Config)        { c.Policy = translator.PolicySIIT }
func adHairpinOff(c *translator.Config)  { c.Hairpin = translator.HairpinOff }
func adZeroTC(c *translator.Config)      { c.ZeroTrafficClass = true }
func adGenerateID(c *translator.Config)  { c.GenerateIPv4ID = true }
func adDropUDPZero(c *translator.Config) { c.DropUDPZeroChecksum = true }

func adPrefix(p string) func(*translator.Config) {
	return func(c *translator.Config) { c.PseudoPrefix = netip.MustParsePrefix(p) }
}

func adMTUs(lowest, ipv6 int) func(*translator.Config) {
	return func(c *translator.Config) { c.LowestIPv6MTU, c.IPv6MTU = lowest, ipv6 }
}

// ---------------------------------------------------------------------------
// Assertions.

// adOne returns the only packet emitted.
func adOne(t *testing.T, out []output) *packettest.Packet {
	t.Helper()
	if len(out) != 1 {
		t.Fatalf("%d packets emitted, want 1", len(out))
	}
	return out[0].P
}

func adEq[T comparable](t *testing.T, what string, got, want T) {
	t.Helper()
	if got != want {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}

// adHex is adEq for numbers best read in hexadecimal.
func adHex[T ~uint8 | ~uint16 | ~uint32](t *testing.T, what string, got, want T) {
	t.Helper()
	if got != want {
		t.Errorf("%s = %#x, want %#x", what, got, want)
	}
}

func adAddrs(t *testing.T, p *packettest.Packet, src, dst netip.Addr) {
	t.Helper()
	adEq(t, "source", p.Src, src)
	adEq(t, "destination", p.Dst, dst)
}

// adBytes compares two packets byte for byte and shows both, annotated,
// when they differ.
func adBytes(t *testing.T, got, want []byte) {
	t.Helper()
	if !bytes.Equal(got, want) {
		t.Errorf("packet differs\ngot:\n%swant:\n%s", packettest.Format(got), packettest.Format(want))
	}
}

// adParse checks a packet the test built itself (a typo in a vector must
// not pass for a translator bug).
func adParse(t *testing.T, b []byte) *packettest.Packet {
	t.Helper()
	p, err := packettest.Check(b)
	if err != nil {
		t.Fatalf("test input is malformed: %v\n%s", err, packettest.Format(b))
	}
	return p
}

// adAddr reads an IPv6 address written as its 16 bytes in hex, so that the
// expected bits are on the page rather than behind a parser.
func adAddr(s string) netip.Addr {
	b := packettest.Hex(s)
	if len(b) != 16 {
		panic("adAddr: " + s + " is not 16 bytes")
	}
	return netip.AddrFrom16([16]byte(b))
}

// adNoExt6 asserts an IPv6 packet without extension headers, so without a
// Fragment header either.
func adNoExt6(t *testing.T, p *packettest.Packet) {
	t.Helper()
	if len(p.Ext) != 0 || p.Frag != nil {
		t.Errorf("IPv6 packet has %d extension headers (fragment %+v), want none", len(p.Ext), p.Frag)
	}
}

// adUnfragmented4 asserts the IPv4 flags and offset of an unfragmented
// packet; df is the expected DF flag.
func adUnfragmented4(t *testing.T, p *packettest.Packet, df bool) {
	t.Helper()
	adEq(t, "DF", p.DF, df)
	adEq(t, "MF", p.MF, false)
	adEq(t, "fragment offset", p.FragOff, 0)
}

// adKept asserts that the transport ports and data of p are those of the
// input packet in: the translator touches only checksums (and ICMP types).
func adKept(t *testing.T, p *packettest.Packet, in []byte) {
	t.Helper()
	q := adParse(t, in)
	adEq(t, "source port", p.Sport, q.Sport)
	adEq(t, "destination port", p.Dport, q.Dport)
	if !bytes.Equal(p.Payload, q.Payload) {
		t.Errorf("payload changed\ngot  % x\nwant % x", p.Payload, q.Payload)
	}
}

// adChecksumOK asserts that Check verified the transport checksum from
// scratch (and found it right, or Check would have failed the output).
func adChecksumOK(t *testing.T, p *packettest.Packet) {
	t.Helper()
	if !p.ChecksumChecked || !p.ChecksumOK {
		t.Errorf("transport checksum not verified (%s)", p.NotChecked)
	}
}

// adGenerated asserts that p is an ICMP error the translator generated about
// in: from its own address from, to in's source, of type typ and code,
// quoting in from its first byte.
func adGenerated(t *testing.T, p *packettest.Packet, in []byte, from netip.Addr, typ, code uint8) {
	t.Helper()
	q := adParse(t, in)
	adAddrs(t, p, from, q.Src)
	adICMPType(t, p, typ, code)
	if p.Quote == nil || len(p.Quote.Raw) < 28 || !bytes.HasPrefix(in, p.Quote.Raw) {
		t.Errorf("the error does not quote the dropped packet from its first byte")
	}
}

// adICMPType asserts that p is an ICMP message of type typ and code.
func adICMPType(t *testing.T, p *packettest.Packet, typ, code uint8) {
	t.Helper()
	if p.ICMP == nil {
		t.Fatalf("not an ICMP message (protocol %d)", p.Proto)
	}
	adEq(t, "ICMP type", p.ICMP.Type, typ)
	adEq(t, "ICMP code", p.ICMP.Code, code)
}

// adTableRefuses asserts that NewTable refuses ms with exactly one problem,
// on entry index against entry other, whose message contains msg.
func adTableRefuses(t *testing.T, ms []translator.Mapping, index, other int, msg string) {
	t.Helper()
	_, err := translator.NewTable(ms)
	var te *translator.TableError
	if !errors.As(err, &te) {
		t.Fatalf("NewTable = %v, want a *translator.TableError", err)
	}
	if len(te.Problems) != 1 {
		t.Fatalf("NewTable reports %d problems, want 1: %v", len(te.Problems), err)
	}
	pr := te.Problems[0]
	if pr.Index != index || pr.Other != other || !strings.Contains(pr.Msg, msg) {
		t.Errorf("NewTable problem %+v, want index %d, other %d, message containing %q", pr, index, other, msg)
	}
}

func adMapping(v4, v6 string) translator.Mapping {
	return translator.Mapping{IPv4: netip.MustParsePrefix(v4), IPv6: netip.MustParsePrefix(v6)}
}

// ---------------------------------------------------------------------------
// Packets most rows start from.

// adUDP4 is a UDP datagram from the IPv4 client to the first server.
func adUDP4(ttl uint8) []byte {
	return packettest.UDP4(packettest.IPv4{ID: 0x1234, TTL: ttl, Src: client4, Dst: server4}, 1234, 53, adData)
}

// adUDP6 is a UDP datagram from the first server to the IPv4 client.
func adUDP6(hop uint8) []byte {
	return packettest.UDP6(packettest.IPv6{Hop: hop, Src: server6, Dst: client6}, 53, 1234, adData)
}

// adUDP4From is adUDP4 from another source.
func adUDP4From(src netip.Addr) []byte {
	return packettest.UDP4(packettest.IPv4{ID: 0x1234, TTL: 64, Src: src, Dst: server4}, 1234, 53, adData)
}

// adUDP6To is adUDP6 to another destination.
func adUDP6To(dst netip.Addr) []byte {
	return packettest.UDP6(packettest.IPv6{Hop: 64, Src: server6, Dst: dst}, 53, 1234, adData)
}

// ---------------------------------------------------------------------------
// Golden vectors (RFC 7915 §4.1 and §5.1 applied by hand).

// adGolden4 is the central IPv4 input: UDP 192.0.2.7:1234 -> 198.51.100.10:53.
var adGolden4 = packettest.Hex(`
	45 ba 00 24  // version 4, IHL 5, TOS 0xba (DSCP EF, ECN 10), total length 36
	12 34 40 00  // identification 0x1234, DF, offset 0
	40 11 3b 96  // TTL 64, protocol 17 (UDP), header checksum
	c0 00 02 07  // source 192.0.2.7 (the client)
	c6 33 64 0a  // destination 198.51.100.10 (mapped to 2001:db8:1::10)
	04 d2 00 35 00 10 db 92  // UDP 1234 -> 53, length 16, checksum
	6d 61 70 36 34 36 21 21  // "map646!!"
`)

// adGolden4Opts is adGolden4 with 12 bytes of options: Router Alert, Record
// Route with one empty slot, End of Option List.
var adGolden4Opts = packettest.Hex(`
	48 ba 00 30  // version 4, IHL 8 (32 bytes), TOS 0xba, total length 48
	12 34 40 00  // identification 0x1234, DF, offset 0
	40 11 99 7e  // TTL 64, protocol 17 (UDP), header checksum
	c0 00 02 07  // source 192.0.2.7
	c6 33 64 0a  // destination 198.51.100.10
	94 04 00 00  // Router Alert
	07 07 04 00 00 00 00  // Record Route, length 7, pointer 4, one empty slot
	00  // End of Option List
	04 d2 00 35 00 10 db 92  // UDP 1234 -> 53, length 16, checksum
	6d 61 70 36 34 36 21 21  // "map646!!"
`)

// adGolden4Out is the translation of adGolden4 and of adGolden4Opts.
var adGolden4Out = packettest.Hex(`
	6b a0 00 00  // version 6, traffic class 0xba (B1), flow label 0 (B2)
	00 10 11 3f  // payload length 16 (B3), next header 17 (B4), hop limit 63 (B5)
	00 64 ff 9b 00 00 00 00 00 00 00 00 c0 00 02 07  // source 64:ff9b::192.0.2.7 (B11)
	20 01 0d b8 00 01 00 00 00 00 00 00 00 00 00 10  // destination 2001:db8:1::10 (B11)
	04 d2 00 35 00 10 d8 06  // UDP 1234 -> 53, length 16, checksum updated for the IPv6 pseudo-header
	6d 61 70 36 34 36 21 21  // data unchanged
`)

// adGoldenEcho4 is an ICMPv4 echo request and adGoldenEcho6 its translation.
var adGoldenEcho4 = packettest.Hex(`
	45 00 00 20  // version 4, IHL 5, TOS 0, total length 32
	01 01 00 00  // identification 0x0101, no flags
	40 01 8d 97  // TTL 64, protocol 1 (ICMP), header checksum
	c0 00 02 07  // source 192.0.2.7
	c6 33 64 0a  // destination 198.51.100.10
	08 00 cb f7 4d 36 00 01  // echo request, checksum, identifier 0x4d36, sequence 1
	70 69 6e 67  // "ping"
`)

var adGoldenEcho6 = packettest.Hex(`
	60 00 00 00  // version 6, traffic class 0, flow label 0
	00 0c 3a 3f  // payload length 12, next header 58 (ICMPv6), hop limit 63
	00 64 ff 9b 00 00 00 00 00 00 00 00 c0 00 02 07  // source 64:ff9b::192.0.2.7
	20 01 0d b8 00 01 00 00 00 00 00 00 00 00 00 10  // destination 2001:db8:1::10
	80 00 63 df 4d 36 00 01  // echo request (128), checksum over the pseudo-header, identifier, sequence
	70 69 6e 67  // "ping"
`)

// adGolden6 is the central IPv6 input: UDP 2001:db8:1::10:53 -> the client.
var adGolden6 = packettest.Hex(`
	6b a1 23 45  // version 6, traffic class 0xba, flow label 0x12345
	00 10 11 40  // payload length 16, next header 17 (UDP), hop limit 64
	20 01 0d b8 00 01 00 00 00 00 00 00 00 00 00 10  // source 2001:db8:1::10 (mapped to 198.51.100.10)
	00 64 ff 9b 00 00 00 00 00 00 00 00 c0 00 02 07  // destination 64:ff9b::192.0.2.7
	00 35 04 d2 00 10 d8 06  // UDP 53 -> 1234, length 16, checksum
	6d 61 70 36 34 36 21 21  // "map646!!"
`)

// adGolden6Ext is adGolden6 with a Hop-by-Hop Options header (PadN only)
// and a Destination Options header (an unknown option that may be skipped).
var adGolden6Ext = packettest.Hex(`
	6b a1 23 45  // version 6, traffic class 0xba, flow label 0x12345
	00 20 00 40  // payload length 32, next header 0 (Hop-by-Hop), hop limit 64
	20 01 0d b8 00 01 00 00 00 00 00 00 00 00 00 10  // source 2001:db8:1::10
	00 64 ff 9b 00 00 00 00 00 00 00 00 c0 00 02 07  // destination 64:ff9b::192.0.2.7
	3c 00 01 04 00 00 00 00  // Hop-by-Hop: next header 60, length 8, PadN
	11 00 1e 04 01 02 03 04  // Destination Options: next header 17, length 8, option 0x1e
	00 35 04 d2 00 10 d8 06  // UDP 53 -> 1234, length 16, checksum
	6d 61 70 36 34 36 21 21  // "map646!!"
`)

// adGolden6Out is the translation of adGolden6 and of adGolden6Ext.
var adGolden6Out = packettest.Hex(`
	45 ba 00 24  // version 4, IHL 5 (C1), TOS 0xba (C1), total length 36 (C2)
	00 00 00 00  // identification 0 (C3), DF 0 (36 <= 1260), MF 0, offset 0 (C4)
	3f 11 8e ca  // TTL 63 (C5), protocol 17, header checksum (C9)
	c6 33 64 0a  // source 198.51.100.10 (C10: from the table)
	c0 00 02 07  // destination 192.0.2.7 (C10: from the /96)
	00 35 04 d2 00 10 db 92  // UDP 53 -> 1234, length 16, checksum updated
	6d 61 70 36 34 36 21 21  // data unchanged
`)

// TestGoldenVectorsAD checks the hand-written vectors with the independent
// parser, so that a typo in one cannot pass for a translator bug.
func TestGoldenVectorsAD(t *testing.T) {
	for name, b := range map[string][]byte{
		"adGolden4": adGolden4, "adGolden4Opts": adGolden4Opts, "adGolden4Out": adGolden4Out,
		"adGoldenEcho4": adGoldenEcho4, "adGoldenEcho6": adGoldenEcho6,
		"adGolden6": adGolden6, "adGolden6Ext": adGolden6Ext, "adGolden6Out": adGolden6Out,
	} {
		if _, err := packettest.Check(b); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// ---------------------------------------------------------------------------
// A. Address mapping.

// adRFC6052 is the table of RFC 6052 §2.4: 192.0.2.33 under each prefix
// length, written out byte by byte. Byte 8 (bits 64-71, the u-octet) is
// zero in every one.
var adRFC6052 = []struct {
	prefix string
	addr   string
}{
	{"2001:db8::/32", "20 01 0d b8  c0 00 02 21  00  00 00 00 00 00 00 00"},
	{"2001:db8:100::/40", "20 01 0d b8 01  c0 00 02  00  21  00 00 00 00 00 00"},
	{"2001:db8:122::/48", "20 01 0d b8 01 22  c0 00  00  02 21  00 00 00 00 00"},
	{"2001:db8:122:300::/56", "20 01 0d b8 01 22 03  c0  00  00 02 21  00 00 00 00"},
	{"2001:db8:122:344::/64", "20 01 0d b8 01 22 03 44  00  c0 00 02 21  00 00 00"},
	{"2001:db8:122:344::/96", "20 01 0d b8 01 22 03 44  00 00 00 00  c0 00 02 21"},
}

var adHost33 = netip.MustParseAddr("192.0.2.33")

func adRowsA() []conformanceCase {
	var cs []conformanceCase
	for _, v := range adRFC6052 {
		embedded := adAddr(v.addr)
		bits := v.prefix[strings.IndexByte(v.prefix, '/')+1:]
		// The /32 of RFC 6052's example covers the servers' 2001:db8:1::/48,
		// and a mapping inside the pseudo prefix is refused: there the server
		// lives in the local-use prefix 64:ff9b:1::/48 (RFC 8215) instead.
		srv6, ms := server6, []translator.Mapping(nil)
		if netip.MustParsePrefix(v.prefix).Contains(server6) {
			srv6 = netip.MustParseAddr("64:ff9b:1::10")
			ms = []translator.Mapping{adMapping("198.51.100.10/32", "64:ff9b:1::10/128")}
		}
		in6 := packettest.UDP6(packettest.IPv6{Hop: 64, Src: srv6, Dst: embedded}, 53, 1234, adData)
		cs = append(cs,
			adMapped(ms, adFwd("A1-rfc6052-len"+bits+"-4to6", adPrefix(v.prefix), adUDP4From(adHost33),
				func(t *testing.T, in []byte, out []output) {
					p := adOne(t, out)
					adAddrs(t, p, embedded, srv6)
					adHex(t, "u-octet (byte 8) of the source", p.Src.As16()[8], 0)
				})),
			adMapped(ms, adFwd("A1-rfc6052-len"+bits+"-6to4", adPrefix(v.prefix), in6,
				func(t *testing.T, in []byte, out []output) {
					adAddrs(t, adOne(t, out), server4, adHost33)
				})),
		)
	}
	cs = append(cs,
		// The base configuration: the well-known prefix, IPv4 in bits 96-127.
		adFwd("A1-wkp-96-4to6", nil, adUDP4(64), func(t *testing.T, in []byte, out []output) {
			adAddrs(t, adOne(t, out), adAddr("00 64 ff 9b 00 00 00 00 00 00 00 00 c0 00 02 07"), server6)
		}),
		// RFC 6052 §2.2: the suffix (here bits 104-127 of a /64) is not
		// part of the IPv4 address: a set bit there does not change it.
		adFwd("A1-64-suffix-bits-ignored-6to4", adPrefix("2001:db8:122:344::/64"),
			adUDP6To(adAddr("20 01 0d b8 01 22 03 44  00  c0 00 02 21  00 00 01")),
			func(t *testing.T, in []byte, out []output) {
				adAddrs(t, adOne(t, out), server4, adHost33)
			}),
		// A non-zero u-octet was not built by RFC 6052 ("These bits MUST be
		// set to zero"): the address stands for no IPv4 address and the
		// packet is not translated (map646 answers no-mapping-dst).
		adICMPErr("A1-64-u-octet-set-not-translated", adPrefix("2001:db8:122:344::/64"),
			adUDP6To(adAddr("20 01 0d b8 01 22 03 44  01  c0 00 02 21  00 00 00")),
			translator.ReasonNoMappingDst, func(t *testing.T, in []byte, out []output) {
				adGenerated(t, adOne(t, out), in, own6, 1, 1)
			}),

		// A2: a /96 network-specific prefix with bits 64-71 zero works; New
		// refuses one whose bits 64-71 are not zero (RFC 6052 §2.2).
		adFwd("A2-nsp-96-u-octet-zero-accepted", adPrefix("2001:db8:ffff:ffff::/96"), adUDP4(64),
			func(t *testing.T, in []byte, out []output) {
				adAddrs(t, adOne(t, out), adAddr("20 01 0d b8 ff ff ff ff  00 00 00 00  c0 00 02 07"), server6)
				for _, bad := range []string{"2001:db8:ffff:ffff:100::/96", "2001:db8:ffff:ffff:ff00::/96"} {
					cfg := baseConfig()
					cfg.PseudoPrefix = netip.MustParsePrefix(bad)
					if _, err := translator.New(cfg, nil); err == nil {
						t.Errorf("New accepted the /96 prefix %s whose bits 64-71 are not zero", bad)
					}
				}
			}),
	)

	// A3: RFC 6052 §3.1, "The Well-Known Prefix MUST NOT be used to represent
	// non-global IPv4 addresses ... translators MUST NOT translate packets in
	// which an address is composed of the Well-Known Prefix and a non-global
	// IPv4 address; they MUST drop these packets."
	for _, a := range []string{"10.1.2.3", "172.16.0.1", "192.168.1.1", "100.64.0.1", "169.254.1.1", "192.0.0.170", "198.18.0.1"} {
		cs = append(cs, adDrop("A3-wkp-drops-non-global-source-"+a, nil,
			adUDP4From(netip.MustParseAddr(a)), translator.ReasonNonGlobalWKP))
	}
	cs = append(cs,
		adDrop("A3-wkp-drops-rfc1918-destination-6to4", nil,
			adUDP6To(netip.MustParseAddr("64:ff9b::a01:203")), translator.ReasonNonGlobalWKP),
		adDrop("A3-wkp-drops-rfc1918-source-6to4-siit", adSIIT,
			packettest.UDP6(packettest.IPv6{Hop: 64, Src: netip.MustParseAddr("64:ff9b::c0a8:101"), Dst: server6}, 1234, 53, adData),
			translator.ReasonNonGlobalWKP),
		// General SIIT: a non-global destination is not translated either;
		// map646 answers the sender with an ICMP error as it drops it.
		adICMPErr("A3-siit-wkp-rfc1918-destination-4to6-not-translated", adSIIT,
			adUDP4To(netip.MustParseAddr("10.1.2.3")), translator.ReasonNonGlobalWKP,
			func(t *testing.T, in []byte, out []output) {
				adGenerated(t, adOne(t, out), in, own4, 3, 13)
			}),
		// A network-specific prefix may carry any address (RFC 6052 §3.1
		// restricts the well-known prefix only).
		adFwd("A3-nsp-carries-rfc1918", adPrefix("2001:db8:122:344::/96"), adUDP4From(netip.MustParseAddr("10.1.2.3")),
			func(t *testing.T, in []byte, out []output) {
				adAddrs(t, adOne(t, out), netip.MustParseAddr("2001:db8:122:344::a01:203"), server6)
			}),
	)

	// A4: RFC 7757 §3: the EAMT first, for sources and destinations, in the
	// outer header and in the packet an ICMP error quotes, in both
	// directions; the pseudo prefix otherwise.
	quoted4 := packettest.UDP4(packettest.IPv4{ID: 7, TTL: 1, Src: server4, Dst: client4}, 53, 1234, adData)
	quoted6 := packettest.UDP6(packettest.IPv6{Hop: 1, Src: client6, Dst: server6}, 1234, 53, adData)
	cs = append(cs,
		adFwd("A4-4to6-dst-eam-src-pool6", nil, adUDP4(64), func(t *testing.T, in []byte, out []output) {
			adAddrs(t, adOne(t, out), client6, server6)
		}),
		adFwd("A4-6to4-src-eam-dst-pool6", nil, adUDP6(64), func(t *testing.T, in []byte, out []output) {
			adAddrs(t, adOne(t, out), server4, client4)
		}),
		adFwd("A4-4to6-icmp-error-outer-and-embedded", nil,
			packettest.ICMP4(packettest.IPv4{TTL: 64, Src: adRouter4, Dst: server4}, 11, 0, [4]byte{}, quoted4),
			func(t *testing.T, in []byte, out []output) {
				p := adOne(t, out)
				adAddrs(t, p, adRouter4as, server6)
				if p.Quote == nil {
					t.Fatal("no quoted packet")
				}
				adEq(t, "embedded source (EAM)", p.Quote.Src, server6)
				adEq(t, "embedded destination (pool6)", p.Quote.Dst, client6)
			}),
		adFwd("A4-6to4-icmp-error-outer-and-embedded", nil,
			packettest.ICMP6(packettest.IPv6{Hop: 64, Src: server6, Dst: client6}, 1, 4, [4]byte{}, quoted6),
			func(t *testing.T, in []byte, out []output) {
				p := adOne(t, out)
				adAddrs(t, p, server4, client4)
				if p.Quote == nil {
					t.Fatal("no quoted packet")
				}
				adEq(t, "embedded source (pool6)", p.Quote.Src, client4)
				adEq(t, "embedded destination (EAM)", p.Quote.Dst, server4)
			}),
		// General SIIT: an IPv4 source in the table takes its EAM.
		adFwd("A4-siit-4to6-src-and-dst-eam", adSIIT, adUDP4From(server4b), func(t *testing.T, in []byte, out []output) {
			adAddrs(t, adOne(t, out), server6b, server6)
		}),
		adFwd("A4-siit-4to6-neither-in-table-pool6", adSIIT,
			packettest.UDP4(packettest.IPv4{TTL: 64, Src: adRouter4, Dst: client4}, 1234, 53, adData),
			func(t *testing.T, in []byte, out []output) {
				adAddrs(t, adOne(t, out), adRouter4as, client6)
			}),
		adFwd("A4-siit-6to4-neither-in-table-pool6", adSIIT,
			packettest.UDP6(packettest.IPv6{Hop: 64, Src: adRouter4as, Dst: client6}, 1234, 53, adData),
			func(t *testing.T, in []byte, out []output) {
				adAddrs(t, adOne(t, out), adRouter4, client4)
			}),
		adFwd("A4-siit-6to4-dst-eam", adConfig(adSIIT, adHairpinOff),
			packettest.UDP6(packettest.IPv6{Hop: 64, Src: client6, Dst: server6b}, 1234, 53, adData),
			func(t *testing.T, in []byte, out []output) {
				adAddrs(t, adOne(t, out), client4, server4b)
			}),
		// Embedded addresses through the table in general SIIT: the quoted
		// packet went from one mapped address to another.
		adFwd("A4-siit-4to6-icmp-error-embedded-both-eam", adConfig(adSIIT, adHairpinOff),
			packettest.ICMP4(packettest.IPv4{TTL: 64, Src: adRouter4, Dst: server4b}, 11, 0, [4]byte{},
				packettest.UDP4(packettest.IPv4{TTL: 1, Src: server4b, Dst: server4}, 53, 1234, adData)),
			func(t *testing.T, in []byte, out []output) {
				p := adOne(t, out)
				adAddrs(t, p, adRouter4as, server6b)
				if p.Quote == nil {
					t.Fatal("no quoted packet")
				}
				adAddrs(t, p.Quote, server6b, server6)
			}),
	)

	// A5: RFC 7757 resolves overlapping EAMs by longest match. map646's
	// table refuses overlaps instead (as Jool does unless --force), so the
	// nearest behaviour is tested: entries of different lengths (/32 and
	// /28) are each found, and an overlapping pair is refused.
	overlap := []translator.Mapping{
		adMapping("198.51.100.0/24", "2001:db8:aaaa::/120"),
		adMapping("198.51.100.8/29", "2001:db8:bbbb::/125"),
	}
	cs = append(cs,
		adFwd("A5-lengths-32-and-28-each-found", nil, adUDP4(64), func(t *testing.T, in []byte, out []output) {
			adAddrs(t, adOne(t, out), client6, server6)
			tr := newTranslator(t, nil, nil)
			o := translator.NewOut()
			pkt := packettest.UDP4(packettest.IPv4{TTL: 64, Src: client4, Dst: netip.MustParseAddr("198.51.100.17")}, 1234, 53, adData)
			if res := tr.Translate(pkt, o); res.Verdict != translator.Forward || len(o.Pkts) != 1 {
				t.Fatalf("198.51.100.17 (in the /28): verdict %v %q", res.Verdict, res.Reason)
			}
			adEq(t, "destination of 198.51.100.17", adParse(t, o.Pkts[0]).Dst, netip.MustParseAddr("2001:db8:2::1"))
			adTableRefuses(t, overlap, 1, 0, "overlaps")
		}),
	)

	// A6: RFC 7757 §3.2: the IPv4 suffix goes into the top bits of the IPv6
	// suffix; the IPv6 suffix must be at least as long.
	m24 := []translator.Mapping{adMapping("198.51.100.0/24", "2001:db8:3::/112")}
	m26 := []translator.Mapping{adMapping("198.51.100.128/26", "2001:db8:4::/64")}
	a28 := netip.MustParseAddr("198.51.100.21") // 198.51.100.16/28, suffix 5
	a24 := netip.MustParseAddr("198.51.100.77") // suffix 0x4d
	a26 := netip.MustParseAddr("198.51.100.130")
	cs = append(cs,
		adFwd("A6-28-to-124-4to6", nil, adUDP4To(a28), func(t *testing.T, in []byte, out []output) {
			adAddrs(t, adOne(t, out), client6, adAddr("20 01 0d b8 00 02 00 00 00 00 00 00 00 00 00 05"))
		}),
		adFwd("A6-124-to-28-6to4", nil,
			packettest.UDP6(packettest.IPv6{Hop: 64, Src: adAddr("20 01 0d b8 00 02 00 00 00 00 00 00 00 00 00 05"), Dst: client6}, 53, 1234, adData),
			func(t *testing.T, in []byte, out []output) {
				adAddrs(t, adOne(t, out), a28, client4)
			}),
		// 8 suffix bits in a 16-bit suffix: 0x4d goes into the top byte.
		adMapped(m24, adFwd("A6-24-to-112-suffix-in-top-bits-4to6", nil, adUDP4To(a24), func(t *testing.T, in []byte, out []output) {
			adAddrs(t, adOne(t, out), client6, adAddr("20 01 0d b8 00 03 00 00 00 00 00 00 00 00 4d 00"))
		})),
		adMapped(m24, adFwd("A6-112-to-24-6to4", nil,
			packettest.UDP6(packettest.IPv6{Hop: 64, Src: adAddr("20 01 0d b8 00 03 00 00 00 00 00 00 00 00 4d 00"), Dst: client6}, 53, 1234, adData),
			func(t *testing.T, in []byte, out []output) {
				adAddrs(t, adOne(t, out), a24, client4)
			})),
		// 6 suffix bits (130 - 128 = 2 = 000010) at the top of a 64-bit
		// suffix: 0x08 in byte 8.
		adMapped(m26, adFwd("A6-26-to-64-suffix-in-top-bits-4to6", nil, adUDP4To(a26), func(t *testing.T, in []byte, out []output) {
			adAddrs(t, adOne(t, out), client6, adAddr("20 01 0d b8 00 04 00 00 08 00 00 00 00 00 00 00"))
		})),
		adFwd("A6-ipv6-suffix-shorter-refused", nil, adUDP4(64), func(t *testing.T, in []byte, out []output) {
			adOne(t, out)
			adTableRefuses(t, []translator.Mapping{adMapping("198.51.100.0/24", "2001:db8:3::/124")}, 0, -1, "suffix bits")
		}),
	)

	// A7: the table stays unambiguous: a prefix that duplicates another's
	// is refused (Jool's unit tests). The translator-side consequence: each
	// address maps back to exactly what it came from.
	cs = append(cs,
		adFwd("A7-duplicate-ipv4-prefix-refused", nil, adUDP4To(server4b), func(t *testing.T, in []byte, out []output) {
			adAddrs(t, adOne(t, out), client6, server6b)
			adTableRefuses(t, []translator.Mapping{
				adMapping("198.51.100.10/32", "2001:db8:1::10/128"),
				adMapping("198.51.100.10/32", "2001:db8:1::99/128"),
			}, 1, 0, "duplicates")
		}),
		adFwd("A7-duplicate-ipv6-prefix-refused", nil,
			packettest.UDP6(packettest.IPv6{Hop: 64, Src: server6b, Dst: client6}, 53, 1234, adData),
			func(t *testing.T, in []byte, out []output) {
				adAddrs(t, adOne(t, out), server4b, client4)
				adTableRefuses(t, []translator.Mapping{
					adMapping("198.51.100.10/32", "2001:db8:1::10/128"),
					adMapping("198.51.100.99/32", "2001:db8:1::10/128"),
				}, 1, 0, "duplicates")
			}),
	)

	// A8: RFC 7915 §4.1: an illegal IPv4 source SHOULD be silently dropped,
	// except as the outer source of an ICMPv4 error.
	for _, a := range []string{"0.0.0.0", "127.0.0.1", "224.0.0.5", "240.0.0.1", "255.255.255.255"} {
		cs = append(cs, adDrop("A8-illegal-source-silently-dropped-"+a, nil,
			adUDP4From(netip.MustParseAddr(a)), translator.ReasonMartianSource))
	}
	cs = append(cs,
		adFwd("A8-icmp-error-from-loopback-translated", nil,
			packettest.ICMP4(packettest.IPv4{TTL: 64, Src: netip.MustParseAddr("127.0.0.1"), Dst: server4}, 11, 0, [4]byte{}, quoted4),
			func(t *testing.T, in []byte, out []output) {
				p := adOne(t, out)
				adAddrs(t, p, own6, server6)
				adICMPType(t, p, 3, 0)
			}),
	)
	// "translated for the purpose of trouble shooting" (§4.1): through the
	// pseudo prefix like any source, where RFC 6052 allows it, as a
	// network-specific prefix does; the well-known prefix above may not
	// carry such an address (§3.1, row A3) and gives our own.
	nsp := "2001:db8:122:344::/96"
	for _, a := range []struct{ v4, v6 string }{
		{"127.0.0.1", "2001:db8:122:344::7f00:1"},
		{"0.0.0.0", "2001:db8:122:344::"},
		{"224.0.0.5", "2001:db8:122:344::e000:5"},
	} {
		cs = append(cs, adFwd("A8-icmp-error-from-"+a.v4+"-nsp-through-pseudo-prefix", adPrefix(nsp),
			packettest.ICMP4(packettest.IPv4{TTL: 64, Src: netip.MustParseAddr(a.v4), Dst: server4}, 11, 0, [4]byte{}, quoted4),
			func(t *testing.T, in []byte, out []output) {
				p := adOne(t, out)
				adAddrs(t, p, netip.MustParseAddr(a.v6), server6)
				adICMPType(t, p, 3, 0)
			}))
	}
	cs = append(cs,
		adFwd("A8-icmp-error-from-0.0.0.0-wkp-own-address", nil,
			packettest.ICMP4(packettest.IPv4{TTL: 64, Src: netip.MustParseAddr("0.0.0.0"), Dst: server4}, 11, 0, [4]byte{}, quoted4),
			func(t *testing.T, in []byte, out []output) {
				adAddrs(t, adOne(t, out), own6, server6)
			}),
		adDrop("A8-nsp-illegal-source-not-an-error-still-dropped", adPrefix(nsp),
			adUDP4From(netip.MustParseAddr("127.0.0.1")), translator.ReasonMartianSource),
	)

	// A9: RFC 7915 §5.1: an illegal IPv6 source SHOULD be silently dropped.
	for _, a := range []string{"::1", "::", "ff02::1"} {
		cs = append(cs, adDrop("A9-illegal-source-silently-dropped-"+a, nil,
			packettest.UDP6(packettest.IPv6{Hop: 64, Src: netip.MustParseAddr(a), Dst: client6}, 53, 1234, adData),
			translator.ReasonMartianSource))
	}
	cs = append(cs, adDrop("A9-siit-pool6-source-embedding-loopback-dropped", adSIIT,
		packettest.UDP6(packettest.IPv6{Hop: 64, Src: netip.MustParseAddr("64:ff9b::7f00:1"), Dst: server6}, 1234, 53, adData),
		translator.ReasonMartianSource))

	// A10: RFC 6791: an ICMPv6 error from an IPv6 router without a mapping
	// gets an IPv4 source from the pool; with no pool, the translator's own.
	routerErr := packettest.ICMP6(packettest.IPv6{Hop: 64, Src: router6, Dst: client6}, 3, 0, [4]byte{}, quoted6)
	pool2 := []netip.Addr{netip.MustParseAddr("203.0.113.1"), netip.MustParseAddr("203.0.113.2")}
	cs = append(cs,
		adFwd("A10-icmpv6-error-from-unmapped-router-gets-pool-source", nil, routerErr,
			func(t *testing.T, in []byte, out []output) {
				p := adOne(t, out)
				adAddrs(t, p, pool6791, client4)
				adICMPType(t, p, 11, 0)
			}),
		adFwd("A10-empty-pool-falls-back-to-own-address", func(c *translator.Config) { c.RFC6791Pool = nil }, routerErr,
			func(t *testing.T, in []byte, out []output) {
				adAddrs(t, adOne(t, out), own4, client4)
			}),
		adFwd("A10-pool-of-two-same-router-same-address", func(c *translator.Config) { c.RFC6791Pool = pool2 }, routerErr,
			func(t *testing.T, in []byte, out []output) {
				p := adOne(t, out)
				if !slices.Contains(pool2, p.Src) {
					t.Errorf("source %v is not in the pool %v", p.Src, pool2)
				}
				o := translator.NewOut()
				newTranslator(t, func(c *translator.Config) { c.RFC6791Pool = pool2 }, nil).Translate(in, o)
				if len(o.Pkts) != 1 || adParse(t, o.Pkts[0]).Src != p.Src {
					t.Errorf("the same router got another pool address the second time")
				}
			}),
	)

	// A11: an ICMPv4 error whose source cannot be represented (a private
	// address behind the well-known prefix) gets the translator's own IPv6
	// address (Jool #176).
	for _, a := range []string{"10.0.0.1", "192.168.1.1"} {
		cs = append(cs, adFwd("A11-icmpv4-error-from-untranslatable-"+a+"-gets-own-address", nil,
			packettest.ICMP4(packettest.IPv4{TTL: 64, Src: netip.MustParseAddr(a), Dst: server4}, 11, 0, [4]byte{}, quoted4),
			func(t *testing.T, in []byte, out []output) {
				p := adOne(t, out)
				adAddrs(t, p, own6, server6)
				adICMPType(t, p, 3, 0)
			}))
	}

	// A12: whether a more specific non-translating route wins is up to the
	// routing system (RFC 7915 §4.6, §5.6); the translator translates what it
	// is given. Its share: an address covered by both the table and the
	// pseudo prefix is translated by the table. (On the IPv6 side no address
	// can be both: translator.New refuses mappings inside the pseudo prefix,
	// TestNewRefusesMappingInPseudoPrefix.)
	cs = append(cs,
		adFwd("A12-siit-4to6-table-before-pool6", adSIIT, adUDP4(64), func(t *testing.T, in []byte, out []output) {
			p := adOne(t, out)
			adEq(t, "destination", p.Dst, server6)
			if pseudo.Contains(p.Dst) {
				t.Errorf("destination %v taken from the pseudo prefix", p.Dst)
			}
		}),
	)
	return cs
}

// adUDP4To is adUDP4 to another destination.
func adUDP4To(dst netip.Addr) []byte {
	return packettest.UDP4(packettest.IPv4{ID: 0x1234, TTL: 64, Src: client4, Dst: dst}, 1234, 53, adData)
}

// ---------------------------------------------------------------------------
// B. IPv4 -> IPv6 header (RFC 7915 §4.1).

func adRowsB() []conformanceCase {
	golden := func(t *testing.T, in []byte, out []output) {
		adBytes(t, out[0].Raw, adGolden4Out)
		adOne(t, out)
	}
	tos := func(v uint8) []byte {
		return packettest.UDP4(packettest.IPv4{TOS: v, TTL: 64, Src: client4, Dst: server4}, 1234, 53, adData)
	}
	proto := func(p uint8) []byte {
		return packettest.Raw4(packettest.IPv4{TTL: 64, Src: client4, Dst: server4}, p, []byte("\x01\x02\x03\x04opaque data"))
	}
	withOpts := func(opts []byte) []byte {
		return packettest.UDP4(packettest.IPv4{TTL: 64, Src: client4, Dst: server4, Options: opts}, 1234, 53, adData)
	}
	hop := func(want uint8) func(t *testing.T, in []byte, out []output) {
		return func(t *testing.T, in []byte, out []output) { adEq(t, "hop limit", adOne(t, out).TTL, want) }
	}
	lsrr := packettest.SourceRoute(false, 4, adRouter4, server4)      // pointer 4: first address next
	ssrr := packettest.SourceRoute(true, 8, adRouter4, server4)       // pointer 8: second address next
	lsrrDone := packettest.SourceRoute(false, 12, adRouter4, server4) // pointer 12 > length 11: expired
	ssrrDone := packettest.SourceRoute(true, 12, adRouter4, server4)
	translated := func(t *testing.T, in []byte, out []output) {
		p := adOne(t, out)
		adAddrs(t, p, client6, server6)
		adEq(t, "payload length", p.TotalLen-40, 16)
		adNoExt6(t, p)
		adKept(t, p, in)
		adChecksumOK(t, p)
	}
	sourceRouteFailed := func(t *testing.T, in []byte, out []output) {
		adGenerated(t, adOne(t, out), in, own4, 3, 5)
	}

	// B10: a 1978-byte UDP datagram in IPv4 fragments of 680, 680 and 618
	// bytes of data; each becomes one IPv6 fragment of the same datagram.
	whole4 := packettest.UDP4(packettest.IPv4{TOS: 0x20, ID: 0xfedc, TTL: 64, Src: client4, Dst: server4}, 1234, 53, bytes.Repeat([]byte("0123456789"), 197))
	frags4 := packettest.Fragment4(whole4, 700)
	whole6 := packettest.UDP6(packettest.IPv6{TC: 0x20, Hop: 63, Src: client6, Dst: server6}, 1234, 53, bytes.Repeat([]byte("0123456789"), 197))
	fragCase := func(i int, off uint16, more bool) conformanceCase {
		return adFwd("B10-fragment-"+[]string{"first", "middle", "last"}[i], nil, frags4[i],
			func(t *testing.T, in []byte, out []output) {
				p := adOne(t, out)
				q := adParse(t, in)
				if p.Frag == nil {
					t.Fatal("no Fragment header")
				}
				adEq(t, "number of extension headers", len(p.Ext), 1)
				adEq(t, "Fragment header next header", p.Proto, packettest.ProtoUDP)
				adEq(t, "fragment offset", p.Frag.Offset, off)
				adEq(t, "M flag", p.Frag.More, more)
				adHex(t, "identification", p.Frag.ID, 0x0000fedc)
				adEq(t, "payload length", p.TotalLen-40, 8+len(q.L4))
				adEq(t, "hop limit", p.TTL, 63)
				adEq(t, "traffic class", p.TOS, 0x20)
				if i > 0 && !bytes.Equal(p.L4, q.L4) {
					t.Error("fragment data changed")
				}
				// The three translated fragments make the datagram that
				// translating it whole would have made.
				var all [][]byte
				for _, f := range frags4 {
					o := translator.NewOut()
					newTranslator(t, nil, nil).Translate(f, o)
					all = append(all, slices.Clone(o.Pkts[0]))
				}
				got, err := packettest.Reassemble(all)
				if err != nil {
					t.Fatalf("reassembling the translated fragments: %v", err)
				}
				adBytes(t, got, whole6)
			})
	}

	return []conformanceCase{
		// B1: Traffic Class = TOS, both DSCP and ECN bits; a switch for 0.
		adFwd("B1-traffic-class-is-tos-golden", nil, adGolden4, golden),
		adFwd("B1-traffic-class-is-tos-ecn-only", nil, tos(0x03), func(t *testing.T, in []byte, out []output) {
			adHex(t, "traffic class", adOne(t, out).TOS, 0x03)
		}),
		adFwd("B1-traffic-class-zero-when-configured", adZeroTC, tos(0xba), func(t *testing.T, in []byte, out []output) {
			adHex(t, "traffic class", adOne(t, out).TOS, 0)
		}),
		// B2: Flow Label 0.
		adFwd("B2-flow-label-zero-golden", nil, adGolden4, func(t *testing.T, in []byte, out []output) {
			golden(t, in, out)
			adHex(t, "flow label", adOne(t, out).Flow, 0)
		}),
		// B3: Payload Length = Total Length - header length, options included.
		adFwd("B3-payload-length-golden", nil, adGolden4, golden),
		adFwd("B3-payload-length-excludes-options-golden", nil, adGolden4Opts, func(t *testing.T, in []byte, out []output) {
			golden(t, in, out)
			adEq(t, "payload length", adOne(t, out).TotalLen-40, 16)
		}),
		// Link-layer padding after Total Length is not part of the packet.
		adFwd("B3-payload-length-ignores-link-padding", nil, append(slices.Clone(adGolden4), 0, 0, 0, 0, 0, 0), golden),
		// B4: Next Header = Protocol, for any protocol; ICMP becomes ICMPv6.
		adFwd("B4-next-header-udp-golden", nil, adGolden4, golden),
		// "Any protocol" stops at numbers that mean something else in IPv6:
		// copied, they would be parsed as an extension header or as ICMPv6.
		adDrop("B4-ipv6-extension-header-number-dropped", nil,
			packettest.Raw4(packettest.IPv4{TTL: 64, Src: client4, Dst: server4}, packettest.ProtoRouting, make([]byte, 16)),
			translator.ReasonForeignProtocol),
		adDrop("B4-icmpv6-inside-ipv4-dropped", nil,
			packettest.Raw4(packettest.IPv4{TTL: 64, Src: client4, Dst: server4}, 58, make([]byte, 16)),
			translator.ReasonForeignProtocol),
		adFwd("B4-next-header-icmp-becomes-58-golden", nil, adGoldenEcho4, func(t *testing.T, in []byte, out []output) {
			adBytes(t, out[0].Raw, adGoldenEcho6)
			adOne(t, out)
		}),
		adFwd("B4-next-header-tcp", nil,
			packettest.TCP4(packettest.IPv4{TTL: 64, Src: client4, Dst: server4}, packettest.TCP{Sport: 40000, Dport: 443, Seq: 1, Flags: packettest.SYN, Window: 65535}, nil),
			func(t *testing.T, in []byte, out []output) {
				p := adOne(t, out)
				adEq(t, "next header", p.Proto, packettest.ProtoTCP)
				adChecksumOK(t, p)
			}),
		adFwd("B4-next-header-sctp-132", nil, proto(132), func(t *testing.T, in []byte, out []output) {
			p := adOne(t, out)
			adEq(t, "next header", p.Proto, 132)
			adEq(t, "payload", string(p.L4), "\x01\x02\x03\x04opaque data")
		}),
		adFwd("B4-next-header-gre-47", nil, proto(47), func(t *testing.T, in []byte, out []output) {
			adEq(t, "next header", adOne(t, out).Proto, 47)
		}),
		adFwd("B4-next-header-experimental-253", nil, proto(253), func(t *testing.T, in []byte, out []output) {
			adEq(t, "next header", adOne(t, out).Proto, 253)
		}),
		// B5: Hop Limit = TTL - 1.
		adFwd("B5-hop-limit-is-ttl-minus-one-golden", nil, adGolden4, golden),
		adFwd("B5-hop-limit-ttl-2-gives-1", nil, adUDP4(2), hop(1)),
		adFwd("B5-hop-limit-ttl-255-gives-254", nil, adUDP4(255), hop(254)),
		// B6: a TTL that would reach 0: Time Exceeded in transit (11/0).
		adICMPErr("B6-ttl-1-time-exceeded", nil, adUDP4(1), translator.ReasonTTLExpired,
			func(t *testing.T, in []byte, out []output) { adGenerated(t, adOne(t, out), in, own4, 11, 0) }),
		adICMPErr("B6-ttl-0-time-exceeded", nil, adUDP4(0), translator.ReasonTTLExpired,
			func(t *testing.T, in []byte, out []output) { adGenerated(t, adOne(t, out), in, own4, 11, 0) }),
		// B7: options are ignored (not copied); the packet is translated.
		adFwd("B7-record-route-and-router-alert-ignored", nil,
			withOpts([]byte{0x94, 4, 0, 0, 0x07, 7, 4, 0, 0, 0, 0}), translated),
		adFwd("B7-timestamp-and-nops-ignored", nil,
			withOpts([]byte{1, 1, 0x44, 12, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}), translated),
		// B8: an unexpired source route MUST NOT be translated; ICMPv4
		// Source Route Failed (3/5) SHOULD be sent. Expired ones are options
		// like any other.
		adICMPErr("B8-lsrr-unexpired-dropped", nil, withOpts(lsrr), translator.ReasonSourceRoute, sourceRouteFailed),
		adICMPErr("B8-ssrr-unexpired-dropped", nil, withOpts(ssrr), translator.ReasonSourceRoute, sourceRouteFailed),
		adICMPErr("B8-lsrr-after-nop-unexpired-dropped", nil, withOpts(append([]byte{1}, lsrr...)), translator.ReasonSourceRoute, sourceRouteFailed),
		// RFC 791: the route is over once the pointer is greater than the
		// length; equal is not greater.
		adICMPErr("B8-lsrr-pointer-equal-to-length-unexpired", nil,
			withOpts(packettest.SourceRoute(false, 11, adRouter4, server4)), translator.ReasonSourceRoute, sourceRouteFailed),
		adICMPErr("B8-ssrr-pointer-equal-to-length-unexpired", nil,
			withOpts(packettest.SourceRoute(true, 7, server4)), translator.ReasonSourceRoute, sourceRouteFailed),
		adFwd("B8-lsrr-expired-translated", nil, withOpts(lsrrDone), translated),
		adFwd("B8-ssrr-expired-translated", nil, withOpts(ssrrDone), translated),
		// B9: no Fragment header for an unfragmented packet, DF or not
		// (atomic fragments are deprecated, RFC 8021).
		adFwd("B9-df-0-no-fragment-header", nil, tos(0), func(t *testing.T, in []byte, out []output) {
			adNoExt6(t, adOne(t, out))
		}),
		adFwd("B9-df-1-no-fragment-header", nil, adGolden4, func(t *testing.T, in []byte, out []output) {
			adNoExt6(t, adOne(t, out))
		}),
		// B10: IPv4 fragments carry a Fragment header: next header, offset
		// and M from IPv4, identification = IPv4 ID with 16 zero bits above.
		// (ICMP is never fragmented on the way, I8, so 1->58 in a Fragment
		// header cannot occur.)
		fragCase(0, 0, true),
		fragCase(1, 85, true),
		fragCase(2, 170, false),
		// B11: addresses as A1-A4 say, exact bytes.
		adFwd("B11-dc-src-pool6-dst-eam", nil, adUDP4(64), func(t *testing.T, in []byte, out []output) {
			adAddrs(t, adOne(t, out),
				adAddr("00 64 ff 9b 00 00 00 00 00 00 00 00 c0 00 02 07"),
				adAddr("20 01 0d b8 00 01 00 00 00 00 00 00 00 00 00 10"))
		}),
		adFwd("B11-siit-both-pool6", adSIIT,
			packettest.UDP4(packettest.IPv4{TTL: 64, Src: netip.MustParseAddr("203.0.113.9"), Dst: netip.MustParseAddr("192.0.2.50")}, 1234, 53, adData),
			func(t *testing.T, in []byte, out []output) {
				adAddrs(t, adOne(t, out),
					adAddr("00 64 ff 9b 00 00 00 00 00 00 00 00 cb 00 71 09"),
					adAddr("00 64 ff 9b 00 00 00 00 00 00 00 00 c0 00 02 32"))
			}),
		adDrop("B11-dc-unmapped-destination-not-translated", func(c *translator.Config) { c.ICMPErrors = false },
			adUDP4To(netip.MustParseAddr("198.51.100.99")), translator.ReasonNoMappingDst),
	}
}

// ---------------------------------------------------------------------------
// C. IPv6 -> IPv4 header (RFC 7915 §5.1).

func adRowsC() []conformanceCase {
	golden := func(t *testing.T, in []byte, out []output) {
		adBytes(t, out[0].Raw, adGolden6Out)
		adOne(t, out)
	}
	tc := func(v uint8) []byte {
		return packettest.UDP6(packettest.IPv6{TC: v, Hop: 64, Src: server6, Dst: client6}, 53, 1234, adData)
	}
	// sized is a UDP datagram whose IPv4 translation is n bytes long.
	sized := func(n int) []byte {
		return packettest.UDP6(packettest.IPv6{Hop: 64, Src: server6, Dst: client6}, 53, 1234, make([]byte, n-28))
	}
	id := func(want uint16) func(t *testing.T, in []byte, out []output) {
		return func(t *testing.T, in []byte, out []output) { adHex(t, "identification", adOne(t, out).ID, want) }
	}
	df := func(want bool) func(t *testing.T, in []byte, out []output) {
		return func(t *testing.T, in []byte, out []output) { adUnfragmented4(t, adOne(t, out), want) }
	}
	ttl := func(want uint8) func(t *testing.T, in []byte, out []output) {
		return func(t *testing.T, in []byte, out []output) { adEq(t, "TTL", adOne(t, out).TTL, want) }
	}
	ext := func(proto uint8, payload []byte, e ...packettest.Ext) []byte {
		return packettest.Raw6(packettest.IPv6{Hop: 64, Src: server6, Dst: client6, Ext: e}, proto, payload)
	}
	hop := packettest.HopByHop(nil)
	dst := packettest.DestOpts([]byte{0x1e, 4, 1, 2, 3, 4})
	seg := netip.MustParseAddr("2001:db8:ff::2")
	rt0done := packettest.Routing(4, 0, client6, seg) // SRH, all segments visited
	skipped := []packettest.Ext{hop, dst, rt0done, packettest.DestOpts(nil)}
	udpSkipped := packettest.UDP6(packettest.IPv6{Hop: 64, Src: server6, Dst: client6, Ext: skipped}, 53, 1234, adData)
	opaque := []byte("\xde\xad\xbe\xef\x00\x00\xff\xff not a header the translator knows")
	forwardedAs := func(proto uint8) func(t *testing.T, in []byte, out []output) {
		return func(t *testing.T, in []byte, out []output) {
			p := adOne(t, out)
			adEq(t, "protocol", p.Proto, proto)
			adEq(t, "header length", p.HeaderLen, 20)
			if !bytes.Equal(p.L4, opaque) {
				t.Errorf("payload changed\ngot  % x\nwant % x", p.L4, opaque)
			}
		}
	}
	paramProblem := func(ptr uint32) func(t *testing.T, in []byte, out []output) {
		return func(t *testing.T, in []byte, out []output) {
			p := adOne(t, out)
			adGenerated(t, p, in, own6, 4, 0)
			adEq(t, "pointer", p.ICMP.Pointer, ptr)
		}
	}
	generatedIDs := func(t *testing.T, in []byte, out []output) {
		p := adOne(t, out)
		if p.ID == 0 {
			t.Errorf("identification 0 with generation on (IPv4 packet of %d bytes)", p.TotalLen)
		}
		tr := newTranslator(t, adGenerateID, nil)
		o := translator.NewOut()
		tr.Translate(in, o)
		a := adParse(t, o.Pkts[0]).ID
		tr.Translate(in, o)
		if b := adParse(t, o.Pkts[0]).ID; a == b {
			t.Errorf("two packets got the same identification %#x", a)
		}
	}

	return []conformanceCase{
		// C1: IHL 5, TOS = Traffic Class (or a fixed 0 when configured).
		adFwd("C1-ihl-5-tos-is-traffic-class-golden", nil, adGolden6, golden),
		adFwd("C1-ihl-5-after-extension-headers-golden", nil, adGolden6Ext, func(t *testing.T, in []byte, out []output) {
			golden(t, in, out)
			adEq(t, "header length", adOne(t, out).HeaderLen, 20)
		}),
		adFwd("C1-tos-ecn-only", nil, tc(0x01), func(t *testing.T, in []byte, out []output) {
			adHex(t, "TOS", adOne(t, out).TOS, 0x01)
		}),
		adFwd("C1-tos-zero-when-configured", adZeroTC, tc(0xba), func(t *testing.T, in []byte, out []output) {
			adHex(t, "TOS", adOne(t, out).TOS, 0)
		}),
		// C2: Total Length = Payload Length - skipped headers + 20.
		adFwd("C2-total-length-golden", nil, adGolden6, golden),
		adFwd("C2-total-length-minus-extension-headers-golden", nil, adGolden6Ext, golden),
		adFwd("C2-total-length-minus-hbh-dstopts-routing", nil, udpSkipped, func(t *testing.T, in []byte, out []output) {
			adEq(t, "total length", adOne(t, out).TotalLen, 20+8+len(adData))
		}),
		adFwd("C2-link-padding-not-carried", nil, append(slices.Clone(adGolden6), 0, 0, 0, 0, 0, 0), golden),
		// C3: Identification 0, or generated for 88 < size <= 1280 when
		// configured.
		adFwd("C3-identification-zero-golden", nil, adGolden6, golden),
		adFwd("C3-identification-zero-large", nil, sized(1400), id(0)),
		adFwd("C3-generated-id-89-bytes", adGenerateID, sized(89), generatedIDs),
		adFwd("C3-generated-id-1280-bytes", adGenerateID, sized(1280), generatedIDs),
		adFwd("C3-generated-id-not-for-88-bytes", adGenerateID, sized(88), id(0)),
		adFwd("C3-generated-id-not-for-1281-bytes", adGenerateID, sized(1281), id(0)),
		// C4: DF set exactly when the IPv4 packet is larger than 1260 bytes.
		adFwd("C4-df-0-golden", nil, adGolden6, golden),
		adFwd("C4-df-0-at-1260-bytes", nil, sized(1260), df(false)),
		adFwd("C4-df-1-at-1261-bytes", nil, sized(1261), df(true)),
		adFwd("C4-df-1-at-1480-bytes", nil, sized(1480), df(true)),
		// C5: TTL = Hop Limit - 1.
		adFwd("C5-ttl-is-hop-limit-minus-one-golden", nil, adGolden6, golden),
		adFwd("C5-ttl-hop-limit-2-gives-1", nil, adUDP6(2), ttl(1)),
		adFwd("C5-ttl-hop-limit-255-gives-254", nil, adUDP6(255), ttl(254)),
		// C6: a Hop Limit that would reach 0: Time Exceeded (3/0).
		adICMPErr("C6-hop-limit-1-time-exceeded", nil, adUDP6(1), translator.ReasonTTLExpired,
			func(t *testing.T, in []byte, out []output) { adGenerated(t, adOne(t, out), in, own6, 3, 0) }),
		adICMPErr("C6-hop-limit-0-time-exceeded", nil, adUDP6(0), translator.ReasonTTLExpired,
			func(t *testing.T, in []byte, out []output) { adGenerated(t, adOne(t, out), in, own6, 3, 0) }),
		// C7: Hop-by-Hop, Destination Options and Routing headers with no
		// segments left are skipped; the next header after them becomes the
		// protocol (58 -> 1), whatever the transport.
		adFwd("C7-hbh-dstopts-routing-sl0-skipped", nil, udpSkipped, func(t *testing.T, in []byte, out []output) {
			p := adOne(t, out)
			adEq(t, "protocol", p.Proto, packettest.ProtoUDP)
			adEq(t, "header length", p.HeaderLen, 20)
			adAddrs(t, p, server4, client4)
			adKept(t, p, in)
			adChecksumOK(t, p)
		}),
		adDrop("C7-icmpv4-inside-ipv6-dropped", nil,
			packettest.Raw6(packettest.IPv6{Hop: 64, Src: server6, Dst: client6}, packettest.ProtoICMP, make([]byte, 16)),
			translator.ReasonForeignProtocol),
		adFwd("C7-tcp-after-hbh", nil,
			packettest.TCP6(packettest.IPv6{Hop: 64, Src: server6, Dst: client6, Ext: []packettest.Ext{hop}},
				packettest.TCP{Sport: 443, Dport: 40000, Seq: 7, Ack: 2, Flags: packettest.SYN | packettest.ACK, Window: 1000}, adData),
			func(t *testing.T, in []byte, out []output) {
				p := adOne(t, out)
				adEq(t, "protocol", p.Proto, packettest.ProtoTCP)
				adKept(t, p, in)
				adChecksumOK(t, p)
			}),
		adFwd("C7-icmpv6-after-dstopts-becomes-icmp", nil,
			packettest.ICMP6(packettest.IPv6{Hop: 64, Src: server6, Dst: client6, Ext: []packettest.Ext{dst}}, 128, 0, packettest.Rest16(9, 9), adData),
			func(t *testing.T, in []byte, out []output) {
				p := adOne(t, out)
				adEq(t, "protocol", p.Proto, packettest.ProtoICMP)
				adICMPType(t, p, 8, 0)
			}),
		adFwd("C7-unknown-transport-253-byte-for-byte", nil, ext(253, opaque), forwardedAs(253)),
		adFwd("C7-unknown-transport-253-after-ext-headers", nil, ext(253, opaque, hop, dst), forwardedAs(253)),
		adFwd("C7-sctp-132-byte-for-byte", nil, ext(132, opaque, hop), forwardedAs(132)),
		adFwd("C7-esp-50-byte-for-byte", nil, ext(packettest.ProtoESP, opaque), forwardedAs(packettest.ProtoESP)),
		adFwd("C7-no-next-header-59", nil, ext(packettest.ProtoNoNext, opaque, dst), forwardedAs(packettest.ProtoNoNext)),
		// C8: a Routing header with segments left is not translated;
		// Parameter Problem 4/0 points at its Segments Left field.
		adICMPErr("C8-routing-type-0-segments-left-pointer-43", nil,
			packettest.UDP6(packettest.IPv6{Hop: 64, Src: server6, Dst: client6, Ext: []packettest.Ext{packettest.Routing(0, 1, seg)}}, 53, 1234, adData),
			translator.ReasonRoutingHdr, paramProblem(43)),
		adICMPErr("C8-srh-after-hbh-segments-left-pointer-51", nil,
			packettest.UDP6(packettest.IPv6{Hop: 64, Src: server6, Dst: client6, Ext: []packettest.Ext{hop, packettest.Routing(4, 1, seg, client6)}}, 53, 1234, adData),
			translator.ReasonRoutingHdr, paramProblem(51)),
		// ... but never about an ICMPv6 error (RFC 4443 §2.4(e)), even one
		// behind an AH header, where the header walk stops (a fuzzing
		// input: the Parameter Problem quoted the error).
		adDrop("C8-routing-then-ah-icmpv6-error-not-answered", nil,
			packettest.ICMP6(packettest.IPv6{Hop: 64, Src: server6, Dst: client6, Ext: []packettest.Ext{packettest.Routing(0, 1, seg), ahExt()}},
				1, 4, [4]byte{}, packettest.UDP6(packettest.IPv6{Hop: 63, Src: client6, Dst: server6}, 1234, 53, adData)),
			translator.ReasonRoutingHdr),
		// C9: the header checksum is computed (Check verifies every output;
		// the golden vector pins its value).
		adFwd("C9-header-checksum-golden", nil, adGolden6, golden),
		adFwd("C9-header-checksum-with-df-and-id", adGenerateID, sized(1270), func(t *testing.T, in []byte, out []output) {
			p := adOne(t, out)
			adUnfragmented4(t, p, true)
			if fold(sum(out[0].Raw[:20], 0)) != 0xffff {
				t.Errorf("IPv4 header checksum wrong: % x", out[0].Raw[:20])
			}
		}),
		// C10: map646 maps the source through the table and the
		// destination through the /96.
		adFwd("C10-src-table-dst-pool6", nil, adUDP6(64), func(t *testing.T, in []byte, out []output) {
			adAddrs(t, adOne(t, out), server4, client4)
		}),
		adFwd("C10-src-table-28-dst-pool6", nil,
			packettest.UDP6(packettest.IPv6{Hop: 64, Src: netip.MustParseAddr("2001:db8:2::f"), Dst: client6}, 53, 1234, adData),
			func(t *testing.T, in []byte, out []output) {
				adAddrs(t, adOne(t, out), netip.MustParseAddr("198.51.100.31"), client4)
			}),
		adICMPErr("C10-dc-unmapped-source-refused", nil,
			packettest.UDP6(packettest.IPv6{Hop: 64, Src: router6, Dst: client6}, 53, 1234, adData),
			translator.ReasonNoMappingSrc, func(t *testing.T, in []byte, out []output) {
				adGenerated(t, adOne(t, out), in, own6, 1, 1)
			}),
		adDrop("C10-dc-pool6-source-refused", nil,
			packettest.UDP6(packettest.IPv6{Hop: 64, Src: adRouter4as, Dst: client6}, 53, 1234, adData),
			translator.ReasonSpoofedPseudo),
		adFwd("C10-siit-pool6-source", adSIIT,
			packettest.UDP6(packettest.IPv6{Hop: 64, Src: adRouter4as, Dst: client6}, 53, 1234, adData),
			func(t *testing.T, in []byte, out []output) {
				adAddrs(t, adOne(t, out), adRouter4, client4)
			}),
	}
}

// ---------------------------------------------------------------------------
// D. IPv6 fragments -> IPv4 (RFC 7915 §5.1.1).

func adRowsD() []conformanceCase {
	// A 1008-byte UDP datagram behind a Hop-by-Hop header, in fragments of
	// 544 and 464 bytes.
	data := bytes.Repeat([]byte("fragment"), 125)
	whole := packettest.UDP6(packettest.IPv6{TC: 0x48, Hop: 64, Src: server6, Dst: client6, Ext: []packettest.Ext{packettest.HopByHop(nil)}}, 53, 1234, data)
	frags := packettest.Fragment6(whole, 600, 0x12345678)
	whole4 := packettest.UDP4(packettest.IPv4{TOS: 0x48, ID: 0x5678, TTL: 63, Src: server4, Dst: client4}, 53, 1234, data)

	d1 := func(t *testing.T, in []byte, out []output) {
		p, q := adOne(t, out), adParse(t, in)
		// Payload Length - (Hop-by-Hop 8 + Fragment 8) + 20.
		adEq(t, "total length", p.TotalLen, q.TotalLen-40-16+20)
		adEq(t, "header length", p.HeaderLen, 20)
	}
	d2 := func(i int) func(t *testing.T, in []byte, out []output) {
		return func(t *testing.T, in []byte, out []output) {
			p, q := adOne(t, out), adParse(t, in)
			adHex(t, "identification", p.ID, 0x5678)
			adEq(t, "MF", p.MF, q.Frag.More)
			adEq(t, "DF", p.DF, false)
			adEq(t, "fragment offset", p.FragOff, q.Frag.Offset)
			adEq(t, "protocol", p.Proto, packettest.ProtoUDP)
			var all [][]byte
			for _, f := range frags {
				o := translator.NewOut()
				newTranslator(t, nil, nil).Translate(f, o)
				if len(o.Pkts) != 1 {
					t.Fatalf("a fragment gave %d packets", len(o.Pkts))
				}
				all = append(all, slices.Clone(o.Pkts[0]))
			}
			got, err := packettest.Reassemble(all)
			if err != nil {
				t.Fatalf("reassembling the translated fragments: %v", err)
			}
			adBytes(t, got, whole4)
		}
	}
	frag := func(next uint8, more bool, e ...packettest.Ext) []byte {
		ext := append([]packettest.Ext{packettest.Fragment(0, more, 0xabcd)}, e...)
		return packettest.Raw6(packettest.IPv6{Hop: 64, Src: server6, Dst: client6, Ext: ext}, next, make([]byte, 64))
	}
	// fragICMPv6Error: a first fragment whose headers after the Fragment
	// header lead to an ICMPv6 Destination Unreachable.
	fragICMPv6Error := func(e ...packettest.Ext) []byte {
		ext := append([]packettest.Ext{packettest.Fragment(0, true, 0xabcd)}, e...)
		msg := make([]byte, 64)
		msg[0] = 1 // Destination Unreachable
		return packettest.Raw6(packettest.IPv6{Hop: 64, Src: server6, Dst: client6, Ext: ext}, packettest.ProtoICMPv6, msg)
	}
	ah := packettest.Ext{Proto: packettest.ProtoAH, Bytes: make([]byte, 24)} // RFC 4302: length 24/4 - 2
	ah.Bytes[1] = 4
	atomic := func(n int) []byte {
		return packettest.UDP6(packettest.IPv6{Hop: 64, Src: server6, Dst: client6,
			Ext: []packettest.Ext{packettest.Fragment(0, false, 0x11223344)}}, 53, 1234, make([]byte, n))
	}
	d4 := func(t *testing.T, in []byte, out []output) {
		p := adOne(t, out)
		adHex(t, "identification", p.ID, 0x3344)
		adUnfragmented4(t, p, false)
		adChecksumOK(t, p)
	}

	return []conformanceCase{
		// D1: Total Length = Payload Length - headers up to and including
		// the Fragment header + 20.
		adFwd("D1-total-length-first-fragment-after-hbh", nil, frags[0], d1),
		adFwd("D1-total-length-last-fragment-after-hbh", nil, frags[1], d1),
		// D2: ID = low 16 bits, MF = M, DF = 0, offset copied.
		adFwd("D2-first-fragment-id-mf-df-offset", nil, frags[0], d2(0)),
		adFwd("D2-last-fragment-id-mf-df-offset", nil, frags[1], d2(1)),
		// D3: an extension header after the Fragment header (ESP excepted)
		// SHOULD be dropped and logged.
		adAnswered6("D3-fragment-then-destination-options-dropped", nil,
			frag(packettest.ProtoUDP, true, packettest.DestOpts(nil)), translator.ReasonFragmentedExtHdr),
		adAnswered6("D3-fragment-then-routing-dropped", nil,
			frag(packettest.ProtoUDP, true, packettest.Routing(4, 0, client6)), translator.ReasonFragmentedExtHdr),
		// Hop-by-Hop anywhere but first is malformed (RFC 8200 §4.1): the
		// answer is a router's to a next header it cannot process (RFC 8200
		// §4), Parameter Problem code 1 pointing at the Next Header field
		// that names it, here the Fragment header's.
		adHopByHopNotFirst("D3-fragment-then-hop-by-hop-parameter-problem",
			frag(packettest.ProtoUDP, true, packettest.HopByHop(nil)), 40),
		// A later fragment is not answered (RFC 4443 §2.4(e) leaves it to
		// the first; RFC 1812 §4.3.2.7 for IPv4): the same packet at offset 8.
		adDrop("D3-later-fragment-then-hop-by-hop-not-answered", nil,
			packettest.Raw6(packettest.IPv6{Hop: 64, Src: server6, Dst: client6,
				Ext: []packettest.Ext{packettest.Fragment(1, true, 0xabcd), packettest.HopByHop(nil)}},
				packettest.ProtoUDP, make([]byte, 64)),
			translator.ReasonBadOptions),
		// What such a first fragment carries decides whether it is
		// answered: never an ICMPv6 error (RFC 4443 §2.4(e)), found behind
		// the headers after the Fragment header (a fuzzing input: the walk
		// ended at the Fragment header and answered an error).
		adDrop("D3-fragment-then-routing-icmpv6-error-not-answered", nil,
			fragICMPv6Error(packettest.Routing(4, 0, client6)), translator.ReasonFragmentedExtHdr),
		adDrop("D3-fragment-then-hop-by-hop-icmpv6-error-not-answered", nil,
			fragICMPv6Error(packettest.HopByHop(nil), packettest.DestOpts(nil)), translator.ReasonBadOptions),
		adAnswered6("D3-fragment-then-ah-dropped", nil,
			frag(packettest.ProtoUDP, true, ah), translator.ReasonFragmentedExtHdr),
		adFwd("D3-fragment-then-esp-translated", nil, frag(packettest.ProtoESP, true), func(t *testing.T, in []byte, out []output) {
			p := adOne(t, out)
			adEq(t, "protocol", p.Proto, packettest.ProtoESP)
			adEq(t, "MF", p.MF, true)
			adHex(t, "identification", p.ID, 0xabcd)
			adEq(t, "data length", len(p.L4), 64)
		}),
		// D4: an atomic fragment is translated as a fragment: ID copied, DF
		// 0, even when the packet is larger than 1260 bytes (RFC 6946).
		adFwd("D4-atomic-fragment-id-copied-df-0", nil, atomic(100), d4),
		adFwd("D4-atomic-fragment-large-still-df-0", nil, atomic(1300), d4),
		// An ICMPv6 error in an atomic fragment is no exception (a fragmented
		// one is not translated at all, row I8).
		adFwd("D4-atomic-fragment-icmpv6-error-id-copied", nil,
			packettest.ICMP6(packettest.IPv6{Hop: 64, Src: server6, Dst: client6,
				Ext: []packettest.Ext{packettest.Fragment(0, false, 0x11223344)}}, 1, 4, [4]byte{},
				packettest.UDP6(packettest.IPv6{Hop: 63, Src: client6, Dst: server6}, 1234, 53, adData)),
			func(t *testing.T, in []byte, out []output) {
				p := adOne(t, out)
				adICMPType(t, p, 3, 3)
				adHex(t, "identification", p.ID, 0x3344)
				adUnfragmented4(t, p, false)
			}),
		adFwd("D4-atomic-fragment-icmpv6-echo-id-copied", nil,
			packettest.ICMP6(packettest.IPv6{Hop: 64, Src: server6, Dst: client6,
				Ext: []packettest.Ext{packettest.Fragment(0, false, 0x5566beef)}}, 129, 0, packettest.Rest16(7, 1), adData),
			func(t *testing.T, in []byte, out []output) {
				p := adOne(t, out)
				adICMPType(t, p, 0, 0)
				adHex(t, "identification", p.ID, 0xbeef)
				adUnfragmented4(t, p, false)
			}),
	}
}

// TestNewRefusesMappingInPseudoPrefix: an IPv6 address inside both the
// pseudo prefix and a mapping would stand for two IPv4 addresses.
func TestNewRefusesMappingInPseudoPrefix(t *testing.T) {
	table, err := translator.NewTable([]translator.Mapping{
		baseMappings[0],
		adMapping("203.0.113.50/32", "64:ff9b::c000:263/128"), // inside 64:ff9b::/96
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = translator.New(baseConfig(), table)
	want := "translator: mapping 1: IPv6 prefix 64:ff9b::c000:263/128 overlaps the pseudo prefix 64:ff9b::/96"
	if err == nil || err.Error() != want {
		t.Fatalf("New: %v, want %q", err, want)
	}
}

// ahExt is an empty Authentication Header (RFC 4302: its length field is
// the length in 4-octet units minus 2, here 24 bytes).
func ahExt() packettest.Ext {
	ah := packettest.Ext{Proto: packettest.ProtoAH, Bytes: make([]byte, 24)}
	ah.Bytes[1] = 4
	return ah
}
