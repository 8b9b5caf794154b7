package tun

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"

	pt "github.com/map646/map646/translator/packettest"
)

// Fuzz targets for the code that parses what the kernel hands over (the
// virtio-net header) and the code that cuts super-packets (Segment). The
// corpus they found interesting is in testdata/fuzz; `go test` runs it
// with the seeds below. Run one for longer with, for example,
//
//	go test -run '^$' -fuzz FuzzSegment -fuzztime 3m ./translator/tun/

// fuzzSeeds are well-formed packets of each kind the device hands over:
// TCP and UDP, IPv4 and IPv6 (one with a Hop-by-Hop header), each large
// enough to be a super-packet of several segments with a short last one.
func fuzzSeeds() [][]byte {
	tcp := pt.TCP{Sport: 40000, Dport: 80, Seq: 0xfffff000, Ack: 77, Flags: pt.ACK | 0x08 | 0x01 | 0x80, Window: 512}
	ip4 := pt.IPv4{TTL: 64, DF: true, ID: 0xfffe, Src: client4, Dst: server4}
	ip6 := pt.IPv6{Hop: 64, Src: server6, Dst: client6}
	ip6hbh := ip6
	ip6hbh.Ext = []pt.Ext{pt.HopByHop([]byte{1, 4, 0, 0, 0, 0})}
	return [][]byte{
		pt.TCP4(ip4, tcp, payload(3*100+7)),
		pt.TCP6(ip6hbh, tcp, payload(2*100+1)),
		pt.UDP4(ip4, 40000, 53, payload(4*100)),
		pt.UDP6(ip6, 53, 40000, payload(3*100+99)),
	}
}

// FuzzVirtioHeader: decoding a header and applying it to a packet
// (fromVirtio) never panics, and building the header for a packet to
// write (HeaderFor) never panics; what they accept obeys these rules:
//
//   - a decoded header encodes back to the same 10 bytes;
//   - fromVirtio returns a segment size only for the three GSO types it
//     honours, always with Partial and never 0, and its checksum offsets
//     lie inside the packet; an ordinary NEEDS_CSUM packet comes out with
//     a checksum that verifies (RFC 1071, computed here independently) and
//     no other byte changed;
//   - HeaderFor's header survives Encode and Decode, and fromVirtio accepts
//     it for the same packet with the same segment size: what the device
//     writes, it would read.
func FuzzVirtioHeader(f *testing.F) {
	for _, b := range fuzzSeeds() {
		for _, gso := range []uint16{0, 100} {
			p := packet(b, int(gso), true)
			h, err := HeaderFor(&p)
			if err != nil {
				f.Fatal(err)
			}
			var hdr [VirtioNetHdrLen]byte
			h.Encode(hdr[:])
			f.Add(hdr[:], b, gso, true)
		}
	}
	f.Add([]byte{1, 0, 0, 0, 0, 0, 20, 0, 6, 0}, fuzzSeeds()[2], uint16(0), false)
	f.Fuzz(func(t *testing.T, hdr, pkt []byte, gso uint16, partial bool) {
		var h VirtioNetHdr
		if err := h.Decode(hdr); err != nil {
			if len(hdr) >= VirtioNetHdrLen || !errors.Is(err, errShortHdr) {
				t.Fatalf("Decode of %d bytes: %v", len(hdr), err)
			}
		} else {
			var again [VirtioNetHdrLen]byte
			h.Encode(again[:])
			if !bytes.Equal(again[:], hdr[:VirtioNetHdrLen]) {
				t.Fatalf("decoded %x, encoded back %x", hdr[:VirtioNetHdrLen], again)
			}
			checkFromVirtio(t, &h, pkt)
		}
		checkHeaderFor(t, pkt, int(gso), partial)
	})
}

