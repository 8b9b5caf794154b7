package etcdlab

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/map646/map646/config/etcdsource"
)

// node is a Source running from a client namespace, as a map646 node's
// would, with its table.
type node struct {
	src    *etcdsource.Source
	tb     *table
	cancel context.CancelFunc
	done   chan error
}

func startNode(t *testing.T, c *Cluster, cl *Client, prefix, stateDir, id string) *node {
	t.Helper()
	cfg := etcdsource.Config{Etcd: c.Etcd(prefix), PseudoPrefix: netip.MustParsePrefix("64:ff9b::/96"),
		MaxMappings: 1 << 20, StateDir: stateDir, NodeID: id, Version: "lab", Dial: cl.Dial,
		ProbeInterval: 200 * time.Millisecond, CacheDelay: 200 * time.Millisecond}
	n := &node{tb: newTable(), done: make(chan error, 1)}
	var err error
	if n.src, err = etcdsource.New(cfg, n.tb); err != nil {
		t.Fatalf("source: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	n.cancel = cancel
	go func() { n.done <- n.src.Run(ctx) }()
	t.Cleanup(func() { n.stop(t) })
	return n
}

// stop ends Run and closes the client; safe twice.
func (n *node) stop(t *testing.T) {
	if n.cancel == nil {
		return
	}
	n.cancel()
	n.cancel = nil
	select {
	case <-n.done:
	case <-time.After(10 * time.Second):
		t.Errorf("source: Run did not return within 10 s of its context's end")
	}
	n.src.Close()
	n.tb.check(t)
}

// waitState waits until the source's state is want.
func (n *node) waitState(t *testing.T, want etcdsource.State, timeout time.Duration) etcdsource.Status {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		st := n.src.Status()
		if st.State == want {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("source state %q after %v, want %q (%s)", st.State, timeout, want, st)
		}
		time.Sleep(20 * time.Millisecond) // the state changes on a probe: polled
	}
}

func put(t *testing.T, cli *clientv3.Client, key, value string) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := cli.Put(ctx, key, value)
	if err != nil {
		t.Fatalf("put %s: %v", key, err)
	}
	return r.Header.Revision
}

// putRetry puts until etcd accepts, for up to 20 s: a write during an
// election (the leader killed) times out, and the writer tries again, as a
// controller would; writing the same value twice changes nothing.
func putRetry(t *testing.T, cli *clientv3.Client, key, value string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := cli.Put(ctx, key, value)
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("put %s: %v", key, err)
		}
	}
}

func del(t *testing.T, cli *clientv3.Client, key string) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := cli.Delete(ctx, key)
	if err != nil {
		t.Fatalf("delete %s: %v", key, err)
	}
	return r.Header.Revision
}

