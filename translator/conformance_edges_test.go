package translator_test

// Golden tests for rows C11 (a Hop-by-Hop header out of place), H9 (no
// error about a later fragment) and I9 (the largest fragment offset) of the
// conformance checklist: edges that a deliberately wrong translator passed
// until these cases pinned them.

import (
	"net/netip"
	"testing"

	"github.com/map646/map646/translator"
	pt "github.com/map646/map646/translator/packettest"
)

func init() { conformanceCases = append(conformanceCases, casesEdges()) }

func casesEdges() []conformanceCase {
	var cs []conformanceCase
	cs = append(cs, edgeRowC11()...)
	cs = append(cs, edgeRowH9()...)
	cs = append(cs, edgeRowI9()...)
	return cs
}

// C11: RFC 8200 §4.1 allows Hop-by-Hop Options only directly after the IPv6
// header. Elsewhere the translator answers as a router answers a next header
// it cannot process (RFC 8200 §4): Parameter Problem code 1, the pointer at
// the Next Header field holding 0.
func edgeRowC11() []conformanceCase {
	udp := func(ext ...pt.Ext) []byte {
		return pt.UDP6(pt.IPv6{Hop: 64, Src: server6, Dst: client6, Ext: ext}, 53, 1234, adData)
	}
	return []conformanceCase{
		adHopByHopNotFirst("C11-hop-by-hop-after-destination-options",
			udp(pt.DestOpts(nil), pt.HopByHop(nil)), 40),
		// The pointer follows the chain: Destination Options (bytes 40-47),
		// then a Routing header whose Next Header, at byte 48, names it.
		adHopByHopNotFirst("C11-hop-by-hop-third-pointer-at-routing-header",
			udp(pt.DestOpts(nil), pt.Routing(0, 0, client6), pt.HopByHop(nil)), 48),
		adHopByHopNotFirst("C11-hop-by-hop-twice",
			udp(pt.HopByHop(nil), pt.HopByHop(nil)), 40),
		// The walk goes past the misplaced header to the upper layer: an
		// ICMPv6 error is never answered (RFC 4443 §2.4(e)), an echo request
		// is.
		adDrop("C11-icmpv6-error-not-answered", nil,
			pt.ICMP6(pt.IPv6{Hop: 64, Src: server6, Dst: client6, Ext: []pt.Ext{pt.DestOpts(nil), pt.HopByHop(nil)}},
				1, 4, [4]byte{}, pt.UDP6(pt.IPv6{Hop: 63, Src: client6, Dst: server6}, 1234, 53, adData)),
			translator.ReasonBadOptions),
		adHopByHopNotFirst("C11-icmpv6-echo-request-answered",
			pt.ICMP6(pt.IPv6{Hop: 64, Src: server6, Dst: client6, Ext: []pt.Ext{pt.DestOpts(nil), pt.HopByHop(nil)}},
				128, 0, pt.Rest16(1, 1), adData), 40),
		// A chain too long, or cut short, after the misplaced header is
		// dropped for that.
		adDrop("C11-then-chain-too-long-dropped", nil,
			udp(pt.DestOpts(nil), pt.HopByHop(nil), pt.DestOpts(nil), pt.DestOpts(nil), pt.DestOpts(nil),
				pt.DestOpts(nil), pt.DestOpts(nil), pt.DestOpts(nil), pt.DestOpts(nil)),
			translator.ReasonExtHeaderChain),
		adFwd("C11-hop-by-hop-first-is-skipped", nil, udp(pt.HopByHop(nil), pt.DestOpts(nil)),
			func(t *testing.T, in []byte, out []output) {
				p := adOne(t, out)
				adEq(t, "protocol", p.Proto, pt.ProtoUDP)
				adEq(t, "total length", p.TotalLen, 20+8+len(adData))
			}),
	}
}

