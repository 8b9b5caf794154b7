package translator_test

// Hostile packets (issue 6): every malformed or adversarial packet a client
// can send is dropped and counted under its reason, and never forwarded. The
// conformance cases already cover many (their names are listed in
// hostileCovered); the cases here add the rest. Each runs twice: with ICMP
// errors on, where the verdict may be an error from the translator to the
// sender, and with them off, where it must be a plain drop with the same
// reason and nothing emitted.

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/map646/map646/translator"
	pt "github.com/map646/map646/translator/packettest"
)

// hostileCase is one hostile packet and the reason it must be dropped for.
type hostileCase struct {
	name     string
	config   func(*translator.Config)
	in       []byte
	reason   translator.Reason
	answered bool // with ICMP errors on, the translator answers it (RFC 7915 §4.4, §5.4)
}

// The two flows the hostile packets pose as: a client's datagram to a
// server's public address, and the server's to the client.
var (
	hc4 = pt.IPv4{TTL: 64, ID: 77, Src: client4, Dst: server4}
	hc6 = pt.IPv6{Hop: 64, Src: server6, Dst: client6}
)

func hostileCases() []hostileCase {
	var cs []hostileCase
	add := func(name string, in []byte, r translator.Reason) {
		cs = append(cs, hostileCase{name: name, in: in, reason: r})
	}
	answered := func(name string, in []byte, r translator.Reason) {
		cs = append(cs, hostileCase{name: name, in: in, reason: r, answered: true})
	}
	// Answered drops: an IPv6 datagram from an unmapped datacenter host that
	// also carries a routing header with segments left.
	answered("no-mapping-source-with-routing-header-6to4", pt.UDP6(pt.IPv6{Hop: 64, Src: unmapped6, Dst: client6,
		Ext: []pt.Ext{pt.Routing(0, 1, client6)}}, 53, 40000, exPayload(8)), translator.ReasonNoMappingSrc)
	data := exPayload(32)
	udp4 := pt.UDP4(hc4, 40000, 53, data)
	udp6 := pt.UDP6(hc6, 53, 40000, data)
	tcp := pt.TCP{Sport: 40000, Dport: 443, Seq: 1, Ack: 2, Flags: pt.ACK, Window: 512}
	tcp4 := pt.TCP4(hc4, tcp, data)
	tcp6 := pt.TCP6(hc6, tcp, data)

	// Truncated headers: IP, extension and transport headers cut short.
	add("truncated-empty", nil, translator.ReasonTruncated)
	add("truncated-ipv4-header-19-bytes", udp4[:19], translator.ReasonTruncated)
	add("truncated-ipv4-options-cut", ipv4Edit(udp4[:24], func(b []byte) { b[0] = 0x47; binary.BigEndian.PutUint16(b[2:], 28) }), translator.ReasonTruncated)
	add("truncated-ipv6-header-39-bytes", udp6[:39], translator.ReasonTruncated)
	add("truncated-tcp-header-4to6", pt.Raw4(hc4, pt.ProtoTCP, tcp4[20:30]), translator.ReasonTruncated)
	add("truncated-udp-header-4to6", pt.Raw4(hc4, pt.ProtoUDP, udp4[20:24]), translator.ReasonTruncated)
	add("truncated-icmp-header-4to6", pt.Raw4(hc4, pt.ProtoICMP, []byte{8, 0, 0, 0}), translator.ReasonTruncated)
	add("truncated-tcp-header-6to4", pt.Raw6(hc6, pt.ProtoTCP, tcp6[40:50]), translator.ReasonTruncated)
	add("truncated-udp-header-6to4", pt.Raw6(hc6, pt.ProtoUDP, udp6[40:44]), translator.ReasonTruncated)
	add("truncated-icmpv6-header-6to4", pt.Raw6(hc6, 58, []byte{129, 0, 0, 0}), translator.ReasonTruncated)
	add("truncated-extension-header-6to4", pt.Raw6(hc6, pt.ProtoDestOpts, []byte{pt.ProtoUDP, 2, 1, 4, 0, 0, 0, 0}), translator.ReasonTruncated)
	add("bad-version-5", ipv4Edit(udp4, func(b []byte) { b[0] = 0x55 }), translator.ReasonBadVersion)

	// Lengths that lie.
	add("lie-ipv4-total-length-beyond-packet", ipv4Edit(udp4, func(b []byte) { binary.BigEndian.PutUint16(b[2:], uint16(len(b)+100)) }), translator.ReasonTruncated)
	add("lie-ipv4-total-length-below-header", ipv4Edit(udp4, func(b []byte) { binary.BigEndian.PutUint16(b[2:], 19) }), translator.ReasonBadIPv4Header)
	add("lie-ipv4-ihl-below-5", ipv4Edit(udp4, func(b []byte) { b[0] = 0x44 }), translator.ReasonBadIPv4Header)
	add("lie-ipv4-ihl-beyond-total-length", ipv4Edit(udp4, func(b []byte) { b[0] = 0x4f; binary.BigEndian.PutUint16(b[2:], 40) }), translator.ReasonBadIPv4Header)
	add("lie-ipv6-payload-length-beyond-packet", ipv6Edit(udp6, func(b []byte) { binary.BigEndian.PutUint16(b[4:], uint16(len(b))) }), translator.ReasonTruncated)
	add("lie-ipv6-jumbogram-payload-length-0", ipv6Edit(pt.Raw6(pt.IPv6{Hop: 64, Src: server6, Dst: client6,
		Ext: []pt.Ext{pt.HopByHop([]byte{0xc2, 4, 0, 1, 0, 0})}}, pt.ProtoUDP, udp6[40:]),
		func(b []byte) { b[4], b[5] = 0, 0 }), translator.ReasonJumbogram)
	add("lie-tcp-data-offset-beyond-segment-4to6", l4Edit(tcp4, 12, 0xf0), translator.ReasonBadTransport)
	add("lie-tcp-data-offset-below-5-4to6", l4Edit(tcp4, 12, 0x40), translator.ReasonBadTransport)
	add("lie-tcp-data-offset-beyond-segment-6to4", l4Edit(tcp6, 12, 0xf0), translator.ReasonBadTransport)
	add("lie-tcp-data-offset-below-5-6to4", l4Edit(tcp6, 12, 0x40), translator.ReasonBadTransport)
	add("lie-udp-length-beyond-datagram-4to6", l4Edit16(udp4, 4, 200), translator.ReasonBadTransport)
	add("lie-udp-length-short-of-datagram-4to6", l4Edit16(udp4, 4, 8), translator.ReasonBadTransport)
	add("lie-udp-length-below-8-4to6", l4Edit16(udp4, 4, 7), translator.ReasonBadTransport)
	add("lie-udp-length-beyond-datagram-6to4", l4Edit16(udp6, 4, 200), translator.ReasonBadTransport)
	add("lie-udp-length-short-of-datagram-6to4", l4Edit16(udp6, 4, 8), translator.ReasonBadTransport)
	add("lie-udp-length-0-6to4", l4Edit16(udp6, 4, 0), translator.ReasonBadTransport)
	add("lie-ipv4-option-length-0", pt.UDP4(pt.IPv4{TTL: 64, Src: client4, Dst: server4, Options: []byte{7, 0, 0, 0}}, 40000, 53, data), translator.ReasonBadOptions)
	add("lie-ipv4-option-beyond-header", pt.UDP4(pt.IPv4{TTL: 64, Src: client4, Dst: server4, Options: []byte{1, 7, 12, 4}}, 40000, 53, data), translator.ReasonBadOptions)

	// Fragments: what a stateless translator can see of them. Tiny first
	// fragments (the transport header cut), later fragments that overlap
	// the TCP header (RFC 1858), fragments with more to come whose data is
	// not a multiple of 8, and fragments that reach past 65535 bytes.
	f4 := func(off uint16, mf bool, proto uint8, b []byte) []byte {
		return pt.Raw4(pt.IPv4{TTL: 64, ID: 99, FragOff: off, MF: mf, Src: client4, Dst: server4}, proto, b)
	}
	f6 := func(off uint16, m bool, proto uint8, b []byte) []byte {
		return pt.Raw6(pt.IPv6{Hop: 64, Src: server6, Dst: client6, Ext: []pt.Ext{pt.Fragment(off, m, 99)}}, proto, b)
	}
	add("fragment-tiny-first-tcp-16-bytes-4to6", f4(0, true, pt.ProtoTCP, tcp4[20:36]), translator.ReasonBadFragment)
	add("fragment-tiny-first-tcp-options-cut-4to6", f4(0, true, pt.ProtoTCP, l4Bytes(l4Edit(tcp4, 12, 0xa0))[:24]), translator.ReasonBadFragment)
	add("fragment-tiny-first-udp-4-bytes-4to6", f4(0, true, pt.ProtoUDP, udp4[20:24]), translator.ReasonBadFragment)
	add("fragment-tcp-offset-1-overlaps-header-4to6", f4(1, false, pt.ProtoTCP, data), translator.ReasonBadFragment)
	add("fragment-tcp-offset-2-overlaps-header-4to6", f4(2, true, pt.ProtoTCP, data), translator.ReasonBadFragment)
	add("fragment-more-not-multiple-of-8-4to6", f4(8, true, pt.ProtoUDP, data[:13]), translator.ReasonBadFragment)
	add("fragment-more-empty-4to6", f4(8, true, pt.ProtoUDP, nil), translator.ReasonBadFragment)
	add("fragment-past-65535-4to6", f4(8189, false, pt.ProtoUDP, data), translator.ReasonBadFragment)
	add("fragment-tiny-first-tcp-16-bytes-6to4", f6(0, true, pt.ProtoTCP, tcp6[40:56]), translator.ReasonBadFragment)
	add("fragment-tiny-first-udp-4-bytes-6to4", f6(0, true, pt.ProtoUDP, udp6[40:44]), translator.ReasonBadFragment)
	add("fragment-tcp-offset-1-overlaps-header-6to4", f6(1, false, pt.ProtoTCP, data), translator.ReasonBadFragment)
	add("fragment-tcp-offset-2-overlaps-header-6to4", f6(2, true, pt.ProtoTCP, data), translator.ReasonBadFragment)
	add("fragment-more-not-multiple-of-8-6to4", f6(8, true, pt.ProtoUDP, data[:13]), translator.ReasonBadFragment)
	add("fragment-past-65535-6to4", f6(8190, false, pt.ProtoUDP, data), translator.ReasonBadFragment)

	// IPv6 extension-header chains: the walk is bounded (8 headers), and a
	// chain longer than that, or endless within the packet, is refused.
	chain := func(n int) []byte {
		ext := make([]pt.Ext, n)
		for i := range ext {
			ext[i] = pt.DestOpts(nil)
		}
		return pt.UDP6(pt.IPv6{Hop: 64, Src: server6, Dst: client6, Ext: ext}, 53, 40000, data)
	}
	add("ext-chain-9-headers", chain(9), translator.ReasonExtHeaderChain)
	add("ext-chain-4000-headers", chain(4000), translator.ReasonExtHeaderChain)
	answered("ext-chain-hop-by-hop-not-first", pt.UDP6(pt.IPv6{Hop: 64, Src: server6, Dst: client6,
		Ext: []pt.Ext{pt.DestOpts(nil), pt.HopByHop(nil)}}, 53, 40000, data), translator.ReasonBadOptions)
	add("ext-chain-quoted-endless-6to4", pkErr6(server6, v6DestUnreach, 4, [4]byte{}, chainQuote(20)), translator.ReasonBadEmbeddedPacket)

	// ICMP errors inside ICMP errors, a level deeper than G6 and behind
	// extension headers in the quote.
	inner6 := pt.ICMP6(pt.IPv6{Hop: 63, Src: client6, Dst: server6, Ext: []pt.Ext{pt.DestOpts(nil)}},
		v6DestUnreach, 4, [4]byte{}, pkServerUDP6(8))
	add("error-in-error-behind-destination-options-6to4", pkErr6(server6, v6DestUnreach, 4, [4]byte{}, inner6), translator.ReasonICMPErrorInError)
	inner4 := pt.ICMP4(pt.IPv4{TTL: 63, Src: server4, Dst: client4}, v4DestUnreach, 3, [4]byte{},
		pt.ICMP4(pt.IPv4{TTL: 60, Src: client4, Dst: server4}, v4DestUnreach, 3, [4]byte{}, pkServerUDP4(8)))
	add("error-in-error-in-error-4to6", pkErr4(v4DestUnreach, 1, [4]byte{}, inner4), translator.ReasonICMPErrorInError)

	// ICMP errors whose quoted packet is not of the reverse flow: the error
	// goes to one host and quotes another's packet.
	other4 := pt.UDP4(pt.IPv4{TTL: 63, Src: server4b, Dst: client4}, 53, 40000, data)
	add("embedded-other-server-4to6", pkErr4(v4DestUnreach, 3, [4]byte{}, other4), translator.ReasonEmbeddedMismatch)
	add("embedded-unmapped-source-4to6", pkErr4(v4DestUnreach, 3, [4]byte{},
		pt.UDP4(pt.IPv4{TTL: 63, Src: unmapped4, Dst: client4}, 53, 40000, data)), translator.ReasonEmbeddedMismatch)
	add("embedded-other-client-6to4", pkErr6(server6, v6DestUnreach, 4, [4]byte{},
		pt.UDP6(pt.IPv6{Hop: 63, Src: netip.MustParseAddr("64:ff9b::c000:208"), Dst: server6}, 40000, 53, data)), translator.ReasonEmbeddedMismatch)
	add("embedded-from-dc-router-other-client-6to4", pkErr6(router6, v6PacketTooBig, 0, pt.Rest32(1280),
		pt.UDP6(pt.IPv6{Hop: 63, Src: netip.MustParseAddr("64:ff9b::c000:208"), Dst: server6}, 40000, 53, data)), translator.ReasonEmbeddedMismatch)

	// Spoofing: from the IPv6 side a source inside the pseudo prefix poses
	// as an IPv4 client; from the IPv4 side a source that is one of our own
	// mapped addresses poses as a server.
	add("spoof-pseudo-source-of-mapped-address-6to4", pt.UDP6(pt.IPv6{Hop: 64, Src: server4bx6, Dst: client6}, 53, 40000, data), translator.ReasonSpoofedPseudo)
	add("spoof-pseudo-source-icmpv6-error-6to4", pt.ICMP6(pt.IPv6{Hop: 64, Src: inetRouter4x6, Dst: client6}, v6DestUnreach, 4, [4]byte{}, pkClientUDP6(8)), translator.ReasonSpoofedPseudo)
	add("spoof-pseudo-source-tcp-6to4", pt.TCP6(pt.IPv6{Hop: 64, Src: netip.MustParseAddr("64:ff9b::c000:208"), Dst: client6}, tcp, data), translator.ReasonSpoofedPseudo)
	add("spoof-mapped-prefix-entry-source-4to6", pt.UDP4(pt.IPv4{TTL: 64, Src: prefix4, Dst: server4}, 40000, 53, data), translator.ReasonSpoofedMapped)
	add("spoof-mapped-source-icmpv4-error-4to6", pt.ICMP4(pt.IPv4{TTL: 64, Src: server4b, Dst: server4}, v4DestUnreach, 3, [4]byte{}, pkServerUDP4(8)), translator.ReasonSpoofedMapped)
	add("spoof-mapped-source-echo-4to6", pt.ICMP4(pt.IPv4{TTL: 64, Src: server4b, Dst: server4}, 8, 0, pt.Rest16(1, 1), data), translator.ReasonSpoofedMapped)

	// Martian destinations (martian sources are A8 and A9).
	for _, a := range []string{"0.0.0.0", "127.0.0.1", "224.0.0.1", "255.255.255.255", "240.0.0.1"} {
		add("martian-destination-"+a+"-4to6", pt.UDP4(pt.IPv4{TTL: 64, Src: client4, Dst: netip.MustParseAddr(a)}, 40000, 53, data), translator.ReasonMartianDestination)
	}
	for _, a := range []string{"ff02::1", "ff0e::1", "64:ff9b::7f00:1", "64:ff9b::e000:1", "64:ff9b::ffff:ffff"} {
		add("martian-destination-"+a+"-6to4", pt.UDP6(pt.IPv6{Hop: 64, Src: server6, Dst: netip.MustParseAddr(a)}, 53, 40000, data), translator.ReasonMartianDestination)
	}
	add("martian-source-icmpv6-error-::1-6to4", pt.ICMP6(pt.IPv6{Hop: 64, Src: netip.MustParseAddr("::1"), Dst: client6}, v6DestUnreach, 4, [4]byte{}, pkClientUDP6(8)), translator.ReasonMartianSource)
	add("martian-source-multicast-tcp-4to6", pt.TCP4(pt.IPv4{TTL: 64, Src: netip.MustParseAddr("239.1.2.3"), Dst: server4}, tcp, data), translator.ReasonMartianSource)
	return cs
}

