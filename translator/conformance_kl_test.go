package translator_test

// Rows K (hairpinning, RFC 7757 §4) and L (the SIIT-DC model of RFC 7755)
// of the conformance checklist.
//
// Hairpinning: server A (2001:db8:1::10, public 198.51.100.10) reaches
// server B (2001:db8:1::11, public 198.51.100.11) through B's public address,
// 64:ff9b::198.51.100.11. The translator turns the packet into IPv4, finds
// the IPv4 destination in its own table, and translates it back to IPv6:
// destination B by its EAM, source A by the pseudo prefix (not A's EAM), so
// that B answers through the translator too. The packet crosses the
// translator twice, as it would two routers, so its hop limit drops by two.

import (
	"net/netip"
	"testing"

	"github.com/map646/map646/translator"
	pt "github.com/map646/map646/translator/packettest"
)

func init() { conformanceCases = append(conformanceCases, casesKL()) }

func casesKL() []conformanceCase {
	var cs []conformanceCase
	cs = append(cs, casesK()...)
	cs = append(cs, casesL()...)
	return cs
}

var pool6791x6 = netip.MustParseAddr("64:ff9b::cb00:7101") // 203.0.113.1 through the pseudo prefix

func casesK() []conformanceCase {
	var cs []conformanceCase
	add := func(c ...conformanceCase) { cs = append(cs, c...) }
	hairpinOff := func(c *translator.Config) { c.Hairpin = translator.HairpinOff }
	tcpA := pt.TCP{Sport: 40000, Dport: 443, Seq: 1, Flags: pt.SYN, Window: 65535, Options: []byte{2, 4, 0x05, 0xb4}}

	// K1: the 6->4 result whose IPv4 destination is EAM-mapped goes back out
	// as IPv6 (RFC 7757 §4, Appendix B.1), not as IPv4.
	add(conformanceCase{
		name:    "K1-hairpin-udp-server-to-server",
		in:      pt.UDP6(pt.IPv6{TC: 0x10, Flow: 0x54321, Hop: 64, Src: server6, Dst: server4bx6}, 40000, 53, exPayload(100)),
		verdict: translator.Forward,
		check: func(t *testing.T, out []output) {
			exGolden(t, out, pt.UDP6(pt.IPv6{TC: 0x10, Hop: 62, Src: server4x6, Dst: server6b}, 40000, 53, exPayload(100)))
		},
	}, conformanceCase{
		name:    "K1-hairpin-tcp-server-to-server",
		in:      pt.TCP6(pt.IPv6{Hop: 64, Src: server6, Dst: server4bx6}, tcpA, nil),
		verdict: translator.Forward,
		check: func(t *testing.T, out []output) {
			exGolden(t, out, pt.TCP6(pt.IPv6{Hop: 62, Src: server4x6, Dst: server6b}, tcpA, nil))
		},
	}, conformanceCase{
		name:    "K1-hairpin-udp-siit-policy",
		config:  func(c *translator.Config) { c.Policy = translator.PolicySIIT },
		in:      pt.UDP6(pt.IPv6{Hop: 64, Src: server6, Dst: server4bx6}, 40000, 53, exPayload(100)),
		verdict: translator.Forward,
		check: func(t *testing.T, out []output) {
			exGolden(t, out, pt.UDP6(pt.IPv6{Hop: 62, Src: server4x6, Dst: server6b}, 40000, 53, exPayload(100)))
		},
	}, conformanceCase{
		name:    "K1-hairpin-off-emits-ipv4",
		config:  hairpinOff,
		in:      pt.UDP6(pt.IPv6{TC: 0x10, Hop: 64, Src: server6, Dst: server4bx6}, 40000, 53, exPayload(100)),
		verdict: translator.Forward,
		check: func(t *testing.T, out []output) {
			// The routing system must bring it back to the translator.
			exGolden(t, out, pt.UDP4(pt.IPv4{TOS: 0x10, TTL: 63, Src: server4, Dst: server4b}, 40000, 53, exPayload(100)))
		},
	})

	// K2: intrinsic mode (RFC 7757 §4.2.2): on the way back the source takes
	// the RFC 6052 form, the destination its EAM. Both directions of a
	// conversation, a /124 entry, and an ICMP echo whose type and checksum
	// are translated twice.
	add(conformanceCase{
		name:    "K2-intrinsic-reply-b-to-a",
		in:      pt.UDP6(pt.IPv6{Hop: 64, Src: server6b, Dst: server4x6}, 53, 40000, exPayload(100)),
		verdict: translator.Forward,
		check: func(t *testing.T, out []output) {
			exGolden(t, out, pt.UDP6(pt.IPv6{Hop: 62, Src: server4bx6, Dst: server6}, 53, 40000, exPayload(100)))
		},
	}, conformanceCase{
		name:    "K2-intrinsic-prefix-entry-source",
		in:      pt.TCP6(pt.IPv6{Hop: 64, Src: prefix6, Dst: server4x6}, tcpA, nil),
		verdict: translator.Forward,
		check: func(t *testing.T, out []output) {
			// 2001:db8:2::4 is 198.51.100.20 by the /124 entry; back as
			// 64:ff9b::198.51.100.20.
			exGolden(t, out, pt.TCP6(pt.IPv6{Hop: 62, Src: netip.MustParseAddr("64:ff9b::c633:6414"), Dst: server6}, tcpA, nil))
		},
	}, conformanceCase{
		name:    "K2-intrinsic-echo-request",
		in:      pt.ICMP6(pt.IPv6{Hop: 64, Src: server6, Dst: server4bx6}, 128, 0, pt.Rest16(9, 1), exPayload(56)),
		verdict: translator.Forward,
		check: func(t *testing.T, out []output) {
			exGolden(t, out, pt.ICMP6(pt.IPv6{Hop: 62, Src: server4x6, Dst: server6b}, 128, 0, pt.Rest16(9, 1), exPayload(56)))
		},
	})

	// K3: hairpinned ICMP errors keep the outer and the quoted addresses
	// consistent: the error reaches A from B's pseudo-prefix address and
	// quotes A's packet exactly as A sent it (RFC 7757 §4.2.2).
	for _, policy := range []translator.Policy{translator.PolicyDatacenter, translator.PolicySIIT} {
		// What B received in K1, and B's port unreachable about it. In the
		// SIIT policy the table also maps IPv4 sources, so only the
		// hairpin rule keeps B's address out of its EAM in the quote.
		hairpinned := pt.UDP6(pt.IPv6{Hop: 62, Src: server4x6, Dst: server6b}, 40000, 53, exPayload(100))
		add(conformanceCase{
			name:    "K3-hairpin-port-unreachable-from-server-" + policy.String(),
			config:  func(c *translator.Config) { c.Policy = policy },
			in:      pt.ICMP6(pt.IPv6{Hop: 64, Src: server6b, Dst: server4x6}, v6DestUnreach, 4, [4]byte{}, hairpinned),
			verdict: translator.Forward,
			check: func(t *testing.T, out []output) {
				asSent := pt.UDP6(pt.IPv6{Hop: 62, Src: server6, Dst: server4bx6}, 40000, 53, exPayload(100))
				exError(t, out, wantErr{server4bx6, server6, 62, v6DestUnreach, 4, asSent})
			},
		})
	}
	{
		// A datacenter router on the way to B cannot forward a large
		// hairpinned segment. Its Packet Too Big takes an RFC 6791 source in
		// the first pass and that source's pseudo-prefix form in the second;
		// the MTU comes back as advertised (1400 - 20 + 20); the quote is
		// cut to 548 bytes by the IPv4 pass (+20 back in IPv6) and still
		// reads as A's segment.
		seg := pt.TCP{Sport: 40000, Dport: 443, Seq: 100, Ack: 200, Flags: pt.ACK, Window: 1024}
		hairpinned := pt.TCP6(pt.IPv6{Hop: 62, Src: server4x6, Dst: server6b}, seg, exPayload(1390)) // 1450 bytes
		add(conformanceCase{
			name:    "K3-hairpin-packet-too-big-from-dc-router",
			in:      pt.ICMP6(pt.IPv6{Hop: 64, Src: router6, Dst: server4x6}, v6PacketTooBig, 0, pt.Rest32(1400), hairpinned[:1232]),
			verdict: translator.Forward,
			check: func(t *testing.T, out []output) {
				asSent := pt.TCP6(pt.IPv6{Hop: 62, Src: server6, Dst: server4bx6}, seg, exPayload(1390))
				p := exError(t, out, wantErr{pool6791x6, server6, 62, v6PacketTooBig, 0, asSent[:568]})
				if p.ICMP.MTU != 1400 {
					t.Errorf("MTU %d, want 1400", p.ICMP.MTU)
				}
			},
		})
	}
	{
		// The hop limit runs out in the second pass: the Time Exceeded goes
		// to A, from the translator, about the packet A sent.
		in := pt.UDP6(pt.IPv6{Hop: 2, Src: server6, Dst: server4bx6}, 40000, 53, exPayload(100))
		add(conformanceCase{
			name:    "K3-hairpin-time-exceeded-about-original",
			in:      in,
			verdict: translator.ICMPError,
			reason:  translator.ReasonTTLExpired,
			check: func(t *testing.T, out []output) {
				exError(t, out, wantErr{own6, server6, 64, v6TimeExceeded, 0, in})
			},
		})
	}

	// K4: "simple" hairpinning (RFC 7757 §4.2.1) is not implemented. As we
	// read it, simple mode leaves the EAM algorithm out when translating the
	// source address of IPv4 packets other than ICMPv4 errors to IPv6, so
	// that a hairpinned packet's source takes the RFC 6052 form and the
	// receiving server answers through the translator; it promises nothing
	// for ICMP errors (that is what intrinsic mode, §4.2.2, adds). Intrinsic
	// mode must therefore give exactly the simple mode's result for every
	// hairpinned packet that is not an ICMP error: TCP, UDP, ICMP echo, an
	// unknown transport.
	for _, c := range []struct {
		name    string
		in, out []byte
	}{
		{"K4-simple-mode-result-tcp",
			pt.TCP6(pt.IPv6{Hop: 64, Src: server6b, Dst: server4x6}, tcpA, exPayload(10)),
			pt.TCP6(pt.IPv6{Hop: 62, Src: server4bx6, Dst: server6}, tcpA, exPayload(10))},
		{"K4-simple-mode-result-udp",
			pt.UDP6(pt.IPv6{Hop: 64, Src: server6, Dst: server4bx6}, 1, 2, exPayload(10)),
			pt.UDP6(pt.IPv6{Hop: 62, Src: server4x6, Dst: server6b}, 1, 2, exPayload(10))},
		{"K4-simple-mode-result-echo-reply",
			pt.ICMP6(pt.IPv6{Hop: 64, Src: server6b, Dst: server4x6}, 129, 0, pt.Rest16(9, 1), exPayload(10)),
			pt.ICMP6(pt.IPv6{Hop: 62, Src: server4bx6, Dst: server6}, 129, 0, pt.Rest16(9, 1), exPayload(10))},
		{"K4-simple-mode-result-unknown-transport",
			pt.Raw6(pt.IPv6{Hop: 64, Src: server6, Dst: server4bx6}, 132, exPayload(24)), // SCTP, untouched
			pt.Raw6(pt.IPv6{Hop: 62, Src: server4x6, Dst: server6b}, 132, exPayload(24))},
	} {
		add(conformanceCase{
			name:    c.name,
			in:      c.in,
			verdict: translator.Forward,
			check:   func(t *testing.T, out []output) { exGolden(t, out, c.out) },
		})
	}
	return cs
}

