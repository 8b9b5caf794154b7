package packettest

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"
)

// corrupt returns a copy of pkt with byte i changed.
func corrupt(pkt []byte, i int) []byte {
	c := bytes.Clone(pkt)
	c[i] ^= 0x5a
	return c
}

// TestCheckRejects feeds Check one broken packet per rule and asserts the
// error names the problem, so a rule that stops being checked fails here.
func TestCheckRejects(t *testing.T) {
	udp4 := UDP4(ip4, 5353, 53, data)
	tcp4 := TCP4(ip4, tcpHdr, data)
	icmp4 := ICMP4(ip4, 8, 0, Rest16(1, 2), data)
	udp6 := UDP6(ip6, 5353, 53, data)
	tcp6 := TCP6(ip6, tcpHdr, data)
	icmp6 := ICMP6(ip6, 128, 0, Rest16(1, 2), data)
	bad := ip4
	bad.BadChecksum = true
	long, short := ip4, ip4
	long.TotalLen, short.TotalLen = 20+8+len(data)+1, 20+8+len(data)-1
	long6, short6 := ip6, ip6
	long6.PayloadLen, short6.PayloadLen = 8+len(data)+1, 8+len(data)-1
	frag6 := func(ext ...Ext) IPv6 { return IPv6{Hop: 1, Src: src6, Dst: dst6, Ext: ext} }
	evil := setIPv4(udp4, 6, 0x80|udp4[6])
	ihl6 := setIPv4(udp4, 0, 0x46)
	mfOdd := Raw4(IPv4{TTL: 1, MF: true, Src: src4, Dst: dst4}, ProtoUDP, make([]byte, 12))
	tooFar := Raw4(IPv4{TTL: 1, FragOff: 0x1fff, Src: src4, Dst: dst4}, ProtoUDP, make([]byte, 16))

	// A UDP header whose length lies, with a checksum that is right for the lie.
	lyingUDP := udp(1, 2, data)
	binary.BigEndian.PutUint16(lyingUDP[4:], uint16(len(lyingUDP)-1))
	putChecksum(lyingUDP[6:], pseudo(src4, dst4, ProtoUDP, len(lyingUDP)), lyingUDP)

	for _, c := range []struct {
		name string
		pkt  []byte
		want string
	}{
		{"IPv4 header checksum field", corrupt(udp4, 11), "IPv4 header checksum"},
		{"IPv4 header byte", corrupt(udp4, 8), "IPv4 header checksum"},
		{"IPv4 BadChecksum", UDP4(bad, 1, 2, nil), "IPv4 header checksum"},
		{"TCP4 checksum", corrupt(tcp4, 20+16), "TCP checksum"},
		{"TCP4 payload", corrupt(tcp4, len(tcp4)-1), "TCP checksum"},
		{"UDP4 checksum", corrupt(udp4, 20+7), "UDP checksum"},
		{"UDP4 payload", corrupt(udp4, len(udp4)-3), "UDP checksum"},
		{"ICMP4 checksum", corrupt(icmp4, 20+2), "ICMPv4 checksum"},
		{"ICMP4 payload", corrupt(icmp4, len(icmp4)-1), "ICMPv4 checksum"},
		{"TCP6 checksum", corrupt(tcp6, 40+17), "TCP checksum"},
		{"TCP6 source address", corrupt(tcp6, 8), "TCP checksum"},
		{"UDP6 checksum", corrupt(udp6, 40+6), "UDP checksum"},
		{"UDP6 destination address", corrupt(udp6, 39), "UDP checksum"},
		{"ICMP6 checksum", corrupt(icmp6, 40+3), "ICMPv6 checksum"},
		{"ICMP6 payload", corrupt(icmp6, len(icmp6)-2), "ICMPv6 checksum"},
		{"UDP6 checksum zero", UDP6NoChecksum(ip6, 1, 2, data), "UDP checksum 0x0000"},

		{"IPv4 total length too long", UDP4(long, 5353, 53, data), "total length"},
		{"IPv4 total length too short", UDP4(short, 5353, 53, data), "total length"},
		{"IPv4 trailing byte", append(bytes.Clone(udp4), 0), "total length"},
		{"IPv6 payload length too long", UDP6(long6, 5353, 53, data), "payload length"},
		{"IPv6 payload length too short", UDP6(short6, 5353, 53, data), "payload length"},
		{"UDP length", Raw4(ip4, ProtoUDP, lyingUDP), "UDP length"},
		{"TCP data offset", setL4(tcp4, 20, 12, 0xf0), "TCP"},

		{"empty", nil, "empty"},
		{"version 5", setIPv4(udp4, 0, 0x55), "version 5"},
		{"IPv4 header truncated", udp4[:19], "IPv4 header truncated"},
		{"IPv4 IHL 4", setIPv4(udp4, 0, 0x44), "IHL 4"},
		{"IPv4 IHL past the packet", setIPv4(Raw4(IPv4{TTL: 1, Src: src4, Dst: dst4}, 253, nil), 0, 0x46), "IHL says 24"},
		{"IPv4 total length under IHL", setIPv4(setIPv4(ICMP4(IPv4{TTL: 1, Src: src4, Dst: dst4}, 8, 0, [4]byte{}, nil), 0, 0x46), 3, 20), "less than the header length"},
		{"IPv4 option overrun", UDP4(IPv4{TTL: 1, Src: src4, Dst: dst4, Options: []byte{0x94, 9, 0, 0}}, 1, 2, nil), "option"},
		{"IPv4 reserved flag", evil, "reserved flag"},
		{"IPv4 IHL 6 on UDP", ihl6, ""},
		{"UDP4 header truncated", Raw4(ip4, ProtoUDP, []byte{0, 1, 0, 2, 0}), "UDP header"},
		{"TCP4 header truncated", Raw4(ip4, ProtoTCP, make([]byte, 19)), "TCP header"},
		{"ICMP4 header truncated", Raw4(ip4, ProtoICMP, make([]byte, 7)), "ICMPv4 header truncated"},
		{"IPv6 header truncated", udp6[:39], "IPv6 header truncated"},
		{"ICMP6 header truncated", Raw6(ip6, ProtoICMPv6, make([]byte, 4)), "ICMPv6 header truncated"},
		{"IPv4 fragment size", mfOdd, "multiple of 8"},
		{"IPv4 fragment past 65535", tooFar, "past 65535"},

		{"Hop-by-Hop not first", Raw6(frag6(DestOpts(nil), HopByHop(nil)), ProtoNoNext, nil), "Hop-by-Hop"},
		{"option overruns header", Raw6(frag6(Ext{ProtoDestOpts, []byte{0, 0, 1, 9, 0, 0, 0, 0}}), ProtoNoNext, nil), "overruns the header"},
		{"extension overruns packet", Raw6(frag6(Ext{ProtoRouting, []byte{0, 4, 0, 0, 0, 0, 0, 0}}), ProtoNoNext, nil), "overruns the packet"},
		{"jumbo option", Raw6(frag6(HopByHop([]byte{0xc2, 4, 0, 1, 0, 0})), ProtoNoNext, nil), "Jumbo"},
		{"two Fragment headers", Raw6(frag6(Fragment(0, false, 1), Fragment(0, false, 1)), ProtoNoNext, nil), "second Fragment"},
		{"Fragment reserved", Raw6(frag6(Ext{ProtoFragment, []byte{0, 1, 0, 0, 0, 0, 0, 1}}), ProtoNoNext, nil), "reserved"},
		{"IPv6 fragment size", Raw6(frag6(Fragment(0, true, 1)), 253, make([]byte, 12)), "multiple of 8"},
		{"first fragment without transport header", Raw6(frag6(Fragment(0, true, 1)), ProtoTCP, make([]byte, 8)), "RFC 7112"},
		{"first fragment ends in the chain", Raw6(frag6(Fragment(0, true, 1), Ext{ProtoDestOpts, []byte{0, 1, 1, 0, 0, 0, 0, 0}}), ProtoNoNext, nil), "RFC 7112"},
	} {
		p, err := Check(c.pkt)
		if err == nil {
			t.Errorf("%s: Check accepted it: %+v", c.name, p)
			continue
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %q does not mention %q", c.name, err, c.want)
		}
	}
}

