package translator_test

// Golden tests for rows I (fragmentation, PMTU, MTU) and J (checksums, UDP
// zero checksum) of the conformance checklist. Helpers are prefixed "ij";
// the "ad" ones come from conformance_ad_test.go.

import (
	"bytes"
	"encoding/binary"
	"slices"
	"testing"

	"github.com/map646/map646/translator"
	"github.com/map646/map646/translator/packettest"
)

func init() { conformanceCases = append(conformanceCases, casesIJ) }

var casesIJ = slices.Concat(ijRowsI(), ijRowsJ())

// ijData returns n bytes of a recognisable pattern.
func ijData(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i>>8)
	}
	return b
}

// ijUDP4 is a UDP datagram from the client to the first server whose IPv4
// form is size bytes long.
func ijUDP4(size int, df bool, id uint16) []byte {
	return packettest.UDP4(packettest.IPv4{TOS: 0x10, ID: id, DF: df, TTL: 64, Src: client4, Dst: server4}, 1234, 53, ijData(size-28))
}

// ijUDP6Of is what translating ijUDP4(size, ...) whole must give: the same
// datagram in IPv6, hop limit 63.
func ijUDP6Of(size int) []byte {
	return packettest.UDP6(packettest.IPv6{TC: 0x10, Hop: 63, Src: client6, Dst: server6}, 1234, 53, ijData(size-28))
}

// ijTranslateAll translates each input with a translator of the case's
// configuration and returns every packet emitted, in order.
func ijTranslateAll(t *testing.T, cfg func(*translator.Config), ins ...[]byte) [][]byte {
	t.Helper()
	tr := newTranslator(t, cfg, nil)
	var all [][]byte
	for i, in := range ins {
		o := translator.NewOut()
		if res := tr.Translate(in, o); res.Verdict != translator.Forward {
			t.Fatalf("input %d: verdict %v %q", i, res.Verdict, res.Reason)
		}
		for _, b := range o.Pkts {
			all = append(all, slices.Clone(b))
		}
	}
	return all
}

// ijFragments asserts that pkts are IPv6 fragments with identification id,
// each at most mtu bytes, with fragment data a multiple of 8 bytes (all but
// the datagram's last), emitted in the order of their offsets (I7), and
// returns them for reassembly.
func ijFragments(t *testing.T, pkts [][]byte, mtu int, id uint32) {
	t.Helper()
	next := -1
	for i, b := range pkts {
		p := adParse(t, b)
		if p.Frag == nil {
			t.Fatalf("packet %d of %d is not a fragment", i, len(pkts))
		}
		if len(b) > mtu {
			t.Errorf("fragment %d is %d bytes, more than %d", i, len(b), mtu)
		}
		adHex(t, "identification", p.Frag.ID, id)
		data := len(b) - (p.Ext[len(p.Ext)-1].Offset + 8)
		if p.Frag.More && data%8 != 0 {
			t.Errorf("fragment %d carries %d bytes, not a multiple of 8", i, data)
		}
		if int(p.Frag.Offset) <= next {
			t.Errorf("fragment %d at offset %d emitted after offset %d", i, p.Frag.Offset, next)
		}
		next = int(p.Frag.Offset)
	}
}

// ijReassembles asserts that pkts reassemble to want.
func ijReassembles(t *testing.T, pkts [][]byte, want []byte) {
	t.Helper()
	got, err := packettest.Reassemble(pkts)
	if err != nil {
		t.Fatalf("reassembly: %v", err)
	}
	adBytes(t, got, want)
}

// ijFrag returns the Fragment header of p, which must have one.
func ijFrag(t *testing.T, p *packettest.Packet) *packettest.Frag {
	t.Helper()
	if p.Frag == nil {
		t.Fatal("no Fragment header")
	}
	return p.Frag
}

func ijRaw(out []output) [][]byte {
	var r [][]byte
	for _, o := range out {
		r = append(r, o.Raw)
	}
	return r
}

// ijFragmented is the check of an unfragmented IPv4 datagram of size bytes
// that must leave as n IPv6 fragments of at most mtu bytes that reassemble
// to its whole translation.
func ijFragmented(size, n, mtu int, id uint32) func(t *testing.T, in []byte, out []output) {
	return func(t *testing.T, in []byte, out []output) {
		adEq(t, "number of fragments", len(out), n)
		ijFragments(t, ijRaw(out), mtu, id)
		ijReassembles(t, ijRaw(out), ijUDP6Of(size))
	}
}

