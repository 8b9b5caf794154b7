package packettest

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
)

// Fragment4 splits an IPv4 packet into fragments of at most mtu bytes, as a
// router would (RFC 791 §3.2): every fragment's data but the last is a
// multiple of 8 bytes, options whose copied flag is set go into every
// fragment and the others only into the first, and ID, TOS, TTL and DF are
// kept (fragmenting a DF packet is the caller's choice). A packet that is
// already a fragment is split further. A packet that fits is returned whole,
// copied. It panics if pkt is malformed or mtu leaves no room for data.
func Fragment4(pkt []byte, mtu int) [][]byte {
	p, err := Check(pkt)
	if err != nil {
		panic(fmt.Sprintf("packettest: Fragment4: %v", err))
	}
	if p.Version != 4 {
		panic("packettest: Fragment4 of an IPv6 packet")
	}
	if len(pkt) <= mtu {
		return [][]byte{bytes.Clone(pkt)}
	}
	hdr := pkt[:p.HeaderLen]
	data := pkt[p.HeaderLen:]
	var frags [][]byte
	for at := 0; at < len(data); {
		if at > 0 { // later fragments carry only the copied options
			hdr = copiedHeader(pkt[:p.HeaderLen])
		}
		room := (mtu - len(hdr)) &^ 7
		if room <= 0 {
			panic(fmt.Sprintf("packettest: Fragment4: MTU %d leaves no room after a %d-byte header", mtu, len(hdr)))
		}
		n := min(room, len(data)-at)
		last := at+n == len(data)
		f := append(bytes.Clone(hdr), data[at:at+n]...)
		binary.BigEndian.PutUint16(f[2:], uint16(len(f)))
		ff := binary.BigEndian.Uint16(f[6:]) &^ 0x3fff // keep DF and the reserved bit
		ff |= p.FragOff + uint16(at/8)
		if !last || p.MF {
			ff |= 0x2000
		}
		binary.BigEndian.PutUint16(f[6:], ff)
		f[10], f[11] = 0, 0
		putChecksum(f[10:], 0, f[:len(hdr)])
		frags = append(frags, f)
		at += n
	}
	return frags
}

// copiedHeader is hdr with only the options whose copied flag (0x80) is set.
func copiedHeader(hdr []byte) []byte {
	var opts []byte
	for o := hdr[20:]; len(o) > 0; {
		if o[0] == 0 { // End of Option List
			break
		}
		if o[0] == 1 { // No Operation, not copied
			o = o[1:]
			continue
		}
		n := int(o[1])
		if o[0]&0x80 != 0 {
			opts = append(opts, o[:n]...)
		}
		o = o[n:]
	}
	opts = pad(opts, 4)
	h := append(bytes.Clone(hdr[:20]), opts...)
	h[0] = 0x40 | uint8(len(h)/4)
	return h
}

// Fragment6 splits an IPv6 packet into fragments of at most mtu bytes with
// identification id (RFC 8200 §4.5): the per-fragment headers (the IPv6
// header, Hop-by-Hop, and everything up to the last Routing header) are
// repeated, a Fragment header follows them, and every fragment's data but the
// last is a multiple of 8 bytes. Unlike Fragment4 it always fragments, so a
// packet that fits becomes one atomic fragment. It panics if pkt is
// malformed, already has a Fragment header, or mtu leaves no room for data.
func Fragment6(pkt []byte, mtu int, id uint32) [][]byte {
	p, err := Check(pkt)
	if err != nil {
		panic(fmt.Sprintf("packettest: Fragment6: %v", err))
	}
	if p.Version != 6 || p.Frag != nil {
		panic("packettest: Fragment6 needs an unfragmented IPv6 packet")
	}
	end, nhAt := 40, 6 // end of the per-fragment part; its last Next Header field
	for _, e := range p.Ext {
		if e.Proto == ProtoHopByHop || e.Proto == ProtoRouting {
			end, nhAt = e.Offset+e.Len, e.Offset
		}
	}
	data := pkt[end:]
	room := (mtu - end - 8) &^ 7
	if room <= 0 {
		panic(fmt.Sprintf("packettest: Fragment6: MTU %d leaves no room after %d bytes of headers", mtu, end+8))
	}
	var frags [][]byte
	for at := 0; at == 0 || at < len(data); {
		n := min(room, len(data)-at)
		f := append(bytes.Clone(pkt[:end]), Fragment(uint16(at/8), at+n < len(data), id).Bytes...)
		f[end] = pkt[nhAt]
		f[nhAt] = ProtoFragment
		f = append(f, data[at:at+n]...)
		binary.BigEndian.PutUint16(f[4:], uint16(len(f)-40))
		frags = append(frags, f)
		at += n
	}
	return frags
}

