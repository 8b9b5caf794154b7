package main

import (
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/map646/map646/cmd/map646/control"
	"github.com/map646/map646/lab/netlab"
)

// TestMappingAtRunTime runs map646 in a namespace with a mapping file and
// changes its table at run time with map646 mapping: a packet to a mapping
// just added is translated without a reload, the routes change by the
// span the mapping joins, the established mapping's counters go on
// untouched, lookup shows the origin (file:line) and the counters, the
// change survives a restart (it is in the file), a deletion stops the
// translation and removes its line, and the refusals say why: an overlap,
// a [[mapping]] entry (nowhere durable to write).
func TestMappingAtRunTime(t *testing.T) {
	netlab.RequireRoot(t)
	netlab.Need(t, "ip")
	bin := buildMap646(t)
	ns := newNetns(t)
	ip(t, "-n", ns, "link", "add", "m646v0", "type", "veth", "peer", "name", "m646v1")
	ip(t, "-n", ns, "link", "set", "m646v0", "up")
	ip(t, "-n", ns, "link", "set", "m646v1", "up")
	ip(t, "-n", ns, "addr", "add", "192.0.2.100/24", "dev", "m646v0")
	ip(t, "-n", ns, "addr", "add", "2001:db8:1::10/64", "dev", "m646v0", "nodad")
	ip(t, "-n", ns, "addr", "add", "2001:db8:1::11/64", "dev", "m646v0", "nodad")

	dir := t.TempDir()
	conf := filepath.Join(dir, "map646.toml")
	writeConfig(t, conf, "m646r0", false, "")
	b, _ := os.ReadFile(conf)
	b = []byte(strings.Replace(string(b), "allow_local_destinations = true\n", "allow_local_destinations = true\nmapping_file = \"mappings.txt\"\n", 1))
	if err := os.WriteFile(conf, b, 0o644); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "mappings.txt")
	if err := os.WriteFile(file, []byte("# web\n198.51.100.10 2001:db8:1::10\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "map646.sock")
	p := startMap646(t, bin, ns, conf)
	_, next := p.wait("started", 0)

	// One echo server per address: a reply must leave from the address
	// the client sent to, the mapped one.
	var srv *net.UDPConn
	var err error
	for _, a := range []string{"2001:db8:1::10", "2001:db8:1::11"} {
		var s *net.UDPConn
		inNS(t, ns, func() { s, err = net.ListenUDP("udp6", &net.UDPAddr{IP: net.ParseIP(a), Port: 7007}) })
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		srv = s
		go func() {
			buf := make([]byte, 2000)
			for {
				n, from, err := s.ReadFromUDPAddrPort(buf)
				if err != nil {
					return
				}
				s.WriteToUDPAddrPort(buf[:n], from)
			}
		}()
	}
	lookup := func(addr string) control.LookupResult {
		t.Helper()
		code, out, errOut := runCmd(t, "lookup", "-json", "-socket", sock, addr)
		var r control.LookupResult
		if code != exitOK || json.Unmarshal([]byte(out), &r) != nil {
			t.Fatalf("lookup %s: exit %d, %s%s", addr, code, out, errOut)
		}
		return r
	}
	// The workers add a batch's per-mapping counts once they have written
	// the batch: the echo's reply can reach the client before its count is
	// in. counted waits (2 s at most) for the counts of addr to reach
	// packets4to6 and packets6to4, and returns the lookup then.
	counted := func(addr string, packets4to6, packets6to4 uint64) control.LookupResult {
		t.Helper()
		deadline := time.Now().Add(2 * time.Second)
		for {
			r := lookup(addr)
			m := r.Mapping
			if m == nil || m.Packets4to6 >= packets4to6 && m.Packets6to4 >= packets6to4 || time.Now().After(deadline) {
				return r
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	mapping := func(args ...string) (int, string) {
		t.Helper()
		code, out, errOut := runCmd(t, append([]string{"mapping", "-socket", sock}, args...)...)
		return code, out + errOut
	}

	udpEcho(t, ns, "198.51.100.10", srv)
	before := counted("198.51.100.10", 1, 1).Mapping
	if before == nil || before.Packets4to6 != 1 || before.Packets6to4 != 1 {
		t.Fatalf("198.51.100.10 after one echo: %+v", before)
	}

	// Add .11: translated at once, no reload; .10 and .11 merge into /31.
	if code, out := mapping("add", "198.51.100.11", "2001:db8:1::11"); code != exitOK {
		t.Fatalf("mapping add: exit %d: %s", code, out)
	}
	changed, next := p.wait("mappings changed", next)
	if changed["routes_added"] != float64(1) || changed["routes_removed"] != float64(1) {
		t.Errorf("mappings changed: %v; want 1 route added (.10/31), 1 removed (.10/32)", changed)
	}
	want := "198.51.100.10/31 dev m646r0,198.51.100.16/28 dev m646r0,64:ff9b::/96 dev m646r0"
	if got := strings.Join(routes(t, ns), ","); got != want {
		t.Errorf("routes %s, want %s", got, want)
	}
	udpEcho(t, ns, "198.51.100.11", srv)
	udpEcho(t, ns, "198.51.100.10", srv)
	l := counted("198.51.100.11", 1, 1)
	if l.Mapping == nil || l.Mapping.IPv6 != "2001:db8:1::11" || l.Origin != file+":3" || l.Mapping.Packets4to6 != 1 || l.Translated != "2001:db8:1::11" {
		t.Errorf("lookup 198.51.100.11: %+v %+v", l, l.Mapping)
	}
	after := counted("198.51.100.10", 2, 2).Mapping
	if after.ID != before.ID || after.Packets4to6 != 2 || after.Bytes4to6 != 2*before.Bytes4to6 {
		t.Errorf("198.51.100.10's counters: before %+v, after one more echo %+v; want them going on", before, after)
	}
	for _, p := range lines(t, p, "reloaded") {
		t.Errorf("a reload happened: %s", p)
	}

	// Refusals change nothing and say why.
	if code, out := mapping("add", "198.51.100.0/24", "2001:db8:3::/120"); code != exitError || !strings.Contains(out, "overlaps mapping") {
		t.Errorf("overlapping add: exit %d: %s", code, out)
	}
	if code, out := mapping("del", "198.51.100.16/28", "2001:db8:2::/124"); code != exitError || !strings.Contains(out, "[[mapping]] entry") || !strings.Contains(out, "map646.toml") {
		t.Errorf("deleting a [[mapping]] entry: exit %d: %s", code, out)
	}
	if code, out := mapping("add", "198.51.100.12", "64:ff9b::12"); code != exitError || !strings.Contains(out, "pseudo prefix") {
		t.Errorf("an IPv6 side in the pseudo prefix: exit %d: %s", code, out)
	}
	code, out, _ := runCmd(t, "mappings", "-csv", "-socket", sock)
	if code != exitOK || strings.Count(out, "\n") != 4 || !strings.Contains(out, ",198.51.100.11,2001:db8:1::11,1,") {
		t.Errorf("mappings -csv: exit %d:\n%s", code, out)
	}
	if l := lookup("192.0.2.77"); l.Mapping != nil || l.Translated != "64:ff9b::c000:24d" || !strings.Contains(l.Note, "not mapped") {
		t.Errorf("lookup of an unmapped address: %+v", l)
	}

	// A reload of the file, changed by hand, applies as a delta: the
	// counters stay where they are.
	f, err := os.OpenFile(file, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("198.51.100.40 2001:db8:1::40\n")
	f.Close()
	p.signal(syscall.SIGHUP)
	reloaded, next := p.wait("reloaded", next)
	if reloaded["as_delta"] != true || reloaded["delta"] != float64(1) || reloaded["mappings"] != float64(4) {
		t.Errorf("reloaded: %v; want one change applied as a delta", reloaded)
	}
	if c := lookup("198.51.100.10").Mapping; c.ID != after.ID || c.Packets4to6 != after.Packets4to6 {
		t.Errorf("198.51.100.10 after the reload: %+v, before %+v", c, after)
	}

	// A restart keeps it: it is in the file.
	p.signal(syscall.SIGTERM)
	p.wait("stopped", next)
	<-p.done
	p = startMap646(t, bin, ns, conf)
	_, next = p.wait("started", 0)
	udpEcho(t, ns, "198.51.100.11", srv)

	// Delete: no more translation, its line gone.
	if code, out := mapping("del", "198.51.100.11", "2001:db8:1::11"); code != exitOK {
		t.Fatalf("mapping del: exit %d: %s", code, out)
	}
	if l := lookup("198.51.100.11"); l.Mapping != nil {
		t.Errorf("lookup after del: %+v", l.Mapping)
	}
	if got, _ := os.ReadFile(file); string(got) != "# web\n198.51.100.10 2001:db8:1::10\n198.51.100.40 2001:db8:1::40\n" {
		t.Errorf("mapping file after del: %q", got)
	}
	// The /31 splits back: .11 has no route into the device any more.
	want = "198.51.100.10 dev m646r0,198.51.100.16/28 dev m646r0,198.51.100.40 dev m646r0,64:ff9b::/96 dev m646r0"
	if got := strings.Join(routes(t, ns), ","); got != want {
		t.Errorf("routes after del %s, want %s", got, want)
	}
	udpEcho(t, ns, "198.51.100.10", srv)
}

// lines returns the log lines of p whose msg starts with msg.
func lines(t *testing.T, p *proc, msg string) []string {
	var out []string
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, m := range p.logs {
		if s, _ := m["msg"].(string); strings.HasPrefix(s, msg) {
			out = append(out, p.raw[i])
		}
	}
	return out
}