// hostileCovered are the conformance cases (TestTranslate) that already
// test hostile packets of issue 6; TestHostileCovered keeps the list honest.
var hostileCovered = strings.Fields(`
	A3-wkp-drops-non-global-source-10.1.2.3 A3-wkp-drops-rfc1918-destination-6to4
	A8-illegal-source-silently-dropped-0.0.0.0 A8-illegal-source-silently-dropped-127.0.0.1
	A8-illegal-source-silently-dropped-224.0.0.5 A8-illegal-source-silently-dropped-240.0.0.1
	A8-illegal-source-silently-dropped-255.255.255.255
	A9-illegal-source-silently-dropped-::1 A9-illegal-source-silently-dropped-::
	A9-illegal-source-silently-dropped-ff02::1 A9-siit-pool6-source-embedding-loopback-dropped
	B4-ipv6-extension-header-number-dropped B4-icmpv6-inside-ipv4-dropped C7-icmpv4-inside-ipv6-dropped
	B8-lsrr-unexpired-dropped C8-routing-type-0-segments-left-pointer-43
	C10-dc-pool6-source-refused L1-ipv6-source-in-translation-prefix-dropped
	L1-ipv4-source-is-a-service-address-dropped
	D3-fragment-then-destination-options-dropped D3-fragment-then-hop-by-hop-parameter-problem D3-fragment-then-ah-dropped
	G6-error-quoting-error-3-3-4to6 G6-error-quoting-error-11-0-4to6 G6-error-quoting-error-12-0-4to6
	G6-error-quoting-error-5-1-4to6 G6-error-quoting-error-4-0-4to6 G6-error-quoting-error-1-4-6to4
	G6-error-quoting-error-2-0-6to4 G6-error-quoting-error-3-0-6to4 G6-error-quoting-error-4-0-6to4
	G1-quoted-ipv6-longer-than-any-ipv4-dropped
	I8-icmpv4-first-fragment-dropped I8-icmpv4-later-fragment-dropped
	I8-icmpv6-first-fragment-dropped I8-icmpv6-later-fragment-dropped
	J1-udp-length-below-header-dropped J7-bad-ipv4-header-checksum-dropped J7-bad-ipv4-header-checksum-icmp-dropped
	H1-icmp-error-not-answered H2-icmpv6-error-not-answered
	H6-icmpv4-error-ttl-1-no-time-exceeded H6-icmpv6-error-hop-1-no-time-exceeded`)

