package main

import (
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/map646/map646/lab/netlab"
)

// TestRunBounds: the daemon's bounds, on the binary: the 17th control
// connection is refused with a clear line while 16 are open; a metrics
// client that never finishes its request header is closed after 5 s; a
// mapping file far over max_mapping_file_bytes named on a reload is
// refused from its size, and the daemon's peak memory shows it never read
// the file.
func TestRunBounds(t *testing.T) {
	netlab.RequireRoot(t)
	netlab.Need(t, "ip")
	bin := buildMap646(t)
	ns := newNetns(t)
	dir := t.TempDir()
	conf := filepath.Join(dir, "map646.toml")
	writeConfig(t, conf, "m646b0", false, "")
	sock := filepath.Join(dir, "map646.sock")
	p := startMap646(t, bin, ns, conf)
	serving, next := p.wait("started", 0)

	// Control: 16 idle connections hold every slot (each until the 5 s
	// request timeout); map646 status on a 17th is refused.
	var idle []net.Conn
	for range 16 {
		c, err := net.Dial("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		idle = append(idle, c)
	}
	code, _, stderr := runCmd(t, "status", "-socket", sock)
	for _, c := range idle {
		c.Close()
	}
	if code != statusUnknown || stderr != "map646 status: too many control connections (16 at once); try again when one has ended\n" {
		t.Errorf("status on a 17th connection: exit %d, stderr %q", code, stderr)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		if code, _, _ := runCmd(t, "status", "-socket", sock); code != statusUnknown { // answered
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("status still refused 5 s after the 16 connections closed")
		}
		time.Sleep(20 * time.Millisecond)
	}

	// Metrics: half a request header, then nothing.
	addr := serving["metrics"].(string)
	var took time.Duration
	var readErr error
	inNS(t, ns, func() {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		start := time.Now()
		io.WriteString(c, "GET /metrics HTTP/1.1\r\nHost: x\r\n")
		c.SetReadDeadline(time.Now().Add(20 * time.Second))
		_, readErr = io.Copy(io.Discard, c)
		took = time.Since(start)
	})
	t.Logf("a metrics client that never finished its header: closed after %v (%v)", took.Round(time.Millisecond), readErr)
	if ne, ok := readErr.(net.Error); ok && ne.Timeout() {
		t.Errorf("the metrics server still held a half-sent request after %v", took)
	} else if took < 4500*time.Millisecond || took > 7*time.Second {
		t.Errorf("the metrics server closed a half-sent request after %v, want about 5 s", took)
	}

	// A reload naming a 256 MiB mapping file (sparse: no disk), twice the
	// default max_mapping_file_bytes.
	big := filepath.Join(dir, "big.txt")
	f, err := os.Create(big)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(256 << 20); err != nil {
		t.Fatal(err)
	}
	f.Close()
	b, err := os.ReadFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	withFile := strings.Replace(string(b), "[translator]\n", "[translator]\nmapping_file = \"big.txt\"\n", 1)
	if err := os.WriteFile(conf, []byte(withFile), 0o644); err != nil {
		t.Fatal(err)
	}
	p.signal(syscall.SIGHUP)
	refused, _ := p.wait("reload refused", next)
	want := big + " is 268435456 bytes, more than translator.max_mapping_file_bytes (134217728); nothing was loaded from it"
	if e, _ := refused["err"].(string); !strings.Contains(e, want) {
		t.Errorf("the refusal: %v\nwant it to say %q", refused, want)
	}
	hwm := peakRSS(t, p.cmd.Process.Pid)
	t.Logf("the daemon's peak resident memory after the refused reload: %d MiB", hwm>>20)
	if hwm > 128<<20 {
		t.Errorf("peak resident memory %d MiB: the 256 MiB file was read", hwm>>20)
	}
	p.signal(syscall.SIGTERM)
	<-p.done
}

// peakRSS returns a process's peak resident memory (VmHWM).
func peakRSS(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatalf("no VmHWM in /proc/%d/status", pid)
	return 0
}
