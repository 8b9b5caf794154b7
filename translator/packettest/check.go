package packettest

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// Packet is what Check found in a packet. Fields that do not apply to the
// packet's version or protocol are zero.
type Packet struct {
	Version   int
	Src, Dst  netip.Addr
	TOS       uint8  // IPv4 Type of Service or IPv6 Traffic Class
	Flow      uint32 // IPv6 Flow Label
	TTL       uint8  // IPv4 Time to Live or IPv6 Hop Limit
	Proto     uint8  // IPv4 Protocol, or the Next Header after the IPv6 extension headers
	HeaderLen int    // IPv4 IHL*4; IPv6 40 plus the extension headers walked
	TotalLen  int    // as the header says: IPv4 Total Length, IPv6 40 + Payload Length

	// IPv4 only.
	ID      uint16
	DF, MF  bool
	FragOff uint16 // in 8-byte units
	Options []byte

	// IPv6 only.
	Ext  []ExtInfo // extension headers in order
	Frag *Frag     // the Fragment header, if any

	Raw       []byte // the packet; for a quote, the quoted bytes without padding
	Truncated bool   // a quote with fewer bytes than TotalLen

	L4      []byte // bytes after the IP headers: transport header and data
	Payload []byte // bytes after the transport header; all of L4 when it is unknown or not the first fragment

	Ports        bool // Sport and Dport were present (TCP or UDP)
	Sport, Dport uint16
	UDPLen       uint16 // the UDP Length field
	TCP          *TCP   // a complete TCP header (its Options are the raw bytes)
	ICMP         *ICMP  // a complete ICMP or ICMPv6 header (8 bytes)

	Checksum        uint16 // the transport checksum field, if present
	ChecksumChecked bool   // the transport checksum was verified from scratch
	ChecksumOK      bool   // its result, when ChecksumChecked: Check refuses a wrong one, except in a Quote
	NotChecked      string // why ChecksumChecked is false

	// TinyFragment marks an IPv4 first fragment whose transport header is
	// cut short or does not parse: legal in IPv4, forbidden in IPv6 (RFC 7112).
	TinyFragment bool

	Quote     *Packet // the packet quoted by an ICMP error (Raw may be truncated)
	Extension []byte  // an RFC 4884 extension structure after the quote
}

// ExtInfo locates an IPv6 extension header in the packet.
type ExtInfo struct {
	Proto       uint8
	Offset, Len int
	// Routing header only: Routing Type and Segments Left (at Offset+3).
	RoutingType, SegmentsLeft uint8
}

// Frag is the content of an IPv6 Fragment header.
type Frag struct {
	Offset uint16 // in 8-byte units
	More   bool
	ID     uint32
}

// ICMP is an ICMPv4 or ICMPv6 header with the rest-of-header fields decoded
// according to the type.
type ICMP struct {
	Type, Code uint8
	Rest       [4]byte
	Error      bool   // an error message (it quotes a packet)
	ID, Seq    uint16 // echo request and reply
	MTU        uint32 // ICMPv4 Fragmentation Needed (3/4) or ICMPv6 Packet Too Big
	Pointer    uint32 // Parameter Problem
	Length     int    // RFC 4884 length of the original datagram field, in bytes; 0 if absent
}

// IsFragment reports whether p is a fragment, an IPv6 atomic fragment included.
func (p *Packet) IsFragment() bool {
	return p.MF || p.FragOff != 0 || p.Frag != nil
}

// ICMP errors may not exceed these sizes: RFC 1812 §4.3.2.3 (ICMPv4) and
// RFC 4443 §2.4(c) (ICMPv6).
const (
	MaxICMPv4Error = 576
	MaxICMPv6Error = 1280
)

// Check decodes pkt and verifies that it is a well-formed IPv4 or IPv6
// packet: version, header lengths, a total or payload length equal to
// len(pkt), the IPv4 header checksum, the IPv6 extension header chain,
// fragment fields, the transport header, its checksum (when the whole
// datagram is there), and for an ICMP error its size and the packet it quotes.
// The slices in the Packet share pkt's memory.
func Check(pkt []byte) (*Packet, error) {
	return parse(pkt, false)
}

