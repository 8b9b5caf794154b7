package pcap

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// File header of classic pcap (24 bytes), in the byte order given by the
// magic number; the writer lays it out, pcapgo reads it:
//
//	0       magic number
//	4       version major (2), version minor (4)
//	8       reserved (thiszone, sigfigs)
//	16      snapshot length
//	20      link type
//
// Record header (16 bytes), followed by the captured bytes:
//
//	0       timestamp seconds
//	4       timestamp microseconds or nanoseconds (by magic number)
//	8       captured length
//	12      original length
const (
	fileHeaderLen   = 24
	recordHeaderLen = 16

	magicMicro  = 0xa1b2c3d4
	magicNano   = 0xa1b23c4d
	magicPcapng = 0x0a0d0d0a // Section Header Block type; a palindrome, so either byte order
)

// Link types (https://www.tcpdump.org/linktypes.html).
const (
	LinkTypeEthernet  = 1
	LinkTypeRaw       = 101 // IPv4 or IPv6 by the version nibble
	LinkTypeLinuxSLL  = 113 // Linux cooked capture v1: tcpdump -i any before libpcap 1.10
	LinkTypeIPv4      = 228
	LinkTypeIPv6      = 229
	LinkTypeLinuxSLL2 = 276 // Linux cooked capture v2: tcpdump -i any since libpcap 1.10
)

const supportedLinkTypes = "1 ETHERNET, 101 RAW, 113 LINUX_SLL, 228 IPV4, 229 IPV6 or 276 LINUX_SLL2"

// MaxSnapLen is the largest record the reader accepts and the snapshot
// length the writer declares: libpcap's own limit.
const MaxSnapLen = 262144

// Link-layer framing in front of the IP packet.
const (
	ethHeaderLen    = 14 // destination, source, EtherType
	sllHeaderLen    = 16 // packet type, ARPHRD type, address length, address (8), protocol
	sllProtocolOff  = 14
	sll2HeaderLen   = 20 // protocol, reserved, interface index, ARPHRD type, packet type, address length, address (8)
	sll2ProtocolOff = 0
	vlanTagLen      = 4 // TCI, then the next EtherType
	maxVLANTags     = 2
	etherTypeIPv4   = 0x0800
	etherTypeIPv6   = 0x86dd
	etherType8021Q  = 0x8100
	etherType8021AD = 0x88a8
)

// Record is one packet of a capture.
type Record struct {
	Index int       // 0-based position in the file, counting the records skipped as not IP
	Time  time.Time // capture time, UTC
	Data  []byte    // the IP packet, link-layer framing removed; owned by the caller
}

// packetSource is what pcapgo's two readers have in common.
type packetSource interface {
	ReadPacketData() ([]byte, gopacket.CaptureInfo, error)
}

// Reader reads records from a pcap or pcapng file through pcapgo.
type Reader struct {
	in       *countingReader
	br       *bufio.Reader // pcapgo reads through it: in.n - br.Buffered() is its position
	src      packetSource
	ng       *pcapgo.NgReader // nil for classic pcap
	ngOrder  binary.ByteOrder // of the current pcapng section
	linkType layers.LinkType  // classic pcap: the file's; pcapng: per record

	index  int   // index of the next record
	offset int64 // byte offset where reading the next record starts
	notIP  int   // records skipped because their frame does not carry IPv4 or IPv6
	err    error // sticky: once a record is bad, the rest of the file cannot be trusted
}

