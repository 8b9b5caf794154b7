package main

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// cooked puts an SLL2 header (what `tcpdump -i any` writes since libpcap
// 1.10: protocol, reserved, interface index, ARPHRD type, packet type,
// address length, address) in front of body.
func cooked(protocol uint16, body []byte) []byte {
	h := make([]byte, 20)
	binary.BigEndian.PutUint16(h[0:], protocol)
	binary.BigEndian.PutUint32(h[4:], 2) // interface index
	binary.BigEndian.PutUint16(h[8:], 1) // ARPHRD_ETHER
	h[11] = 6                            // address length
	return append(h, body...)
}

// A pcapng capture of `tcpdump -i any` (SLL2) with an ARP frame among the
// packets: the IP packets are translated, the ARP frame is skipped and
// counted, in the summary and, with -json, on stderr, and the JSON lines
// number the records as the capture does.
func TestTranslateCookedPcapng(t *testing.T) {
	var b bytes.Buffer
	w, err := pcapgo.NewNgWriter(&b, layers.LinkTypeLinuxSLL2)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range [][]byte{
		cooked(0x0806, []byte{0, 1, 8, 0, 6, 4, 0, 1}), // ARP
		cooked(0x0800, ipv4UDP(client, mapped4, 40000, 53, payload)),
		cooked(0x86dd, garbage), // says IPv6, is not: the translator's to judge
	} {
		if err := w.WritePacket(gopacket.CaptureInfo{Timestamp: captureTime, CaptureLength: len(f), Length: len(f)}, f); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	in, out := filepath.Join(dir, "any.pcapng"), filepath.Join(dir, "out.pcap")
	if err := os.WriteFile(in, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}

	code, _, stderr := runCmd(t, "translate", "-config", exampleConfig, "-in", in, "-out", out)
	if code != exitOK {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	want := `packets in      2
not IP, skipped 1
packets out     1
forward         1
drop            1
  bad-version   1
icmp-error      0
`
	if stderr != want {
		t.Errorf("summary\n%s\nwant\n%s", stderr, want)
	}
	capture, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	recs := readCapture(t, capture)
	if len(recs) != 1 {
		t.Fatalf("%d output records, want 1", len(recs))
	}
	if !recs[0].Time.Equal(captureTime) {
		t.Errorf("output time %v, want the input's %v", recs[0].Time, captureTime)
	}
	checkTranslatedUDP(t, recs[0].Data)

	code, stdout, stderr := runCmd(t, "translate", "-config", exampleConfig, "-in", in, "-out", out, "-json")
	wantLines := `{"in":1,"verdict":"forward","reason":"","out":[0]}` + "\n" +
		`{"in":2,"verdict":"drop","reason":"bad-version","out":[]}` + "\n"
	wantErr := "map646 translate: " + in + ": 1 frames skipped: neither IPv4 nor IPv6\n"
	if code != exitOK || stdout != wantLines || stderr != wantErr {
		t.Errorf("-json: exit %d\nstdout\n%s\nwant\n%s\nstderr %q\nwant   %q", code, stdout, wantLines, stderr, wantErr)
	}
}