func parse(b []byte, quote bool) (*Packet, error) {
	if len(b) == 0 {
		return nil, errors.New("empty packet")
	}
	p := &Packet{Version: int(b[0] >> 4)}
	var err error
	switch p.Version {
	case 4:
		err = p.parse4(b, quote)
	case 6:
		err = p.parse6(b, quote)
	default:
		err = fmt.Errorf("IP version %d", p.Version)
	}
	if err != nil {
		return nil, err
	}
	return p, nil
}

func (p *Packet) parse4(b []byte, quote bool) error {
	if len(b) < 20 {
		return fmt.Errorf("IPv4 header truncated: %d bytes, need 20", len(b))
	}
	hl := int(b[0]&0x0f) * 4
	total := int(binary.BigEndian.Uint16(b[2:]))
	switch {
	case hl < 20:
		return fmt.Errorf("IPv4 IHL %d, less than 5", hl/4)
	case len(b) < hl:
		return fmt.Errorf("IPv4 header truncated: %d bytes, IHL says %d", len(b), hl)
	case total < hl:
		return fmt.Errorf("IPv4 total length %d, less than the header length %d", total, hl)
	case !quote && total != len(b):
		return fmt.Errorf("IPv4 total length %d, but the packet has %d bytes", total, len(b))
	}
	b = b[:min(len(b), total)] // drop a quote's padding
	if err := verify("IPv4 header", 0, b[:hl], 10); err != nil {
		return err
	}
	// gopacket's DecodeFromBytes returns early at an End of Option List
	// option, leaving every field after the options unset. So it decodes the
	// fixed header alone, and the options are walked here.
	fixed := bytes.Clone(b[:20])
	fixed[0] = 0x45
	binary.BigEndian.PutUint16(fixed[2:], 20)
	var ip layers.IPv4
	if err := ip.DecodeFromBytes(fixed, gopacket.NilDecodeFeedback); err != nil {
		return fmt.Errorf("IPv4 header: %v", err)
	}
	if err := checkOptions("IPv4", b[20:hl]); err != nil {
		return err
	}
	if ip.Flags&layers.IPv4EvilBit != 0 {
		return errors.New("IPv4 reserved flag set")
	}
	p.Src, _ = netip.AddrFromSlice(ip.SrcIP)
	p.Dst, _ = netip.AddrFromSlice(ip.DstIP)
	p.TOS, p.TTL, p.Proto = ip.TOS, ip.TTL, uint8(ip.Protocol)
	p.HeaderLen, p.TotalLen = hl, total
	p.ID, p.FragOff = ip.Id, ip.FragOffset
	p.DF = ip.Flags&layers.IPv4DontFragment != 0
	p.MF = ip.Flags&layers.IPv4MoreFragments != 0
	p.Options = b[20:hl]
	p.Raw, p.Truncated = b, len(b) < total
	if err := fragData(int(p.FragOff), p.MF, total-hl); err != nil {
		return err
	}
	complete := !p.IsFragment() && !p.Truncated
	return p.parseL4(b[hl:], p.FragOff == 0, complete, p.Dst, quote)
}

// checkOptions checks that the options of an IPv4 or TCP header (what
// names which) fill it (RFC 791 §3.1, RFC 9293 §3.1): after End of Option
// List only padding follows; No Operation is one byte; every other option
// has a length of at least 2 that stays in the header. o starts at byte 20
// of the header in both.
func checkOptions(what string, o []byte) error {
	for i := 0; i < len(o); {
		switch {
		case o[i] == 0:
			return nil
		case o[i] == 1:
			i++
		case i+2 > len(o) || o[i+1] < 2 || i+int(o[i+1]) > len(o):
			return fmt.Errorf("%s option %#02x at byte %d overruns the header or has a length below 2", what, o[i], 20+i)
		default:
			i += int(o[i+1])
		}
	}
	return nil
}

// fragData checks the data of a fragment: only the last may have a length
// that is not a multiple of 8 (RFC 791, RFC 8200 §4.5), and no fragment may
// reach past the largest datagram.
func fragData(off int, more bool, n int) error {
	if more && (n == 0 || n%8 != 0) {
		return fmt.Errorf("fragment with more to come carries %d bytes, not a positive multiple of 8", n)
	}
	if off*8+n > 0xffff {
		return fmt.Errorf("fragment at offset %d with %d bytes ends past 65535", off*8, n)
	}
	return nil
}

