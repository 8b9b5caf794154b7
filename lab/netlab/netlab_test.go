package netlab

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestNamespaces: two namespaces joined by a veth carry a UDP datagram
// between documentation addresses; a background process is stopped by its
// PID; when the subtest ends its namespaces are gone, processes and all.
func TestNamespaces(t *testing.T) {
	RequireRoot(t)
	Need(t, "ip", "nstat")
	var names []string
	t.Run("lab", func(t *testing.T) {
		a, b := NewNS(t, "a"), NewNS(t, "b")
		names = []string{a.Name, b.Name}
		if !strings.HasPrefix(a.Name, Prefix) || a.Name == b.Name || !strings.HasSuffix(a.Name, "-a") {
			t.Errorf("names %s, %s", a.Name, b.Name)
		}
		Veth(t, a, "m646a0", b, "m646b0")
		a.AddAddr(t, "m646a0", "192.0.2.1/24", "2001:db8::1/64")
		b.AddAddr(t, "m646b0", "192.0.2.2/24", "2001:db8::2/64")
		b.AddRoute(t, "198.51.100.0/24", "192.0.2.1")
		a.Sysctl(t, "net.ipv4.ip_forward=1")
		if out := strings.TrimSpace(a.Run(t, "cat", "/proc/sys/net/ipv4/ip_forward")); out != "1" {
			t.Errorf("ip_forward in a: %q, want 1", out)
		}
		if out := strings.TrimSpace(b.Run(t, "cat", "/proc/sys/net/ipv4/ip_forward")); out != "0" {
			t.Errorf("ip_forward in b: %q, want 0 (sysctl leaked across namespaces)", out)
		}
		if !strings.Contains(b.IP(t, "route", "show"), "198.51.100.0/24 via 192.0.2.1") {
			t.Errorf("route missing")
		}
		if mac := a.MAC(t, "m646a0"); len(mac) != 6 {
			t.Errorf("MAC %v", mac)
		}

		for _, addrs := range [][2]string{{"192.0.2.2:7000", "192.0.2.1:7000"}, {"[2001:db8::2]:7000", "[2001:db8::1]:7000"}} {
			srv := b.ListenPacket(t, "udp", addrs[0])
			c, err := a.Dial("udp", "", addrs[0], time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if _, err := c.Write([]byte("netlab")); err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 100)
			srv.SetReadDeadline(time.Now().Add(5 * time.Second))
			n, from, err := srv.ReadFrom(buf)
			if err != nil || !bytes.Equal(buf[:n], []byte("netlab")) || !strings.HasPrefix(from.String(), addrs[1][:len(addrs[1])-5]) {
				t.Errorf("%s: read %q from %v: %v", addrs[0], buf[:n], from, err)
			}
		}

		// Exec: a timeout kills the command.
		start := time.Now()
		if _, err := a.Exec(500*time.Millisecond, "sleep", "30"); err == nil || !strings.Contains(err.Error(), "timed out") {
			t.Errorf("sleep 30 with a 0.5 s timeout: %v", err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("the timeout took %v", d)
		}

		// A background process, its output, stopped by PID.
		p := b.Start(t, "sh", "-c", "echo ready; exec sleep 60")
		p.WaitLine(t, 0, 10*time.Second, func(l string) bool { return l == "ready" })
		if err := p.Stop(5 * time.Second); !isSignalled(err) {
			t.Errorf("stop: %v, want killed by SIGTERM", err)
		}
		// One left running: the namespace cleanup ends it.
		b.Start(t, "sleep", "60")

		c := b.Nstat(t, "UdpInCsumErrors", "Udp6InCsumErrors")
		if len(c) != 2 {
			t.Errorf("nstat: %v", c)
		}
	})
	for _, n := range names {
		if _, err := os.Stat("/run/netns/" + n); !os.IsNotExist(err) {
			t.Errorf("namespace %s left behind: %v", n, err)
		}
	}
}

// TestMap646: map646 starts in a namespace with a generated configuration,
// its routes and metrics are there, a reload applies, SIGTERM cleans up.
func TestMap646(t *testing.T) {
	RequireRoot(t)
	Need(t, "ip")
	bin := BuildMap646(t)
	ns := NewNS(t, "xlat")
	c := Config{Mappings: []Mapping{{"198.51.100.10", "2001:db8:1::10"}}, RFC6791Pool: []string{"203.0.113.1"},
		Translator: "ipv6_mtu = 1500"}
	m := StartMap646(t, ns, bin, c)
	if got := strings.Join(m.Routes(t), ","); !strings.Contains(got, "198.51.100.10 dev map646 ") ||
		!strings.Contains(got, "64:ff9b::/96 dev map646 ") {
		t.Errorf("routes: %s", got)
	}
	before := m.Metrics(t)
	if v := before.Get("map646_mappings"); v != 1 {
		t.Errorf("map646_mappings %v, want 1", v)
	}
	c.Mappings = append(c.Mappings, Mapping{"198.51.100.11", "2001:db8:1::11"})
	if rec := m.Reload(t, c); rec["mappings"] != float64(2) {
		t.Errorf("reloaded: %v", rec)
	}
	met := m.Metrics(t)
	if met.Get("map646_mappings") != 2 || met.Get("map646_reloads_total", "result", "ok") != 1 {
		t.Errorf("after the reload: mappings %v, reloads ok %v", met.Get("map646_mappings"), met.Get("map646_reloads_total", "result", "ok"))
	}
	// The start counts as the first load; the reload moves both times.
	const attempt, success = "map646_reload_last_attempt_timestamp_seconds", "map646_reload_last_success_timestamp_seconds"
	if a0, s0, a1, s1 := before.Get(attempt), before.Get(success), met.Get(attempt), met.Get(success); a0 == 0 || s0 != a0 || a1 <= a0 || s1 != a1 {
		t.Errorf("last attempt, last success: %v, %v at start, %v, %v after the reload; want equal, set, and later after", a0, s0, a1, s1)
	}
	m.Terminate(t)
}

// TestSweepStale: a namespace whose creator has died is deleted by the
// sweep, one whose creator lives is not.
func TestSweepStale(t *testing.T) {
	RequireRoot(t)
	Need(t, "ip")
	live := NewNS(t, "live")
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	stale := &NS{Name: Prefix + "deadbeef-stale"}
	t.Cleanup(func() { stale.Delete() })
	if out, err := command(DefaultTimeout, nil, "ip", "netns", "add", stale.Name); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	// The record of a process that has exited (its PID, a start time).
	if err := os.WriteFile(filepath.Join(OwnerDir, stale.Name), fmt.Appendf(nil, "%d 1", cmd.Process.Pid), 0o644); err != nil {
		t.Fatal(err)
	}
	swept, err := SweepStale()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(swept, stale.Name) || slices.Contains(swept, live.Name) {
		t.Errorf("swept %q: want %s and not %s", swept, stale.Name, live.Name)
	}
	if _, err := os.Stat("/run/netns/" + stale.Name); !os.IsNotExist(err) {
		t.Errorf("%s still there: %v", stale.Name, err)
	}
	if _, err := os.Stat(filepath.Join(OwnerDir, stale.Name)); !os.IsNotExist(err) {
		t.Errorf("the record of %s is still there: %v", stale.Name, err)
	}
	if _, err := os.Stat("/run/netns/" + live.Name); err != nil {
		t.Errorf("the live namespace went: %v", err)
	}
}

// TestParseStatCPU: utime + stime, counted after the last ")" of a command
// name that may hold spaces and parentheses.
func TestParseStatCPU(t *testing.T) {
	line := "4242 (map 646 (x)) S 1 4242 4242 0 -1 4194560 1234 0 0 0 250 37 0 0 20 0 9 0 100 0 0\n"
	d, err := parseStatCPU(line)
	if err != nil || d != 2870*time.Millisecond {
		t.Errorf("parseStatCPU = %v, %v; want 2.87s", d, err)
	}
	for _, bad := range []string{"", "4242 map646 S 1", "4242 (map646) S 1 2 3", "4242 (m) S 1 2 3 4 5 6 7 8 9 10 x 0"} {
		if _, err := parseStatCPU(bad); err == nil {
			t.Errorf("parseStatCPU(%q) accepted", bad)
		}
	}
}