func TestHostileCovered(t *testing.T) {
	names := map[string]bool{}
	for _, cs := range conformanceCases {
		for _, c := range cs {
			if c.verdict == translator.Forward {
				continue
			}
			names[c.name] = true
		}
	}
	for _, n := range hostileCovered {
		if !names[n] {
			t.Errorf("conformance case %q, listed as covering a hostile packet, is gone or no longer a drop", n)
		}
	}
}

func TestHostile(t *testing.T) {
	seen := map[string]bool{}
	for _, c := range hostileCases() {
		if seen[c.name] {
			t.Fatalf("two cases named %q", c.name)
		}
		seen[c.name] = true
		t.Run(c.name, func(t *testing.T) {
			// The reason has a counter: it is one of the Reason values the
			// data plane sizes its counters by, with a metrics name.
			if int(c.reason) >= translator.NumReasons || c.reason == translator.ReasonNone || c.reason.String() == "unknown" {
				t.Fatalf("reason %d has no counter", c.reason)
			}
			verdict := translator.Drop
			var check func(*testing.T, []output)
			if c.answered {
				verdict = translator.ICMPError
				check = func(t *testing.T, out []output) { hostileAnswer(t, c.in, out) }
			}
			runCase(t, conformanceCase{name: c.name, config: c.config, in: c.in, verdict: verdict, reason: c.reason, check: check})
			// Errors off: the same reason, as a plain drop.
			runCase(t, conformanceCase{name: c.name, in: c.in, verdict: translator.Drop, reason: c.reason,
				config: func(cfg *translator.Config) {
					if c.config != nil {
						c.config(cfg)
					}
					cfg.ICMPErrors = false
				}})
		})
	}
}