func (p *Packet) parse6(b []byte, quote bool) error {
	if len(b) < 40 {
		return fmt.Errorf("IPv6 header truncated: %d bytes, need 40", len(b))
	}
	total := 40 + int(binary.BigEndian.Uint16(b[4:]))
	if !quote && total != len(b) {
		return fmt.Errorf("IPv6 payload length %d, but %d bytes follow the header", total-40, len(b)-40)
	}
	b = b[:min(len(b), total)]
	var ip layers.IPv6
	// DecodeFromBytes fills the fixed header before anything else. Its errors
	// are about a zero Payload Length (which it takes for a jumbogram) and the
	// Hop-by-Hop header, which the walk below checks itself; it also refuses
	// a Pad1 that ends the packet. So its error is not used.
	_ = ip.DecodeFromBytes(b, gopacket.NilDecodeFeedback)
	p.Src = netip.AddrFrom16([16]byte(ip.SrcIP))
	p.Dst = netip.AddrFrom16([16]byte(ip.DstIP))
	p.TOS, p.Flow, p.TTL = ip.TrafficClass, ip.FlowLabel, ip.HopLimit
	p.TotalLen = total
	p.Raw, p.Truncated = b, len(b) < total

	off, nh := 40, b[6]
	first, complete := true, !p.Truncated
	dst, dstUnknown := p.Dst, ""
	for first && isExt(nh) {
		if nh == ProtoHopByHop && off != 40 {
			if quote {
				// A Parameter Problem quotes exactly such a packet: the
				// walk stops where the chain went wrong.
				p.Proto, p.HeaderLen = nh, off
				p.NotChecked = "quote of a misplaced Hop-by-Hop header"
				return nil
			}
			return fmt.Errorf("Hop-by-Hop Options header at offset %d: it must follow the IPv6 header (RFC 8200 §4.1)", off)
		}
		n := extLen(nh, b[off:])
		if n == 0 || off+n > len(b) {
			switch {
			case p.Truncated: // a quote cut inside the chain: nothing more to see
				p.Proto, p.HeaderLen = nh, off
				p.NotChecked = "quote truncated"
				return nil
			case p.Frag != nil:
				return fmt.Errorf("first fragment ends inside the extension header chain (RFC 7112)")
			}
			return fmt.Errorf("extension header %d at offset %d overruns the packet", nh, off)
		}
		h := b[off : off+n]
		e := ExtInfo{Proto: nh, Offset: off, Len: n}
		var skip layers.IPv6ExtensionSkipper
		switch nh {
		case ProtoHopByHop, ProtoDestOpts:
			if err := skip.DecodeFromBytes(h, gopacket.NilDecodeFeedback); err != nil {
				return fmt.Errorf("extension header %d: %v", nh, err)
			}
			if err := checkTLV(h); err != nil {
				return fmt.Errorf("extension header %d at offset %d: %v", nh, off, err)
			}
		case ProtoRouting:
			if err := skip.DecodeFromBytes(h, gopacket.NilDecodeFeedback); err != nil {
				return fmt.Errorf("routing header: %v", err)
			}
			e.RoutingType, e.SegmentsLeft = h[2], h[3]
			d, ok := routingFinalDst(h)
			if !ok {
				dstUnknown = fmt.Sprintf("routing header type %d: final destination unknown", h[2])
			} else if d.IsValid() {
				dst = d
			}
		case ProtoFragment:
			if p.Frag != nil {
				return fmt.Errorf("second Fragment header at offset %d", off)
			}
			f, ok := gopacket.NewPacket(h, layers.LayerTypeIPv6Fragment, gopacket.NoCopy).
				Layer(layers.LayerTypeIPv6Fragment).(*layers.IPv6Fragment)
			if !ok {
				return fmt.Errorf("Fragment header at offset %d: gopacket cannot decode it", off)
			}
			if f.Reserved1 != 0 || f.Reserved2 != 0 {
				return fmt.Errorf("Fragment header reserved fields %#02x, %#x, not zero", f.Reserved1, f.Reserved2)
			}
			p.Frag = &Frag{Offset: f.FragmentOffset, More: f.MoreFragments, ID: f.Identification}
			if err := fragData(int(f.FragmentOffset), f.MoreFragments, total-off-n); err != nil {
				return err
			}
			first = f.FragmentOffset == 0
			complete = complete && first && !f.MoreFragments // an atomic fragment is whole
		}
		p.Ext = append(p.Ext, e)
		nh = h[0]
		off += n
	}
	p.Proto, p.HeaderLen = nh, off
	if dstUnknown != "" && complete {
		complete = false
		p.NotChecked = dstUnknown
	}
	return p.parseL4(b[off:], first, complete, dst, quote)
}