func checkFromVirtio(t *testing.T, h *VirtioNetHdr, pkt []byte) {
	got := bytes.Clone(pkt)
	size, partial, err := fromVirtio(h, got)
	if err != nil {
		if !bytes.Equal(got, pkt) {
			t.Fatalf("fromVirtio refused the packet (%v) but changed it", err)
		}
		return
	}
	start, off := int(h.CsumStart), int(h.CsumOffset)
	switch h.GSOType &^ VirtioGSOECN {
	case VirtioGSOTCPv4, VirtioGSOTCPv6, VirtioGSOUDPL4:
		if size != int(h.GSOSize) || size == 0 || !partial || h.Flags&VirtioFlagNeedsCsum == 0 || start+off+2 > len(pkt) {
			t.Fatalf("super-packet accepted: size %d, partial %v from %+v and %d bytes", size, partial, *h, len(pkt))
		}
		if !bytes.Equal(got, pkt) {
			t.Fatal("a super-packet's bytes changed")
		}
	case VirtioGSONone:
		if size != 0 || partial {
			t.Fatalf("ordinary packet accepted with size %d, partial %v", size, partial)
		}
		if h.Flags&VirtioFlagNeedsCsum == 0 {
			if !bytes.Equal(got, pkt) {
				t.Fatal("a packet with a complete checksum changed")
			}
			return
		}
		// The field held the pseudo-header sum F; the checksum verifies
		// when the sum from start, plus F, is 0xffff (ones' complement).
		// The kernel's csum_offset is always even (16 for TCP, 6 for UDP);
		// an odd one puts the field across two words, where F means nothing.
		if off%2 == 0 {
			acc := uint32(naiveSum(got[start:])) + uint32(binary.BigEndian.Uint16(pkt[start+off:]))
			if acc = acc>>16 + acc&0xffff; acc != 0xffff {
				t.Fatalf("completed checksum at %d+%d does not verify: sum %#x", start, off, acc)
			}
		}
		if !bytes.Equal(got[:start+off], pkt[:start+off]) || !bytes.Equal(got[start+off+2:], pkt[start+off+2:]) {
			t.Fatal("completing the checksum changed other bytes")
		}
	default:
		t.Fatalf("GSO type %#x accepted", h.GSOType)
	}
}

func checkHeaderFor(t *testing.T, pkt []byte, gso int, partial bool) {
	p := packet(pkt, gso, partial)
	h, err := HeaderFor(&p)
	if !bytes.Equal(p.Bytes(), pkt) {
		t.Fatal("HeaderFor changed the packet")
	}
	if err != nil {
		return
	}
	if !partial {
		if h != (VirtioNetHdr{}) {
			t.Fatalf("complete packet got header %+v", h)
		}
		return
	}
	var enc [VirtioNetHdrLen]byte
	h.Encode(enc[:])
	var dec VirtioNetHdr
	if dec.Decode(enc[:]); dec != h {
		t.Fatalf("header %+v decodes as %+v", h, dec)
	}
	size, readPartial, err := fromVirtio(&h, bytes.Clone(pkt))
	if err != nil {
		t.Fatalf("HeaderFor built %+v, which a read would refuse: %v", h, err)
	}
	if h.GSOType == VirtioGSONone {
		// A single-segment super-packet is written as an ordinary one.
		if size != 0 || readPartial {
			t.Fatalf("ordinary header %+v read as size %d", h, size)
		}
		return
	}
	if size != gso || !readPartial || int(h.HdrLen) > len(pkt) || int(h.HdrLen) <= int(h.CsumStart) {
		t.Fatalf("header %+v for segment size %d, %d bytes: read back as size %d", h, gso, len(pkt), size)
	}
	want := uint8(VirtioGSOUDPL4)
	switch {
	case pkt[0]>>4 == 4 && h.GSOType != VirtioGSOUDPL4:
		want = VirtioGSOTCPv4
	case h.GSOType != VirtioGSOUDPL4:
		want = VirtioGSOTCPv6
	}
	if h.GSOType&^VirtioGSOECN != want {
		t.Fatalf("IPv%d packet got GSO type %#x, want %#x", pkt[0]>>4, h.GSOType, want)
	}
}