// setIPv4 returns pkt with header byte i set to v and the header checksum
// made right again, so that only the change is wrong.
func setIPv4(pkt []byte, i int, v byte) []byte {
	c := bytes.Clone(pkt)
	c[i] = v
	c[10], c[11] = 0, 0
	putChecksum(c[10:], 0, c[:20])
	return c
}

// setL4 returns pkt with byte i of the transport header (after hl bytes of
// IP header) set to v; the checksum is left as it was.
func setL4(pkt []byte, hl, i int, v byte) []byte {
	c := bytes.Clone(pkt)
	c[hl+i] = v
	return c
}

// TestEveryByteCounts proves that Check notices any single wrong byte in an
// IPv4 packet (all of it is under a checksum), and in an IPv6 packet every
// byte except those no checksum or length covers.
func TestEveryByteCounts(t *testing.T) {
	// In IPv6 the traffic class, flow label and hop limit are under no
	// checksum, and a changed next header makes an unknown protocol.
	uncovered6 := func(i int, x byte) bool {
		return i == 0 && x < 0x10 || i == 1 || i == 2 || i == 3 || i == 6 || i == 7
	}
	for _, c := range []struct {
		name string
		pkt  []byte
	}{
		{"UDP4", UDP4(ip4, 5353, 53, data)},
		{"TCP4", TCP4(ip4, tcpHdr, data)},
		{"ICMP4", ICMP4(ip4, 8, 0, Rest16(1, 2), data)},
		{"UDP6", UDP6(ip6, 5353, 53, data)},
		{"TCP6", TCP6(ip6, tcpHdr, data)},
		{"ICMP6", ICMP6(ip6, 128, 0, Rest16(1, 2), data)},
	} {
		for i := range c.pkt {
			for _, x := range []byte{0x01, 0x80, 0xff} {
				m := bytes.Clone(c.pkt)
				m[i] ^= x
				if c.pkt[0]>>4 == 6 && uncovered6(i, x) {
					continue
				}
				if _, err := Check(m); err == nil {
					t.Errorf("%s: byte %d ^ %#02x accepted", c.name, i, x)
				}
			}
		}
	}
}

