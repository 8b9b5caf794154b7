package tun

import (
	"bytes"
	"testing"

	"github.com/map646/map646/translator"
	pt "github.com/map646/map646/translator/packettest"
)

// TestVirtioConstants checks the constants against include/uapi/linux/
// virtio_net.h, written out here independently.
func TestVirtioConstants(t *testing.T) {
	for _, c := range []struct {
		name      string
		got, want int
	}{
		{"VIRTIO_NET_HDR_F_NEEDS_CSUM", VirtioFlagNeedsCsum, 1},
		{"VIRTIO_NET_HDR_F_DATA_VALID", VirtioFlagDataValid, 2},
		{"VIRTIO_NET_HDR_GSO_NONE", VirtioGSONone, 0},
		{"VIRTIO_NET_HDR_GSO_TCPV4", VirtioGSOTCPv4, 1},
		{"VIRTIO_NET_HDR_GSO_UDP", VirtioGSOUDP, 3},
		{"VIRTIO_NET_HDR_GSO_TCPV6", VirtioGSOTCPv6, 4},
		{"VIRTIO_NET_HDR_GSO_UDP_L4", VirtioGSOUDPL4, 5},
		{"VIRTIO_NET_HDR_GSO_ECN", VirtioGSOECN, 0x80},
		{"sizeof(struct virtio_net_hdr)", VirtioNetHdrLen, 10},
	} {
		if c.got != c.want {
			t.Errorf("%s = %d, want %d", c.name, c.got, c.want)
		}
	}
}

// TestVirtioHdrWire: field order and byte order of the header on the wire.
func TestVirtioHdrWire(t *testing.T) {
	wire := pt.Hex(`01 04 # flags NEEDS_CSUM, gso_type TCPV6
		48 00 # hdr_len 72
		a8 05 # gso_size 1448
		28 00 # csum_start 40
		10 00 # csum_offset 16`)
	want := VirtioNetHdr{Flags: 1, GSOType: 4, HdrLen: 72, GSOSize: 1448, CsumStart: 40, CsumOffset: 16}
	var h VirtioNetHdr
	if err := h.Decode(wire); err != nil || h != want {
		t.Fatalf("Decode: %+v, %v; want %+v", h, err, want)
	}
	b := make([]byte, VirtioNetHdrLen)
	want.Encode(b)
	if !bytes.Equal(b, wire) {
		t.Fatalf("Encode: % x, want % x", b, wire)
	}
	if err := h.Decode(wire[:9]); err == nil {
		t.Fatal("Decode accepted 9 bytes")
	}
}

// TestHeaderFor: the header for writing is derived from the packet alone.
func TestHeaderFor(t *testing.T) {
	ts := []byte{1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2}
	tcp4 := pt.TCP4(pt.IPv4{TTL: 64, Src: client4, Dst: server4}, pt.TCP{Flags: pt.ACK, Options: ts}, payload(4000))
	cwr4 := pt.TCP4(pt.IPv4{TTL: 64, Src: client4, Dst: server4}, pt.TCP{Flags: pt.ACK | pt.CWR}, payload(4000))
	tcp6 := pt.TCP6(pt.IPv6{Hop: 64, Src: server6, Dst: client6}, pt.TCP{Flags: pt.ACK}, payload(4000))
	udp4 := pt.UDP4(pt.IPv4{TTL: 64, Src: client4, Dst: server4}, 1, 2, payload(4000))
	udp6 := pt.UDP6(pt.IPv6{Hop: 64, Src: server6, Dst: client6}, 1, 2, payload(4000))
	icmp := pt.ICMP6(pt.IPv6{Hop: 64, Src: server6, Dst: client6}, 128, 0, [4]byte{}, payload(100))
	for _, c := range []struct {
		name    string
		pkt     Packet
		want    VirtioNetHdr
		wantErr error
	}{
		{"complete", packet(tcp4, 0, false), VirtioNetHdr{}, nil},
		{"tcp4", packet(tcp4, 1448, true), VirtioNetHdr{1, 1, 20 + 32, 1448, 20, 16}, nil},
		{"tcp4-cwr", packet(cwr4, 1448, true), VirtioNetHdr{1, 1 | 0x80, 40, 1448, 20, 16}, nil},
		{"tcp6", packet(tcp6, 1440, true), VirtioNetHdr{1, 4, 60, 1440, 40, 16}, nil},
		{"udp4", packet(udp4, 1472, true), VirtioNetHdr{1, 5, 28, 1472, 20, 6}, nil},
		{"udp6", packet(udp6, 1452, true), VirtioNetHdr{1, 5, 48, 1452, 40, 6}, nil},
		{"partial-not-gso", packet(udp6, 0, true), VirtioNetHdr{Flags: 1, CsumStart: 40, CsumOffset: 6}, nil},
		{"one-segment", packet(tcp6, 4000, true), VirtioNetHdr{Flags: 1, CsumStart: 40, CsumOffset: 16}, nil},
		{"gso-not-partial", packet(tcp4, 1448, false), VirtioNetHdr{}, errGSONoCsum},
		{"icmp-partial", packet(icmp, 0, true), VirtioNetHdr{}, errNotTCPUDP},
		{"truncated", packet(tcp4[:100], 1448, true), VirtioNetHdr{}, errBadIP},
	} {
		h, err := HeaderFor(&c.pkt)
		if h != c.want || err != c.wantErr {
			t.Errorf("%s: %+v, %v; want %+v, %v", c.name, h, err, c.want, c.wantErr)
		}
	}
}