// metric returns the value of the gauge or counter name in reg.
func metric(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			m := mf.GetMetric()[0]
			if g := m.GetGauge(); g != nil {
				return g.GetValue()
			}
			return m.GetCounter().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

func key(prefix string, n int) string { return etcdsource.MappingKey(prefix, mappingN(n).IPv4) }

// TestEtcdSource runs the source against a real three-member cluster with
// TLS and client certificates, from client namespaces; each subtest uses a
// prefix of its own.
func TestEtcdSource(t *testing.T) {
	c := Start(t, 3)
	admin := c.NewEtcdClient(t, c.NewClient(t, "admin"))

	// The start-up read delivers exactly the valid keys, read in pages
	// at one revision; bad entries are refused with key and reason,
	// counted, and the rest works; the watch delivers what follows.
	t.Run("SnapshotWatchBad", func(t *testing.T) {
		const p = "/t1"
		putMappings(t, admin, p, 0, 2500, 4) // several pages of 1000
		bad := map[string]string{
			p + "/mappings/100.64.0.5/32": "2001:db8:ffff::1",   // non-canonical key
			p + "/mappings/100.99.0.1":    "not-an-address",     // bad value
			p + "/mappings/100.64.0.0/30": "2001:db8:200::/126", // overlaps 100.64.0.0..3, younger
			p + "/mappings/100.99.0.2":    "64:ff9b::1",         // in the pseudo prefix
			p + "/mappings/garbage":       "2001:db8:300::1",
		}
		for k, v := range bad {
			put(t, admin, k, v)
		}
		cl := c.NewClient(t, "n1")
		n := startNode(t, c, cl, p, "", "")
		n.waitState(t, etcdsource.Synced, 20*time.Second)
		want := etcdTable(t, admin, p)
		if len(want) != 2500 {
			t.Fatalf("etcd holds %d valid mappings, want 2500", len(want))
		}
		n.tb.wait(t, 5*time.Second, "the snapshot", func() bool { return n.tb.equals(want) })
		if got := len(n.tb.snapshots); got != 1 {
			t.Errorf("%d snapshots, want 1", got)
		}
		got := n.src.BadEntries()
		if len(got) != len(bad) {
			t.Errorf("%d bad entries, want %d: %+v", len(got), len(bad), got)
		}
		for _, b := range got {
			if _, ok := bad[b.Key]; !ok || b.Reason == "" {
				t.Errorf("bad entry %+v: not one of those written, or no reason", b)
			}
			t.Logf("refused: %s = %q: %s", b.Key, b.Value, b.Reason)
		}
		if st := n.src.Status(); st.BadEntries != len(bad) || st.Mappings != 2500 {
			t.Errorf("status %s: want 2500 mappings and %d bad entries", st, len(bad))
		}
		reg := prometheus.NewPedanticRegistry()
		if err := n.src.Register(reg); err != nil {
			t.Fatal(err)
		}
		for name, want := range map[string]float64{"map646_etcd_mappings": 2500, "map646_etcd_bad_entries": float64(len(bad)),
			"map646_etcd_table": 1, "map646_etcd_from_cache": 0, "map646_etcd_stale_seconds": 0, "map646_etcd_snapshots_total": 1,
			"map646_etcd_revision": float64(n.src.Status().Revision)} {
			if got := metric(t, reg, name); got != want {
				t.Errorf("%s = %v, want %v", name, got, want)
			}
		}

		// Deleting the winner of the overlap lets the loser in.
		for i := range 4 {
			del(t, admin, key(p, i))
		}
		n.tb.wait(t, 5*time.Second, "the refused /30 accepted once the /32s it overlapped are gone", func() bool {
			return n.tb.m[netip.MustParsePrefix("100.64.0.0/30")] == netip.MustParsePrefix("2001:db8:200::/126")
		})
		if got := len(n.src.BadEntries()); got != len(bad)-1 {
			t.Errorf("%d bad entries after the overlap resolved, want %d", got, len(bad)-1)
		}
	})

	// 1,000 puts then 1,000 deletes, one by one: each arrives once, in
	// the order written.
	t.Run("PutsThenDeletesInOrder", func(t *testing.T) {
		const p = "/t2"
		n := startNode(t, c, c.NewClient(t, "n2"), p, "", "")
		n.waitState(t, etcdsource.Synced, 20*time.Second)
		var revs []int64
		for i := range 1000 {
			m := mappingN(i)
			revs = append(revs, put(t, admin, key(p, i), etcdsource.MappingValue(m)))
		}
		for i := range 1000 {
			revs = append(revs, del(t, admin, key(p, i)))
		}
		n.tb.wait(t, 20*time.Second, "2,000 deltas", func() bool { return len(n.tb.deltas) == 2000 })
		n.tb.mu.Lock()
		defer n.tb.mu.Unlock()
		for i, d := range n.tb.deltas {
			wantOp, wantKey := etcdsource.Put, key(p, i)
			if i >= 1000 {
				wantOp, wantKey = etcdsource.Delete, key(p, i-1000)
			}
			if d.Op != wantOp || d.Key != wantKey || d.Revision != revs[i] {
				t.Fatalf("delta %d: %s %s at %d, want %s %s at %d", i, d.Op, d.Key, d.Revision, wantOp, wantKey, revs[i])
			}
		}
		if len(n.tb.m) != 0 {
			t.Errorf("%d mappings left, want none", len(n.tb.m))
		}
	})

	// A bulk load (5,000 keys in transactions of 128, two writers) while
	// the node's apply is slow arrives in batches of several revisions,
	// in order, none lost; a batch the node refuses is followed by the
	// whole table.
	t.Run("BulkInBatches", func(t *testing.T) {
		const p, n = "/tb", 5000
		nd := startNode(t, c, c.NewClient(t, "nb"), p, "", "")
		nd.waitState(t, etcdsource.Synced, 20*time.Second)
		nd.tb.mu.Lock()
		nd.tb.slow = 30 * time.Millisecond
		nd.tb.mu.Unlock()
		putMappings(t, admin, p, 0, n, 2)
		nd.tb.wait(t, 30*time.Second, "5,000 puts", func() bool { return len(nd.tb.m) == n })
		nd.tb.mu.Lock()
		calls, revisions := len(nd.tb.batches), (n+127)/128
		largest := slices.Max(nd.tb.batches)
		nd.tb.slow, nd.tb.refuse = 0, true
		snaps := len(nd.tb.snapshots)
		nd.tb.mu.Unlock()
		t.Logf("%d puts in %d revisions arrived in %d batches, the largest %d", n, revisions, calls, largest)
		if calls >= revisions || largest <= 128 {
			t.Errorf("%d batches (largest %d) for %d revisions: the watch applies revision by revision", calls, largest, revisions)
		}
		rev := put(t, admin, key(p, n), etcdsource.MappingValue(mappingN(n)))
		nd.tb.wait(t, 20*time.Second, "the whole table after a refused batch", func() bool {
			return len(nd.tb.snapshots) > snaps && nd.tb.rev >= rev && len(nd.tb.m) == n+1
		})
	})

	// A node cut off from etcd keeps its table, shows stale since its last
	// contact, and catches up on heal with no change lost: first with the
	// history kept (the watch resumes), then with the history compacted
	// meanwhile (a whole read).
	for _, compact := range []bool{false, true} {
		name := "CutHeal"
		if compact {
			name = "CutCompactHeal"
		}
		t.Run(name, func(t *testing.T) {
			p := "/t3" + name
			putMappings(t, admin, p, 0, 300, 2)
			cl := c.NewClient(t, "n3")
			n := startNode(t, c, cl, p, "", "")
			n.waitState(t, etcdsource.Synced, 20*time.Second)
			n.tb.wait(t, 5*time.Second, "the snapshot", func() bool { return len(n.tb.m) == 300 })

			cut := time.Now()
			c.CutClient(t, cl)
			st := n.waitState(t, etcdsource.Stale, 10*time.Second)
			t.Logf("stale %v after the cut: %s", time.Since(cut).Round(time.Millisecond), st)
			if st.StaleSince.After(cut) || st.StaleSince.Before(cut.Add(-time.Second)) {
				t.Errorf("stale since %v, want the last contact before the cut at %v", st.StaleSince, cut)
			}
			reg := prometheus.NewRegistry()
			if err := n.src.Register(reg); err != nil {
				t.Fatal(err)
			}
			if got := metric(t, reg, "map646_etcd_stale_seconds"); got < 0.5 {
				t.Errorf("map646_etcd_stale_seconds = %v, stale since its last contact before the cut, a second (the probe's timeout) or more ago", got)
			}
			if len(n.src.BadEntries()) != 0 || n.src.Status().Mappings != 300 {
				t.Errorf("the table changed while cut off: %s", n.src.Status())
			}
			for i := 300; i < 400; i++ {
				put(t, admin, key(p, i), etcdsource.MappingValue(mappingN(i)))
			}
			for i := range 50 {
				del(t, admin, key(p, i))
			}
			put(t, admin, key(p, 60), "2001:db8:100:ffff::60") // a changed value
			if compact {
				Compact(t, admin)
				// Long enough for the client's gRPC keepalive (1 s + 1 s
				// in the lab) to drop the connection: the watch must then
				// be opened again, at a compacted revision. A shorter cut
				// leaves the stream open, and etcd sends the changes on
				// it after the heal (the CutHeal case).
				time.Sleep(5 * time.Second)
			}
			want := etcdTable(t, admin, p)
			c.HealClient(t, cl)
			n.tb.wait(t, 30*time.Second, "caught up after the heal", func() bool { return n.tb.equals(want) })
			n.waitState(t, etcdsource.Synced, 10*time.Second)
			snaps := len(n.tb.snapshots)
			if compact && snaps != 2 || !compact && snaps != 1 {
				t.Errorf("%d snapshots, want %d (a whole read only after a compaction)", snaps, map[bool]int{false: 1, true: 2}[compact])
			}
			t.Logf("caught up: %s, %d snapshots, %d deltas", n.src.Status(), snaps, len(n.tb.deltas))
		})
	}

	// Each member killed in turn (one of them serves the node's watch,
	// one is the leader): the node keeps following through the others,
	// with no re-read and no change lost.
	t.Run("MemberKilled", func(t *testing.T) {
		const p = "/t4"
		n := startNode(t, c, c.NewClient(t, "n4"), p, "", "")
		n.waitState(t, etcdsource.Synced, 20*time.Second)
		putMappings(t, admin, p, 0, 100, 1)
		n.tb.wait(t, 10*time.Second, "100 mappings", func() bool { return len(n.tb.m) == 100 })
		next := 100
		for _, m := range c.Members {
			c.Kill(t, m)
			for range 50 {
				putRetry(t, admin, key(p, next), etcdsource.MappingValue(mappingN(next)))
				next++
			}
			want := next
			n.tb.wait(t, 20*time.Second, "50 more mappings with "+m.Name+" killed", func() bool { return len(n.tb.m) == want })
			c.Restart(t, m)
			c.waitReady(t, admin, 30*time.Second)
			t.Logf("%s killed and restarted: %s", m.Name, n.src.Status())
		}
		if got := len(n.tb.snapshots); got != 1 {
			t.Errorf("%d snapshots, want 1: a member's death made the node read everything again", got)
		}
		if !n.tb.equals(etcdTable(t, admin, p)) {
			t.Errorf("the table differs from etcd's")
		}
	})

	// A node restarted while etcd is unreachable serves the cached table
	// and says so; one with neither table nor etcd has none.
	t.Run("CacheAndNoTable", func(t *testing.T) {
		const p = "/t5"
		putMappings(t, admin, p, 0, 500, 2)
		state := t.TempDir()
		cl := c.NewClient(t, "n5")
		n := startNode(t, c, cl, p, state, "")
		n.waitState(t, etcdsource.Synced, 20*time.Second)
		put(t, admin, key(p, 500), etcdsource.MappingValue(mappingN(500)))
		n.tb.wait(t, 10*time.Second, "501 mappings", func() bool { return len(n.tb.m) == 501 })
		rev := n.src.Status().Revision
		n.stop(t) // writes the cache of the last change

		c.CutClient(t, cl)
		n2 := startNode(t, c, cl, p, state, "")
		st := n2.waitState(t, etcdsource.FromCache, 20*time.Second)
		t.Logf("restarted without etcd: %s", st)
		if !strings.HasPrefix(st.String(), "from cache, stale since ") || st.Revision < rev || st.Mappings != 501 {
			t.Errorf("status %q, want from cache at revision %d or later with 501 mappings", st, rev)
		}
		n2.tb.wait(t, time.Second, "the cached table", func() bool { return n2.tb.equals(etcdTable(t, admin, p)) })
		c.HealClient(t, cl)
		n2.waitState(t, etcdsource.Synced, 20*time.Second)

		empty := c.NewClient(t, "n6")
		c.CutClient(t, empty)
		n3 := startNode(t, c, empty, p, t.TempDir(), "")
		time.Sleep(3 * time.Second) // a few failed reads: nothing to wait on but time
		if st := n3.src.Status(); st.HasTable() || st.String() != "no table" {
			t.Errorf("without etcd or cache: %q, want no table", st)
		}
	})

	// Each node publishes its record under a lease; ReadNodes shows every
	// node's revision and lag; a stopped node's record goes.
	t.Run("NodeRecordsAndWrites", func(t *testing.T) {
		const p = "/t6"
		a := startNode(t, c, c.NewClient(t, "na"), p, "", "192.0.2.1")
		b := startNode(t, c, c.NewClient(t, "nb"), p, "", "192.0.2.2")
		a.waitState(t, etcdsource.Synced, 20*time.Second)
		b.waitState(t, etcdsource.Synced, 20*time.Second)

		m := mappingN(7)
		rev, err := a.src.Add(context.Background(), m)
		if err != nil {
			t.Fatalf("add: %v", err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for _, n := range []*node{a, b} {
			if err := n.src.WaitRevision(ctx, rev); err != nil {
				t.Fatal(err)
			}
			n.tb.wait(t, time.Second, "the added mapping", func() bool { return n.tb.m[m.IPv4] == m.IPv6 })
		}
		if _, err := a.src.Add(ctx, m); err != nil {
			t.Errorf("adding the same mapping again: %v, want success", err)
		}
		other := m
		other.IPv6 = netip.MustParsePrefix("2001:db8:100:1::7/128")
		if _, err := a.src.Add(ctx, other); !errors.Is(err, etcdsource.ErrMapped) {
			t.Errorf("adding another IPv6 to the same IPv4: %v, want ErrMapped", err)
		}
		over := m
		over.IPv4 = netip.PrefixFrom(m.IPv4.Addr(), 31)
		over.IPv4 = over.IPv4.Masked()
		over.IPv6 = netip.MustParsePrefix("2001:db8:100:2::/127")
		if _, err := a.src.Add(ctx, over); !errors.Is(err, etcdsource.ErrOverlap) {
			t.Errorf("adding an overlapping /31: %v, want ErrOverlap", err)
		}

		deadline := time.Now().Add(10 * time.Second)
		var nodes []etcdsource.NodeStatus
		var cur int64
		for time.Now().Before(deadline) {
			nodes, cur, err = etcdsource.ReadNodes(ctx, admin, p)
			if err != nil {
				t.Fatal(err)
			}
			if len(nodes) == 2 && nodes[0].Revision >= rev && nodes[1].Revision >= rev {
				break
			}
			time.Sleep(100 * time.Millisecond) // records are published every probe interval
		}
		if len(nodes) != 2 || nodes[0].Node != "192.0.2.1" || nodes[1].Node != "192.0.2.2" {
			t.Fatalf("node records %+v, want 192.0.2.1 and 192.0.2.2", nodes)
		}
		var out strings.Builder
		etcdsource.WriteCluster(&out, nodes, cur)
		t.Logf("map646 status -cluster:\n%s", out.String())
		for _, n := range nodes {
			t.Logf("node %s: revision %d (etcd %d, lag %d), %s since %s", n.Node, n.Revision, cur, n.Lag, n.State, n.Since.Format(time.RFC3339))
			if n.Revision < rev || n.State != "synced" || n.Mappings != 1 || n.Version != "lab" {
				t.Errorf("record %+v: want synced at revision %d or later, 1 mapping", n, rev)
			}
		}

		rrev, err := a.src.Remove(ctx, m.IPv4)
		if err != nil {
			t.Fatalf("remove: %v", err)
		}
		if err := b.src.WaitRevision(ctx, rrev); err != nil {
			t.Fatal(err)
		}
		if _, ok := b.tb.m[m.IPv4]; ok {
			t.Errorf("removed mapping still in the other node's table")
		}
		if _, err := a.src.Remove(ctx, m.IPv4); !errors.Is(err, etcdsource.ErrNotMapped) {
			t.Errorf("removing it again: %v, want ErrNotMapped", err)
		}

		b.stop(t)
		nodes, _, err = etcdsource.ReadNodes(ctx, admin, p)
		if err != nil || len(nodes) != 1 || nodes[0].Node != "192.0.2.1" {
			t.Errorf("after node b stopped: %+v %v, want only 192.0.2.1 (its lease revoked)", nodes, err)
		}
	})
}
