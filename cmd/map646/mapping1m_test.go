package main

import (
	"bufio"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/map646/map646/cmd/map646/control"
	"github.com/map646/map646/lab/netlab"
	"github.com/map646/map646/lab/poll"
)

// TestMappings1M measures the mapping commands on a table of a million
// mappings (contiguous: the routes merge into a few): the whole table
// streamed by map646 mappings, a hundred add/del cycles through the
// control socket (each one rewriting the 30 MB mapping file and applying
// a delta), and the daemon's memory meanwhile, which must not grow by a
// table's worth: a delta does not copy the table. It logs the figures.
func TestMappings1M(t *testing.T) {
	if testing.Short() {
		t.Skip("a million mappings: about a minute")
	}
	netlab.RequireRoot(t)
	netlab.Need(t, "ip")
	bin := buildMap646(t)
	ns := newNetns(t)
	dir := t.TempDir()
	conf := filepath.Join(dir, "map646.toml")
	writeConfig(t, conf, "m646m0", false, "")
	b, _ := os.ReadFile(conf)
	b = []byte(strings.Replace(string(b), "allow_local_destinations = true\n", "allow_local_destinations = true\nmapping_file = \"mappings.txt\"\n", 1))
	if err := os.WriteFile(conf, b, 0o644); err != nil {
		t.Fatal(err)
	}
	const n = 1_000_000
	f, err := os.Create(filepath.Join(dir, "mappings.txt"))
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	v4, v6 := netip.MustParseAddr("100.64.0.0"), netip.MustParseAddr("2001:db8:100::")
	for range n {
		fmt.Fprintf(w, "%s %s\n", v4, v6)
		v4, v6 = v4.Next(), v6.Next()
	}
	w.Flush()
	f.Close()
	sock := filepath.Join(dir, "map646.sock")
	p := startMap646(t, bin, ns, conf)
	p.wait("started", 0)
	pid := p.cmd.Process.Pid
	mb := func(field string) float64 { return statusMB(t, pid, field) }
	rss0 := mb("VmRSS")

	start := time.Now()
	rows := 0
	r, err := control.CallStream(sock, control.Request{Command: "mappings"}, 0, func(control.MappingRow) { rows++ })
	took := time.Since(start)
	if err != nil || !*r.OK || rows != n+1 {
		t.Fatalf("mappings: %d rows, %v %+v; want %d", rows, err, r, n+1)
	}
	t.Logf("mappings: %d rows streamed in %v (%.0f rows/s); daemon VmRSS %.0f MB before, %.0f after, VmHWM %.0f",
		rows, took.Round(time.Millisecond), float64(rows)/took.Seconds(), rss0, mb("VmRSS"), mb("VmHWM"))

	rss1 := mb("VmRSS")
	const cycles = 100
	var worst time.Duration
	start = time.Now()
	for i := range cycles {
		a4 := "203.0.113." + strconv.Itoa(i%200+1)
		a6 := "2001:db8:7::" + strconv.Itoa(i%200+1)
		for _, cmd := range []string{"mapping-add", "mapping-del"} {
			s := time.Now()
			r, err := control.Call(sock, control.Request{Command: cmd, IPv4: a4, IPv6: a6}, time.Minute, nil)
			if err != nil || !*r.OK {
				t.Fatalf("%s %s %s: %v %+v", cmd, a4, a6, err, r)
			}
			worst = max(worst, time.Since(s))
		}
	}
	per := time.Since(start) / (2 * cycles)
	rss2 := mb("VmRSS")
	t.Logf("%d add/del cycles at %d mappings: %v per change (worst %v), the file rewritten each time; VmRSS %.0f MB before, %.0f after, VmHWM %.0f",
		cycles, n+1, per.Round(time.Microsecond), worst.Round(time.Microsecond), rss1, rss2, mb("VmHWM"))
	// The delta itself (translator and data plane), apart from the file.
	// The log is read as the daemon writes it: the last change's line may
	// come after its answer.
	var table, file []float64
	poll.Until(5*time.Second, 20*time.Millisecond, func() bool {
		table, file = table[:0], file[:0]
		p.mu.Lock()
		defer p.mu.Unlock()
		for _, m := range p.logs {
			if m["msg"] == "mappings changed" {
				table = append(table, m["table_took"].(float64)/1e3)
				file = append(file, m["file_took"].(float64)/1e3)
			}
		}
		return len(table) >= 2*cycles
	})
	slices.Sort(table)
	slices.Sort(file)
	if len(table) != 2*cycles {
		t.Fatalf("%d changes logged, want %d", len(table), 2*cycles)
	}
	t.Logf("in the daemon, per change: table delta median %.0f us, max %.0f us; mapping file rewrite median %.0f us, max %.0f us",
		table[len(table)/2], table[len(table)-1], file[len(file)/2], file[len(file)-1])
	if table[len(table)/2] > 1000 {
		t.Errorf("the median table delta took %.0f us at a million mappings, more than 1 ms", table[len(table)/2])
	}
	// A table of a million takes about 100 MB (translator.Table's
	// comment): a copy per delta would show at once.
	if rss2 > rss1+100 {
		t.Errorf("VmRSS grew from %.0f to %.0f MB over %d add/del cycles", rss1, rss2, cycles)
	}
	l := lookupOf(t, sock, "100.64.1.0")
	if l.Mapping == nil || l.Origin != filepath.Join(dir, "mappings.txt")+":257" {
		t.Errorf("lookup 100.64.1.0: %+v %+v", l, l.Mapping)
	}
}

func lookupOf(t *testing.T, sock, addr string) control.LookupResult {
	t.Helper()
	r, err := control.Call(sock, control.Request{Command: "lookup", Address: addr}, time.Minute, nil)
	if err != nil || !*r.OK || r.Lookup == nil {
		t.Fatalf("lookup %s: %v %+v", addr, err, r)
	}
	return *r.Lookup
}

// statusMB returns a kB field of /proc/PID/status (VmRSS, VmHWM) in MB.
func statusMB(t *testing.T, pid int, field string) float64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == field+":" {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return float64(kb) / 1024
		}
	}
	t.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}