// FuzzSegment: Segment never panics, never writes outside the room of its
// output buffers, and never changes its input. When the input, with its
// checksums set right, is a well-formed TCP or UDP packet by packettest's
// independent checker (not a fragment, no IPv6 extension header but
// Hop-by-Hop and Destination Options), and there are buffers enough,
// Segment succeeds and:
//
//   - it makes ceil(payload/gso) segments (one when gso is 0 or covers the
//     payload), each a well-formed packet with checksums verified from
//     scratch and a payload of gso bytes but the last;
//   - the payloads concatenate to the original payload;
//   - IPv4 Identification counts up from the original, TCP sequence
//     numbers advance by the bytes before, FIN and PSH stay on the last
//     segment and CWR on the first only; every other header byte is the
//     original's.
func FuzzSegment(f *testing.F) {
	for _, b := range fuzzSeeds() {
		f.Add(b, uint16(100), uint16(200), false)
		f.Add(b, uint16(0), uint16(1500), true)
	}
	f.Fuzz(func(t *testing.T, pkt []byte, gso, room uint16, repair bool) {
		if repair {
			pkt = fixChecksums(bytes.Clone(pkt))
		}
		const nbuf, guard = 64, 16
		stride := int(room) + guard
		mem := bytes.Repeat([]byte{0xa5}, nbuf*stride)
		out := make([][]byte, nbuf)
		for i := range out {
			out[i] = mem[i*stride : i*stride+int(room) : i*stride+int(room)]
		}
		in := packet(pkt, int(gso), repair)
		orig := bytes.Clone(in.Buf)
		n, err := Segment(in, out)
		if !bytes.Equal(in.Buf, orig) {
			t.Fatal("Segment changed its input")
		}
		for i := range nbuf {
			if g := mem[i*stride+int(room) : (i+1)*stride]; !bytes.Equal(g, bytes.Repeat([]byte{0xa5}, guard)) {
				t.Fatalf("buffer %d: written past its room of %d bytes", i, room)
			}
		}
		p, cerr := pt.Check(pkt)
		if cerr != nil || !p.ChecksumChecked || !p.ChecksumOK || p.IsFragment() || (p.Proto != pt.ProtoTCP && p.Proto != pt.ProtoUDP) {
			return // not the well-formed packet the properties are about
		}
		for _, e := range p.Ext {
			if e.Proto != pt.ProtoHopByHop && e.Proto != pt.ProtoDestOpts {
				return // the kernel does not make super-packets with these
			}
		}
		hdrLen := len(pkt) - len(p.Payload)
		seg := int(gso)
		if seg == 0 || seg > len(p.Payload) {
			seg = max(len(p.Payload), 1)
		}
		want := max((len(p.Payload)+seg-1)/seg, 1)
		if want > nbuf || hdrLen+min(seg, len(p.Payload)) > int(room) {
			if err == nil {
				t.Fatalf("%d segments of up to %d bytes into %d buffers of %d: no error", want, hdrLen+seg, nbuf, room)
			}
			return
		}
		if err != nil || n != want {
			t.Fatalf("well-formed packet (%d bytes, header %d, segment size %d): %d segments, %v; want %d", len(pkt), hdrLen, gso, n, err, want)
		}
		checkSegments(t, pkt, p, out[:n], seg)
	})
}

