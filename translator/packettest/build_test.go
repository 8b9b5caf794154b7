package packettest

import (
	"bytes"
	"net/netip"
	"strings"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

var (
	src4 = netip.MustParseAddr("192.0.2.1")
	dst4 = netip.MustParseAddr("198.51.100.2")
	src6 = netip.MustParseAddr("2001:db8::1")
	dst6 = netip.MustParseAddr("64:ff9b::c633:6402")
	hop6 = netip.MustParseAddr("2001:db8:ffff::1")

	ip4 = IPv4{TOS: 0x28, ID: 0x1234, DF: true, TTL: 64, Src: src4, Dst: dst4}
	ip6 = IPv6{TC: 0x28, Flow: 0xabcde, Hop: 64, Src: src6, Dst: dst6}

	tcpHdr = TCP{Sport: 40000, Dport: 443, Seq: 0x01020304, Ack: 0x05060708, Flags: ACK | PSH, Window: 0xfaf0}
	data   = []byte("hello, translator")
)

// TestIPv4HeaderChecksumKnownValue checks the header builder against a
// header whose checksum is worked out by hand in many textbooks (0xb861),
// so that the arithmetic is tested against something other than itself.
func TestIPv4HeaderChecksumKnownValue(t *testing.T) {
	ip := IPv4{DF: true, TTL: 64,
		Src: netip.MustParseAddr("192.168.0.1"), Dst: netip.MustParseAddr("192.168.0.199")}
	got := Raw4(ip, ProtoUDP, make([]byte, 0x73-20))[:20]
	want := Hex("4500 0073 0000 4000 4011 b861 c0a8 0001 c0a8 00c7")
	if !bytes.Equal(got, want) {
		t.Fatalf("header\n got %x\nwant %x", got, want)
	}
}

// TestMatchesGopacketSerialization cross-checks the builders, checksums
// included, against gopacket's serializer: byte for byte.
func TestMatchesGopacketSerialization(t *testing.T) {
	opts := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
	gip4 := func(proto layers.IPProtocol) *layers.IPv4 {
		return &layers.IPv4{Version: 4, TOS: ip4.TOS, Id: ip4.ID, Flags: layers.IPv4DontFragment,
			TTL: ip4.TTL, Protocol: proto, SrcIP: src4.AsSlice(), DstIP: dst4.AsSlice()}
	}
	gip6 := func(proto layers.IPProtocol) *layers.IPv6 {
		return &layers.IPv6{Version: 6, TrafficClass: ip6.TC, FlowLabel: ip6.Flow, HopLimit: ip6.Hop,
			NextHeader: proto, SrcIP: src6.AsSlice(), DstIP: dst6.AsSlice()}
	}
	gtcp := func(nl gopacket.NetworkLayer) *layers.TCP {
		l := &layers.TCP{SrcPort: 40000, DstPort: 443, Seq: tcpHdr.Seq, Ack: tcpHdr.Ack,
			ACK: true, PSH: true, Window: tcpHdr.Window}
		l.SetNetworkLayerForChecksum(nl)
		return l
	}
	gudp := func(nl gopacket.NetworkLayer) *layers.UDP {
		l := &layers.UDP{SrcPort: 5353, DstPort: 53}
		l.SetNetworkLayerForChecksum(nl)
		return l
	}
	v4t, v4u := gip4(layers.IPProtocolTCP), gip4(layers.IPProtocolUDP)
	v6t, v6u := gip6(layers.IPProtocolTCP), gip6(layers.IPProtocolUDP)
	v4i, v6i := gip4(layers.IPProtocolICMPv4), gip6(layers.IPProtocolICMPv6)
	icmp6 := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(128, 0)}
	icmp6.SetNetworkLayerForChecksum(v6i)
	for _, c := range []struct {
		name   string
		ours   []byte
		layers []gopacket.SerializableLayer
	}{
		{"TCP4", TCP4(ip4, tcpHdr, data), []gopacket.SerializableLayer{v4t, gtcp(v4t), gopacket.Payload(data)}},
		{"UDP4", UDP4(ip4, 5353, 53, data), []gopacket.SerializableLayer{v4u, gudp(v4u), gopacket.Payload(data)}},
		{"TCP6", TCP6(ip6, tcpHdr, data), []gopacket.SerializableLayer{v6t, gtcp(v6t), gopacket.Payload(data)}},
		{"UDP6", UDP6(ip6, 5353, 53, data), []gopacket.SerializableLayer{v6u, gudp(v6u), gopacket.Payload(data)}},
		{"ICMP4", ICMP4(ip4, 8, 0, Rest16(7, 9), data), []gopacket.SerializableLayer{v4i,
			&layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(8, 0), Id: 7, Seq: 9}, gopacket.Payload(data)}},
		// gopacket's ICMPv6 layer is 4 bytes: the echo identifier and
		// sequence number travel in its payload.
		{"ICMP6", ICMP6(ip6, 128, 0, Rest16(7, 9), data), []gopacket.SerializableLayer{v6i, icmp6,
			gopacket.Payload(append([]byte{0, 7, 0, 9}, data...))}},
	} {
		buf := gopacket.NewSerializeBuffer()
		if err := gopacket.SerializeLayers(buf, opts, c.layers...); err != nil {
			t.Fatalf("%s: gopacket: %v", c.name, err)
		}
		if !bytes.Equal(c.ours, buf.Bytes()) {
			t.Errorf("%s differs from gopacket's\nours     %x\ngopacket %x", c.name, c.ours, buf.Bytes())
		}
	}
}