// ijWhole is the check of a datagram of size bytes that must leave as one
// IPv6 packet without a Fragment header.
func ijWhole(size int) func(t *testing.T, in []byte, out []output) {
	return func(t *testing.T, in []byte, out []output) {
		p := adOne(t, out)
		adNoExt6(t, p)
		adBytes(t, out[0].Raw, ijUDP6Of(size))
	}
}

func ijRowsI() []conformanceCase {
	// I5: a 3000-byte datagram (2980 bytes of data) in IPv4 fragments of
	// 1480, 1480 and 20 bytes of data, without DF; and a DF datagram of 2000
	// bytes in fragments of 1376 and 604.
	frags := packettest.Fragment4(ijUDP4(3000, false, 0xbeef), 1500)
	fragsDF := packettest.Fragment4(ijUDP4(2000, true, 0xd0f1), 1400)

	// I6: an ICMPv4 error of 1400 bytes (no router sends one this large,
	// but nothing forbids it) quoting a 1372-byte datagram.
	bigErr := packettest.ICMP4(packettest.IPv4{TTL: 64, Src: adRouter4, Dst: server4}, 3, 3, [4]byte{},
		packettest.UDP4(packettest.IPv4{TTL: 60, Src: server4, Dst: client4}, 53, 1234, ijData(1344)))
	capped := func(t *testing.T, in []byte, out []output) {
		p := adOne(t, out)
		adNoExt6(t, p)
		adICMPType(t, p, 1, 4)
		adEq(t, "size", len(out[0].Raw), packettest.MaxICMPv6Error)
	}

	// I8: ICMP fragments, both ways.
	echo4 := packettest.Fragment4(packettest.ICMP4(packettest.IPv4{ID: 3, TTL: 64, Src: client4, Dst: server4}, 8, 0, packettest.Rest16(1, 1), ijData(1992)), 1000)
	echo6 := packettest.Fragment6(packettest.ICMP6(packettest.IPv6{Hop: 64, Src: server6, Dst: client6}, 128, 0, packettest.Rest16(1, 1), ijData(1992)), 1000, 77)

	return []conformanceCase{
		// I1: without DF, a packet whose IPv6 form exceeds lowest-ipv6-mtu
		// (1280) is fragmented to it; fragments of 1232 bytes of data.
		adFwd("I1-df0-1400-fragmented-to-1280", nil, ijUDP4(1400, false, 0x4242), ijFragmented(1400, 2, 1280, 0x4242)),
		adFwd("I1-df0-3000-three-fragments", nil, ijUDP4(3000, false, 0x4243), ijFragmented(3000, 3, 1280, 0x4243)),
		adFwd("I1-df0-1261-just-over-fragmented", nil, ijUDP4(1261, false, 0x4244), ijFragmented(1261, 2, 1280, 0x4244)),
		adFwd("I1-df0-1260-fits-1280-whole", nil, ijUDP4(1260, false, 0x4245), ijWhole(1260)),
		adFwd("I1-df0-tcp-fragmented", nil,
			packettest.TCP4(packettest.IPv4{ID: 0x4246, TTL: 64, Src: client4, Dst: server4}, packettest.TCP{Sport: 40000, Dport: 80, Seq: 1, Ack: 1, Flags: packettest.ACK, Window: 500}, ijData(1400)),
			func(t *testing.T, in []byte, out []output) {
				adEq(t, "number of fragments", len(out), 2)
				ijFragments(t, ijRaw(out), 1280, 0x4246)
				ijReassembles(t, ijRaw(out), packettest.TCP6(packettest.IPv6{Hop: 63, Src: client6, Dst: server6},
					packettest.TCP{Sport: 40000, Dport: 80, Seq: 1, Ack: 1, Flags: packettest.ACK, Window: 500}, ijData(1400)))
			}),

		// I2: lowest-ipv6-mtu is configurable above 1280.
		adFwd("I2-lowest-1500-1400-bytes-whole", adMTUs(1500, 1500), ijUDP4(1400, false, 1), func(t *testing.T, in []byte, out []output) {
			ijWhole(1400)(t, in, out)
			cfg := baseConfig()
			cfg.LowestIPv6MTU = 1200
			if _, err := translator.New(cfg, nil); err == nil {
				t.Error("New accepted a lowest IPv6 MTU of 1200, below the IPv6 minimum of 1280")
			}
		}),
		adFwd("I2-lowest-1400-fragments-to-1400", adMTUs(1400, 1500), ijUDP4(1480, false, 2), ijFragmented(1480, 2, 1400, 2)),
		adFwd("I2-lowest-1520-1500-byte-ipv4-whole", adMTUs(1520, 1520), ijUDP4(1500, false, 3), ijWhole(1500)),

		// I3: with DF, a packet above lowest-ipv6-mtu that fits the IPv6
		// next-hop MTU (1500) goes whole, without a Fragment header.
		adFwd("I3-df1-1400-whole", nil, ijUDP4(1400, true, 4), ijWhole(1400)),
		adFwd("I3-df1-1480-whole-at-ipv6-mtu", nil, ijUDP4(1480, true, 5), ijWhole(1480)),

		// I4: without DF, a packet above the IPv6 next-hop MTU is
		// fragmented. lowest-ipv6-mtu cannot be configured above the
		// next-hop MTU (New refuses it), so its largest value is tested.
		adFwd("I4-df0-above-ipv6-mtu-fragmented", adMTUs(1500, 1500), ijUDP4(1500, false, 6), func(t *testing.T, in []byte, out []output) {
			ijFragmented(1500, 2, 1500, 6)(t, in, out)
			cfg := baseConfig()
			cfg.LowestIPv6MTU, cfg.IPv6MTU = 1600, 1500
			if _, err := translator.New(cfg, nil); err == nil {
				t.Error("New accepted a lowest IPv6 MTU above the IPv6 MTU")
			}
		}),
		adFwd("I4-df0-above-ipv6-mtu-default-lowest", nil, ijUDP4(1500, false, 7), ijFragmented(1500, 2, 1280, 7)),

		// I5: IPv4 fragments become IPv6 fragments with the same ID,
		// fragmented further when too large; together they make the
		// datagram.
		adFwd("I5-df0-first-fragment-refragmented", nil, frags[0], func(t *testing.T, in []byte, out []output) {
			adEq(t, "number of fragments", len(out), 2)
			ijFragments(t, ijRaw(out), 1280, 0xbeef)
			for i, o := range out {
				adEq(t, "M flag (more IPv4 fragments follow)", ijFrag(t, o.P).More, true)
				adEq(t, "offset", ijFrag(t, o.P).Offset, []uint16{0, 154}[i])
			}
			ijReassembles(t, ijTranslateAll(t, nil, frags...), ijUDP6Of(3000))
		}),
		adFwd("I5-df0-middle-fragment-offsets-continue", nil, frags[1], func(t *testing.T, in []byte, out []output) {
			adEq(t, "number of fragments", len(out), 2)
			for i, o := range out {
				adEq(t, "offset", ijFrag(t, o.P).Offset, []uint16{185, 339}[i])
				adEq(t, "M flag", ijFrag(t, o.P).More, true)
			}
		}),
		adFwd("I5-df0-last-fragment", nil, frags[2], func(t *testing.T, in []byte, out []output) {
			f := ijFrag(t, adOne(t, out))
			adEq(t, "offset", f.Offset, 370)
			adEq(t, "M flag", f.More, false)
			adHex(t, "identification", f.ID, 0xbeef)
		}),
		adFwd("I5-df1-fragments-kept-whole", nil, fragsDF[0], func(t *testing.T, in []byte, out []output) {
			f := ijFrag(t, adOne(t, out))
			adEq(t, "offset", f.Offset, 0)
			adEq(t, "M flag", f.More, true)
			adHex(t, "identification", f.ID, 0xd0f1)
			ijReassembles(t, ijTranslateAll(t, nil, fragsDF...), ijUDP6Of(2000))
		}),

		// I6: lowest-ipv6-mtu does not apply to translated ICMP errors: one
		// packet, cut to 1280 bytes.
		adFwd("I6-icmp-error-capped-not-fragmented", nil, bigErr, capped),
		adFwd("I6-icmp-error-capped-with-lowest-1500", adMTUs(1500, 1500), bigErr, capped),

		// I7: the pure translator keeps order where it has any to keep: the
		// fragments of one packet leave in offset order (ijFragments checks
		// it in every fragmenting case). Order across packets is the data
		// plane's.
		adFwd("I7-fragments-in-offset-order", nil, ijUDP4(4000, false, 8), func(t *testing.T, in []byte, out []output) {
			adEq(t, "number of fragments", len(out), 4)
			ijFragments(t, ijRaw(out), 1280, 8)
			adEq(t, "last fragment's M flag", ijFrag(t, out[len(out)-1].P).More, false)
		}),

		// I8: fragmented ICMP is not translated (RFC 7915 §1.2).
		adDrop("I8-icmpv4-first-fragment-dropped", nil, echo4[0], translator.ReasonFragmentedICMP),
		adDrop("I8-icmpv4-later-fragment-dropped", nil, echo4[1], translator.ReasonFragmentedICMP),
		adDrop("I8-icmpv6-first-fragment-dropped", nil, echo6[0], translator.ReasonFragmentedICMP),
		adDrop("I8-icmpv6-later-fragment-dropped", nil, echo6[1], translator.ReasonFragmentedICMP),
	}
}