// countingReader counts the bytes read from the input, so that errors can
// give the byte offset of the record they are about.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// NewReader reads the file header (pcap) or the first section header
// (pcapng) from r and returns a Reader positioned at the first record.
func NewReader(r io.Reader) (*Reader, error) {
	in := &countingReader{r: r}
	// pcapgo wraps its input in bufio.NewReader, which returns this reader
	// itself: the position pcapgo has read up to is known from outside.
	rd := &Reader{in: in, br: bufio.NewReaderSize(in, readBufferSize)}
	h, err := rd.br.Peek(fileHeaderLen)
	if len(h) < 4 {
		if len(h) == 0 && err == io.EOF {
			return nil, errors.New("pcap: empty input: not a pcap or pcapng file")
		}
		if err == io.EOF {
			return nil, fmt.Errorf("pcap: input of %d bytes is too short for a pcap file header", len(h))
		}
		return nil, fmt.Errorf("pcap: reading file header: %w", err)
	}
	switch m := binary.LittleEndian.Uint32(h); m {
	case magicPcapng:
		rd.ngOrder = sectionOrder(h)
		return rd.openPcapng()
	case magicMicro, magicNano, swap32(magicMicro), swap32(magicNano):
		if err == io.EOF {
			return nil, fmt.Errorf("pcap: input of %d bytes is too short for a pcap file header", len(h))
		}
		if err != nil {
			return nil, fmt.Errorf("pcap: reading file header: %w", err)
		}
		order := binary.ByteOrder(binary.LittleEndian)
		if m == swap32(magicMicro) || m == swap32(magicNano) {
			order = binary.BigEndian
		}
		if major, minor := order.Uint16(h[4:]), order.Uint16(h[6:]); major != 2 || minor != 4 {
			return nil, fmt.Errorf("pcap: file format version %d.%d is not supported (want 2.4)", major, minor)
		}
		// The upper bits of the link-type field may carry FCS information
		// (which pcapgo's 16-bit LinkType drops); a value with them set is
		// not one of ours and is reported as it stands.
		if lt := order.Uint32(h[20:]); lt > 0xffff || !supported(layers.LinkType(lt)) {
			return nil, fmt.Errorf("pcap: link type %d is not supported (want %s)", lt, supportedLinkTypes)
		}
		return rd.openPcap()
	default:
		return nil, fmt.Errorf("pcap: bad magic number %#08x: not a pcap or pcapng file", binary.BigEndian.Uint32(h))
	}
}

func (rd *Reader) openPcap() (*Reader, error) {
	pr, err := pcapgo.NewReader(rd.br)
	if err != nil {
		return nil, fmt.Errorf("pcap: file header: %w", err)
	}
	// pcapgo allocates a record's captured length before reading it: with
	// the snapshot length capped, a hostile length is an error, not 4 GiB.
	if pr.Snaplen() > MaxSnapLen {
		pr.SetSnaplen(MaxSnapLen)
	}
	rd.src, rd.linkType = pr, pr.LinkType()
	rd.offset = rd.position()
	return rd, nil
}

func (rd *Reader) openPcapng() (*Reader, error) {
	// pcapgo reads the section header and what follows it up to the first
	// packet when it is asked for that packet; the section header it reads
	// now must be whole.
	if err := rd.checkNgBlocks(); err != nil {
		return nil, err
	}
	// Interfaces may differ in link type; each record is judged by its own.
	ng, err := pcapgo.NewNgReader(rd.br, pcapgo.NgReaderOptions{WantMixedLinkType: true})
	if err != nil {
		return nil, fmt.Errorf("pcap: pcapng section header: %w", err)
	}
	rd.src, rd.ng = ng, ng
	rd.offset = rd.position()
	return rd, nil
}

func supported(lt layers.LinkType) bool {
	switch lt {
	case LinkTypeEthernet, LinkTypeRaw, LinkTypeIPv4, LinkTypeIPv6, LinkTypeLinuxSLL, LinkTypeLinuxSLL2:
		return true
	}
	return false
}

// position is the byte offset pcapgo has read up to.
func (rd *Reader) position() int64 { return rd.in.n - int64(rd.br.Buffered()) }

// LinkType returns the link type of a classic pcap file, or of the first
// interface of a pcapng file (0 before its first record is read).
func (rd *Reader) LinkType() int {
	if rd.ng != nil {
		iface, err := rd.ng.Interface(0)
		if err != nil {
			return 0
		}
		return int(iface.LinkType)
	}
	return int(rd.linkType)
}

// NotIP returns how many records were skipped so far because their frame
// carries neither IPv4 nor IPv6 (ARP, LLDP, ... in an Ethernet or Linux
// cooked capture).
func (rd *Reader) NotIP() int { return rd.notIP }