// TestBuildersPassCheck builds every kind of packet and checks that Check
// accepts it and reads back the fields that were put in.
func TestBuildersPassCheck(t *testing.T) {
	rh := Routing(0, 1, hop6)
	ext := []Ext{HopByHop([]byte{5, 2, 0, 0}), DestOpts([]byte{0x1e, 1, 0}), Routing(4, 0, dst6), DestOpts(nil)}
	for _, c := range []struct {
		name       string
		pkt        []byte
		proto      uint8
		checked    bool
		sport      uint16
		dport      uint16
		payload    []byte
		notChecked string
	}{
		{"UDP4", UDP4(ip4, 5353, 53, data), ProtoUDP, true, 5353, 53, data, ""},
		{"UDP4 checksum zero", UDP4NoChecksum(ip4, 5353, 53, data), ProtoUDP, false, 5353, 53, data, "UDP checksum 0"},
		{"UDP4 odd options", UDP4(IPv4{TTL: 1, Src: src4, Dst: dst4, Options: []byte{0x94, 4, 0, 0, 1}}, 1, 2, nil), ProtoUDP, true, 1, 2, []byte{}, ""},
		{"TCP4", TCP4(ip4, tcpHdr, data), ProtoTCP, true, 40000, 443, data, ""},
		{"TCP4 options", TCP4(ip4, TCP{Sport: 1, Dport: 2, Flags: SYN, Options: []byte{2, 4, 5, 0xb4}}, nil), ProtoTCP, true, 1, 2, []byte{}, ""},
		{"ICMP4 echo", ICMP4(ip4, 8, 0, Rest16(1, 2), data), ProtoICMP, true, 0, 0, data, ""},
		{"unknown 4", Raw4(ip4, 253, data), 253, false, 0, 0, data, "protocol 253"},
		{"UDP6", UDP6(ip6, 5353, 53, data), ProtoUDP, true, 5353, 53, data, ""},
		{"TCP6", TCP6(ip6, tcpHdr, data), ProtoTCP, true, 40000, 443, data, ""},
		{"ICMP6 echo", ICMP6(ip6, 128, 0, Rest16(1, 2), data), ProtoICMPv6, true, 0, 0, data, ""},
		{"UDP6 ext chain", UDP6(IPv6{Hop: 1, Src: src6, Dst: dst6, Ext: ext}, 7, 8, data), ProtoUDP, true, 7, 8, data, ""},
		{"UDP6 segments left", UDP6(IPv6{Hop: 1, Src: src6, Dst: hop6, Ext: []Ext{Routing(0, 1, dst6)}}, 7, 8, data), ProtoUDP, true, 7, 8, data, ""},
		{"TCP6 segments left", TCP6(IPv6{Hop: 1, Src: src6, Dst: dst6, Ext: []Ext{rh}}, tcpHdr, data), ProtoTCP, true, 40000, 443, data, ""},
		{"ICMP6 atomic fragment", ICMP6(IPv6{Hop: 1, Src: src6, Dst: dst6, Ext: []Ext{Fragment(0, false, 99)}}, 128, 0, Rest16(1, 2), nil), ProtoICMPv6, true, 0, 0, []byte{}, ""},
		{"unknown 6", Raw6(IPv6{Hop: 1, Src: src6, Dst: dst6, Ext: []Ext{DestOpts(nil)}}, 253, data), 253, false, 0, 0, data, "protocol 253"},
		{"no next header", Raw6(IPv6{Hop: 1, Src: src6, Dst: dst6}, ProtoNoNext, nil), ProtoNoNext, false, 0, 0, []byte{}, "protocol 59"},
		{"no next header after Pad1", Raw6(IPv6{Hop: 1, Src: src6, Dst: dst6, Ext: []Ext{HopByHop([]byte{1, 3, 0, 0, 0})}}, ProtoNoNext, nil), ProtoNoNext, false, 0, 0, []byte{}, "protocol 59"},
	} {
		p, err := Check(c.pkt)
		if err != nil {
			t.Errorf("%s: Check: %v\n%s", c.name, err, Format(c.pkt))
			continue
		}
		if p.Proto != c.proto || p.ChecksumChecked != c.checked || p.Sport != c.sport || p.Dport != c.dport ||
			!bytes.Equal(p.Payload, c.payload) || !strings.Contains(p.NotChecked, c.notChecked) {
			t.Errorf("%s: got proto %d checked %v (%q) ports %d->%d payload %q", c.name,
				p.Proto, p.ChecksumChecked, p.NotChecked, p.Sport, p.Dport, p.Payload)
		}
		if c.checked && !p.ChecksumOK {
			t.Errorf("%s: ChecksumOK false on an accepted packet", c.name)
		}
		if len(p.Raw) != len(c.pkt) || p.TotalLen != len(c.pkt) {
			t.Errorf("%s: Raw %d bytes, TotalLen %d, packet %d", c.name, len(p.Raw), p.TotalLen, len(c.pkt))
		}
	}
}

