package main

import (
	"bytes"
	"encoding/binary"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/map646/map646/translator/pcap"
)

// exampleConfig maps 198.51.100.10 to 2001:db8:1::10 and uses the pseudo
// prefix 64:ff9b::/96.
const exampleConfig = "../../config/example.toml"

var captureTime = time.Date(2024, 3, 1, 10, 0, 0, 250000000, time.UTC)

// checksum is the Internet checksum (RFC 1071) of the concatenated parts,
// computed here from scratch rather than with the translator's code.
func checksum(parts ...[]byte) uint16 {
	var sum uint32
	for _, p := range parts {
		for i := 0; i+1 < len(p); i += 2 {
			sum += uint32(p[i])<<8 | uint32(p[i+1])
		}
		if len(p)%2 == 1 {
			sum += uint32(p[len(p)-1]) << 8
		}
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return ^uint16(sum)
}

// ipv4UDP builds an IPv4 UDP packet with correct checksums.
func ipv4UDP(src, dst netip.Addr, sport, dport uint16, payload []byte) []byte {
	be := binary.BigEndian
	s, d := src.As4(), dst.As4()
	p := make([]byte, 20+8+len(payload))
	// IPv4 header: version 4 IHL 5, total length, ID, DF, TTL 64, UDP,
	// addresses, then the header checksum.
	p[0] = 0x45
	be.PutUint16(p[2:], uint16(len(p)))
	be.PutUint16(p[4:], 0x1234)
	be.PutUint16(p[6:], 0x4000)
	p[8], p[9] = 64, 17
	copy(p[12:], s[:])
	copy(p[16:], d[:])
	be.PutUint16(p[10:], checksum(p[:20]))
	// UDP header: ports, length, checksum over the pseudo-header.
	u := p[20:]
	be.PutUint16(u[0:], sport)
	be.PutUint16(u[2:], dport)
	be.PutUint16(u[4:], uint16(8+len(payload)))
	copy(u[8:], payload)
	pseudo := append(append(s[:], d[:]...), 0, 17, u[4], u[5])
	be.PutUint16(u[6:], checksum(pseudo, u))
	return p
}

// writeCapture writes pkts as a raw-IP capture, one record each, all at
// captureTime.
func writeCapture(t *testing.T, pkts ...[]byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := pcap.NewWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pkts {
		if err := w.Write(captureTime, p); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func readCapture(t *testing.T, b []byte) []pcap.Record {
	t.Helper()
	r, err := pcap.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if r.LinkType() != pcap.LinkTypeRaw {
		t.Errorf("output link type %d, want %d", r.LinkType(), pcap.LinkTypeRaw)
	}
	var recs []pcap.Record
	for {
		rec, err := r.Next()
		if err == io.EOF {
			return recs
		}
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, rec)
	}
}

var (
	client  = netip.MustParseAddr("192.0.2.7")
	mapped4 = netip.MustParseAddr("198.51.100.10")
	payload = []byte("hello, IPv6-only datacenter")
	// Version 15: neither IPv4 nor IPv6.
	garbage = bytes.Repeat([]byte{0xff}, 28)
)

// checkTranslatedUDP checks, byte by byte, that p is the IPv6 translation of
// ipv4UDP(client, mapped4, 40000, 53, payload) under the example config.
func checkTranslatedUDP(t *testing.T, p []byte) {
	t.Helper()
	if len(p) != 40+8+len(payload) {
		t.Fatalf("output packet of %d bytes, want %d:\n% x", len(p), 40+8+len(payload), p)
	}
	be := binary.BigEndian
	src := netip.AddrFrom16([16]byte(p[8:24]))
	dst := netip.AddrFrom16([16]byte(p[24:40]))
	if p[0]>>4 != 6 {
		t.Errorf("version %d, want 6", p[0]>>4)
	}
	if n := be.Uint16(p[4:]); int(n) != 8+len(payload) {
		t.Errorf("payload length %d", n)
	}
	if p[6] != 17 {
		t.Errorf("next header %d, want 17 (UDP)", p[6])
	}
	if p[7] != 63 {
		t.Errorf("hop limit %d, want 63 (TTL 64, decremented once)", p[7])
	}
	if want := netip.MustParseAddr("64:ff9b::c000:207"); src != want {
		t.Errorf("source %v, want %v", src, want)
	}
	if want := netip.MustParseAddr("2001:db8:1::10"); dst != want {
		t.Errorf("destination %v, want %v", dst, want)
	}
	u := p[40:]
	if sp, dp := be.Uint16(u[0:]), be.Uint16(u[2:]); sp != 40000 || dp != 53 {
		t.Errorf("ports %d -> %d, want 40000 -> 53", sp, dp)
	}
	if !bytes.Equal(u[8:], payload) {
		t.Errorf("payload %q", u[8:])
	}
	// The checksum over the IPv6 pseudo-header and the whole UDP datagram
	// comes out as zero when the translator got it right.
	pseudo := append(append([]byte{}, p[8:40]...), 0, 0, u[4], u[5], 0, 0, 0, 17)
	if c := checksum(pseudo, u); c != 0 {
		t.Errorf("UDP checksum %#04x is wrong (verification gives %#04x)", be.Uint16(u[6:]), c)
	}
}

func TestTranslateJSON(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "in.pcap")
	out := filepath.Join(dir, "out.pcap")
	capture := writeCapture(t, ipv4UDP(client, mapped4, 40000, 53, payload), garbage)
	if err := os.WriteFile(in, capture, 0o644); err != nil {
		t.Fatal(err)
	}

	code, stdout, stderr := runCmd(t, "translate", "-config", exampleConfig, "-in", in, "-out", out, "-json")
	if code != exitOK || stderr != "" {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	want := `{"in":0,"verdict":"forward","reason":"","out":[0]}` + "\n" +
		`{"in":1,"verdict":"drop","reason":"bad-version","out":[]}` + "\n"
	if stdout != want {
		t.Errorf("JSON lines\n%s\nwant\n%s", stdout, want)
	}

	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	recs := readCapture(t, b)
	if len(recs) != 1 {
		t.Fatalf("%d output records, want 1", len(recs))
	}
	if !recs[0].Time.Equal(captureTime) {
		t.Errorf("output time %v, want the input's %v", recs[0].Time, captureTime)
	}
	checkTranslatedUDP(t, recs[0].Data)
	if _, err := os.Stat(out + ".tmp"); !os.IsNotExist(err) {
		t.Errorf("temporary file left behind: %v", err)
	}
}

// With -in - and -out - the command is a filter; the summary goes to stderr.
func TestTranslatePipe(t *testing.T) {
	stdin = bytes.NewReader(writeCapture(t, garbage, ipv4UDP(client, mapped4, 40000, 53, payload), garbage))
	defer func() { stdin = os.Stdin }()

	code, stdout, stderr := runCmd(t, "translate", "-config", exampleConfig, "-in", "-", "-out", "-")
	if code != exitOK {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	recs := readCapture(t, []byte(stdout))
	if len(recs) != 1 {
		t.Fatalf("%d output records, want 1", len(recs))
	}
	checkTranslatedUDP(t, recs[0].Data)
	want := `packets in    3
packets out   1
forward       1
drop          2
  bad-version 2
icmp-error    0
`
	if stderr != want {
		t.Errorf("summary\n%s\nwant\n%s", stderr, want)
	}
}

// A capture that breaks off stops the command, names the record, and leaves
// no output file, whole or partial.
func TestTranslateMalformedCapture(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "in.pcap")
	out := filepath.Join(dir, "out.pcap")
	capture := writeCapture(t, ipv4UDP(client, mapped4, 40000, 53, payload), garbage)
	capture = capture[:len(capture)-5] // the last record loses 5 bytes of data
	if err := os.WriteFile(in, capture, 0o644); err != nil {
		t.Fatal(err)
	}

	code, stdout, stderr := runCmd(t, "translate", "-config", exampleConfig, "-in", in, "-out", out, "-json")
	first := 24 + 16 + 20 + 8 + len(payload) // file header, first record
	want := "map646 translate: " + in + ": pcap: record 1 at byte " + strconv.Itoa(first) + ": truncated packet data (23 of 28 bytes)\n"
	if code != exitError || stderr != want {
		t.Errorf("exit %d\nstderr %q\nwant   %q", code, stderr, want)
	}
	// The packets before the bad record were reported.
	if !strings.HasPrefix(stdout, `{"in":0,`) {
		t.Errorf("stdout %q", stdout)
	}
	for _, p := range []string{out, out + ".tmp"} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s exists after a failure (%v)", p, err)
		}
	}
}

func TestTranslateMissingInput(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out.pcap")
	code, _, stderr := runCmd(t, "translate", "-config", exampleConfig, "-in", filepath.Join(dir, "nope.pcap"), "-out", out)
	if code != exitError || !strings.Contains(stderr, "nope.pcap") {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("%s exists after a failure (%v)", out, err)
	}
}