// TestFromVirtio: how a header read from the device turns into a Packet.
func TestFromVirtio(t *testing.T) {
	tcp4 := pt.TCP4(pt.IPv4{TTL: 64, Src: client4, Dst: server4}, pt.TCP{Seq: 9, Flags: pt.ACK | pt.PSH}, payload(999))
	udp6 := pt.UDP6(pt.IPv6{Hop: 64, Src: server6, Dst: client6}, 1, 2, payload(1001))
	needsCsum := func(start, off uint16) VirtioNetHdr {
		return VirtioNetHdr{Flags: VirtioFlagNeedsCsum, CsumStart: start, CsumOffset: off}
	}

	// An ordinary packet with NEEDS_CSUM leaves with its checksum complete:
	// exactly the packet packettest built.
	for _, c := range []struct {
		name   string
		pkt    []byte
		l4, at int
	}{{"tcp4", tcp4, 20, 16}, {"udp6", udp6, 40, 6}} {
		b := partialize(c.pkt, c.l4, c.at)
		h := needsCsum(uint16(c.l4), uint16(c.at))
		gso, partial, err := fromVirtio(&h, b)
		if err != nil || gso != 0 || partial {
			t.Fatalf("%s: gso %d partial %v err %v", c.name, gso, partial, err)
		}
		if !bytes.Equal(b, c.pkt) {
			t.Fatalf("%s: checksum not completed: % x, want % x", c.name, b[c.l4+c.at:c.l4+c.at+2], c.pkt[c.l4+c.at:c.l4+c.at+2])
		}
	}

	// A super-packet keeps its partial sum.
	super := partialize(tcp4, 20, 16)
	h := VirtioNetHdr{Flags: 1, GSOType: VirtioGSOTCPv4, HdrLen: 40, GSOSize: 500, CsumStart: 20, CsumOffset: 16}
	if gso, partial, err := fromVirtio(&h, bytes.Clone(super)); gso != 500 || !partial || err != nil {
		t.Fatalf("super-packet: gso %d partial %v err %v", gso, partial, err)
	}

	// Headers this package cannot honour are refused.
	for _, c := range []struct {
		name string
		h    VirtioNetHdr
		want error
	}{
		{"ufo", VirtioNetHdr{Flags: 1, GSOType: VirtioGSOUDP, GSOSize: 500, CsumStart: 20, CsumOffset: 6}, errGSOType},
		{"gso-without-csum", VirtioNetHdr{GSOType: VirtioGSOTCPv4, GSOSize: 500}, errGSONoCsum},
		{"gso-size-0", VirtioNetHdr{Flags: 1, GSOType: VirtioGSOTCPv4, CsumStart: 20, CsumOffset: 16}, errGSOSize},
		{"csum-outside", needsCsum(1030, 16), errBadCsum},
		{"gso-csum-outside", VirtioNetHdr{Flags: 1, GSOType: VirtioGSOTCPv6, GSOSize: 500, CsumStart: 2000, CsumOffset: 16}, errBadCsum},
	} {
		if _, _, err := fromVirtio(&c.h, bytes.Clone(super)); err != c.want {
			t.Errorf("%s: err %v, want %v", c.name, err, c.want)
		}
	}
}