// hostileAnswer checks that the translator's answer is one ICMPv6 error
// from its own address to the sender of in, quoting it.
func hostileAnswer(t *testing.T, in []byte, out []output) {
	t.Helper()
	if len(out) != 1 {
		t.Fatalf("%d packets emitted, want the error alone", len(out))
	}
	p := out[0].P
	if p.ICMP == nil || !p.ICMP.Error || p.Src != own6 || p.Dst != netip.AddrFrom16([16]byte(in[8:24])) {
		t.Fatalf("answer %v -> %v, ICMP %+v: want an ICMPv6 error from %v to the sender", p.Src, p.Dst, p.ICMP, own6)
	}
	if !bytes.HasPrefix(in, out[0].Raw[48:]) {
		t.Errorf("the error does not quote the dropped packet")
	}
}

// TestHostileOverlapPassedThrough: overlapping fragments are beyond what a
// stateless translator sees, one packet at a time. What it must do is keep
// every offset, ID and M flag exactly, so that the receiver's reassembly
// sees the overlap and discards the datagram (RFC 5722; RFC 791 receivers
// may take either copy, which is what the IPv4 side always had).
func TestHostileOverlapPassedThrough(t *testing.T) {
	tr := newTranslator(t, nil, nil)
	data := exPayload(64)
	for i, f := range []struct {
		off  uint16
		more bool
		n    int
	}{{3, true, 32}, {5, false, 48}} { // bytes 24-56 and 40-88 overlap
		in := pt.Raw4(pt.IPv4{TTL: 64, ID: 4242, FragOff: f.off, MF: f.more, Src: client4, Dst: server4}, pt.ProtoUDP, data[:f.n])
		o := translator.NewOut()
		if res := tr.Translate(in, o); res.Verdict != translator.Forward || len(o.Pkts) != 1 {
			t.Fatalf("fragment %d: verdict %v %q, %d packets: want one forwarded", i, res.Verdict, res.Reason, len(o.Pkts))
		}
		p, err := pt.Check(o.Pkts[0])
		if err != nil {
			t.Fatalf("fragment %d: output malformed: %v", i, err)
		}
		if p.Frag == nil || p.Frag.Offset != f.off || p.Frag.More != f.more || p.Frag.ID != 4242 || !bytes.Equal(p.L4, data[:f.n]) {
			t.Errorf("fragment %d: %+v, want offset %d more %v ID 4242 and the same %d bytes", i, p.Frag, f.off, f.more, f.n)
		}
	}
}

