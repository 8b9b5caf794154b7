package etcdlab

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/map646/map646/cmd/map646/control"
	"github.com/map646/map646/lab/netlab"
)

// TestDaemonEtcd runs `map646 run` (the real binary) with [mappings]
// source = "etcd" against the lab's three-member TLS cluster: each node in
// a client namespace of the switch, with a [bgp] speaker whose one
// neighbor never answers (its router_id names the node in etcd; what it
// would announce shows in status). It proves, in well under a minute:
//   - a node starts from etcd's table; a key put with etcdctl is
//     translated (its route installed, lookup names its key), a deleted
//     one goes;
//   - `map646 mapping add` writes the key and returns once the node
//     serves it; the other node serves it too; status -cluster lists both
//     nodes with their revisions and states;
//   - a reload keeps etcd's table;
//   - a node cut off from etcd goes stale, keeps its routes and
//     announcements, and catches up on heal;
//   - a node restarted while cut off serves the cached table and says so;
//   - a node with neither etcd nor a cache announces nothing and says why.
func TestDaemonEtcd(t *testing.T) {
	netlab.RequireRoot(t)
	netlab.Need(t, "ip", "etcd", "etcdctl")
	start := time.Now()
	bin := netlab.BuildMap646(t)
	c := Start(t, 3)
	admin := c.NewClient(t, "admin")
	cli := c.NewEtcdClient(t, admin)
	const prefix = "/lab"
	put(t, cli, prefix+"/mappings/198.51.100.10", "2001:db8:1::10")
	put(t, cli, prefix+"/mappings/198.51.100.99/32", "2001:db8:1::99") // a bad entry: a /32 is keyed by its address
	t.Logf("cluster up and seeded: %v", time.Since(start).Round(time.Millisecond))

	ca, cb := c.NewClient(t, "node-a"), c.NewClient(t, "node-b")
	a := startEtcdNode(t, c, bin, ca, "192.0.2.101", "")
	b := startEtcdNode(t, c, bin, cb, "192.0.2.102", "")
	for _, n := range []*etcdNode{a, b} {
		n.waitRoute(t, "198.51.100.10", true)
		n.waitStatus(t, "serving with etcd's table", func(s control.Status) bool {
			return s.Node.State == "serving" && s.Mappings != nil && s.Mappings.State == "synced" && len(s.Announced) == 2
		})
		s := n.status(t)
		if s.Mappings.Mappings != 1 || s.Mappings.BadCount != 1 || len(s.Mappings.BadEntries) != 1 ||
			s.Mappings.BadEntries[0].Key != prefix+"/mappings/198.51.100.99/32" {
			t.Errorf("%s: mappings %+v, want 1 mapping and the /32 key refused", n.name, s.Mappings)
		}
		if look := n.ctl(t, "lookup", "198.51.100.10"); !strings.Contains(look, "origin      "+prefix+"/mappings/198.51.100.10") {
			t.Errorf("%s: lookup does not name the key:\n%s", n.name, look)
		}
	}
	brief, _ := a.ctlErr("status") // exit 1: the neighbor is not established
	if !strings.Contains(brief, "\nmappings ") || !strings.Contains(brief, " etcd ") || !strings.Contains(brief, "synced, revision") {
		t.Errorf("status has no mappings row:\n%s", brief)
	}

	// A controller's put and delete, with etcdctl as an operator types it.
	t0 := time.Now()
	c.etcdctl(t, admin, "put", prefix+"/mappings/198.51.100.11", "2001:db8:1::11")
	a.waitRoute(t, "198.51.100.11", true)
	t.Logf("etcdctl put -> route on node-a: %v", time.Since(t0).Round(time.Millisecond))
	if look := a.ctl(t, "lookup", "2001:db8:1::11"); !strings.Contains(look, prefix+"/mappings/198.51.100.11") || !strings.Contains(look, "translated  198.51.100.11") {
		t.Errorf("lookup of the new mapping:\n%s", look)
	}
	rows := a.ctl(t, "mappings", "-json")
	if !strings.Contains(rows, `"origin":"`+prefix+`/mappings/198.51.100.11"`) {
		t.Errorf("mappings -json has no origin:\n%s", rows)
	}
	c.etcdctl(t, admin, "del", prefix+"/mappings/198.51.100.11")
	a.waitRoute(t, "198.51.100.11", false)

	// Propagation: a put or delete -> applied on both nodes (their
	// "mappings changed" record: table, route and announcement changed),
	// one change at a time, as a controller makes them.
	var lat []time.Duration
	for _, n := range []*etcdNode{a, b} {
		for { // skip the records of the changes above
			if rec, _ := n.m.WaitLog(t, 10*time.Second, "mappings changed"); strings.Contains(fmt.Sprint(rec["changes"]), "del 198.51.100.11 ") {
				break
			}
		}
	}
	for i := range 40 {
		addr := fmt.Sprintf("198.51.100.%d", 128+i%20)
		key := prefix + "/mappings/" + addr
		var rev int64
		t0 := time.Now()
		if i < 20 {
			rev = put(t, cli, key, fmt.Sprintf("2001:db8:3::%x", 128+i))
		} else {
			rev = del(t, cli, key)
		}
		for _, n := range []*etcdNode{a, b} {
			rec, _ := n.m.WaitLog(t, 10*time.Second, "mappings changed")
			if !strings.Contains(fmt.Sprint(rec["changes"]), " "+addr+" ") {
				t.Fatalf("%s: change %d (%s, revision %d): applied %v", n.name, i, key, rev, rec["changes"])
			}
			at, err := time.Parse(time.RFC3339Nano, rec["time"].(string))
			if err != nil {
				t.Fatal(err)
			}
			lat = append(lat, at.Sub(t0))
		}
	}
	slices.Sort(lat)
	t.Logf("etcd write -> applied on a node, %d changes x 2 nodes: p50 %v, p99 %v, max %v", len(lat)/2,
		lat[len(lat)/2].Round(time.Microsecond), lat[len(lat)*99/100].Round(time.Microsecond), lat[len(lat)-1].Round(time.Microsecond))

	// map646 mapping add on node-a: written to etcd, served by node-a when
	// the command returns, by node-b through its watch.
	out := a.ctl(t, "mapping", "add", "198.51.100.20", "2001:db8:1::20")
	if !strings.Contains(out, "put "+prefix+"/mappings/198.51.100.20 2001:db8:1::20 at etcd revision") || !strings.Contains(out, "this node serves it") {
		t.Errorf("mapping add said:\n%s", out)
	}
	if !a.hasRoute(t, "198.51.100.20") {
		t.Errorf("mapping add returned before node-a serves the mapping")
	}
	if v := get(t, cli, prefix+"/mappings/198.51.100.20"); v != "2001:db8:1::20" {
		t.Errorf("etcd holds %q for the key mapping add wrote", v)
	}
	b.waitRoute(t, "198.51.100.20", true)
	if out, err := a.ctlErr("mapping", "add", "198.51.100.20/31", "2001:db8:1::20/127"); err == nil || !strings.Contains(out, "overlaps") {
		t.Errorf("an overlapping mapping add: %v\n%s", err, out)
	}
	var cluster string
	waitFor(t, 10*time.Second, "status -cluster lists both nodes serving", func() bool {
		cluster = a.ctl(t, "status", "-cluster")
		return strings.Contains(cluster, "2 nodes") && strings.Count(cluster, "serving  synced") == 2
	})
	t.Logf("status -cluster:\n%s", cluster)
	var cs control.ClusterStatus
	if err := json.Unmarshal([]byte(a.ctl(t, "status", "-cluster", "-json")), &cs); err != nil || len(cs.Nodes) != 2 ||
		cs.Nodes[0].Node != "192.0.2.101" || cs.Nodes[1].Node != "192.0.2.102" || cs.Nodes[0].Revision == 0 {
		t.Errorf("status -cluster -json: %+v, %v", cs, err)
	}

	// A reload keeps etcd's table (the file has none).
	if out := b.ctl(t, "reload"); !strings.Contains(out, ": 2 mappings, 0 routes added, 0 removed") || !b.hasRoute(t, "198.51.100.20") {
		t.Errorf("reload on an etcd node: %s", out)
	}

	// node-a cut off from etcd: stale, still serving and announcing; a
	// change made meanwhile reaches it on heal.
	c.CutClient(t, a.cl)
	a.waitStatus(t, "stale after the cut", func(s control.Status) bool {
		return s.Mappings.State == "stale" && s.Mappings.StaleSince != nil
	})
	if s := a.status(t); s.Node.State != "serving" || len(s.Announced) != 3 || !a.hasRoute(t, "198.51.100.20") {
		t.Errorf("a stale node: %s, announcing %d, want serving with its 3 prefixes and routes", s.Node.State, len(s.Announced))
	}
	put(t, cli, prefix+"/mappings/198.51.100.21", "2001:db8:1::21")
	b.waitRoute(t, "198.51.100.21", true)
	c.HealClient(t, a.cl)
	a.waitRoute(t, "198.51.100.21", true)
	a.waitStatus(t, "synced after the heal", func(s control.Status) bool { return s.Mappings.State == "synced" })

	// node-a restarted while cut off: the cached table, said so.
	a.m.Terminate(t)
	c.CutClient(t, a.cl)
	put(t, cli, prefix+"/mappings/198.51.100.22", "2001:db8:1::22") // while node-a is away
	a = startEtcdNode(t, c, bin, ca, "192.0.2.101", a.m.StateDir)
	a.waitStatus(t, "serving from the cache", func(s control.Status) bool {
		// 198.51.100.10/32, .20/31 (.20 and .21), the pseudo prefix
		return s.Mappings.State == "from cache" && s.Node.State == "serving" && len(s.Announced) == 3
	})
	for _, p := range []string{"198.51.100.10", "198.51.100.20", "198.51.100.21"} {
		if !a.hasRoute(t, p) {
			t.Errorf("node-a from its cache lacks the route of %s", p)
		}
	}
	if v, _ := a.ctlErr("status", "-v"); !strings.Contains(v, "from cache, stale since") {
		t.Errorf("status -v does not say the table is the cache:\n%s", v)
	}
	c.HealClient(t, a.cl)
	a.waitRoute(t, "198.51.100.22", true)
	a.waitStatus(t, "synced after the heal", func(s control.Status) bool { return s.Mappings.State == "synced" })

	// A new node with neither etcd nor a cache: nothing announced, and why.
	cn := c.NewClient(t, "node-c")
	c.CutClient(t, cn)
	n := startEtcdNode(t, c, bin, cn, "192.0.2.103", "")
	n.waitStatus(t, "no table", func(s control.Status) bool { return s.Mappings.State == "no table" })
	s := n.status(t)
	if s.Node.State != "starting" || !strings.Contains(s.Node.Cause, "waiting for the mapping table") || len(s.Announced) != 0 {
		t.Errorf("a node without a table: %s (%s), announcing %d; want starting, waiting, nothing", s.Node.State, s.Node.Cause, len(s.Announced))
	}
	c.HealClient(t, cn)
	n.waitStatus(t, "serving once etcd answers", func(s control.Status) bool {
		return s.Node.State == "serving" && s.Mappings.State == "synced" && len(s.Announced) == 4 // .10, .20/31, .22, pseudo
	})
	t.Logf("took %v", time.Since(start).Round(time.Millisecond))
}