func TestHeaderFields(t *testing.T) {
	ip := ip4
	ip.Options = SourceRoute(false, 4, hop4)
	p, err := Check(TCP4(ip, tcpHdr, data))
	if err != nil {
		t.Fatal(err)
	}
	if p.Version != 4 || p.Src != src4 || p.Dst != dst4 || p.TOS != 0x28 || p.TTL != 64 || p.ID != 0x1234 ||
		!p.DF || p.MF || p.FragOff != 0 || p.HeaderLen != 28 || p.IsFragment() {
		t.Errorf("IPv4 fields: %+v", p)
	}
	if want := []byte{0x83, 7, 4, 203, 0, 113, 9, 0}; !bytes.Equal(p.Options, want) {
		t.Errorf("options %x, want %x", p.Options, want)
	}
	if g := p.TCP; g.Sport != 40000 || g.Dport != 443 || g.Seq != tcpHdr.Seq || g.Ack != tcpHdr.Ack ||
		g.Flags != ACK|PSH || g.Window != 0xfaf0 || len(g.Options) != 0 {
		t.Errorf("TCP fields: %+v", p.TCP)
	}

	ext := []Ext{HopByHop(nil), Routing(0, 0, hop6), Fragment(0, false, 0xdeadbeef), DestOpts(nil)}
	p, err = Check(UDP6(IPv6{TC: 0xb8, Flow: 0xfffff, Hop: 255, Src: src6, Dst: dst6, Ext: ext}, 1, 2, data))
	if err != nil {
		t.Fatal(err)
	}
	if p.Version != 6 || p.Src != src6 || p.Dst != dst6 || p.TOS != 0xb8 || p.Flow != 0xfffff || p.TTL != 255 ||
		p.HeaderLen != 40+8+24+8+8 || !p.IsFragment() || *p.Frag != (Frag{ID: 0xdeadbeef}) {
		t.Errorf("IPv6 fields: %+v frag %+v", p, p.Frag)
	}
	var protos []uint8
	for _, e := range p.Ext {
		protos = append(protos, e.Proto)
	}
	if !bytes.Equal(protos, []byte{0, 43, 44, 60}) || p.Ext[1].Offset != 48 || p.Ext[1].RoutingType != 0 {
		t.Errorf("extension headers %+v", p.Ext)
	}
}

var hop4 = netip.MustParseAddr("203.0.113.9")