// isExt reports whether nh is an extension header that Check walks through
// (RFC 8200 §4; AH per RFC 4302). ESP and anything else end the chain.
func isExt(nh uint8) bool {
	switch nh {
	case ProtoHopByHop, ProtoRouting, ProtoFragment, ProtoDestOpts, ProtoAH:
		return true
	}
	return false
}

// extLen is the length of the extension header at h, or 0 if h is too
// short to tell.
func extLen(nh uint8, h []byte) int {
	switch {
	case nh == ProtoFragment:
		return 8
	case len(h) < 2:
		return 0
	case nh == ProtoAH:
		return (int(h[1]) + 2) * 4 // RFC 4302 §2.2: in 4-octet units, minus 2
	}
	return (int(h[1]) + 1) * 8
}

// checkTLV checks that the options of a Hop-by-Hop or Destination Options
// header fill it exactly (RFC 8200 §4.2). Jumbograms (RFC 2675) are refused:
// a length field that does not give the packet length is what Check is
// here to catch.
func checkTLV(h []byte) error {
	for i := 2; i < len(h); {
		switch {
		case h[i] == 0: // Pad1
			i++
			continue
		case i+2 > len(h) || i+2+int(h[i+1]) > len(h):
			return fmt.Errorf("option %#02x at byte %d overruns the header", h[i], i)
		case h[i] == 0xc2:
			return errors.New("Jumbo Payload option: jumbograms are not expected")
		}
		i += 2 + int(h[i+1])
	}
	return nil
}

// parseL4 decodes the transport header in l4. first: l4 starts with the
// transport header; complete: l4 is the whole transport datagram, so its
// checksum can be verified; dst: the destination for the pseudo-header.
// Outside a quote anything malformed is an error; inside one it is recorded.
func (p *Packet) parseL4(l4 []byte, first, complete bool, dst netip.Addr, quote bool) error {
	p.L4, p.Payload = l4, l4
	if !first {
		p.NotChecked = "not the first fragment"
		return nil
	}
	icmp := icmpProto(p.Version)
	// What a truncated transport header still shows.
	csumAt := -1
	switch p.Proto {
	case ProtoTCP:
		csumAt = 16
	case ProtoUDP:
		csumAt = 6
	case icmp:
		csumAt = 2
	default:
		p.NotChecked = fmt.Sprintf("protocol %d has no checksum known here", p.Proto)
		return nil
	}
	if p.Proto != icmp && len(l4) >= 4 {
		p.Ports = true
		p.Sport = binary.BigEndian.Uint16(l4)
		p.Dport = binary.BigEndian.Uint16(l4[2:])
	}
	if len(l4) >= csumAt+2 {
		p.Checksum = binary.BigEndian.Uint16(l4[csumAt:])
	}

	name := map[uint8]string{ProtoTCP: "TCP", ProtoUDP: "UDP", ProtoICMP: "ICMPv4", ProtoICMPv6: "ICMPv6"}[p.Proto]
	var err error
	switch p.Proto {
	case ProtoTCP:
		err = p.tcp(l4)
	case ProtoUDP:
		err = p.udp(l4, complete)
	default:
		if len(l4) < 8 {
			err = fmt.Errorf("%s header truncated: %d bytes, need 8", name, len(l4))
			break
		}
		p.ICMP = icmpFields(p.Version, l4)
		p.Payload = l4[8:]
	}
	switch {
	case err != nil && quote:
		p.NotChecked = fmt.Sprintf("quoted transport header: %v", err)
		return nil
	case err != nil && complete:
		return err
	case err != nil && p.Version == 6:
		return fmt.Errorf("first fragment lacks the whole upper-layer header (RFC 7112): %v", err)
	case err != nil: // a tiny IPv4 first fragment is legal, if unwelcome (RFC 1858)
		p.NotChecked = "first fragment without the whole transport header"
		p.TinyFragment = true
		return nil
	}

	if !quote && p.ICMP != nil && p.ICMP.Error {
		limit := MaxICMPv4Error
		if p.Version == 6 {
			limit = MaxICMPv6Error
		}
		if len(p.Raw) > limit {
			return fmt.Errorf("%s error of %d bytes, more than %d", name, len(p.Raw), limit)
		}
	}

	switch {
	case !complete && p.NotChecked != "":
	case !complete && p.Truncated:
		p.NotChecked = "quote truncated"
	case !complete:
		p.NotChecked = "fragment"
	case p.Proto == ProtoUDP && p.Checksum == 0 && p.Version == 4:
		p.NotChecked = "UDP checksum 0: none sent (IPv4)"
	default:
		acc := uint64(0)
		if p.Proto != ProtoICMP {
			acc = pseudo(p.Src, dst, p.Proto, len(l4))
		}
		err := verify(name, acc, l4, csumAt)
		if err == nil && p.Proto == ProtoUDP && p.Checksum == 0 {
			err = errors.New("UDP checksum 0 over IPv6 (RFC 8200 §8.1)")
		}
		p.ChecksumChecked, p.ChecksumOK = true, err == nil
		if err != nil && !quote {
			return err
		}
	}

	if !quote && complete && p.ICMP != nil && p.ICMP.Error {
		return p.quote()
	}
	return nil
}