func TestFragmentsAreNotChecksummed(t *testing.T) {
	p, err := Check(Raw4(IPv4{TTL: 9, MF: true, ID: 5, Src: src4, Dst: dst4}, ProtoUDP, udp(1, 2, make([]byte, 8))))
	if err != nil {
		t.Fatal(err)
	}
	if p.ChecksumChecked || p.NotChecked != "fragment" || !p.Ports || p.Sport != 1 || !p.IsFragment() {
		t.Errorf("IPv4 first fragment: %+v", p)
	}
	p, err = Check(Raw6(IPv6{Hop: 9, Src: src6, Dst: dst6, Ext: []Ext{Fragment(3, false, 77)}}, ProtoUDP, []byte{1, 2, 3}))
	if err != nil {
		t.Fatal(err)
	}
	if p.ChecksumChecked || p.Ports || p.Proto != ProtoUDP || *p.Frag != (Frag{Offset: 3, ID: 77}) || !bytes.Equal(p.Payload, []byte{1, 2, 3}) {
		t.Errorf("IPv6 later fragment: %+v", p)
	}
	// A tiny IPv4 first fragment is legal, if unwelcome.
	p, err = Check(Raw4(IPv4{TTL: 9, MF: true, Src: src4, Dst: dst4}, ProtoTCP, make([]byte, 16)))
	if err != nil || p.ChecksumChecked || p.TCP != nil {
		t.Errorf("tiny IPv4 first fragment: %v %+v", err, p)
	}
}