// ipv4Edit returns a copy of pkt changed by edit, with the IPv4 header
// checksum made right again (over the header length the edit leaves, when
// the bytes are there), so that only the lie remains.
func ipv4Edit(pkt []byte, edit func([]byte)) []byte {
	b := slices.Clone(pkt)
	edit(b)
	hl := int(b[0]&0xf) * 4
	if hl < 20 || hl > len(b) {
		hl = 20
	}
	b[10], b[11] = 0, 0
	binary.BigEndian.PutUint16(b[10:], ^fold(sum(b[:hl], 0)))
	return b
}

func ipv6Edit(pkt []byte, edit func([]byte)) []byte {
	b := slices.Clone(pkt)
	edit(b)
	return b
}

// l4Bytes returns the transport bytes of an IPv4 or IPv6 packet without
// extension headers.
func l4Bytes(pkt []byte) []byte {
	if pkt[0]>>4 == 4 {
		return pkt[int(pkt[0]&0xf)*4:]
	}
	return pkt[40:]
}

// l4Edit sets one byte of the transport header; l4Edit16 a 16-bit field.
// The transport checksum is left as it was: the packet lies anyway.
func l4Edit(pkt []byte, at int, v byte) []byte {
	b := slices.Clone(pkt)
	l4Bytes(b)[at] = v
	return b
}

func l4Edit16(pkt []byte, at int, v uint16) []byte {
	b := slices.Clone(pkt)
	binary.BigEndian.PutUint16(l4Bytes(b)[at:], v)
	return b
}

// chainQuote is a client's datagram as quoted by an error, behind n empty
// Destination Options headers.
func chainQuote(n int) []byte {
	ext := make([]pt.Ext, n)
	for i := range ext {
		ext[i] = pt.DestOpts(nil)
	}
	return pt.UDP6(pt.IPv6{Hop: 63, Src: client6, Dst: server6, Ext: ext}, 40000, 53, exPayload(8))
}