// H9: never an ICMP error about a fragment other than the first (RFC 1812
// §4.3.2.7 for IPv4; the translator keeps the same rule for IPv6): it quotes
// no transport header, so its sender could not tell which flow it is about.
// Each dropped later fragment has a first-fragment twin that is answered, so
// that the drop is the fragment's doing, not the packet's.
func edgeRowH9() []conformanceCase {
	unmapped4 := netip.MustParseAddr("203.0.113.77")
	unmapped6 := netip.MustParseAddr("2001:db8:ff::2")
	frag4 := func(off uint16, ttl uint8, dst netip.Addr, opts []byte) []byte {
		return pt.Raw4(pt.IPv4{TTL: ttl, ID: 0x4242, FragOff: off, MF: true, Src: client4, Dst: dst, Options: opts},
			pt.ProtoUDP, ijData(64))
	}
	frag6 := func(off uint16, hop uint8, src, dst netip.Addr, n int) []byte {
		return pt.Raw6(pt.IPv6{Hop: hop, Src: src, Dst: dst, Ext: []pt.Ext{pt.Fragment(off, true, 0x4242)}},
			pt.ProtoUDP, udpHeadedData(n))
	}
	lsrr := pt.SourceRoute(false, 4, adRouter4, server4) // copied into every fragment (RFC 791)
	smallIPv4MTU := func(c *translator.Config) { c.IPv4MTU = 1300 }

	answered4 := func(name string, in []byte, r translator.Reason, typ, code uint8) conformanceCase {
		return adICMPErr(name, nil, in, r, func(t *testing.T, in []byte, out []output) {
			adGenerated(t, adOne(t, out), in, own4, typ, code)
		})
	}
	answered6 := func(name string, cfg func(*translator.Config), in []byte, r translator.Reason, typ, code uint8) conformanceCase {
		return adICMPErr(name, cfg, in, r, func(t *testing.T, in []byte, out []output) {
			adGenerated(t, adOne(t, out), in, own6, typ, code)
		})
	}
	return []conformanceCase{
		answered4("H9-first-fragment-ttl-1-answered-4to6", frag4(0, 1, server4, nil), translator.ReasonTTLExpired, 11, 0),
		adDrop("H9-later-fragment-ttl-1-not-answered-4to6", nil, frag4(8, 1, server4, nil), translator.ReasonTTLExpired),
		answered4("H9-first-fragment-unmapped-answered-4to6", frag4(0, 64, unmapped4, nil), translator.ReasonNoMappingDst, 3, 13),
		adDrop("H9-later-fragment-unmapped-not-answered-4to6", nil, frag4(8, 64, unmapped4, nil), translator.ReasonNoMappingDst),
		answered4("H9-first-fragment-source-route-answered-4to6", frag4(0, 64, server4, lsrr), translator.ReasonSourceRoute, 3, 5),
		adDrop("H9-later-fragment-source-route-not-answered-4to6", nil, frag4(8, 64, server4, lsrr), translator.ReasonSourceRoute),

		answered6("H9-first-fragment-hop-1-answered-6to4", nil, frag6(0, 1, server6, client6, 64), translator.ReasonTTLExpired, 3, 0),
		adDrop("H9-later-fragment-hop-1-not-answered-6to4", nil, frag6(8, 1, server6, client6, 64), translator.ReasonTTLExpired),
		answered6("H9-first-fragment-unmapped-source-answered-6to4", nil, frag6(0, 64, unmapped6, client6, 64), translator.ReasonNoMappingSrc, 1, 1),
		adDrop("H9-later-fragment-unmapped-source-not-answered-6to4", nil, frag6(8, 64, unmapped6, client6, 64), translator.ReasonNoMappingSrc),
		answered6("H9-first-fragment-unmapped-destination-answered-6to4", nil, frag6(0, 64, server6, unmapped6, 64), translator.ReasonNoMappingDst, 1, 1),
		adDrop("H9-later-fragment-unmapped-destination-not-answered-6to4", nil, frag6(8, 64, server6, unmapped6, 64), translator.ReasonNoMappingDst),
		answered6("H9-first-fragment-too-big-answered-6to4", smallIPv4MTU, frag6(0, 64, server6, client6, 1400), translator.ReasonTooBig, 2, 0),
		adDrop("H9-later-fragment-too-big-not-answered-6to4", smallIPv4MTU, frag6(8, 64, server6, client6, 1400), translator.ReasonTooBig),
	}
}

// udpHeadedData is n bytes that start with a UDP header claiming more than
// n bytes, as the first fragment of a longer datagram does.
func udpHeadedData(n int) []byte {
	b := ijData(n)
	b[0], b[1], b[2], b[3] = 0, 53, 0x04, 0xd2 // ports 53 -> 1234
	b[4], b[5] = 0xff, 0x00                    // length 65280
	b[6], b[7] = 0x12, 0x34                    // a checksum: the datagram is never whole here
	return b
}

// I9: a datagram may reach 65535 bytes (RFC 791 Total Length, RFC 8200 §4.5
// for the reassembled IPv6 payload): a last fragment ending exactly there is
// translated, one byte further is refused.
func edgeRowI9() []conformanceCase {
	last4 := func(n int) []byte {
		return pt.Raw4(pt.IPv4{TTL: 64, ID: 0x77, FragOff: 8189, Src: client4, Dst: server4}, pt.ProtoUDP, ijData(n))
	}
	last6 := func(n int) []byte {
		return pt.Raw6(pt.IPv6{Hop: 64, Src: server6, Dst: client6, Ext: []pt.Ext{pt.Fragment(8189, false, 0x77)}}, pt.ProtoUDP, ijData(n))
	}
	return []conformanceCase{
		// 20 bytes of header + 8189*8 + 3 = 65535.
		adFwd("I9-fragment-ending-at-65535-4to6", nil, last4(3), func(t *testing.T, in []byte, out []output) {
			p := adOne(t, out)
			f := ijFrag(t, p)
			adEq(t, "fragment offset", f.Offset, 8189)
			adEq(t, "more fragments", f.More, false)
			adEq(t, "data length", len(p.L4), 3)
		}),
		adDrop("I9-fragment-ending-at-65536-4to6", nil, last4(4), translator.ReasonBadFragment),
		adFwd("I9-fragment-ending-at-65535-6to4", nil, last6(3), func(t *testing.T, in []byte, out []output) {
			p := adOne(t, out)
			adEq(t, "fragment offset", p.FragOff, 8189)
			adEq(t, "MF", p.MF, false)
			adEq(t, "total length", p.TotalLen, 23)
		}),
		adDrop("I9-fragment-ending-at-65536-6to4", nil, last6(4), translator.ReasonBadFragment),
	}
}
