package pcap

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"
)

// File header (24 bytes), in the byte order given by the magic number:
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
	LinkTypeEthernet = 1
	LinkTypeRaw      = 101 // IPv4 or IPv6 by the version nibble
	LinkTypeIPv4     = 228
	LinkTypeIPv6     = 229
)

// MaxSnapLen is the largest record the reader accepts and the snapshot
// length the writer declares: libpcap's own limit.
const MaxSnapLen = 262144

// Ethernet framing.
const (
	ethHeaderLen    = 14
	vlanTagLen      = 4
	maxVLANTags     = 2
	etherTypeIPv4   = 0x0800
	etherTypeIPv6   = 0x86dd
	etherType8021Q  = 0x8100
	etherType8021AD = 0x88a8
)

// Record is one packet of a capture.
type Record struct {
	Index int       // 0-based position in the file
	Time  time.Time // capture time, UTC
	Data  []byte    // the IP packet, link-layer framing removed; owned by the caller
}

// Reader reads records from a classic pcap file.
type Reader struct {
	r        *bufio.Reader
	order    binary.ByteOrder
	nano     bool
	linkType int
	snapLen  uint32

	index  int   // index of the next record
	offset int64 // byte offset of the next record header
	err    error // sticky: once a record is bad, the rest of the file cannot be trusted
	hdr    [recordHeaderLen]byte
}

// NewReader reads the file header from r and returns a Reader positioned at
// the first record.
func NewReader(r io.Reader) (*Reader, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	var h [fileHeaderLen]byte
	n, err := io.ReadFull(br, h[:4])
	if err != nil {
		if n == 0 && err == io.EOF {
			return nil, errors.New("pcap: empty input: not a pcap file")
		}
		if err == io.ErrUnexpectedEOF {
			return nil, fmt.Errorf("pcap: input of %d bytes is too short for a pcap file header", n)
		}
		return nil, fmt.Errorf("pcap: reading file header: %w", err)
	}
	rd := &Reader{r: br}
	switch m := binary.LittleEndian.Uint32(h[:4]); {
	case m == magicPcapng:
		return nil, errors.New("pcap: pcapng is not supported; convert with `editcap -F pcap IN.pcapng OUT.pcap`")
	case m == magicMicro:
		rd.order = binary.LittleEndian
	case m == magicNano:
		rd.order, rd.nano = binary.LittleEndian, true
	case swap32(m) == magicMicro:
		rd.order = binary.BigEndian
	case swap32(m) == magicNano:
		rd.order, rd.nano = binary.BigEndian, true
	default:
		return nil, fmt.Errorf("pcap: bad magic number %#08x: not a pcap file", binary.BigEndian.Uint32(h[:4]))
	}
	if n, err := io.ReadFull(br, h[4:]); err != nil {
		if err == io.ErrUnexpectedEOF || err == io.EOF {
			return nil, fmt.Errorf("pcap: input of %d bytes is too short for a pcap file header", 4+n)
		}
		return nil, fmt.Errorf("pcap: reading file header: %w", err)
	}
	if major, minor := rd.order.Uint16(h[4:]), rd.order.Uint16(h[6:]); major != 2 {
		return nil, fmt.Errorf("pcap: file format version %d.%d is not supported (want 2.4)", major, minor)
	}
	rd.snapLen = rd.order.Uint32(h[16:])
	// The upper bits of the link-type field may carry FCS information; a
	// value with them set is not one of ours and is reported as it stands.
	switch lt := rd.order.Uint32(h[20:]); lt {
	case LinkTypeEthernet, LinkTypeRaw, LinkTypeIPv4, LinkTypeIPv6:
		rd.linkType = int(lt)
	default:
		return nil, fmt.Errorf("pcap: link type %d is not supported (want 1 ETHERNET, 101 RAW, 228 IPV4 or 229 IPV6)", lt)
	}
	rd.offset = fileHeaderLen
	return rd, nil
}

// LinkType returns the file's link type.
func (r *Reader) LinkType() int { return r.linkType }

// Next returns the next record, or io.EOF after the last one. An error that
// is not io.EOF names the record and is returned again by every later call.
func (r *Reader) Next() (Record, error) {
	if r.err != nil {
		return Record{}, r.err
	}
	rec, err := r.next()
	if err != nil {
		r.err = err
		return Record{}, err
	}
	r.index++
	return rec, nil
}