// TestTranslatedSuperPacket joins the translator and this package as a
// worker does: an IPv4 TCP super-packet from the device, translated whole,
// gets the TCPv6 header with its segment size, and its segments (what the
// kernel will make of it) are well-formed IPv6 packets.
func TestTranslatedSuperPacket(t *testing.T) {
	tr := newTestTranslator(t, 1500)
	ts := []byte{1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2}
	// Segments of 1428 bytes and 32 bytes of TCP header: 1500 as IPv6, the
	// MTU (larger ones would be declined: Fragmentation Needed per segment).
	data := payload(20 * 1428)
	in := partialize(pt.TCP4(pt.IPv4{TTL: 64, DF: true, Src: client4, Dst: server4},
		pt.TCP{Sport: 40000, Dport: 80, Seq: 1, Ack: 1, Flags: pt.ACK, Window: 500, Options: ts}, data), 20, 16)
	o := translator.NewOut()
	res, seg, ok := tr.TranslateGSO(in, 1428, o)
	if !ok || res.Verdict != translator.Forward {
		t.Fatalf("TranslateGSO: ok %v %v %v", ok, res.Verdict, res.Reason)
	}
	p := Packet{Buf: o.Pkts[0], Len: len(o.Pkts[0]), GSOSize: seg, Partial: true}
	h, err := HeaderFor(&p)
	want := VirtioNetHdr{Flags: 1, GSOType: VirtioGSOTCPv6, HdrLen: 40 + 32, GSOSize: 1500 - 40 - 32, CsumStart: 40, CsumOffset: 16}
	if err != nil || h != want {
		t.Fatalf("HeaderFor: %+v %v, want %+v", h, err, want)
	}
	out := buffers(64, 1500)
	n, err := Segment(p, out)
	if err != nil {
		t.Fatal(err)
	}
	var got []byte
	for i := range n {
		q, err := pt.Check(out[i])
		if err != nil || q.Version != 6 || q.TotalLen > 1500 {
			t.Fatalf("segment %d: %v (version %d, %d bytes)", i, err, q.Version, q.TotalLen)
		}
		got = append(got, q.Payload...)
	}
	if !bytes.Equal(got, data) {
		t.Fatal("payload changed")
	}
	// The partial sum TranslateGSO left must be what Segment computes from
	// scratch: complete the super-packet's checksum and check it whole.
	whole := bytes.Clone(o.Pkts[0])
	if err := completeChecksum(whole, 40, 16); err != nil {
		t.Fatal(err)
	}
	if _, err := pt.Check(whole); err != nil {
		t.Fatalf("completed super-packet: %v", err)
	}
}

// newTestTranslator maps server4 to server6 with the well-known prefix and
// the given MTU on both sides.
func newTestTranslator(t testing.TB, mtu int) *translator.Translator {
	t.Helper()
	table, err := translator.NewTable([]translator.Mapping{{
		IPv4: netipPrefix(server4, 32), IPv6: netipPrefix(server6, 128),
	}})
	if err != nil {
		t.Fatal(err)
	}
	tr, err := translator.New(translator.Config{
		PseudoPrefix:  translator.WellKnownPrefix,
		IPv4Addr:      mustAddr("192.0.2.1"),
		IPv6Addr:      mustAddr("2001:db8:ffff::1"),
		LowestIPv6MTU: 1280,
		IPv6MTU:       mtu,
		IPv4MTU:       mtu,
	}, table)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}