// Reassemble puts fragments of one IPv4 or IPv6 datagram back together, in
// any order, and returns the datagram as it was before fragmentation (for
// IPv6 without the Fragment header). Every fragment must pass Check and
// belong to the same datagram; gaps, overlaps (refused for IPv6 by RFC 5722)
// and a missing or repeated last fragment are errors.
func Reassemble(frags [][]byte) ([]byte, error) {
	if len(frags) == 0 {
		return nil, errors.New("no fragments")
	}
	type piece struct {
		p    *Packet
		off  int
		more bool
		data []byte
	}
	var pieces []piece
	for i, f := range frags {
		p, err := Check(f)
		if err != nil {
			return nil, fmt.Errorf("fragment %d: %w", i, err)
		}
		if !p.IsFragment() {
			return nil, fmt.Errorf("fragment %d is not a fragment", i)
		}
		pc := piece{p: p, off: int(p.FragOff) * 8, more: p.MF, data: f[p.HeaderLen:]}
		if p.Frag != nil {
			// The data starts right after the Fragment header, whatever
			// Check walked beyond it in a first fragment.
			at := fragHeader(p)
			pc = piece{p: p, off: int(p.Frag.Offset) * 8, more: p.Frag.More, data: f[at.Offset+8:]}
		}
		if q := pieces; len(q) > 0 {
			if err := sameDatagram(q[0].p, p); err != nil {
				return nil, fmt.Errorf("fragment %d: %v", i, err)
			}
		}
		pieces = append(pieces, pc)
	}
	slices.SortFunc(pieces, func(a, b piece) int { return a.off - b.off })
	var data []byte
	for i, pc := range pieces {
		switch {
		case pc.off > len(data):
			return nil, fmt.Errorf("gap: bytes %d to %d missing", len(data), pc.off)
		case pc.off < len(data):
			return nil, fmt.Errorf("fragments overlap at byte %d", pc.off)
		case pc.more == (i == len(pieces)-1):
			return nil, fmt.Errorf("fragment at offset %d: more-fragments flag %v", pc.off, pc.more)
		}
		data = append(data, pc.data...)
	}

	first := pieces[0].p
	if first.Version == 4 {
		h := bytes.Clone(first.Raw[:first.HeaderLen])
		out := append(h, data...)
		if len(out) > 0xffff {
			return nil, fmt.Errorf("reassembled datagram of %d bytes", len(out))
		}
		binary.BigEndian.PutUint16(out[2:], uint16(len(out)))
		binary.BigEndian.PutUint16(out[6:], binary.BigEndian.Uint16(out[6:])&0x4000) // DF only
		out[10], out[11] = 0, 0
		putChecksum(out[10:], 0, out[:first.HeaderLen])
		return out, nil
	}
	fh := fragHeader(first)
	nhAt := 6
	for _, e := range first.Ext {
		if e.Offset < fh.Offset {
			nhAt = e.Offset
		}
	}
	out := append(bytes.Clone(first.Raw[:fh.Offset]), data...)
	out[nhAt] = first.Raw[fh.Offset] // the Fragment header's Next Header
	if len(out)-40 > 0xffff {
		return nil, fmt.Errorf("reassembled payload of %d bytes", len(out)-40)
	}
	binary.BigEndian.PutUint16(out[4:], uint16(len(out)-40))
	return out, nil
}

func fragHeader(p *Packet) ExtInfo {
	for _, e := range p.Ext {
		if e.Proto == ProtoFragment {
			return e
		}
	}
	panic("packettest: no Fragment header")
}

// sameDatagram checks that b is a fragment of the datagram a belongs to
// (RFC 791: source, destination, protocol, ID; RFC 8200 §4.5: source,
// destination, Fragment Identification).
func sameDatagram(a, b *Packet) error {
	switch {
	case a.Version != b.Version:
		return fmt.Errorf("IPv%d among IPv%d fragments", b.Version, a.Version)
	case a.Src != b.Src || a.Dst != b.Dst:
		return fmt.Errorf("%v -> %v among fragments %v -> %v", b.Src, b.Dst, a.Src, a.Dst)
	case a.Version == 4 && (a.ID != b.ID || a.Proto != b.Proto):
		return fmt.Errorf("ID %d protocol %d among fragments with ID %d protocol %d", b.ID, b.Proto, a.ID, a.Proto)
	case a.Version == 6 && a.Frag.ID != b.Frag.ID:
		return fmt.Errorf("identification %#x among fragments with %#x", b.Frag.ID, a.Frag.ID)
	}
	return nil
}
