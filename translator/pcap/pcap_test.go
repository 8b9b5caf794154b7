package pcap

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"
	"time"
)

// file builds a capture by hand, independently of Writer, so the reader is
// tested against bytes laid out as the format describes them.
type file struct {
	order    binary.ByteOrder
	magic    uint32
	snapLen  uint32
	linkType uint32
	buf      bytes.Buffer
}

func newFile(order binary.ByteOrder, magic, linkType uint32) *file {
	f := &file{order: order, magic: magic, snapLen: MaxSnapLen, linkType: linkType}
	return f
}

func (f *file) header() []byte {
	h := make([]byte, 24)
	f.order.PutUint32(h[0:], f.magic)
	f.order.PutUint16(h[4:], 2)
	f.order.PutUint16(h[6:], 4)
	f.order.PutUint32(h[16:], f.snapLen)
	f.order.PutUint32(h[20:], f.linkType)
	return h
}

// record appends a record header with the given fields and then data.
func (f *file) record(sec, frac, capLen, origLen uint32, data []byte) *file {
	h := make([]byte, 16)
	f.order.PutUint32(h[0:], sec)
	f.order.PutUint32(h[4:], frac)
	f.order.PutUint32(h[8:], capLen)
	f.order.PutUint32(h[12:], origLen)
	f.buf.Write(h)
	f.buf.Write(data)
	return f
}

// packet appends a well-formed record.
func (f *file) packet(sec, frac uint32, data []byte) *file {
	return f.record(sec, frac, uint32(len(data)), uint32(len(data)), data)
}

func (f *file) bytes() []byte { return append(f.header(), f.buf.Bytes()...) }