func TestICMPError(t *testing.T) {
	inner := UDP4(IPv4{ID: 42, TTL: 3, Src: dst4, Dst: src4}, 1000, 2000, data)
	for _, c := range []struct {
		name        string
		quote       []byte
		truncated   bool
		ports       bool
		checksummed bool
	}{
		{"whole", inner, false, true, true},
		{"cut after the UDP header", inner[:28], true, true, false},
		{"cut after the ports", inner[:24], true, true, false},
		{"header only", inner[:20], true, false, false},
	} {
		pkt := ICMP4(ip4, 11, 0, [4]byte{}, c.quote)
		p, err := Check(pkt)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		q := p.Quote
		if !p.ICMP.Error || q == nil {
			t.Errorf("%s: no quote: %+v", c.name, p)
			continue
		}
		if q.Version != 4 || q.Src != dst4 || q.Dst != src4 || q.TTL != 3 || q.ID != 42 || q.Proto != ProtoUDP ||
			q.TotalLen != len(inner) || len(q.Raw) != len(c.quote) || q.Truncated != c.truncated ||
			q.Ports != c.ports || q.ChecksumChecked != c.checksummed {
			t.Errorf("%s: quote %+v", c.name, q)
		}
		if c.ports && (q.Sport != 1000 || q.Dport != 2000) {
			t.Errorf("%s: quoted ports %d -> %d", c.name, q.Sport, q.Dport)
		}
		if c.checksummed && !q.ChecksumOK {
			t.Errorf("%s: quoted checksum not OK", c.name)
		}
	}

	// A wrong checksum in the quoted datagram is the original sender's
	// business: recorded, not refused.
	p, err := Check(ICMP4(ip4, 3, 3, [4]byte{}, corrupt(inner, len(inner)-1)))
	if err != nil || !p.Quote.ChecksumChecked || p.Quote.ChecksumOK {
		t.Errorf("quote with a bad UDP checksum: %v %+v", err, p)
	}

	// Rest-of-header fields.
	p, err = Check(ICMP4(ip4, 3, 4, Rest16(0, 1400), inner))
	if err != nil || p.ICMP.MTU != 1400 {
		t.Errorf("Fragmentation Needed: %v %+v", err, p.ICMP)
	}
	p, err = Check(ICMP4(ip4, 12, 0, [4]byte{9}, inner))
	if err != nil || p.ICMP.Pointer != 9 {
		t.Errorf("Parameter Problem: %v %+v", err, p.ICMP)
	}
	inner6 := TCP6(IPv6{Hop: 7, Src: dst6, Dst: src6, Ext: []Ext{Fragment(0, false, 0x01020304)}}, tcpHdr, data)
	p, err = Check(ICMP6(ip6, 2, 0, Rest32(1280), inner6[:60]))
	if err != nil || p.ICMP.MTU != 1280 || p.Quote.TTL != 7 || p.Quote.Frag.ID != 0x01020304 ||
		!p.Quote.Ports || p.Quote.Sport != 40000 || p.Quote.TCP != nil || !p.Quote.Truncated {
		t.Errorf("Packet Too Big: %v %+v %+v", err, p.ICMP, p.Quote)
	}
	p, err = Check(ICMP6(ip6, 4, 0, Rest32(40), inner6))
	if err != nil || p.ICMP.Pointer != 40 || p.Quote.TCP == nil || !p.Quote.ChecksumOK {
		t.Errorf("Parameter Problem 6: %v %+v %+v", err, p.ICMP, p.Quote)
	}
	// An IPv6 quote cut inside its extension headers.
	inner6r := UDP6(IPv6{Hop: 7, Src: dst6, Dst: src6, Ext: []Ext{Routing(0, 0, hop6)}}, 1, 2, nil)
	p, err = Check(ICMP6(ip6, 1, 4, [4]byte{}, inner6r[:50]))
	if err != nil || p.Quote.Proto != ProtoRouting || p.Quote.L4 != nil {
		t.Errorf("quote cut in the chain: %v %+v", err, p.Quote)
	}
	// The quote's Fragment header with offset != 0: no transport header.
	p, err = Check(ICMP4(ip4, 11, 1, [4]byte{}, Raw4(IPv4{TTL: 1, FragOff: 2, Src: dst4, Dst: src4}, ProtoUDP, data)))
	if err != nil || p.Quote.Ports || p.Quote.FragOff != 2 {
		t.Errorf("quoted later fragment: %v %+v", err, p.Quote)
	}
	// Echo is not an error: quoting one is fine.
	if _, err := Check(ICMP4(ip4, 3, 1, [4]byte{}, ICMP4(IPv4{TTL: 1, Src: dst4, Dst: src4}, 8, 0, Rest16(1, 1), nil))); err != nil {
		t.Errorf("error quoting an echo: %v", err)
	}
}