func (p *Packet) tcp(l4 []byte) (err error) {
	// gopacket v1.3.1 panics on some malformed option lists (an index out
	// of range in its option walk, found by fuzzing): report it as the
	// malformed header it is.
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("TCP header: options do not parse (decoder panicked: %v)", r)
		}
	}()
	// gopacket v1.3.1 also loops forever, growing its option slice until
	// memory runs out, on an MPTCP option of length 0 (found by fuzzing):
	// the options are walked here first, as IPv4's are.
	if len(l4) >= 20 {
		if hl := int(l4[12]>>4) * 4; hl >= 20 && hl <= len(l4) {
			if err := checkOptions("TCP", l4[20:hl]); err != nil {
				return err
			}
		}
	}
	var t layers.TCP
	if err := t.DecodeFromBytes(l4, gopacket.NilDecodeFeedback); err != nil {
		return fmt.Errorf("TCP header: %v", err)
	}
	hl := int(t.DataOffset) * 4
	p.TCP = &TCP{
		Sport: uint16(t.SrcPort), Dport: uint16(t.DstPort),
		Seq: t.Seq, Ack: t.Ack, Flags: l4[13],
		Window: t.Window, Urgent: t.Urgent,
		Options: l4[20:hl],
	}
	p.Payload = l4[hl:]
	return nil
}

func (p *Packet) udp(l4 []byte, complete bool) error {
	var u layers.UDP
	if err := u.DecodeFromBytes(l4, gopacket.NilDecodeFeedback); err != nil {
		return fmt.Errorf("UDP header: %v", err)
	}
	p.UDPLen = u.Length
	p.Payload = l4[8:]
	if u.Length < 8 {
		return fmt.Errorf("UDP length %d, less than 8", u.Length)
	}
	if complete && int(u.Length) != len(l4) {
		return fmt.Errorf("UDP length %d, but the datagram has %d bytes", u.Length, len(l4))
	}
	return nil
}

// icmpFields decodes the 8-byte ICMP header h, reading the rest of header
// as its type defines it (RFC 792, RFC 1191, RFC 4443, RFC 4884).
func icmpFields(version int, h []byte) *ICMP {
	m := &ICMP{Rest: [4]byte(h[4:8])}
	r16 := binary.BigEndian.Uint16(h[6:])
	r32 := binary.BigEndian.Uint32(h[4:])
	if version == 4 {
		var l layers.ICMPv4
		_ = l.DecodeFromBytes(h, gopacket.NilDecodeFeedback) // cannot fail on 8 bytes
		m.Type, m.Code = l.TypeCode.Type(), l.TypeCode.Code()
		m.Error = isError(version, m.Type)
		switch m.Type {
		case 0, 8:
			m.ID, m.Seq = l.Id, l.Seq
		case 3:
			if m.Code == 4 {
				m.MTU = uint32(r16)
			}
			m.Length = int(h[5]) * 4
		case 11:
			m.Length = int(h[5]) * 4
		case 12:
			m.Pointer = uint32(h[4])
			m.Length = int(h[5]) * 4
		}
		return m
	}
	var l layers.ICMPv6
	_ = l.DecodeFromBytes(h, gopacket.NilDecodeFeedback)
	m.Type, m.Code = l.TypeCode.Type(), l.TypeCode.Code()
	m.Error = isError(version, m.Type)
	switch m.Type {
	case 1, 3:
		m.Length = int(h[4]) * 8
	case 2:
		m.MTU = r32
	case 4:
		m.Pointer = r32
	case 128, 129:
		m.ID, m.Seq = binary.BigEndian.Uint16(h[4:]), r16
	}
	return m
}

