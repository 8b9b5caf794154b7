package translator_test

// Rows G (the packet quoted by a translated ICMP error, RFC 7915 §4.3, §5.3)
// and H (ICMP errors the translator generates itself, §4.4, §5.4, and its
// duties as a router) of the conformance checklist.

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"
	"testing"

	"github.com/map646/map646/translator"
	pt "github.com/map646/map646/translator/packettest"
)

func init() { conformanceCases = append(conformanceCases, casesGH()) }

func casesGH() []conformanceCase {
	var cs []conformanceCase
	cs = append(cs, casesG()...)
	cs = append(cs, casesH()...)
	return cs
}

// exChecksumAt checks the quoted transport checksum at off (from the start
// of the transport header) against the one of the full datagram as it must
// read after translation: the quote is cut short, so the translator can only
// have updated it incrementally, and that update must land on the same value.
func exChecksumAt(t *testing.T, p *pt.Packet, off int, full []byte, fullL4 int) {
	t.Helper()
	if p.Quote == nil || len(p.Quote.L4) < off+2 {
		t.Fatal("the quote does not reach the transport checksum")
	}
	got := binary.BigEndian.Uint16(p.Quote.L4[off:])
	want := binary.BigEndian.Uint16(full[fullL4+off:])
	if got != want {
		t.Errorf("quoted transport checksum %#04x, want %#04x (the full datagram's, translated)", got, want)
	}
}