// readAll returns every record and the error that ended the file (nil at a
// clean end).
func readAll(t *testing.T, b []byte) ([]Record, error) {
	t.Helper()
	r, err := NewReader(bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	var recs []Record
	for {
		rec, err := r.Next()
		if err == io.EOF {
			return recs, nil
		}
		if err != nil {
			return recs, err
		}
		recs = append(recs, rec)
	}
}

// Minimal IP packets: only the first bytes matter to the reader (version
// nibble and length fields, for Ethernet padding).
var (
	ipv4Pkt = []byte{0x45, 0, 0, 24, 0, 0, 0, 0, 64, 17, 0, 0, 192, 0, 2, 7, 198, 51, 100, 10, 1, 2, 3, 4}
	ipv6Pkt = append([]byte{0x60, 0, 0, 0, 0, 4, 17, 64}, append(make([]byte, 32), 9, 8, 7, 6)...)
)

func TestRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	w, err := NewWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	times := []time.Time{
		time.Date(2024, 5, 1, 12, 0, 0, 123456000, time.UTC),
		time.Date(2024, 5, 1, 12, 0, 1, 999999000, time.UTC),
		time.Date(2024, 5, 1, 12, 0, 2, 0, time.UTC),
	}
	pkts := [][]byte{ipv4Pkt, ipv6Pkt, make([]byte, MaxSnapLen)}
	for i := range pkts {
		if err := w.Write(times[i], pkts[i]); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}

	// The header is what tools expect of a raw-IP microsecond capture.
	want := newFile(binary.LittleEndian, magicMicro, LinkTypeRaw).header()
	if got := buf.Bytes()[:24]; !bytes.Equal(got, want) {
		t.Errorf("file header\n got % x\nwant % x", got, want)
	}

	r, err := NewReader(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if r.LinkType() != LinkTypeRaw {
		t.Errorf("link type %d, want %d", r.LinkType(), LinkTypeRaw)
	}
	for i := range pkts {
		rec, err := r.Next()
		if err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		if rec.Index != i || !rec.Time.Equal(times[i]) || !bytes.Equal(rec.Data, pkts[i]) {
			t.Errorf("record %d: got index %d time %v %d bytes, want time %v %d bytes",
				i, rec.Index, rec.Time, len(rec.Data), times[i], len(pkts[i]))
		}
	}
	if _, err := r.Next(); err != io.EOF {
		t.Errorf("after the last record: %v, want io.EOF", err)
	}
}

func TestWriterRefuses(t *testing.T) {
	w, err := NewWriter(io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write(time.Unix(0, 0), make([]byte, MaxSnapLen+1)); err == nil ||
		err.Error() != "pcap: packet of 262145 bytes exceeds the snapshot length 262144" {
		t.Errorf("oversized packet: %v", err)
	}
	if err := w.Write(time.Time{}, ipv4Pkt); err == nil {
		t.Error("zero time accepted; pcap cannot hold it")
	}
}

func TestByteOrdersAndResolutions(t *testing.T) {
	at := time.Date(2023, 1, 2, 3, 4, 5, 0, time.UTC)
	sec := uint32(at.Unix())
	for _, tc := range []struct {
		name  string
		order binary.ByteOrder
		magic uint32
		frac  uint32
		want  time.Time
	}{
		{"little-endian micro", binary.LittleEndian, magicMicro, 654321, at.Add(654321 * time.Microsecond)},
		{"big-endian micro", binary.BigEndian, magicMicro, 654321, at.Add(654321 * time.Microsecond)},
		{"little-endian nano", binary.LittleEndian, magicNano, 987654321, at.Add(987654321)},
		{"big-endian nano", binary.BigEndian, magicNano, 987654321, at.Add(987654321)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFile(tc.order, tc.magic, LinkTypeRaw).packet(sec, tc.frac, ipv4Pkt).packet(sec, 0, ipv6Pkt)
			recs, err := readAll(t, f.bytes())
			if err != nil {
				t.Fatal(err)
			}
			if len(recs) != 2 {
				t.Fatalf("%d records, want 2", len(recs))
			}
			if !recs[0].Time.Equal(tc.want) {
				t.Errorf("time %v, want %v", recs[0].Time, tc.want)
			}
			if !bytes.Equal(recs[0].Data, ipv4Pkt) || !bytes.Equal(recs[1].Data, ipv6Pkt) {
				t.Errorf("data\n% x\n% x", recs[0].Data, recs[1].Data)
			}
			if recs[1].Index != 1 {
				t.Errorf("second record has index %d", recs[1].Index)
			}
		})
	}
}

func TestLinkTypes(t *testing.T) {
	// Ethernet headers: destination, source, then the EtherType or TPIDs.
	macs := make([]byte, 12)
	eth := func(fields ...uint16) []byte {
		b := append([]byte{}, macs...)
		for _, f := range fields {
			b = binary.BigEndian.AppendUint16(b, f)
		}
		return b
	}
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	padding := make([]byte, 60-14-len(ipv4Pkt))

	for _, tc := range []struct {
		name     string
		linkType uint32
		frame    []byte
		want     []byte
	}{
		{"raw IPv4", LinkTypeRaw, ipv4Pkt, ipv4Pkt},
		{"raw IPv6", LinkTypeRaw, ipv6Pkt, ipv6Pkt},
		{"IPV4", LinkTypeIPv4, ipv4Pkt, ipv4Pkt},
		{"IPV6", LinkTypeIPv6, ipv6Pkt, ipv6Pkt},
		{"Ethernet IPv4", LinkTypeEthernet, cat(eth(0x0800), ipv4Pkt), ipv4Pkt},
		{"Ethernet IPv6", LinkTypeEthernet, cat(eth(0x86dd), ipv6Pkt), ipv6Pkt},
		{"Ethernet IPv4 padded to 60 bytes", LinkTypeEthernet, cat(eth(0x0800), ipv4Pkt, padding), ipv4Pkt},
		{"802.1Q", LinkTypeEthernet, cat(eth(0x8100, 0x0064, 0x86dd), ipv6Pkt), ipv6Pkt},
		{"802.1ad + 802.1Q", LinkTypeEthernet, cat(eth(0x88a8, 0x0010, 0x8100, 0x0064, 0x0800), ipv4Pkt, padding[:4]), ipv4Pkt},
		// Garbage behind a valid frame goes to the translator untouched.
		{"Ethernet garbage", LinkTypeEthernet, cat(eth(0x0800), []byte{0xff, 0xff}), []byte{0xff, 0xff}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFile(binary.LittleEndian, magicMicro, tc.linkType).packet(1, 0, tc.frame)
			recs, err := readAll(t, f.bytes())
			if err != nil {
				t.Fatal(err)
			}
			if len(recs) != 1 || !bytes.Equal(recs[0].Data, tc.want) {
				t.Fatalf("got %v, want one record % x", recs, tc.want)
			}
		})
	}
}