func casesL() []conformanceCase {
	var cs []conformanceCase
	add := func(c ...conformanceCase) { cs = append(cs, c...) }
	syn := pt.TCP{Sport: 40000, Dport: 443, Seq: 1000, Flags: pt.SYN, Window: 65535, Options: []byte{2, 4, 0x05, 0xb4}}
	synAck := pt.TCP{Sport: 443, Dport: 40000, Seq: 5000, Ack: 1001, Flags: pt.SYN | pt.ACK, Window: 65535, Options: []byte{2, 4, 0x05, 0xa0}}

	// L1: the Border Relay maps public IPv4 service addresses to IPv6
	// servers by EAM, and every IPv4 client through the translation prefix
	// (RFC 7755 §4, §5).
	add(conformanceCase{
		name:    "L1-client-to-server",
		in:      pt.TCP4(pt.IPv4{TTL: 50, DF: true, ID: 777, Src: client4, Dst: server4}, syn, nil),
		verdict: translator.Forward,
		check: func(t *testing.T, out []output) {
			exGolden(t, out, pt.TCP6(pt.IPv6{Hop: 49, Src: client6, Dst: server6}, syn, nil))
		},
	}, conformanceCase{
		name:    "L1-server-to-client",
		in:      pt.TCP6(pt.IPv6{Hop: 64, Src: server6, Dst: client6}, synAck, nil),
		verdict: translator.Forward,
		check: func(t *testing.T, out []output) {
			exGolden(t, out, pt.TCP4(pt.IPv4{TTL: 63, Src: server4, Dst: client4}, synAck, nil))
		},
	}, conformanceCase{
		name:    "L1-prefix-entry-both-ways",
		in:      pt.TCP4(pt.IPv4{TTL: 50, Src: client4, Dst: prefix4}, syn, nil),
		verdict: translator.Forward,
		check: func(t *testing.T, out []output) {
			exGolden(t, out, pt.TCP6(pt.IPv6{Hop: 49, Src: client6, Dst: prefix6}, syn, nil))
			back := newTranslator(t, nil, nil)
			o := translator.NewOut()
			res := back.Translate(pt.TCP6(pt.IPv6{Hop: 64, Src: prefix6, Dst: client6}, synAck, nil), o)
			if res.Verdict != translator.Forward || len(o.Pkts) != 1 {
				t.Fatalf("reply: verdict %v (%v), %d packets", res.Verdict, res.Reason, len(o.Pkts))
			}
			exBytes(t, "reply", o.Pkts[0], pt.TCP4(pt.IPv4{TTL: 63, Src: prefix4, Dst: client4}, synAck, nil))
		},
	}, conformanceCase{
		// Only servers in the table speak to IPv4 (RFC 7755 §4: the BR
		// translates the IPv6 service addresses it has mappings for).
		name:    "L1-unmapped-ipv6-server-not-translated",
		in:      pt.TCP6(pt.IPv6{Hop: 64, Src: unmapped6, Dst: client6}, synAck, nil),
		verdict: translator.ICMPError,
		reason:  translator.ReasonNoMappingSrc,
		check: func(t *testing.T, out []output) {
			if p := exOne(t, out); p.Version != 6 || p.ICMP == nil || !p.ICMP.Error {
				t.Errorf("emitted an IPv%d packet, want only the ICMPv6 error", p.Version)
			}
		},
	}, conformanceCase{
		name:    "L1-unmapped-ipv4-service-not-translated",
		in:      pt.TCP4(pt.IPv4{TTL: 50, Src: client4, Dst: unmapped4}, syn, nil),
		verdict: translator.ICMPError,
		reason:  translator.ReasonNoMappingDst,
		check: func(t *testing.T, out []output) {
			if p := exOne(t, out); p.Version != 4 || p.ICMP == nil || !p.ICMP.Error {
				t.Errorf("emitted an IPv%d packet, want only the ICMPv4 error", p.Version)
			}
		},
	},
		// An IPv6 host posing as an IPv4 client from inside the translation
		// prefix, and an IPv4 host posing as a server: both spoofs.
		dropCase("L1-ipv6-source-in-translation-prefix-dropped",
			pt.TCP6(pt.IPv6{Hop: 64, Src: client6, Dst: netip.MustParseAddr("64:ff9b::c000:208")}, synAck, nil),
			translator.ReasonSpoofedPseudo),
		dropCase("L1-ipv4-source-is-a-service-address-dropped",
			pt.TCP4(pt.IPv4{TTL: 50, Src: server4b, Dst: server4}, syn, nil),
			translator.ReasonSpoofedMapped),
	)

	// L2: with the datacenter's IPv6 MTU and lowest-ipv6-mtu raised to 1520
	// (RFC 7755 §5), a full-size 1500-byte IPv4 packet crosses whole: no
	// Fragment header even without DF.
	dc := func(c *translator.Config) { c.IPv6MTU, c.LowestIPv6MTU = 1520, 1520 }
	add(conformanceCase{
		name:    "L2-1500-byte-ipv4-no-df-unfragmented",
		config:  dc,
		in:      pt.UDP4(pt.IPv4{TTL: 64, ID: 4242, Src: client4, Dst: server4}, 40000, 53, exPayload(1472)),
		verdict: translator.Forward,
		check: func(t *testing.T, out []output) {
			exGolden(t, out, pt.UDP6(pt.IPv6{Hop: 63, Src: client6, Dst: server6}, 40000, 53, exPayload(1472)))
		},
	}, conformanceCase{
		name:    "L2-1500-byte-ipv4-df-unfragmented",
		config:  dc,
		in:      pt.TCP4(pt.IPv4{TTL: 64, DF: true, Src: client4, Dst: server4}, syn, exPayload(1456)),
		verdict: translator.Forward,
		check: func(t *testing.T, out []output) {
			exGolden(t, out, pt.TCP6(pt.IPv6{Hop: 63, Src: client6, Dst: server6}, syn, exPayload(1456)))
		},
	}, conformanceCase{
		name:    "L2-1520-byte-ipv6-to-1500-byte-ipv4",
		config:  dc,
		in:      pt.TCP6(pt.IPv6{Hop: 64, Src: server6, Dst: client6}, synAck, exPayload(1456)),
		verdict: translator.Forward,
		check: func(t *testing.T, out []output) {
			exGolden(t, out, pt.TCP4(pt.IPv4{TTL: 63, DF: true, Src: server4, Dst: client4}, synAck, exPayload(1456)))
		},
	}, conformanceCase{
		// The contrast: the default lowest-ipv6-mtu (1280) fragments it.
		name:    "L2-default-lowest-mtu-fragments",
		config:  func(c *translator.Config) { c.IPv6MTU = 1520 },
		in:      pt.UDP4(pt.IPv4{TTL: 64, ID: 4242, Src: client4, Dst: server4}, 40000, 53, exPayload(1472)),
		verdict: translator.Forward,
		check: func(t *testing.T, out []output) {
			if len(out) != 2 || out[0].P.Frag == nil || out[1].P.Frag == nil {
				t.Fatalf("%d packets, want 2 fragments", len(out))
			}
		},
	})

	// L3: ICMPv6 errors from datacenter routers, which have no mapping, take
	// a source from the RFC 6791 pool ("a single (or small pool of) public
	// IPv4 address as the source address of the translated ICMP message",
	// RFC 6791 §4), or the translator's own IPv4 address when the pool is
	// empty; without one, path MTU discovery toward IPv4 clients breaks.
	{
		seg := pt.TCP{Sport: 40000, Dport: 443, Seq: 1000, Ack: 5001, Flags: pt.ACK, Window: 1024}
		quoted := pt.TCP6(pt.IPv6{Hop: 63, Src: client6, Dst: server6}, seg, exPayload(1440)) // 1500 bytes
		asSent := pt.TCP4(pt.IPv4{TTL: 63, DF: true, Src: client4, Dst: server4}, seg, exPayload(1440))
		in := pkErr6(router6, v6PacketTooBig, 0, pt.Rest32(1400), quoted[:1232])
		add(conformanceCase{
			name:    "L3-ptb-from-dc-router-rfc6791-source",
			in:      in,
			verdict: translator.Forward,
			check: func(t *testing.T, out []output) {
				p := exError(t, out, wantErr{pool6791, client4, 63, v4DestUnreach, 4, asSent[:548]})
				if p.ICMP.MTU != 1380 {
					t.Errorf("MTU %d, want 1380", p.ICMP.MTU)
				}
			},
		}, conformanceCase{
			name:    "L3-ptb-from-dc-router-empty-pool-own-address",
			config:  func(c *translator.Config) { c.RFC6791Pool = nil },
			in:      in,
			verdict: translator.Forward,
			check: func(t *testing.T, out []output) {
				exError(t, out, wantErr{own4, client4, 63, v4DestUnreach, 4, asSent[:548]})
			},
		}, conformanceCase{
			name:    "L3-time-exceeded-from-dc-router",
			in:      pkErr6(router6, v6TimeExceeded, 0, [4]byte{}, quoted[:100]),
			verdict: translator.Forward,
			check: func(t *testing.T, out []output) {
				exError(t, out, wantErr{pool6791, client4, 63, v4TimeExceeded, 0, asSent[:80]})
			},
		})
		pool := []netip.Addr{netip.MustParseAddr("203.0.113.1"), netip.MustParseAddr("203.0.113.2"), netip.MustParseAddr("203.0.113.3")}
		withPool := func(c *translator.Config) { c.RFC6791Pool = pool }
		add(conformanceCase{
			name:    "L3-pool-of-three-stable-per-router",
			config:  withPool,
			in:      in,
			verdict: translator.Forward,
			check: func(t *testing.T, out []output) {
				p := exOne(t, out)
				found := false
				for _, a := range pool {
					found = found || p.Src == a
				}
				if !found {
					t.Fatalf("source %v is not in the pool %v", p.Src, pool)
				}
				// The same router gets the same address every time.
				tr := newTranslator(t, withPool, nil)
				o := translator.NewOut()
				for range 3 {
					tr.Translate(in, o)
					if len(o.Pkts) != 1 {
						t.Fatalf("%d packets on a repeat", len(o.Pkts))
					}
					if src := netip.AddrFrom4([4]byte(o.Pkts[0][12:16])); src != p.Src {
						t.Errorf("source %v on a repeat, first %v", src, p.Src)
					}
				}
			},
		})
	}

	// L4: servers reach one another through their public IPv4 addresses by
	// hairpinning, both ways of a TCP handshake.
	add(conformanceCase{
		name:    "L4-server-to-server-syn",
		in:      pt.TCP6(pt.IPv6{Hop: 64, Src: server6, Dst: server4bx6}, syn, nil),
		verdict: translator.Forward,
		check: func(t *testing.T, out []output) {
			exGolden(t, out, pt.TCP6(pt.IPv6{Hop: 62, Src: server4x6, Dst: server6b}, syn, nil))
		},
	}, conformanceCase{
		name:    "L4-server-to-server-syn-ack",
		in:      pt.TCP6(pt.IPv6{Hop: 64, Src: server6b, Dst: server4x6}, synAck, nil),
		verdict: translator.Forward,
		check: func(t *testing.T, out []output) {
			exGolden(t, out, pt.TCP6(pt.IPv6{Hop: 62, Src: server4bx6, Dst: server6}, synAck, nil))
		},
	})
	return cs
}