func casesG() []conformanceCase {
	var cs []conformanceCase
	add := func(c ...conformanceCase) { cs = append(cs, c...) }
	tcp := pt.TCP{Sport: 443, Dport: 40000, Seq: 0x01020304, Ack: 0x0a0b0c0d, Flags: pt.ACK | pt.PSH, Window: 512}

	// G1: the quoted header is translated like an outer one (addresses
	// including EAM, protocol, TOS/Traffic Class, fragment fields, the ID
	// and DF rules of §5.1) but its TTL/Hop Limit is not decremented.
	add(conformanceCase{
		name:    "G1-inner-header-tos-ttl-4to6",
		in:      pkErr4(v4DestUnreach, 1, [4]byte{}, pt.UDP4(pt.IPv4{TOS: 0x28, TTL: 17, ID: 99, DF: true, Src: server4, Dst: client4}, 53, 40000, exPayload(40))),
		verdict: translator.Forward,
		check: func(t *testing.T, out []output) {
			want := pt.UDP6(pt.IPv6{TC: 0x28, Hop: 17, Src: server6, Dst: client6}, 53, 40000, exPayload(40))
			p := exError(t, out, wantErr{inetRouter4x6, server6, 59, v6DestUnreach, 0, want})
			if p.Quote.Flow != 0 || p.Quote.Frag != nil {
				t.Errorf("quoted flow label %#x, fragment header %v: want 0 and none", p.Quote.Flow, p.Quote.Frag)
			}
		},
	}, conformanceCase{
		name: "G1-inner-icmp-echo-4to6",
		in: pkErr4(v4TimeExceeded, 0, [4]byte{},
			pt.ICMP4(pt.IPv4{TTL: 1, Src: server4, Dst: client4}, 8, 0, pt.Rest16(5, 6), exPayload(32))),
		verdict: translator.Forward,
		check: func(t *testing.T, out []output) {
			// Protocol 1 becomes 58, the echo type 8 becomes 128, and the
			// checksum gains the pseudo-header.
			exError(t, out, wantErr{inetRouter4x6, server6, 59, v6TimeExceeded, 0,
				pt.ICMP6(pt.IPv6{Hop: 1, Src: server6, Dst: client6}, 128, 0, pt.Rest16(5, 6), exPayload(32))})
		},
	}, conformanceCase{
		name: "G1-inner-first-fragment-4to6",
		in: pkErr4(v4TimeExceeded, 1, [4]byte{},
			pt.Fragment4(pt.UDP4(pt.IPv4{TTL: 63, ID: 0xbeef, Src: server4, Dst: client4}, 53, 40000, exPayload(1000)), 548)[0]),
		verdict: translator.Forward,
		check: func(t *testing.T, out []output) {
			// A Fragment header with the IPv4 ID, M set and offset 0 (RFC
			// 7915 §4.1); the UDP checksum is the whole datagram's.
			udp6 := pt.UDP6(pt.IPv6{Src: server6, Dst: client6}, 53, 40000, exPayload(1000))[40:]
			want := pt.Raw6(pt.IPv6{Hop: 63, Src: server6, Dst: client6, Ext: []pt.Ext{pt.Fragment(0, true, 0xbeef)}}, pt.ProtoUDP, udp6[:528])
			exError(t, out, wantErr{inetRouter4x6, server6, 59, v6TimeExceeded, 1, want})
		},
	}, conformanceCase{
		name: "G1-inner-eam-prefix-entry-4to6",
		in: pt.ICMP4(pt.IPv4{TTL: 60, Src: inetRouter4, Dst: prefix4}, v4DestUnreach, 0, [4]byte{},
			pt.TCP4(pt.IPv4{TTL: 63, Src: prefix4, Dst: client4}, tcp, exPayload(10))),
		verdict: translator.Forward,
		check: func(t *testing.T, out []output) {
			// 198.51.100.20 lies in 198.51.100.16/28 -> 2001:db8:2::/124.
			exError(t, out, wantErr{inetRouter4x6, prefix6, 59, v6DestUnreach, 0,
				pt.TCP6(pt.IPv6{Hop: 63, Src: prefix6, Dst: client6}, tcp, exPayload(10))})
		},
	}, conformanceCase{
		name: "G1-inner-header-tc-hop-6to4",
		in: pkErr6(server6, v6DestUnreach, 4, [4]byte{},
			pt.UDP6(pt.IPv6{TC: 0x48, Flow: 0x12345, Hop: 9, Src: client6, Dst: server6}, 40000, 53, exPayload(40))),
		verdict: translator.Forward,
		check: func(t *testing.T, out []output) {
			exError(t, out, wantErr{server4, client4, 63, v4DestUnreach, 3,
				pt.UDP4(pt.IPv4{TOS: 0x48, TTL: 9, Src: client4, Dst: server4}, 40000, 53, exPayload(40))})
		},
	}, conformanceCase{
		name:    "G1-inner-df-above-1260-6to4",
		in:      pkErr6(server6, v6DestUnreach, 4, [4]byte{}, pkClientUDP6(1300)[:1232]),
		verdict: translator.Forward,
		check: func(t *testing.T, out []output) {
			// The quoted datagram would be 1328 bytes in IPv4: DF set, ID 0.
			p := exError(t, out, wantErr{server4, client4, 63, v4DestUnreach, 3, pkClientUDP4(1300)[:548]})
			if !p.Quote.DF || p.Quote.TotalLen != 1328 {
				t.Errorf("quoted DF %v, total length %d; want DF, 1328", p.Quote.DF, p.Quote.TotalLen)
			}
		},
	}, conformanceCase{
		name: "G1-inner-fragment-6to4",
		in: pkErr6(server6, v6TimeExceeded, 1, [4]byte{},
			pt.Raw6(pt.IPv6{Hop: 63, Src: client6, Dst: server6, Ext: []pt.Ext{pt.Fragment(0, true, 0x12345678)}}, pt.ProtoUDP,
				pt.UDP6(pt.IPv6{Src: client6, Dst: server6}, 40000, 53, exPayload(400))[40:40+200])),
		verdict: translator.Forward,
		check: func(t *testing.T, out []output) {
			// RFC 7915 §5.1.1: ID from the low 16 bits, MF from M, DF clear.
			udp4 := pt.UDP4(pt.IPv4{Src: client4, Dst: server4}, 40000, 53, exPayload(400))[20:]
			want := pt.Raw4(pt.IPv4{TTL: 63, ID: 0x5678, MF: true, Src: client4, Dst: server4}, pt.ProtoUDP, udp4[:200])
			exError(t, out, wantErr{server4, client4, 63, v4TimeExceeded, 1, want})
		},
	}, conformanceCase{
		name: "G1-inner-extension-headers-skipped-6to4",
		in: pkErr6(server6, v6DestUnreach, 4, [4]byte{},
			pt.UDP6(pt.IPv6{Hop: 63, Src: client6, Dst: server6, Ext: []pt.Ext{pt.HopByHop(nil), pt.DestOpts([]byte{0x1e, 2, 0, 0})}}, 40000, 53, exPayload(40))),
		verdict: translator.Forward,
		check: func(t *testing.T, out []output) {
			// RFC 7915 §5.1: Hop-by-Hop and Destination Options are skipped;
			// the quoted IPv4 total length leaves them out.
			exError(t, out, wantErr{server4, client4, 63, v4DestUnreach, 3, pkClientUDP4(40)})
		},
	}, conformanceCase{
		name: "G1-inner-icmp-echo-6to4",
		in: pkErr6(router6, v6DestUnreach, 0, [4]byte{},
			pt.ICMP6(pt.IPv6{Hop: 63, Src: client6, Dst: server6}, 128, 0, pt.Rest16(5, 6), exPayload(32))),
		verdict: translator.Forward,
		check: func(t *testing.T, out []output) {
			exError(t, out, wantErr{pool6791, client4, 63, v4DestUnreach, 1,
				pt.ICMP4(pt.IPv4{TTL: 63, Src: client4, Dst: server4}, 8, 0, pt.Rest16(5, 6), exPayload(32))})
		},
	})

	// G2: the outer length follows the quote's change of size.
	add(conformanceCase{
		name:    "G2-outer-length-4to6",
		in:      pkErr4(v4DestUnreach, 3, [4]byte{}, pkServerUDP4(352)), // 20 + 8 + 20 + 8 + 352 = 408
		verdict: translator.Forward,
		check: func(t *testing.T, out []output) {
			p := exError(t, out, wantErr{inetRouter4x6, server6, 59, v6DestUnreach, 4, pkServerUDP6(352)})
			if p.TotalLen != 448 || len(out[0].Raw) != 448 {
				t.Errorf("IPv6 packet of %d bytes (header says %d), want 40 + 8 + 40 + 8 + 352 = 448", len(out[0].Raw), p.TotalLen)
			}
		},
	}, conformanceCase{
		name: "G2-inner-options-removed-4to6",
		in: pkErr4(v4DestUnreach, 3, [4]byte{},
			pt.UDP4(pt.IPv4{TTL: 63, Src: server4, Dst: client4, Options: []byte{0x94, 4, 0, 0, 1, 1, 1, 0}}, 53, 40000, exPayload(20))),
		verdict: translator.Forward,
		check: func(t *testing.T, out []output) {
			// 20 + 8 + (28 + 8 + 20) = 84 in, 40 + 8 + (40 + 8 + 20) = 116 out.
			p := exError(t, out, wantErr{inetRouter4x6, server6, 59, v6DestUnreach, 4, pkServerUDP6(20)})
			if p.TotalLen != 116 {
				t.Errorf("IPv6 packet of %d bytes, want 116", p.TotalLen)
			}
		},
	}, conformanceCase{
		name:    "G2-outer-length-6to4",
		in:      pkErr6(server6, v6DestUnreach, 4, [4]byte{}, pkClientUDP6(304)), // 40 + 8 + 40 + 8 + 304 = 400
		verdict: translator.Forward,
		check: func(t *testing.T, out []output) {
			p := exError(t, out, wantErr{server4, client4, 63, v4DestUnreach, 3, pkClientUDP4(304)})
			if p.TotalLen != 360 || len(out[0].Raw) != 360 {
				t.Errorf("IPv4 packet of %d bytes (header says %d), want 20 + 8 + 20 + 8 + 304 = 360", len(out[0].Raw), p.TotalLen)
			}
		},
	})

	// G3: the quoted packet went the other way, so its source maps like a
	// destination and its destination like a source.
	add(conformanceCase{
		name:    "G3-reverse-roles-4to6",
		in:      pkErr4(v4DestUnreach, 0, [4]byte{}, pkServerUDP4(8)),
		verdict: translator.Forward,
		check: func(t *testing.T, out []output) {
			p := exError(t, out, wantErr{inetRouter4x6, server6, 59, v6DestUnreach, 0, nil})
			exAddrs(t, "quoted header (server's EAM address -> client's RFC 6052 address)", p.Quote, server6, client6)
		},
	}, conformanceCase{
		name:    "G3-reverse-roles-6to4",
		in:      pkErr6(server6, v6DestUnreach, 4, [4]byte{}, pkClientUDP6(8)),
		verdict: translator.Forward,
		check: func(t *testing.T, out []output) {
			p := exError(t, out, wantErr{server4, client4, 63, v4DestUnreach, 3, nil})
			exAddrs(t, "quoted header (client -> server)", p.Quote, client4, server4)
		},
	})

	// G4: the quoted transport checksum, cut short, equals the checksum of
	// the full original datagram translated (which the test can compute
	// because it built that datagram).
	{
		full4 := pkServerUDP4(400)
		full6 := pkServerUDP6(400)
		add(conformanceCase{
			name:    "G4-inner-udp-checksum-4to6",
			in:      pkErr4(v4DestUnreach, 3, [4]byte{}, full4[:28]), // IP header + 64 bits (RFC 792)
			verdict: translator.Forward,
			check: func(t *testing.T, out []output) {
				p := exError(t, out, wantErr{inetRouter4x6, server6, 59, v6DestUnreach, 4, full6[:48]})
				exChecksumAt(t, p, 6, full6, 40)
			},
		})
	}
	{
		full4 := pt.TCP4(pt.IPv4{TTL: 63, Src: server4, Dst: client4}, tcp, exPayload(900))
		full6 := pt.TCP6(pt.IPv6{Hop: 63, Src: server6, Dst: client6}, tcp, exPayload(900))
		add(conformanceCase{
			name:    "G4-inner-tcp-checksum-4to6",
			in:      pkErr4(v4TimeExceeded, 0, [4]byte{}, full4[:120]),
			verdict: translator.Forward,
			check: func(t *testing.T, out []output) {
				p := exError(t, out, wantErr{inetRouter4x6, server6, 59, v6TimeExceeded, 0, full6[:140]})
				exChecksumAt(t, p, 16, full6, 40)
			},
		})
	}
	{
		full4 := pt.ICMP4(pt.IPv4{TTL: 63, Src: server4, Dst: client4}, 8, 0, pt.Rest16(77, 1), exPayload(1000))
		full6 := pt.ICMP6(pt.IPv6{Hop: 63, Src: server6, Dst: client6}, 128, 0, pt.Rest16(77, 1), exPayload(1000))
		add(conformanceCase{
			name:    "G4-inner-icmp-echo-checksum-4to6",
			in:      pkErr4(v4DestUnreach, 4, pt.Rest16(0, 1400), full4[:28]),
			verdict: translator.Forward,
			check: func(t *testing.T, out []output) {
				p := exError(t, out, wantErr{inetRouter4x6, server6, 59, v6PacketTooBig, 0, full6[:48]})
				exChecksumAt(t, p, 2, full6, 40)
			},
		})
	}
	{
		full6 := pkClientUDP6(1400)
		full4 := pkClientUDP4(1400)
		add(conformanceCase{
			name:    "G4-inner-udp-checksum-6to4",
			in:      pkErr6(router6, v6PacketTooBig, 0, pt.Rest32(1400), full6[:1232]),
			verdict: translator.Forward,
			check: func(t *testing.T, out []output) {
				p := exError(t, out, wantErr{pool6791, client4, 63, v4DestUnreach, 4, full4[:548]})
				exChecksumAt(t, p, 6, full4, 20)
			},
		})
	}
	{
		ctcp := pt.TCP{Sport: 40000, Dport: 443, Seq: 7, Ack: 8, Flags: pt.ACK, Window: 1024}
		full6 := pt.TCP6(pt.IPv6{Hop: 63, Src: client6, Dst: server6}, ctcp, exPayload(700))
		full4 := pt.TCP4(pt.IPv4{TTL: 63, Src: client4, Dst: server4}, ctcp, exPayload(700))
		add(conformanceCase{
			name:    "G4-inner-tcp-checksum-6to4",
			in:      pkErr6(server6, v6DestUnreach, 1, [4]byte{}, full6[:60]),
			verdict: translator.Forward,
			check: func(t *testing.T, out []output) {
				p := exError(t, out, wantErr{server4, client4, 63, v4DestUnreach, 10, full4[:40]})
				exChecksumAt(t, p, 16, full4, 20)
			},
		})
	}
	{
		full6 := pt.ICMP6(pt.IPv6{Hop: 63, Src: client6, Dst: server6}, 128, 0, pt.Rest16(3, 4), exPayload(600))
		full4 := pt.ICMP4(pt.IPv4{TTL: 63, Src: client4, Dst: server4}, 8, 0, pt.Rest16(3, 4), exPayload(600))
		add(conformanceCase{
			name:    "G4-inner-icmp-echo-checksum-6to4",
			in:      pkErr6(server6, v6TimeExceeded, 0, [4]byte{}, full6[:48]),
			verdict: translator.Forward,
			check: func(t *testing.T, out []output) {
				p := exError(t, out, wantErr{server4, client4, 63, v4TimeExceeded, 0, full4[:28]})
				exChecksumAt(t, p, 2, full4, 20)
			},
		})
	}
	// A UDP checksum that computes to zero is sent as all ones in both
	// versions (RFC 768; RFC 8200 §8.1): zero would read "no checksum" in
	// IPv4 and is illegal in IPv6. The payloads are chosen to hit it.
	{
		pl := exZeroSumPayload(func(pl []byte) []byte {
			return pt.UDP6(pt.IPv6{Hop: 63, Src: server6, Dst: client6}, 53, 40000, pl)
		})
		full4 := pt.UDP4(pt.IPv4{TTL: 63, Src: server4, Dst: client4}, 53, 40000, pl)
		full6 := pt.UDP6(pt.IPv6{Hop: 63, Src: server6, Dst: client6}, 53, 40000, pl)
		add(conformanceCase{
			name:    "G4-inner-udp-checksum-computes-zero-4to6",
			in:      pkErr4(v4DestUnreach, 3, [4]byte{}, full4[:28]),
			verdict: translator.Forward,
			check: func(t *testing.T, out []output) {
				if binary.BigEndian.Uint16(full6[46:]) != 0xffff {
					t.Fatal("test setup: the IPv6 checksum does not compute to zero")
				}
				p := exError(t, out, wantErr{inetRouter4x6, server6, 59, v6DestUnreach, 4, full6[:48]})
				exChecksumAt(t, p, 6, full6, 40)
			},
		})
	}
	{
		pl := exZeroSumPayload(func(pl []byte) []byte {
			return pt.UDP4(pt.IPv4{TTL: 63, Src: client4, Dst: server4}, 40000, 53, pl)
		})
		full6 := pt.UDP6(pt.IPv6{Hop: 63, Src: client6, Dst: server6}, 40000, 53, pl)
		full4 := pt.UDP4(pt.IPv4{TTL: 63, Src: client4, Dst: server4}, 40000, 53, pl)
		add(conformanceCase{
			name:    "G4-inner-udp-checksum-computes-zero-6to4",
			in:      pkErr6(server6, v6DestUnreach, 4, [4]byte{}, full6[:48]),
			verdict: translator.Forward,
			check: func(t *testing.T, out []output) {
				if binary.BigEndian.Uint16(full4[26:]) != 0xffff {
					t.Fatal("test setup: the IPv4 checksum does not compute to zero")
				}
				p := exError(t, out, wantErr{server4, client4, 63, v4DestUnreach, 3, full4[:28]})
				exChecksumAt(t, p, 6, full4, 20)
			},
		})
	}

	// G5: the ICMP checksum is computed over the translated message (with
	// the pseudo-header for ICMPv6); exICMP demands Check verified it.
	add(conformanceCase{
		name:    "G5-icmpv6-checksum-4to6",
		in:      pkErr4(v4DestUnreach, 13, [4]byte{}, pkServerUDP4(100)),
		verdict: translator.Forward,
		check: func(t *testing.T, out []output) {
			p := exError(t, out, wantErr{inetRouter4x6, server6, 59, v6DestUnreach, 1, pkServerUDP6(100)})
			exICMPChecksum(t, out[0].Raw, 40, p)
		},
	}, conformanceCase{
		name:    "G5-icmpv4-checksum-6to4",
		in:      pkErr6(server6, v6DestUnreach, 1, [4]byte{}, pkClientUDP6(100)),
		verdict: translator.Forward,
		check: func(t *testing.T, out []output) {
			p := exError(t, out, wantErr{server4, client4, 63, v4DestUnreach, 10, pkClientUDP4(100)})
			exICMPChecksum(t, out[0].Raw, 20, p)
		},
	})

	// G6: one level only (RFC 7915 §4.3, §5.3: "This process MUST stop at
	// the first embedded header and drop the packet if it contains more
	// embedded headers"), and no error about an error either (RFC 1812
	// §4.3.2.7, RFC 4443 §2.4(e)).
	for _, inner := range [][2]uint8{{3, 3}, {11, 0}, {12, 0}, {5, 1}, {4, 0}} {
		quoted := pt.ICMP4(pt.IPv4{TTL: 63, Src: server4, Dst: client4}, inner[0], inner[1], [4]byte{}, pkClientUDP4(8)[:28])
		add(dropCase(fmt.Sprintf("G6-error-quoting-error-%d-%d-4to6", inner[0], inner[1]),
			pkErr4(v4DestUnreach, 1, [4]byte{}, quoted), translator.ReasonICMPErrorInError))
	}
	for _, inner := range [][2]uint8{{1, 4}, {2, 0}, {3, 0}, {4, 0}} {
		quoted := pt.ICMP6(pt.IPv6{Hop: 63, Src: client6, Dst: server6}, inner[0], inner[1], pt.Rest32(1280), pkServerUDP6(8))
		add(dropCase(fmt.Sprintf("G6-error-quoting-error-%d-%d-6to4", inner[0], inner[1]),
			pkErr6(router6, v6DestUnreach, 0, [4]byte{}, quoted), translator.ReasonICMPErrorInError))
	}

	// G7: translated errors are capped at 1280 (ICMPv6) and 576 (ICMPv4)
	// bytes by cutting the quote (as Jool's graybox tests bb, bc and be).
	{
		orig := pt.UDP4(pt.IPv4{TTL: 63, DF: true, Src: server4, Dst: client4}, 53, 40000, exPayload(1472)) // 1500 bytes
		full6 := pt.UDP6(pt.IPv6{Hop: 63, Src: server6, Dst: client6}, 53, 40000, exPayload(1472))
		for _, n := range []int{1500, 1252} { // ICMPv4 errors of 1528 and 1280 bytes
			add(conformanceCase{
				name:    fmt.Sprintf("G7-cap-1280-from-%d-4to6", 28+n),
				in:      pt.ICMP4(pt.IPv4{TTL: 60, Src: client4, Dst: server4}, v4DestUnreach, 3, [4]byte{}, orig[:n]),
				verdict: translator.Forward,
				check: func(t *testing.T, out []output) {
					exError(t, out, wantErr{client6, server6, 59, v6DestUnreach, 4, full6[:1232]})
					if len(out[0].Raw) != 1280 {
						t.Errorf("ICMPv6 error of %d bytes, want exactly 1280", len(out[0].Raw))
					}
				},
			})
		}
	}
	{
		full6 := pkClientUDP6(1352)          // 1400 bytes
		full4 := pkClientUDP4(1352)          // 1380 bytes, DF
		for _, n := range []int{1232, 652} { // ICMPv6 errors of 1280 and 700 bytes
			add(conformanceCase{
				name:    fmt.Sprintf("G7-cap-576-from-%d-6to4", 48+n),
				in:      pkErr6(server6, v6DestUnreach, 4, [4]byte{}, full6[:n]),
				verdict: translator.Forward,
				check: func(t *testing.T, out []output) {
					exError(t, out, wantErr{server4, client4, 63, v4DestUnreach, 3, full4[:548]})
					if len(out[0].Raw) != 576 {
						t.Errorf("ICMPv4 error of %d bytes, want exactly 576", len(out[0].Raw))
					}
				},
			})
		}
	}
	return cs
}