func (r *Reader) next() (Record, error) {
	n, err := io.ReadFull(r.r, r.hdr[:])
	switch {
	case n == 0 && err == io.EOF:
		return Record{}, io.EOF
	case err == io.ErrUnexpectedEOF:
		return Record{}, r.errorf("truncated record header (%d of %d bytes)", n, recordHeaderLen)
	case err != nil:
		return Record{}, r.wrap(err)
	}
	sec := r.order.Uint32(r.hdr[0:])
	frac := r.order.Uint32(r.hdr[4:])
	capLen := r.order.Uint32(r.hdr[8:])
	origLen := r.order.Uint32(r.hdr[12:])

	var nsec int64
	if r.nano {
		if frac >= 1e9 {
			return Record{}, r.errorf("timestamp nanoseconds %d out of range", frac)
		}
		nsec = int64(frac)
	} else {
		if frac >= 1e6 {
			return Record{}, r.errorf("timestamp microseconds %d out of range", frac)
		}
		nsec = int64(frac) * 1000
	}
	switch {
	case capLen > MaxSnapLen:
		return Record{}, r.errorf("captured length %d exceeds the maximum %d", capLen, MaxSnapLen)
	case capLen > r.snapLen:
		return Record{}, r.errorf("captured length %d exceeds the snapshot length %d", capLen, r.snapLen)
	case capLen > origLen:
		return Record{}, r.errorf("captured length %d exceeds the original length %d", capLen, origLen)
	}
	data := make([]byte, capLen)
	if n, err := io.ReadFull(r.r, data); err != nil {
		if err == io.ErrUnexpectedEOF || err == io.EOF {
			return Record{}, r.errorf("truncated packet data (%d of %d bytes)", n, capLen)
		}
		return Record{}, r.wrap(err)
	}
	// Checked after reading the data so that the error is about the packet,
	// not about the file's framing, which is intact.
	if capLen < origLen {
		return Record{}, r.errorf("packet was cut by the capture (%d of %d bytes captured); capture whole packets (tcpdump -s 0)", capLen, origLen)
	}
	if r.linkType == LinkTypeEthernet {
		if data, err = r.ethernetPayload(data); err != nil {
			return Record{}, err
		}
	}
	rec := Record{
		Index: r.index,
		Time:  time.Unix(int64(sec), nsec).UTC(),
		Data:  data,
	}
	r.offset += recordHeaderLen + int64(capLen)
	return rec, nil
}

// ethernetPayload returns the IP packet inside an Ethernet frame, following
// up to two VLAN tags, without the padding that short frames carry.
func (r *Reader) ethernetPayload(f []byte) ([]byte, error) {
	if len(f) < ethHeaderLen {
		return nil, r.errorf("Ethernet frame of %d bytes is shorter than its %d-byte header", len(f), ethHeaderLen)
	}
	off := ethHeaderLen - 2 // the EtherType or TPID field
	for tags := 0; ; tags++ {
		et := binary.BigEndian.Uint16(f[off:])
		if et != etherType8021Q && et != etherType8021AD {
			break
		}
		if tags == maxVLANTags {
			return nil, r.errorf("more than %d VLAN tags", maxVLANTags)
		}
		off += vlanTagLen
		if len(f) < off+2 {
			return nil, r.errorf("Ethernet frame of %d bytes is too short for its VLAN tags", len(f))
		}
	}
	et := binary.BigEndian.Uint16(f[off:])
	if et != etherTypeIPv4 && et != etherTypeIPv6 {
		return nil, r.errorf("EtherType %#04x is neither IPv4 (0x0800) nor IPv6 (0x86dd)", et)
	}
	return trimPadding(f[off+2:], et), nil
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

func (r *Reader) errorf(format string, args ...any) error {
	return fmt.Errorf("pcap: record %d at byte %d: %s", r.index, r.offset, fmt.Sprintf(format, args...))
}

func (r *Reader) wrap(err error) error {
	return fmt.Errorf("pcap: record %d at byte %d: %w", r.index, r.offset, err)
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