func TestFileErrors(t *testing.T) {
	le := binary.LittleEndian
	withVersion := newFile(le, magicMicro, LinkTypeRaw).header()
	le.PutUint16(withVersion[4:], 1)
	for _, tc := range []struct {
		name string
		in   []byte
		want string
	}{
		{"empty", nil, "pcap: empty input: not a pcap or pcapng file"},
		{"short magic", []byte{0xd4, 0xc3}, "pcap: input of 2 bytes is too short for a pcap file header"},
		{"short header", newFile(le, magicMicro, LinkTypeRaw).header()[:20], "pcap: input of 20 bytes is too short for a pcap file header"},
		{"bad magic", []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), "pcap: bad magic number 0x47455420: not a pcap or pcapng file"},
		{"gzip", []byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0}, "pcap: bad magic number 0x1f8b0800: not a pcap or pcapng file"},
		{"pcapng cut in its section header", []byte{0x0a, 0x0d, 0x0d, 0x0a, 0x1c, 0, 0, 0, 0x4d, 0x3c, 0x2b, 0x1a},
			"pcap: record 0 at byte 0: truncated block (12 of 28 bytes)"},
		{"version", withVersion, "pcap: file format version 1.4 is not supported (want 2.4)"},
		{"link type", newFile(le, magicMicro, 147).header(),
			"pcap: link type 147 is not supported (want 1 ETHERNET, 101 RAW, 113 LINUX_SLL, 228 IPV4, 229 IPV6 or 276 LINUX_SLL2)"},
		{"Ethernet with FCS bits", newFile(le, magicMicro, 0x14000001).header(),
			"pcap: link type 335544321 is not supported (want 1 ETHERNET, 101 RAW, 113 LINUX_SLL, 228 IPV4, 229 IPV6 or 276 LINUX_SLL2)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewReader(bytes.NewReader(tc.in))
			if err == nil || err.Error() != tc.want {
				t.Errorf("got  %v\nwant %s", err, tc.want)
			}
		})
	}
}

func TestRecordErrors(t *testing.T) {
	le := binary.LittleEndian
	// Each case has one good record (24 + 16 + 24 bytes) before the bad
	// one, so the error must name record 1 at byte 64.
	good := func(linkType uint32) *file {
		f := newFile(le, magicMicro, linkType)
		if linkType == LinkTypeEthernet {
			return f.packet(1, 0, append(append(make([]byte, 12), 0x08, 0x00), ipv4Pkt[:10]...)) // 24 bytes too
		}
		return f.packet(1, 0, ipv4Pkt)
	}
	raw := func() *file { return good(LinkTypeRaw) }
	ethernet := func(frame []byte) []byte { return good(LinkTypeEthernet).packet(2, 0, frame).bytes() }
	snap := raw()
	snap.snapLen = 100

	for _, tc := range []struct {
		name string
		in   []byte
		want string
	}{
		{"truncated record header", append(raw().bytes(), 1, 2, 3, 4, 5, 6, 7),
			"truncated record header (7 of 16 bytes)"},
		{"caplen above snaplen", snap.record(2, 0, 101, 101, make([]byte, 101)).bytes(),
			"capture length exceeds snap length: 101 > 100"},
		{"caplen above the maximum", raw().record(2, 0, MaxSnapLen+1, MaxSnapLen+1, nil).bytes(),
			"capture length exceeds snap length: 262145 > 262144"},
		{"caplen above origlen", raw().record(2, 0, 24, 20, ipv4Pkt).bytes(),
			"capture length exceeds original packet length: 24 > 20"},
		{"truncated data", raw().record(2, 0, 24, 24, ipv4Pkt[:10]).bytes(),
			"truncated packet data (10 of 24 bytes)"},
		{"cut by the capture", raw().record(2, 0, 24, 1500, ipv4Pkt).bytes(),
			"packet was cut by the capture (24 of 1500 bytes captured); capture whole packets (tcpdump -s 0)"},
		{"short Ethernet frame", ethernet(make([]byte, 13)),
			"Ethernet frame of 13 bytes is shorter than its 14-byte header"},
		{"three VLAN tags", ethernet(append(make([]byte, 12), 0x81, 0, 0, 1, 0x81, 0, 0, 2, 0x81, 0, 0, 3, 0x08, 0)),
			"more than 2 VLAN tags"},
		{"truncated VLAN tag", ethernet(append(make([]byte, 12), 0x81, 0, 0, 1)),
			"Ethernet frame of 16 bytes is too short for its VLAN tags"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			recs, err := readAll(t, tc.in)
			want := "pcap: record 1 at byte 64: " + tc.want
			if err == nil || err.Error() != want {
				t.Errorf("got  %v\nwant %s", err, want)
			}
			if len(recs) != 1 {
				t.Errorf("%d records before the error, want 1", len(recs))
			}
		})
	}
}