// exZeroSumPayload returns a 64-byte payload for which build (which makes a
// UDP datagram) computes a checksum of zero, sent as 0xffff. It adjusts the
// first two payload bytes so that the one's complement sum of pseudo-header
// and datagram is all ones.
func exZeroSumPayload(build func([]byte) []byte) []byte {
	pl := exPayload(64)
	pl[0], pl[1] = 0, 0
	pkt := build(pl)
	var s uint64
	if pkt[0]>>4 == 4 {
		s = exOnesSum(pkt[12:20]) // pseudo-header addresses
	} else {
		s = exOnesSum(pkt[8:40])
	}
	u := slices.Clone(pkt[len(pkt)-8-len(pl):])
	u[6], u[7] = 0, 0
	s += exOnesSum(u) + pt.ProtoUDP + uint64(len(u))
	binary.BigEndian.PutUint16(pl, 0xffff-exFold(s))
	return pl
}

func exOnesSum(b []byte) uint64 {
	var s uint64
	for i := 0; i+1 < len(b); i += 2 {
		s += uint64(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		s += uint64(b[len(b)-1]) << 8
	}
	return s
}

func exFold(s uint64) uint16 {
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	return uint16(s)
}

// exICMPChecksum recomputes the ICMP checksum of pkt (IP header of hdr
// bytes) independently of Check: with the IPv6 pseudo-header for ICMPv6.
func exICMPChecksum(t *testing.T, pkt []byte, hdr int, p *pt.Packet) {
	t.Helper()
	s := exOnesSum(pkt[hdr:])
	if p.Version == 6 {
		s += exOnesSum(pkt[8:40]) + 58 + uint64(len(pkt)-hdr)
	}
	if exFold(s) != 0xffff {
		t.Errorf("ICMP checksum %#04x does not verify", binary.BigEndian.Uint16(pkt[hdr+2:]))
	}
}

func casesH() []conformanceCase {
	var cs []conformanceCase
	add := func(c ...conformanceCase) { cs = append(cs, c...) }
	noErrors := func(c *translator.Config) { c.ICMPErrors = false }

	// H1: a dropped IPv4 packet gets ICMPv4 3/13 from the translator, unless
	// it is itself an ICMPv4 error (RFC 7915 §4.4: "If the IPv4 packet is
	// discarded, then the translator SHOULD be able to send back an ICMPv4
	// error message to the original sender of the packet, unless the
	// discarded packet is itself an ICMPv4 error message. The ICMPv4
	// message, if sent, has a Type of 3 (Destination Unreachable) and a Code
	// of 13 (Communication Administratively Prohibited), unless otherwise
	// specified").
	{
		in := pt.UDP4(pt.IPv4{TTL: 64, Src: client4, Dst: unmapped4}, 40000, 53, exPayload(30))
		add(conformanceCase{
			name:    "H1-unmapped-destination-3-13",
			in:      in,
			verdict: translator.ICMPError,
			reason:  translator.ReasonNoMappingDst,
			check: func(t *testing.T, out []output) {
				exError(t, out, wantErr{own4, client4, 64, v4DestUnreach, 13, in})
			},
		})
		add(conformanceCase{
			name:    "H1-icmp-errors-off-plain-drop",
			config:  noErrors,
			in:      in,
			verdict: translator.Drop,
			reason:  translator.ReasonNoMappingDst,
		})
	}
	{
		in := pt.ICMP4(pt.IPv4{TTL: 64, Src: client4, Dst: unmapped4}, 8, 0, pt.Rest16(1, 1), exPayload(20))
		add(conformanceCase{
			name:    "H1-echo-request-is-answered-3-13",
			in:      in,
			verdict: translator.ICMPError,
			reason:  translator.ReasonNoMappingDst,
			check: func(t *testing.T, out []output) {
				exError(t, out, wantErr{own4, client4, 64, v4DestUnreach, 13, in})
			},
		})
	}
	add(conformanceCase{
		name:    "H1-icmp-error-not-answered",
		in:      pt.ICMP4(pt.IPv4{TTL: 64, Src: client4, Dst: unmapped4}, v4DestUnreach, 3, [4]byte{}, pt.UDP4(pt.IPv4{TTL: 9, Src: unmapped4, Dst: client4}, 53, 40000, nil)),
		verdict: translator.Drop,
		reason:  translator.ReasonNoMappingDst,
	})
	// A UDP checksum of zero the operator chose to drop (RFC 7915 §4.5
	// option 1, "Dropping the packet and generating a system management
	// event") and the first fragment of such a datagram, which a stateless
	// translator cannot checksum (§4.5): both are discarded IPv4 packets, so
	// §4.4 applies (Jool answers both with 3/13, graybox tests ea and ec).
	{
		in := pt.UDP4NoChecksum(pt.IPv4{TTL: 64, Src: client4, Dst: server4}, 40000, 53, exPayload(12))
		add(conformanceCase{
			name:    "H1-udp-zero-checksum-dropped-3-13",
			config:  func(c *translator.Config) { c.DropUDPZeroChecksum = true },
			in:      in,
			verdict: translator.ICMPError,
			reason:  translator.ReasonUDPZeroChecksum,
			check: func(t *testing.T, out []output) {
				exError(t, out, wantErr{own4, client4, 64, v4DestUnreach, 13, in})
			},
		})
	}
	{
		in := pt.Fragment4(pt.UDP4NoChecksum(pt.IPv4{TTL: 64, ID: 5, Src: client4, Dst: server4}, 40000, 53, exPayload(2000)), 1000)[0]
		add(conformanceCase{
			name:    "H1-udp-zero-checksum-fragment-3-13",
			in:      in,
			verdict: translator.ICMPError,
			reason:  translator.ReasonUDPZeroChecksumFrag,
			check: func(t *testing.T, out []output) {
				exError(t, out, wantErr{own4, client4, 64, v4DestUnreach, 13, in[:548]})
			},
		})
	}

	// H2: a dropped IPv6 packet gets ICMPv6 1/1, unless it is an ICMPv6
	// message (RFC 7915 §5.4: "If the IPv6 packet is discarded, then the
	// translator SHOULD send back an ICMPv6 error message to the original
	// sender of the packet, unless the discarded packet is itself an ICMPv6
	// message. The ICMPv6 message MUST have Type 1 (Destination
	// Unreachable) and Code 1 (Communication with destination
	// administratively prohibited), unless otherwise specified").
	{
		in := pt.UDP6(pt.IPv6{Hop: 64, Src: unmapped6, Dst: client6}, 53, 40000, exPayload(30))
		add(conformanceCase{
			name:    "H2-unmapped-source-1-1",
			in:      in,
			verdict: translator.ICMPError,
			reason:  translator.ReasonNoMappingSrc,
			check: func(t *testing.T, out []output) {
				exError(t, out, wantErr{own6, unmapped6, 64, v6DestUnreach, 1, in})
			},
		})
		add(conformanceCase{
			name:    "H2-icmp-errors-off-plain-drop",
			config:  noErrors,
			in:      in,
			verdict: translator.Drop,
			reason:  translator.ReasonNoMappingSrc,
		})
	}
	{
		in := pt.UDP6(pt.IPv6{Hop: 64, Src: server6, Dst: netip.MustParseAddr("2001:db8:5::1")}, 53, 40000, exPayload(30))
		add(conformanceCase{
			name:    "H2-untranslatable-destination-1-1",
			in:      in,
			verdict: translator.ICMPError,
			reason:  translator.ReasonNoMappingDst,
			check: func(t *testing.T, out []output) {
				exError(t, out, wantErr{own6, server6, 64, v6DestUnreach, 1, in})
			},
		})
	}
	add(dropCase("H2-icmpv6-echo-not-answered",
		pt.ICMP6(pt.IPv6{Hop: 64, Src: unmapped6, Dst: client6}, 128, 0, pt.Rest16(1, 1), exPayload(20)),
		translator.ReasonNoMappingSrc))
	add(dropCase("H2-icmpv6-error-not-answered",
		pt.ICMP6(pt.IPv6{Hop: 64, Src: server6, Dst: netip.MustParseAddr("2001:db8:5::1")}, v6DestUnreach, 4, [4]byte{}, pkClientUDP6(8)),
		translator.ReasonNoMappingDst))
	// RFC 7915 §5.1.1: a Fragment header followed by another extension
	// header "SHOULD be dropped and logged"; a discarded IPv6 packet, so §5.4
	// applies (Jool answers with 1/1, graybox test ac).
	{
		in := pt.Raw6(pt.IPv6{Hop: 64, Src: server6, Dst: client6, Ext: []pt.Ext{pt.Fragment(0, false, 77), pt.DestOpts(nil)}},
			pt.ProtoUDP, pt.UDP6(pt.IPv6{Src: server6, Dst: client6}, 53, 40000, exPayload(16))[40:])
		add(conformanceCase{
			name:    "H2-extension-header-after-fragment-1-1",
			in:      in,
			verdict: translator.ICMPError,
			reason:  translator.ReasonFragmentedExtHdr,
			check: func(t *testing.T, out []output) {
				exError(t, out, wantErr{own6, server6, 64, v6DestUnreach, 1, in})
			},
		})
	}

	// H3: DF set and too big for the IPv6 MTU once translated: "the
	// translator MUST send an ICMPv4 'Fragmentation Needed' error message"
	// (RFC 7915 §4.1) whose MTU is the IPv6 MTU less 20.
	for _, c := range []struct {
		name     string
		cfg      func(*translator.Config)
		size     int
		wantMTU  uint32
		fits     bool
		fragment bool
	}{
		{"H3-df-too-big-3-4", nil, 1481, 1480, false, false},
		{"H3-df-exactly-fits", nil, 1480, 0, true, false},
		{"H3-df-too-big-small-ipv6-mtu", func(c *translator.Config) { c.IPv6MTU = 1400 }, 1400, 1380, false, false},
		{"H3-df-fragment-too-big-3-4", nil, 1481, 1480, false, true},
	} {
		in := pt.UDP4(pt.IPv4{TTL: 64, DF: true, ID: 9, Src: client4, Dst: server4}, 40000, 53, exPayload(c.size-28))
		if c.fragment {
			// A DF first fragment: still too big, still DF.
			in = pt.Fragment4(pt.UDP4(pt.IPv4{TTL: 64, DF: true, ID: 9, Src: client4, Dst: server4}, 40000, 53, exPayload(3000)), c.size)[0]
		}
		if c.fits {
			add(conformanceCase{
				name:    c.name,
				config:  c.cfg,
				in:      in,
				verdict: translator.Forward,
				check: func(t *testing.T, out []output) {
					p := exOne(t, out)
					if len(out[0].Raw) != c.size+20 || p.Frag != nil {
						t.Errorf("IPv6 packet of %d bytes, fragment header %v; want %d, none", len(out[0].Raw), p.Frag, c.size+20)
					}
				},
			})
			continue
		}
		add(conformanceCase{
			name:    c.name,
			config:  c.cfg,
			in:      in,
			verdict: translator.ICMPError,
			reason:  translator.ReasonTooBig,
			check: func(t *testing.T, out []output) {
				p := exError(t, out, wantErr{own4, client4, 64, v4DestUnreach, 4, in[:548]})
				if p.ICMP.MTU != c.wantMTU || binary.BigEndian.Uint16(p.ICMP.Rest[:2]) != 0 {
					t.Errorf("rest of header % x, want MTU %d", p.ICMP.Rest, c.wantMTU)
				}
			},
		})
	}

	// H4: an IPv6 packet too big for the IPv4 link gets Packet Too Big (the
	// translator is a router, RFC 7915 §1.4: "the translator MUST send a
	// Packet Too Big error message or fragment the packet when the packet
	// size exceeds the MTU of the next-hop interface"), MTU = IPv4 MTU + 20.
	{
		small4 := func(c *translator.Config) { c.IPv4MTU = 1400 }
		in := pkServerUDP6(1452) // 1500 bytes, 1480 as IPv4
		add(conformanceCase{
			name:    "H4-ipv6-too-big-for-ipv4-mtu-ptb",
			config:  small4,
			in:      in,
			verdict: translator.ICMPError,
			reason:  translator.ReasonTooBig,
			check: func(t *testing.T, out []output) {
				p := exError(t, out, wantErr{own6, server6, 64, v6PacketTooBig, 0, in[:1232]})
				if p.ICMP.MTU != 1420 {
					t.Errorf("MTU %d, want 1420", p.ICMP.MTU)
				}
			},
		})
		add(conformanceCase{
			name:    "H4-ipv6-exactly-fits-ipv4-mtu",
			config:  small4,
			in:      pkServerUDP6(1372), // 1420 bytes, 1400 as IPv4
			verdict: translator.Forward,
			check: func(t *testing.T, out []output) {
				p := exOne(t, out)
				if p.TotalLen != 1400 || !p.DF {
					t.Errorf("IPv4 packet of %d bytes, DF %v; want 1400 with DF", p.TotalLen, p.DF)
				}
			},
		})
	}

	// H5: TTL / Hop Limit expiry.
	{
		in4 := pt.UDP4(pt.IPv4{TTL: 1, Src: client4, Dst: server4}, 40000, 53, exPayload(40))
		in6 := pt.UDP6(pt.IPv6{Hop: 1, Src: server6, Dst: client6}, 53, 40000, exPayload(40))
		add(conformanceCase{
			name:    "H5-ttl-expired-11-0",
			in:      in4,
			verdict: translator.ICMPError,
			reason:  translator.ReasonTTLExpired,
			check: func(t *testing.T, out []output) {
				exError(t, out, wantErr{own4, client4, 64, v4TimeExceeded, 0, in4})
			},
		}, conformanceCase{
			name:    "H5-hop-limit-expired-3-0",
			in:      in6,
			verdict: translator.ICMPError,
			reason:  translator.ReasonTTLExpired,
			check: func(t *testing.T, out []output) {
				exError(t, out, wantErr{own6, server6, 64, v6TimeExceeded, 0, in6})
			},
		}, conformanceCase{
			name:    "H5-ttl-2-still-forwarded",
			in:      pt.UDP4(pt.IPv4{TTL: 2, Src: client4, Dst: server4}, 40000, 53, exPayload(40)),
			verdict: translator.Forward,
			check: func(t *testing.T, out []output) {
				if p := exOne(t, out); p.TTL != 1 {
					t.Errorf("hop limit %d, want 1", p.TTL)
				}
			},
		})
	}

	// H6: never an error about an ICMP error (RFC 1812 §4.3.2.7, RFC 4443
	// §2.4(e)); an echo request is not an error and does get one.
	add(dropCase("H6-icmpv4-error-ttl-1-no-time-exceeded",
		pt.ICMP4(pt.IPv4{TTL: 1, Src: inetRouter4, Dst: server4}, v4DestUnreach, 1, [4]byte{}, pkServerUDP4(8)),
		translator.ReasonTTLExpired))
	add(dropCase("H6-icmpv6-error-hop-1-no-time-exceeded",
		pt.ICMP6(pt.IPv6{Hop: 1, Src: server6, Dst: client6}, v6DestUnreach, 4, [4]byte{}, pkClientUDP6(8)),
		translator.ReasonTTLExpired))
	add(dropCase("H6-icmpv4-redirect-ttl-1-no-time-exceeded",
		pt.ICMP4(pt.IPv4{TTL: 1, Src: inetRouter4, Dst: server4}, 5, 1, [4]byte{192, 0, 2, 254}, pkServerUDP4(8)),
		translator.ReasonTTLExpired))
	{
		in4 := pt.ICMP4(pt.IPv4{TTL: 1, Src: client4, Dst: server4}, 8, 0, pt.Rest16(1, 2), exPayload(20))
		in6 := pt.ICMP6(pt.IPv6{Hop: 1, Src: server6, Dst: client6}, 128, 0, pt.Rest16(1, 2), exPayload(20))
		add(conformanceCase{
			name:    "H6-echo-request-ttl-1-gets-time-exceeded",
			in:      in4,
			verdict: translator.ICMPError,
			reason:  translator.ReasonTTLExpired,
			check: func(t *testing.T, out []output) {
				exError(t, out, wantErr{own4, client4, 64, v4TimeExceeded, 0, in4})
			},
		}, conformanceCase{
			name:    "H6-echo-request-hop-1-gets-time-exceeded",
			in:      in6,
			verdict: translator.ICMPError,
			reason:  translator.ReasonTTLExpired,
			check: func(t *testing.T, out []output) {
				exError(t, out, wantErr{own6, server6, 64, v6TimeExceeded, 0, in6})
			},
		})
	}

	// H7: the generated error quotes as much of the packet as fits in 576
	// (RFC 1812 §4.3.2.3) or 1280 bytes (RFC 4443 §2.4(c)).
	{
		in4 := pt.UDP4(pt.IPv4{TTL: 1, Src: client4, Dst: server4}, 40000, 53, exPayload(1372))
		in6 := pt.UDP6(pt.IPv6{Hop: 1, Src: server6, Dst: client6}, 53, 40000, exPayload(1452))
		add(conformanceCase{
			name:    "H7-quote-up-to-576",
			in:      in4,
			verdict: translator.ICMPError,
			reason:  translator.ReasonTTLExpired,
			check: func(t *testing.T, out []output) {
				exError(t, out, wantErr{own4, client4, 64, v4TimeExceeded, 0, in4[:548]})
				if len(out[0].Raw) != 576 {
					t.Errorf("ICMPv4 error of %d bytes, want 576", len(out[0].Raw))
				}
			},
		}, conformanceCase{
			name:    "H7-quote-up-to-1280",
			in:      in6,
			verdict: translator.ICMPError,
			reason:  translator.ReasonTTLExpired,
			check: func(t *testing.T, out []output) {
				exError(t, out, wantErr{own6, server6, 64, v6TimeExceeded, 0, in6[:1232]})
				if len(out[0].Raw) != 1280 {
					t.Errorf("ICMPv6 error of %d bytes, want 1280", len(out[0].Raw))
				}
			},
		})
	}

	// H8: the source is the translator's own configured address, not the
	// RFC 6791 pool (which is for translated errors from unmapped IPv6
	// routers): shown with other own addresses than the base ones.
	{
		other4 := netip.MustParseAddr("192.0.2.99")
		other6 := netip.MustParseAddr("2001:db8:64::99")
		own := func(c *translator.Config) { c.IPv4Addr, c.IPv6Addr = other4, other6 }
		in4 := pt.UDP4(pt.IPv4{TTL: 1, Src: client4, Dst: server4}, 40000, 53, exPayload(8))
		in6 := pt.UDP6(pt.IPv6{Hop: 64, Src: unmapped6, Dst: client6}, 53, 40000, exPayload(8))
		add(conformanceCase{
			name:    "H8-source-own-ipv4-address",
			config:  own,
			in:      in4,
			verdict: translator.ICMPError,
			reason:  translator.ReasonTTLExpired,
			check: func(t *testing.T, out []output) {
				exError(t, out, wantErr{other4, client4, 64, v4TimeExceeded, 0, in4})
			},
		}, conformanceCase{
			name:    "H8-source-own-ipv6-address",
			config:  own,
			in:      in6,
			verdict: translator.ICMPError,
			reason:  translator.ReasonNoMappingSrc,
			check: func(t *testing.T, out []output) {
				exError(t, out, wantErr{other6, unmapped6, 64, v6DestUnreach, 1, in6})
			},
		})
	}
	return cs
}