// etcdNode is a map646 run in a client namespace of the cluster.
type etcdNode struct {
	name string
	bin  string
	cl   *Client
	m    *netlab.Map646
}

// startEtcdNode starts map646 in cl's namespace with the etcd source
// under /lab, named routerID in etcd, with state_dir stateDir ("": a new
// one).
func startEtcdNode(t *testing.T, c *Cluster, bin string, cl *Client, routerID, stateDir string) *etcdNode {
	t.Helper()
	q := make([]string, len(c.Endpoints()))
	for i, e := range c.Endpoints() {
		q[i] = fmt.Sprintf("%q", e)
	}
	cfg := netlab.Config{StateDir: stateDir, Sections: fmt.Sprintf(`
[bgp]
local_as = 64512
router_id = %q
listen_port = -1

[[bgp.neighbor]]
address = "203.0.113.254"
peer_as = 64496

[mappings]
source = "etcd"

[mappings.etcd]
endpoints = [%s]
prefix = "/lab"
cert_file = %q
key_file = %q
ca_file = %q
dial_timeout = "1s"
request_timeout = "1s"
lease_ttl = "3s"
`, routerID, strings.Join(q, ", "), c.ClientCert, c.ClientKey, c.CAFile)}
	if stateDir != "" {
		if err := os.MkdirAll(stateDir, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	m := netlab.StartMap646(t, cl.NS, bin, cfg)
	return &etcdNode{name: cl.Name, bin: bin, cl: cl, m: m}
}

// ctlErr runs `map646 ARGS... -socket SOCK` and returns its output.
func (n *etcdNode) ctlErr(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, n.bin, append(args, "-socket", n.m.Socket)...).CombinedOutput()
	return string(out), err
}

func (n *etcdNode) ctl(t *testing.T, args ...string) string {
	t.Helper()
	out, err := n.ctlErr(args...)
	if err != nil {
		t.Fatalf("%s: map646 %s: %v\n%s", n.name, strings.Join(args, " "), err, out)
	}
	return out
}

func (n *etcdNode) status(t *testing.T) control.Status {
	t.Helper()
	var s control.Status
	out, _ := n.ctlErr("status", "-json") // its exit code says the state: 1 while starting
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		t.Fatalf("%s: status -json: %v\n%s", n.name, err, out)
	}
	if s.Mappings == nil {
		t.Fatalf("%s: status without its mappings part", n.name)
	}
	return s
}