// ---------------------------------------------------------------------------
// J. Checksums.

// ijOnesAdd adds in one's complement arithmetic.
func ijOnesAdd(a, b uint16) uint16 {
	s := uint32(a) + uint32(b)
	return uint16(s&0xffff + s>>16)
}

// ijFreeWord returns the value for the 16-bit word at data[at:at+2] (zero on
// entry) that makes the one's complement sum of data plus pseudo equal
// 0xffff, so that the checksum computes to zero.
func ijFreeWord(data []byte, pseudo uint64) uint16 {
	return 0xffff - fold(sum(data, pseudo))
}

// ijPseudo is the sum of a pseudo-header (RFC 768, RFC 8200 §8.1).
func ijPseudo(src, dst []byte, proto uint8, n int) uint64 {
	return sum(dst, sum(src, 0)) + uint64(proto) + uint64(n)
}

// ijStaysWrong is the check of a case whose input is a correct packet with
// its transport checksum at offset at of the transport header: the same
// packet with the checksum off by delta must come out identical to the
// correct one's translation except for the checksum, off by the same delta.
func ijStaysWrong(at int) func(t *testing.T, in []byte, out []output) {
	const delta = 0x0100
	return func(t *testing.T, in []byte, out []output) {
		good := adOne(t, out)
		adChecksumOK(t, good)

		bad := slices.Clone(in)
		c := bad[adParse(t, in).HeaderLen+at:]
		binary.BigEndian.PutUint16(c, ijOnesAdd(binary.BigEndian.Uint16(c), delta))
		o := translator.NewOut()
		if res := newTranslator(t, nil, nil).Translate(bad, o); res.Verdict != translator.Forward || len(o.Pkts) != 1 {
			t.Fatalf("wrong checksum: verdict %v %q, %d packets; want it forwarded", res.Verdict, res.Reason, len(o.Pkts))
		}
		want := slices.Clone(out[0].Raw)
		w := want[good.HeaderLen+at:]
		binary.BigEndian.PutUint16(w, ijOnesAdd(binary.BigEndian.Uint16(w), delta))
		if !bytes.Equal(o.Pkts[0], want) {
			t.Errorf("translation of the wrong checksum\ngot  % x\nwant % x", o.Pkts[0], want)
		}
	}
}