// Next returns the next IP record, or io.EOF after the last one. Frames of
// other protocols are skipped and counted (NotIP). An error that is not
// io.EOF names the record and is returned again by every later call.
func (rd *Reader) Next() (Record, error) {
	for rd.err == nil {
		rec, ip, err := rd.next()
		if err != nil {
			rd.err = err
			break
		}
		rd.index++
		rd.offset = rd.position()
		if ip {
			return rec, nil
		}
		rd.notIP++
	}
	return Record{}, rd.err
}

// next reads one record; ip is false for a frame that carries neither IPv4
// nor IPv6.
func (rd *Reader) next() (rec Record, ip bool, err error) {
	if rd.ng != nil {
		if err := rd.checkNgBlocks(); err != nil {
			return Record{}, false, err
		}
	}
	data, ci, err := rd.src.ReadPacketData()
	switch {
	case err == io.EOF && data == nil:
		return Record{}, false, io.EOF
	case err == io.ErrUnexpectedEOF && data == nil:
		return Record{}, false, rd.errorf("truncated record header (%d of %d bytes)", rd.position()-rd.offset, recordHeaderLen)
	case (err == io.EOF || err == io.ErrUnexpectedEOF) && rd.ng == nil:
		got := rd.position() - rd.offset - recordHeaderLen
		return Record{}, false, rd.errorf("truncated packet data (%d of %d bytes)", got, len(data))
	case err != nil:
		return Record{}, false, rd.errorf("%w", err)
	}
	// After reading the data, so that the error is about the packet, not
	// about the file's framing, which is intact.
	if ci.CaptureLength < ci.Length {
		return Record{}, false, rd.errorf("packet was cut by the capture (%d of %d bytes captured); capture whole packets (tcpdump -s 0)", ci.CaptureLength, ci.Length)
	}
	lt := rd.linkType
	if rd.ng != nil {
		lt, _ = ci.AncillaryData[0].(layers.LinkType)
		if !supported(lt) {
			return Record{}, false, rd.errorf("link type %d of interface %d is not supported (want %s)", lt, ci.InterfaceIndex, supportedLinkTypes)
		}
	}
	pkt, err := rd.ipPacket(lt, data)
	if err != nil || pkt == nil {
		return Record{}, false, err
	}
	return Record{Index: rd.index, Time: ci.Timestamp.UTC(), Data: pkt}, true, nil
}

// readBufferSize holds the largest block checkNgBlocks accepts: a packet
// of MaxSnapLen and its framing, with room for the blocks around it.
const readBufferSize = MaxSnapLen + 64<<10

// pcapng block types that carry a packet, and the offset of the captured
// length in each (draft-ietf-opsawg-pcapng, section 4).
var ngCapLenOffset = map[uint32]int{
	2: 20, // Packet Block (obsolete): type, length, interface and drops, timestamp (8), captured length
	3: 8,  // Simple Packet Block: type, length, original length (the captured length is implied)
	6: 20, // Enhanced Packet Block: type, length, interface, timestamp (8), captured length
}

