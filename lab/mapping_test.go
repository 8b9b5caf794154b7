package lab

// The mapping table changed at run time on the two-node routing lab
// (lab/topo): `map646 mapping add` on both nodes makes a new server
// reachable from the IPv4 client without a reload; the new prefix reaches
// the upstream router from both nodes by BGP; the established mappings'
// counters are untouched; `map646 mapping del` withdraws it. Run as root
// (-short skips it):
//
//	go test ./lab -run TestRuntimeMapping -v

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/map646/map646/lab/netlab"
	"github.com/map646/map646/lab/topo"
)

func TestRuntimeMapping(t *testing.T) {
	netlab.RequireRoot(t)
	if testing.Short() {
		t.Skip("skipped in -short mode: the routing lab takes a few seconds")
	}
	netlab.Need(t, "ip", "bird", "birdc", "ping")
	bin := netlab.BuildMap646(t)
	l := topo.New(t, topo.Options{Bin: bin, NoStart: true})
	dir := t.TempDir()
	for _, n := range l.Nodes {
		f := filepath.Join(dir, n.Name+"-mappings.txt")
		if err := os.WriteFile(f, []byte("# added at run time\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		n.Config.MappingFile = f
		n.Start(t)
	}
	l.WaitConverged(t, 30*time.Second)

	// A new server behind the backend: srv10's host gets a second address.
	const public, server, prefix = "198.51.100.20", "2001:db8:1::20", "198.51.100.20/32"
	l.Servers[0].AddAddr(t, "s0", server+"/64")
	ping(t, l.Client, topo.Public10, "-c", "3", "-i", "0.2", topo.Public10)
	before := map[string]float64{}
	for _, n := range l.Nodes {
		before[n.Name] = n.MappingPackets(t, topo.Public10, "4to6")
	}

	start := time.Now()
	for _, n := range l.Nodes {
		if out, err := n.Ctl(time.Minute, "mapping", "add", public, server); err != nil {
			t.Fatalf("%s: mapping add: %v: %s", n.Name, err, out)
		}
	}
	r := l.Up.WaitRoute(t, prefix, 10*time.Second, "a path from each node", func(r netlab.BirdRoute) bool {
		return len(r.From("tokyo")) == 1 && len(r.From("osaka")) == 1
	})
	t.Logf("mapping add on both nodes -> %s in the upstream's table from both: %v", prefix, time.Since(start).Round(time.Millisecond))
	for _, p := range r.Paths {
		if med, ok := p.MED(); !ok || med != 100 {
			t.Errorf("%s from %s: MED %d (%v), want 100 as the nodes' other prefixes", prefix, p.Protocol, med, ok)
		}
	}
	ping(t, l.Client, public, "-c", "5", "-i", "0.2", public)
	for _, n := range l.Nodes {
		if got := n.MappingPackets(t, topo.Public10, "4to6"); got != before[n.Name] {
			t.Errorf("%s: %s's counter went from %v to %v with no traffic to it", n.Name, topo.Public10, before[n.Name], got)
		}
		for _, line := range n.M.Lines() {
			if strings.Contains(line, `"msg":"reloaded"`) {
				t.Errorf("%s reloaded: %s", n.Name, line)
			}
		}
		look, err := n.Ctl(time.Minute, "lookup", public)
		if err != nil || !strings.Contains(look, n.Config.MappingFile+":2") {
			t.Errorf("%s: lookup %s: %v\n%s", n.Name, public, err, look)
		}
	}
	// The established mapping still translates, and counts.
	ping(t, l.Client, topo.Public10, "-c", "2", "-i", "0.2", topo.Public10)
	var sum, was float64
	for _, n := range l.Nodes {
		sum += n.MappingPackets(t, topo.Public10, "4to6")
		was += before[n.Name]
	}
	if sum < was+2 {
		t.Errorf("%s's counters: %v after two more pings, %v before", topo.Public10, sum, was)
	}

	start = time.Now()
	for _, n := range l.Nodes {
		if out, err := n.Ctl(time.Minute, "mapping", "del", public, server); err != nil {
			t.Fatalf("%s: mapping del: %v: %s", n.Name, err, out)
		}
	}
	l.Up.WaitRouteAbsent(t, prefix, 10*time.Second)
	t.Logf("mapping del on both nodes -> %s withdrawn from the upstream: %v", prefix, time.Since(start).Round(time.Millisecond))
	l.Up.WaitRoute(t, topo.Prefix4, 5*time.Second, "the established prefix from both nodes", func(r netlab.BirdRoute) bool {
		return len(r.From("tokyo")) == 1 && len(r.From("osaka")) == 1
	})
}