func TestICMPErrorRejects(t *testing.T) {
	inner := UDP4(IPv4{TTL: 3, Src: dst4, Dst: src4}, 1000, 2000, data)
	inner6 := UDP6(IPv6{Hop: 3, Src: dst6, Dst: src6}, 1000, 2000, data)
	badHeader := bytes.Clone(inner)
	badHeader[10] ^= 1
	big4 := UDP4(IPv4{TTL: 3, Src: dst4, Dst: src4}, 1, 2, make([]byte, 1000))
	big6 := UDP6(IPv6{Hop: 3, Src: dst6, Dst: src6}, 1, 2, make([]byte, 2000))
	ext4, n4 := Extended(inner, 4, ExtObject(1, 1, []byte{1, 2, 3, 4}))
	badExt := bytes.Clone(ext4)
	badExt[len(badExt)-1] ^= 1
	v1Ext := bytes.Clone(ext4)
	v1Ext[n4*4] = 0x10
	for _, c := range []struct {
		name string
		pkt  []byte
		want string
	}{
		{"ICMPv4 error over 576", ICMP4(ip4, 3, 1, [4]byte{}, big4[:576-27]), "more than 576"},
		{"ICMPv6 error over 1280", ICMP6(ip6, 1, 0, [4]byte{}, big6[:1280-47]), "more than 1280"},
		{"quote shorter than IPv4 header", ICMP4(ip4, 11, 0, [4]byte{}, inner[:19]), "quoted packet: IPv4 header truncated"},
		{"quote shorter than IPv6 header", ICMP6(ip6, 3, 0, [4]byte{}, inner6[:39]), "quoted packet: IPv6 header truncated"},
		{"quoted IPv4 header checksum", ICMP4(ip4, 11, 0, [4]byte{}, badHeader), "quoted packet: IPv4 header checksum"},
		{"IPv4 quoted in ICMPv6", ICMP6(ip6, 1, 0, [4]byte{}, inner), "quotes an IPv4 packet"},
		{"IPv6 quoted in ICMPv4", ICMP4(ip4, 3, 1, [4]byte{}, inner6), "quotes an IPv6 packet"},
		{"error about an error 4", ICMP4(ip4, 3, 1, [4]byte{}, ICMP4(IPv4{TTL: 1, Src: dst4, Dst: src4}, 11, 0, [4]byte{}, inner)), "quotes an ICMP error"},
		{"error about an error 6", ICMP6(ip6, 1, 0, [4]byte{}, ICMP6(IPv6{Hop: 1, Src: dst6, Dst: src6}, 3, 0, [4]byte{}, inner6)), "quotes an ICMP error"},
		{"RFC 4884 length past the end", ICMP4(ip4, 11, 0, [4]byte{0, 60}, inner), "RFC 4884 length 240"},
		{"RFC 4884 length under 128", ICMP4(ip4, 11, 0, [4]byte{0, 8}, inner), "less than 128"},
		{"RFC 4884 extension checksum", ICMP4(ip4, 11, 0, [4]byte{0, n4}, badExt), "RFC 4884 extension checksum"},
		{"RFC 4884 extension version", ICMP4(ip4, 11, 0, [4]byte{0, n4}, v1Ext), "version 1"},
	} {
		p, err := Check(c.pkt)
		if err == nil {
			t.Errorf("%s: Check accepted it: %+v", c.name, p)
			continue
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %q does not mention %q", c.name, err, c.want)
		}
	}
	// At the limits exactly, accepted.
	for name, pkt := range map[string][]byte{
		"ICMPv4 error of 576":  ICMP4(ip4, 3, 1, [4]byte{}, big4[:576-28]),
		"ICMPv6 error of 1280": ICMP6(ip6, 1, 0, [4]byte{}, big6[:1280-48]),
	} {
		if p, err := Check(pkt); err != nil || len(p.Raw) != len(pkt) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestRFC4884(t *testing.T) {
	inner := UDP4(IPv4{TTL: 3, Src: dst4, Dst: src4}, 1000, 2000, data)
	obj := ExtObject(2, 1, []byte{0, 0, 0, 7}) // interface information, ifIndex 7
	body, n := Extended(inner, 4, obj)
	p, err := Check(ICMP4(ip4, 11, 0, [4]byte{0, n}, body))
	if err != nil {
		t.Fatal(err)
	}
	if p.ICMP.Length != 128 || len(p.Extension) != 4+len(obj) || !bytes.Equal(p.Extension[4:], obj) ||
		!bytes.Equal(p.Quote.Raw, inner) || !p.Quote.ChecksumOK {
		t.Errorf("ICMPv4: length %d extension %x quote %+v", p.ICMP.Length, p.Extension, p.Quote)
	}

	inner6 := UDP6(IPv6{Hop: 3, Src: dst6, Dst: src6}, 1000, 2000, make([]byte, 100))
	body, n = Extended(inner6, 8, obj)
	p, err = Check(ICMP6(ip6, 3, 0, [4]byte{n}, body))
	if err != nil {
		t.Fatal(err)
	}
	if p.ICMP.Length != 152 || len(p.Extension) != 4+len(obj) || !bytes.Equal(p.Quote.Raw, inner6) {
		t.Errorf("ICMPv6: length %d extension %x quote %+v", p.ICMP.Length, p.Extension, p.Quote)
	}
}