// checkNgBlocks walks, without consuming them, the blocks pcapgo will read
// to return the next packet: those before it (interfaces, statistics, a
// new section) and the packet's own. pcapgo trusts a block's lengths: it
// allocates the captured length before reading it, and it reports a file
// cut inside a block as a clean end. Here a block cut short, a length that
// cannot be, or a captured length beyond MaxSnapLen is an error naming the
// block's byte offset.
func (rd *Reader) checkNgBlocks() error {
	order := rd.ngOrder
	for off := 0; ; {
		at := rd.position() + int64(off)
		b, err := rd.br.Peek(off + 12)
		switch {
		case len(b) == off:
			return nil // the end of the file, between blocks
		case len(b) < off+8 && (err == io.EOF || err == io.ErrUnexpectedEOF):
			return rd.errorAt(at, "truncated block header (%d of 8 bytes)", len(b)-off)
		case len(b) < off+8:
			return nil // a read error: pcapgo meets it and it is reported
		}
		typ := order.Uint32(b[off:])
		if typ == magicPcapng {
			if len(b) < off+12 {
				return rd.errorAt(at, "truncated section header (%d bytes)", len(b)-off)
			}
			order = sectionOrder(b[off:])
		}
		length := int(order.Uint32(b[off+4:]))
		switch {
		case length < 12 || length%4 != 0:
			return rd.errorAt(at, "block length %d is invalid (a multiple of 4, at least 12)", length)
		case off+length > readBufferSize:
			return rd.errorAt(at, "block of %d bytes exceeds the maximum %d", length, readBufferSize-off)
		}
		if b, err = rd.br.Peek(off + length); len(b) < off+length {
			if err == io.EOF || err == io.ErrUnexpectedEOF {
				return rd.errorAt(at, "truncated block (%d of %d bytes)", len(b)-off, length)
			}
			return nil
		}
		capOff, isPacket := ngCapLenOffset[typ]
		if !isPacket {
			off += length
			continue
		}
		rd.ngOrder = order
		if typ == 3 {
			return nil // a Simple Packet Block's data is what its length leaves
		}
		if length < capOff+8 {
			return rd.errorAt(at, "packet block of %d bytes is too short for its header", length)
		}
		capLen := order.Uint32(b[off+capOff:])
		if capLen > MaxSnapLen {
			return rd.errorAt(at, "captured length %d exceeds the maximum %d", capLen, MaxSnapLen)
		}
		if int(capLen) > length-capOff-8 { // the original length, then the data, then the trailing length
			return rd.errorAt(at, "captured length %d exceeds its block of %d bytes", capLen, length)
		}
		return nil
	}
}

// sectionOrder is the byte order of a pcapng section, from the byte-order
// magic of its header (at offset 8).
func sectionOrder(shb []byte) binary.ByteOrder {
	if len(shb) >= 12 && binary.BigEndian.Uint32(shb[8:]) == 0x1a2b3c4d {
		return binary.BigEndian
	}
	return binary.LittleEndian
}

// ipPacket returns the IP packet inside a frame of link type lt, or nil for
// a frame that carries another protocol.
func (rd *Reader) ipPacket(lt layers.LinkType, f []byte) ([]byte, error) {
	switch lt {
	case LinkTypeEthernet:
		if len(f) < ethHeaderLen {
			return nil, rd.errorf("Ethernet frame of %d bytes is shorter than its %d-byte header", len(f), ethHeaderLen)
		}
		return rd.etherPayload("Ethernet frame", len(f), binary.BigEndian.Uint16(f[ethHeaderLen-2:]), f[ethHeaderLen:])
	case LinkTypeLinuxSLL:
		if len(f) < sllHeaderLen {
			return nil, rd.errorf("Linux cooked (SLL) frame of %d bytes is shorter than its %d-byte header", len(f), sllHeaderLen)
		}
		return rd.etherPayload("Linux cooked (SLL) frame", len(f), binary.BigEndian.Uint16(f[sllProtocolOff:]), f[sllHeaderLen:])
	case LinkTypeLinuxSLL2:
		if len(f) < sll2HeaderLen {
			return nil, rd.errorf("Linux cooked (SLL2) frame of %d bytes is shorter than its %d-byte header", len(f), sll2HeaderLen)
		}
		return rd.etherPayload("Linux cooked (SLL2) frame", len(f), binary.BigEndian.Uint16(f[sll2ProtocolOff:]), f[sll2HeaderLen:])
	}
	return f, nil // raw IP: the translator judges the version
}

// etherPayload returns the IP packet that follows a link header whose
// protocol field is etherType, following up to two VLAN tags, without the
// padding that short Ethernet frames carry; nil if it is not IP.
func (rd *Reader) etherPayload(what string, frameLen int, etherType uint16, p []byte) ([]byte, error) {
	for tags := 0; etherType == etherType8021Q || etherType == etherType8021AD; tags++ {
		if tags == maxVLANTags {
			return nil, rd.errorf("more than %d VLAN tags", maxVLANTags)
		}
		if len(p) < vlanTagLen {
			return nil, rd.errorf("%s of %d bytes is too short for its VLAN tags", what, frameLen)
		}
		etherType, p = binary.BigEndian.Uint16(p[2:]), p[vlanTagLen:]
	}
	if etherType != etherTypeIPv4 && etherType != etherTypeIPv6 {
		return nil, nil
	}
	return trimPadding(p, etherType), nil
}