// isError reports whether an ICMP type is an error message: RFC 792 and
// RFC 1812 for ICMPv4 (Redirect and Source Quench included), RFC 4443 §2.1
// for ICMPv6.
func isError(version int, typ uint8) bool {
	if version == 4 {
		return typ == 3 || typ == 4 || typ == 5 || typ == 11 || typ == 12
	}
	return typ < 128
}

func icmpProto(version int) uint8 {
	if version == 4 {
		return ProtoICMP
	}
	return ProtoICMPv6
}

// quotes reports whether an ICMP error of this type carries the invoking
// packet after its header.
func quotes(version int, typ uint8) bool {
	if version == 4 {
		return isError(4, typ)
	}
	return typ >= 1 && typ <= 4 // unassigned error types have no known layout
}

// quote parses the packet quoted by an ICMP error, and the RFC 4884
// extension structure after it.
func (p *Packet) quote() error {
	if !quotes(p.Version, p.ICMP.Type) {
		return nil
	}
	orig := p.Payload
	if n := p.ICMP.Length; n > 0 {
		switch {
		case n > len(orig):
			return fmt.Errorf("RFC 4884 length %d bytes, but %d follow the ICMP header", n, len(orig))
		case n < 128:
			return fmt.Errorf("RFC 4884 length %d bytes, less than 128 (RFC 4884 §4.1)", n)
		}
		orig, p.Extension = orig[:n], orig[n:]
		if err := checkExtension(p.Extension); err != nil {
			return err
		}
	}
	q, err := parse(orig, true)
	if err != nil {
		return fmt.Errorf("quoted packet: %w", err)
	}
	if q.Version != p.Version {
		return fmt.Errorf("ICMP error in IPv%d quotes an IPv%d packet", p.Version, q.Version)
	}
	// Only the first fragment shows the type; L4 is empty if the quote was
	// cut before it.
	if q.Proto == icmpProto(q.Version) && q.FragOff == 0 && (q.Frag == nil || q.Frag.Offset == 0) &&
		len(q.L4) > 0 && isError(q.Version, q.L4[0]) {
		return errors.New("ICMP error quotes an ICMP error (RFC 1812 §4.3.2.7, RFC 4443 §2.4(e))")
	}
	p.Quote = q
	return nil
}

// checkExtension checks an RFC 4884 §7 extension structure: a header of
// version 2 and a checksum that is zero (not sent) or right.
func checkExtension(ext []byte) error {
	if len(ext) == 0 {
		return nil
	}
	if len(ext) < 4 {
		return fmt.Errorf("RFC 4884 extension of %d bytes, shorter than its header", len(ext))
	}
	if v := ext[0] >> 4; v != 2 {
		return fmt.Errorf("RFC 4884 extension version %d, want 2", v)
	}
	if binary.BigEndian.Uint16(ext[2:]) == 0 {
		return nil
	}
	return verify("RFC 4884 extension", 0, ext, 2)
}

// verify checks that data, whose checksum field is at data[at:at+2], sums
// with the pseudo-header sum acc to all ones, the receiver's test (RFC 1071).
func verify(what string, acc uint64, data []byte, at int) error {
	if fold(sum(acc, data)) == 0xffff {
		return nil
	}
	z := bytes.Clone(data)
	z[at], z[at+1] = 0, 0
	return fmt.Errorf("%s checksum %#04x, want %#04x", what, binary.BigEndian.Uint16(data[at:]), checksum(sum(acc, z)))
}