func ijRowsJ() []conformanceCase {
	verified := func(t *testing.T, in []byte, out []output) {
		p := adOne(t, out)
		adChecksumOK(t, p)
		adKept(t, p, in)
	}
	echoVerified := func(t *testing.T, in []byte, out []output) {
		p := adOne(t, out)
		adChecksumOK(t, p)
		if !bytes.Equal(p.Payload, adParse(t, in).Payload) {
			t.Error("echo data changed")
		}
	}
	tcp := packettest.TCP{Sport: 40000, Dport: 443, Seq: 0x01020304, Ack: 0x0a0b0c0d, Flags: packettest.PSH | packettest.ACK, Window: 4096}
	tcp4 := packettest.TCP4(packettest.IPv4{TTL: 64, Src: client4, Dst: server4}, tcp, adData)
	tcp6 := packettest.TCP6(packettest.IPv6{Hop: 64, Src: server6, Dst: client6}, tcp, adData)
	udp6 := adUDP6(64)

	// J1: a UDP checksum that updates to zero must leave as 0xffff in IPv6
	// (zero is illegal there) and in IPv4 (zero means "no checksum",
	// RFC 768). The last data word, zero while it is computed, is chosen so
	// that the checksum of the translated datagram computes to zero.
	c6, s6 := client6.As16(), server6.As16()
	c4, s4 := client4.As4(), server4.As4()
	zeroIn6 := append(slices.Clone(adData[:6]), 0, 0)
	u := append([]byte{0x04, 0xd2, 0x00, 0x35, 0, 16, 0, 0}, zeroIn6...)
	binary.BigEndian.PutUint16(zeroIn6[6:], ijFreeWord(u, ijPseudo(c6[:], s6[:], 17, 16)))
	toZero6 := packettest.UDP4(packettest.IPv4{TTL: 64, Src: client4, Dst: server4}, 1234, 53, zeroIn6)
	toZero6NoSum := packettest.UDP4NoChecksum(packettest.IPv4{TTL: 64, Src: client4, Dst: server4}, 1234, 53, zeroIn6)

	zeroIn4 := append(slices.Clone(adData[:6]), 0, 0)
	u = append([]byte{0x00, 0x35, 0x04, 0xd2, 0, 16, 0, 0}, zeroIn4...)
	binary.BigEndian.PutUint16(zeroIn4[6:], ijFreeWord(u, ijPseudo(s4[:], c4[:], 17, 16)))
	toZero4 := packettest.UDP6(packettest.IPv6{Hop: 64, Src: server6, Dst: client6}, 53, 1234, zeroIn4)
	ffff := func(t *testing.T, in []byte, out []output) {
		p := adOne(t, out)
		adHex(t, "UDP checksum", p.Checksum, 0xffff)
		adKept(t, p, in)
	}

	// J4: the first fragment of a datagram sent without a checksum.
	noSumFrags := packettest.Fragment4(packettest.UDP4NoChecksum(packettest.IPv4{ID: 9, TTL: 64, Src: client4, Dst: server4}, 1234, 53, ijData(1972)), 1000)

	opaque := []byte("\x00\x35\x04\xd2\x12\x34\xab\xcd opaque transport")
	// A DCCP header (RFC 4340 §5.1) whose checksum, at bytes 6-7, covers an
	// IPv4 pseudo-header: the translator does not know DCCP and leaves it.
	dccp := []byte{0x04, 0xd2, 0x00, 0x35, 0x03, 0x00, 0x5a, 0x5a, 0x02, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01}
	untouched := func(payload []byte) func(t *testing.T, in []byte, out []output) {
		return func(t *testing.T, in []byte, out []output) {
			p := adOne(t, out)
			if !bytes.Equal(p.L4, payload) {
				t.Errorf("transport bytes changed\ngot  % x\nwant % x", p.L4, payload)
			}
		}
	}

	return []conformanceCase{
		// J1: TCP, UDP and ICMP checksums are right after translation (Check
		// recomputes each from scratch).
		adFwd("J1-tcp-4to6", nil, tcp4, verified),
		adFwd("J1-udp-4to6", nil, adUDP4(64), verified),
		adFwd("J1-icmp-echo-4to6-pseudo-header-added", nil, adGoldenEcho4, echoVerified),
		adFwd("J1-icmp-echo-reply-4to6", nil,
			packettest.ICMP4(packettest.IPv4{TTL: 64, Src: client4, Dst: server4}, 0, 0, packettest.Rest16(7, 8), adData), echoVerified),
		adFwd("J1-tcp-6to4", nil, tcp6, verified),
		adFwd("J1-udp-6to4", nil, udp6, verified),
		adFwd("J1-icmpv6-echo-6to4-pseudo-header-removed", nil,
			packettest.ICMP6(packettest.IPv6{Hop: 64, Src: server6, Dst: client6}, 129, 0, packettest.Rest16(7, 8), adData), echoVerified),
		adFwd("J1-udp-4to6-update-to-zero-sent-as-ffff", nil, toZero6, ffff),
		adFwd("J1-udp-6to4-update-to-zero-sent-as-ffff", nil, toZero4, ffff),

		// J2: a wrong checksum is neither validated nor repaired: the
		// incremental update keeps the error exactly.
		adFwd("J2-wrong-tcp-checksum-stays-wrong-4to6", nil, tcp4, ijStaysWrong(16)),
		adFwd("J2-wrong-tcp-checksum-stays-wrong-6to4", nil, tcp6, ijStaysWrong(16)),
		adFwd("J2-wrong-udp-checksum-stays-wrong-4to6", nil, adUDP4(64), ijStaysWrong(6)),
		adFwd("J2-wrong-udp-checksum-stays-wrong-6to4", nil, udp6, ijStaysWrong(6)),
		// ICMP echo changes type and gains (or loses) the pseudo-header;
		// RFC 7915 §4.2 says to "adjust the ICMP checksum both to take the
		// type change into account and to include the ICMPv6 pseudo-header",
		// which an incremental update does without repairing an error.
		adFwd("J2-wrong-icmp-echo-checksum-stays-wrong-4to6", nil, adGoldenEcho4, ijStaysWrong(2)),
		adFwd("J2-wrong-icmpv6-echo-checksum-stays-wrong-6to4", nil,
			packettest.ICMP6(packettest.IPv6{Hop: 64, Src: server6, Dst: client6}, 129, 0, packettest.Rest16(7, 8), adData), ijStaysWrong(2)),

		// J3: IPv4 UDP without a checksum, unfragmented: computed (default)
		// or dropped (configured).
		adFwd("J3-udp-zero-checksum-computed", nil,
			packettest.UDP4NoChecksum(packettest.IPv4{TTL: 64, Src: client4, Dst: server4}, 1234, 53, adData), verified),
		adAnswered4("J3-udp-zero-checksum-dropped-when-configured", adDropUDPZero,
			packettest.UDP4NoChecksum(packettest.IPv4{TTL: 64, Src: client4, Dst: server4}, 1234, 53, adData),
			translator.ReasonUDPZeroChecksum),

		// J4: its first fragment cannot be given a checksum statelessly.
		adAnswered4("J4-udp-zero-checksum-first-fragment-dropped", nil, noSumFrags[0], translator.ReasonUDPZeroChecksumFrag),
		adAnswered4("J4-udp-zero-checksum-first-fragment-dropped-drop-policy", adDropUDPZero, noSumFrags[0], translator.ReasonUDPZeroChecksumFrag),

		// J5: zero is never forwarded into IPv6, not even when the computed
		// checksum is zero (it is sent as 0xffff).
		adFwd("J5-computed-zero-sent-as-ffff", nil, toZero6NoSum, ffff),

		// J6: unknown transports pass untouched, checksum included.
		adFwd("J6-unknown-transport-253-4to6", nil,
			packettest.Raw4(packettest.IPv4{TTL: 64, Src: client4, Dst: server4}, 253, opaque), untouched(opaque)),
		adFwd("J6-dccp-33-4to6", nil,
			packettest.Raw4(packettest.IPv4{TTL: 64, Src: client4, Dst: server4}, 33, dccp), untouched(dccp)),
		adFwd("J6-unknown-transport-253-6to4", nil,
			packettest.Raw6(packettest.IPv6{Hop: 64, Src: server6, Dst: client6}, 253, opaque), untouched(opaque)),

		// J7: a wrong IPv4 header checksum is dropped (RFC 1812 §5.2.2).
		// A UDP length field below 8 cannot be updated into IPv6, where 0
		// means a jumbogram (RFC 2675): the header is malformed (found by
		// fuzzing). Build a valid datagram, then break the field.
		adDrop("J1-udp-length-below-header-dropped", nil, func() []byte {
			b := packettest.UDP4(packettest.IPv4{TTL: 64, MF: true, Src: client4, Dst: server4}, 1234, 53, adData)
			b[24], b[25] = 0, 0
			return b
		}(), translator.ReasonBadTransport),
		// An ICMPv6 error quoting an IPv6 packet whose payload length could
		// not be an IPv4 total length (found by fuzzing): no IPv4 packet was
		// ever that long, so there is nothing to translate it back to.
		adDrop("G1-quoted-ipv6-longer-than-any-ipv4-dropped", nil, func() []byte {
			q := packettest.UDP6(packettest.IPv6{Hop: 63, Src: client6, Dst: server6}, 1234, 53, adData)
			q[4], q[5] = 0xff, 0xff // payload length 65535: the quote is "truncated"
			return packettest.ICMP6(packettest.IPv6{Hop: 64, Src: server6, Dst: client6}, 1, 4, [4]byte{}, q)
		}(), translator.ReasonBadEmbeddedPacket),
		adDrop("J7-bad-ipv4-header-checksum-dropped", nil,
			packettest.UDP4(packettest.IPv4{TTL: 64, Src: client4, Dst: server4, BadChecksum: true}, 1234, 53, adData),
			translator.ReasonBadIPv4Checksum),
		adDrop("J7-bad-ipv4-header-checksum-icmp-dropped", nil,
			packettest.ICMP4(packettest.IPv4{TTL: 64, Src: client4, Dst: server4, BadChecksum: true}, 8, 0, packettest.Rest16(1, 1), adData),
			translator.ReasonBadIPv4Checksum),
	}
}