// A bad record ends the file: the reader cannot know where the next record
// starts, so it must not resynchronise and hand out garbage.
func TestErrorIsSticky(t *testing.T) {
	in := newFile(binary.LittleEndian, magicMicro, LinkTypeRaw).
		record(1, 0, 24, 1500, ipv4Pkt).packet(2, 0, ipv4Pkt).bytes()
	r, err := NewReader(bytes.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	_, err1 := r.Next()
	_, err2 := r.Next()
	if err1 == nil || err2 != err1 {
		t.Errorf("first error %v, then %v", err1, err2)
	}
}

type failingReader struct{ err error }

func (f failingReader) Read([]byte) (int, error) { return 0, f.err }

func TestIOErrorWrapped(t *testing.T) {
	hdr := newFile(binary.LittleEndian, magicMicro, LinkTypeRaw).header()
	boom := errors.New("disk on fire")
	r, err := NewReader(io.MultiReader(bytes.NewReader(hdr), failingReader{boom}))
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.Next()
	if !errors.Is(err, boom) || err.Error() != "pcap: record 0 at byte 24: disk on fire" {
		t.Errorf("got %v", err)
	}
}

// FuzzReader: any input, pcap or pcapng, either reads or fails with an
// error; it never panics, and every record it returns fits the limits.
func FuzzReader(f *testing.F) {
	le := binary.LittleEndian
	f.Add(newFile(le, magicMicro, LinkTypeRaw).packet(1, 0, ipv4Pkt).bytes())
	f.Add(newFile(binary.BigEndian, magicNano, LinkTypeEthernet).packet(1, 0, append(append(make([]byte, 12), 0x81, 0, 0, 1, 0x86, 0xdd), ipv6Pkt...)).bytes())
	f.Add(newFile(le, magicMicro, LinkTypeIPv4).record(1, 0, 24, 1500, ipv4Pkt).bytes())
	f.Add(newFile(le, magicMicro, LinkTypeLinuxSLL).packet(1, 0, append(sllHeader(0x0800), ipv4Pkt...)).bytes())
	f.Add(newFile(le, magicMicro, LinkTypeLinuxSLL2).packet(1, 0, append(sll2Header(0x86dd), ipv6Pkt...)).bytes())
	f.Add(ngFile(epb(24, ipv4Pkt), epb(24, ipv4Pkt)))
	f.Fuzz(func(t *testing.T, in []byte) {
		r, err := NewReader(bytes.NewReader(in))
		if err != nil {
			return
		}
		for i := 0; ; i++ {
			rec, err := r.Next()
			if err != nil {
				return
			}
			if rec.Index != i+r.NotIP() || len(rec.Data) > MaxSnapLen {
				t.Fatalf("record %d: index %d (%d skipped before), %d bytes", i, rec.Index, r.NotIP(), len(rec.Data))
			}
		}
	})
}