func (n *etcdNode) waitStatus(t *testing.T, what string, cond func(control.Status) bool) {
	t.Helper()
	var last control.Status
	waitFor(t, 15*time.Second, n.name+": "+what, func() bool {
		last = n.status(t)
		return cond(last)
	})
}

// hasRoute says whether the node's namespace routes the IPv4 address
// into its device (a route of protocol 246 whose prefix holds it).
func (n *etcdNode) hasRoute(t *testing.T, addr string) bool {
	out, err := n.cl.NS.Exec(10*time.Second, "ip", "-4", "route", "get", addr)
	return err == nil && strings.Contains(out, "dev "+n.m.Device)
}

func (n *etcdNode) waitRoute(t *testing.T, addr string, want bool) {
	t.Helper()
	waitFor(t, 15*time.Second, fmt.Sprintf("%s: route to %s present=%v", n.name, addr, want), func() bool { return n.hasRoute(t, addr) == want })
}

func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond) // the daemon offers nothing to wait on from outside: polled
	}
}

func get(t *testing.T, cli *clientv3.Client, key string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := cli.Get(ctx, key)
	if err != nil || len(r.Kvs) != 1 {
		t.Fatalf("get %s: %v (%d keys)", key, err, len(r.Kvs))
	}
	return string(r.Kvs[0].Value)
}

// etcdctl runs etcdctl from the client namespace cl with the lab's
// certificates, as an operator would.
func (c *Cluster) etcdctl(t *testing.T, cl *Client, args ...string) string {
	t.Helper()
	full := append([]string{"etcdctl", "--endpoints", strings.Join(c.Endpoints(), ","),
		"--cacert", c.CAFile, "--cert", c.ClientCert, "--key", c.ClientKey}, args...)
	out, err := cl.NS.Exec(10*time.Second, full...)
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(full, " "), err, out)
	}
	return out
}