// trimPadding cuts Ethernet padding (frames are at least 60 bytes) so the
// translator does not see bytes beyond the IP packet. It only ever shortens,
// and leaves a packet whose length field makes no sense to the translator.
func trimPadding(p []byte, etherType uint16) []byte {
	var n int
	switch {
	case etherType == etherTypeIPv4 && len(p) >= 20:
		n = int(binary.BigEndian.Uint16(p[2:]))
		if n < 20 {
			return p
		}
	case etherType == etherTypeIPv6 && len(p) >= 40:
		pl := int(binary.BigEndian.Uint16(p[4:]))
		if pl == 0 { // jumbogram or garbage
			return p
		}
		n = 40 + pl
	default:
		return p
	}
	if n < len(p) {
		return p[:n]
	}
	return p
}

// errorf makes an error about the record being read, at the byte offset
// where reading it started.
func (rd *Reader) errorf(format string, args ...any) error {
	return rd.errorAt(rd.offset, format, args...)
}

func (rd *Reader) errorAt(offset int64, format string, args ...any) error {
	return fmt.Errorf("pcap: record %d at byte %d: %w", rd.index, offset, fmt.Errorf(format, args...))
}

func swap32(v uint32) uint32 {
	return v>>24 | v>>8&0xff00 | v<<8&0xff0000 | v<<24
}

// Writer writes a pcap file of raw IP records (link type 101) with
// microsecond timestamps, in little-endian byte order.
type Writer struct {
	w   *bufio.Writer
	hdr [recordHeaderLen]byte
}

// NewWriter writes the file header to w. Call Flush when done.
func NewWriter(w io.Writer) (*Writer, error) {
	var h [fileHeaderLen]byte
	le := binary.LittleEndian
	le.PutUint32(h[0:], magicMicro)
	le.PutUint16(h[4:], 2)
	le.PutUint16(h[6:], 4)
	le.PutUint32(h[16:], MaxSnapLen)
	le.PutUint32(h[20:], LinkTypeRaw)
	bw := bufio.NewWriterSize(w, 64<<10)
	if _, err := bw.Write(h[:]); err != nil {
		return nil, fmt.Errorf("pcap: writing file header: %w", err)
	}
	return &Writer{w: bw}, nil
}

// Write appends one record holding pkt, an IPv4 or IPv6 packet, captured at t.
func (w *Writer) Write(t time.Time, pkt []byte) error {
	if len(pkt) > MaxSnapLen {
		return fmt.Errorf("pcap: packet of %d bytes exceeds the snapshot length %d", len(pkt), MaxSnapLen)
	}
	sec := t.Unix()
	if sec < 0 || sec > 1<<32-1 {
		return fmt.Errorf("pcap: timestamp %v cannot be written (pcap holds 1970 to 2106)", t)
	}
	le := binary.LittleEndian
	le.PutUint32(w.hdr[0:], uint32(sec))
	le.PutUint32(w.hdr[4:], uint32(t.Nanosecond()/1000))
	le.PutUint32(w.hdr[8:], uint32(len(pkt)))
	le.PutUint32(w.hdr[12:], uint32(len(pkt)))
	if _, err := w.w.Write(w.hdr[:]); err != nil {
		return fmt.Errorf("pcap: writing record: %w", err)
	}
	if _, err := w.w.Write(pkt); err != nil {
		return fmt.Errorf("pcap: writing record: %w", err)
	}
	return nil
}

// Flush writes buffered records to the underlying writer.
func (w *Writer) Flush() error {
	if err := w.w.Flush(); err != nil {
		return fmt.Errorf("pcap: %w", err)
	}
	return nil
}