// checkSegments checks the segments of the well-formed packet pkt (parsed
// as p) against FuzzSegment's properties.
func checkSegments(t *testing.T, pkt []byte, p *pt.Packet, segs [][]byte, seg int) {
	var joined []byte
	hdrLen := len(pkt) - len(p.Payload)
	for i, s := range segs {
		q, err := pt.Check(s)
		if err != nil || !q.ChecksumChecked {
			t.Fatalf("segment %d of %d: %v (checksum checked: %v)\n%s", i, len(segs), err, q != nil && q.ChecksumChecked, pt.Format(s))
		}
		last := i == len(segs)-1
		if len(q.Payload) != seg && !last || len(q.Payload) > seg {
			t.Fatalf("segment %d of %d: %d payload bytes, segment size %d", i, len(segs), len(q.Payload), seg)
		}
		if len(s)-len(q.Payload) != hdrLen {
			t.Fatalf("segment %d: header of %d bytes, want %d", i, len(s)-len(q.Payload), hdrLen)
		}
		joined = append(joined, q.Payload...)
		if q.Version == 4 && q.ID != p.ID+uint16(i) {
			t.Fatalf("segment %d: IPv4 ID %d, want %d", i, q.ID, p.ID+uint16(i))
		}
		// Every header byte but the fields Segment must set is the original's.
		want := bytes.Clone(pkt[:hdrLen])
		got := bytes.Clone(s[:hdrLen])
		l4 := len(pkt) - len(p.L4) // the IP header length
		for _, b := range [][]byte{want, got} {
			if q.Version == 4 {
				clear(b[2:6])   // total length, ID
				clear(b[10:12]) // header checksum
			} else {
				clear(b[4:6]) // payload length
			}
			if q.Proto == pt.ProtoTCP {
				clear(b[l4+4 : l4+8]) // sequence number
				b[l4+13] &^= tcpFIN | tcpPSH | tcpCWR
				clear(b[l4+16 : l4+18])
			} else {
				clear(b[l4+4 : l4+8]) // length, checksum
			}
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("segment %d: header\n%x\nwant (lengths, IDs, sequence numbers, flags and checksums aside)\n%x", i, got, want)
		}
		if q.Proto != pt.ProtoTCP {
			continue
		}
		if wantSeq := p.TCP.Seq + uint32(i*seg); q.TCP.Seq != wantSeq {
			t.Fatalf("segment %d: sequence number %d, want %d", i, q.TCP.Seq, wantSeq)
		}
		flags := p.TCP.Flags
		if !last {
			flags &^= tcpFIN | tcpPSH
		}
		if i != 0 {
			flags &^= tcpCWR
		}
		if q.TCP.Flags != flags {
			t.Fatalf("segment %d of %d: TCP flags %#x, want %#x (from %#x)", i, len(segs), q.TCP.Flags, flags, p.TCP.Flags)
		}
	}
	if !bytes.Equal(joined, p.Payload) {
		t.Fatalf("segments' payloads (%d bytes) differ from the packet's (%d bytes)", len(joined), len(p.Payload))
	}
}

// fixChecksums sets the IPv4 header checksum and the TCP or UDP checksum of
// pkt where its headers let them be found, so that the fuzzer's packets
// can be well-formed: it cannot find a right checksum by mutation. It uses
// naiveSum, not package checksum's Sum; where it goes wrong, packettest
// refuses the packet and FuzzSegment checks less.
func fixChecksums(pkt []byte) []byte {
	l4, proto, total, err := transport(pkt)
	if err != nil {
		return pkt
	}
	if pkt[0]>>4 == 4 {
		pkt[10], pkt[11] = 0, 0
		binary.BigEndian.PutUint16(pkt[10:], ^naiveSum(pkt[:l4]))
	}
	at := map[uint8]int{pt.ProtoTCP: 16, pt.ProtoUDP: 6}[proto]
	if at == 0 || l4+at+2 > total {
		return pkt
	}
	if proto == pt.ProtoUDP && l4+8 <= total {
		binary.BigEndian.PutUint16(pkt[l4+4:], uint16(total-l4))
	}
	pkt[l4+at], pkt[l4+at+1] = 0, 0
	var ph []byte
	if pkt[0]>>4 == 4 {
		ph = append(ph, pkt[12:20]...)
	} else {
		ph = append(ph, pkt[8:40]...)
	}
	ph = append(ph, 0, proto)
	ph = binary.BigEndian.AppendUint32(ph, uint32(total-l4))
	c := ^naiveSum(append(ph, pkt[l4:total]...))
	if c == 0 && proto == pt.ProtoUDP {
		c = 0xffff
	}
	binary.BigEndian.PutUint16(pkt[l4+at:], c)
	return pkt
}
