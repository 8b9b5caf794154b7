package etcdlab

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/map646/map646/config/etcdsource"
	"github.com/map646/map646/translator"
)

// table is the Applier of the tests: the table a node would serve, as a
// map, with what it was given checked on arrival (revisions never go
// back, a Put never replaces, a Delete removes what is there).
type table struct {
	mu        sync.Mutex
	m         map[netip.Prefix]netip.Prefix
	rev       int64
	snapshots []etcdsource.Snapshot // without their Table
	deltas    []etcdsource.Delta
	batches   []int         // the size of each ApplyDeltas batch
	refuse    bool          // refuse the next batch (as a daemon whose table disagrees)
	slow      time.Duration // each batch takes at least this long
	errs      []string
	changed   chan struct{}
}

func newTable() *table {
	return &table{m: map[netip.Prefix]netip.Prefix{}, changed: make(chan struct{})}
}

func (tb *table) ApplySnapshot(s etcdsource.Snapshot) {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	if s.Revision < tb.rev && !s.FromCache {
		tb.errs = append(tb.errs, fmt.Sprintf("snapshot at %d after revision %d", s.Revision, tb.rev))
	}
	tb.rev = s.Revision
	tb.m = make(map[netip.Prefix]netip.Prefix, s.Table.Len())
	for _, m := range s.Table.All() {
		tb.m[m.IPv4] = m.IPv6
	}
	s.Table = nil
	tb.snapshots = append(tb.snapshots, s)
	tb.wake()
}

// ApplyDeltas applies a batch in order; a change the table cannot take
// (a put over a key it holds, a delete of one it does not) is an error of
// the test. refuse, when set, refuses the next batch whole instead.
func (tb *table) ApplyDeltas(ds []etcdsource.Delta) error {
	time.Sleep(tb.slowness())
	tb.mu.Lock()
	defer tb.mu.Unlock()
	tb.batches = append(tb.batches, len(ds))
	if tb.refuse {
		tb.refuse = false
		return errors.New("refused by the test")
	}
	for _, d := range ds {
		if d.Revision < tb.rev {
			tb.errs = append(tb.errs, fmt.Sprintf("%s %s at %d after revision %d", d.Op, d.Key, d.Revision, tb.rev))
		}
		tb.rev = d.Revision
		switch d.Op {
		case etcdsource.Put:
			if old, ok := tb.m[d.Mapping.IPv4]; ok {
				tb.errs = append(tb.errs, fmt.Sprintf("put %s over %s", d.Key, old))
			}
			tb.m[d.Mapping.IPv4] = d.Mapping.IPv6
		case etcdsource.Delete:
			if tb.m[d.Mapping.IPv4] != d.Mapping.IPv6 {
				tb.errs = append(tb.errs, fmt.Sprintf("delete %s: not in the table", d.Key))
			}
			delete(tb.m, d.Mapping.IPv4)
		}
		tb.deltas = append(tb.deltas, d)
	}
	tb.wake()
	return nil
}

func (tb *table) slowness() time.Duration {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	return tb.slow
}

func (tb *table) wake() {
	close(tb.changed)
	tb.changed = make(chan struct{})
}

// wait waits until cond, called with the table locked, holds.
func (tb *table) wait(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(timeout)
	for {
		tb.mu.Lock()
		ok, c := cond(), tb.changed
		tb.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-c:
		case <-deadline:
			tb.mu.Lock()
			defer tb.mu.Unlock()
			t.Fatalf("after %v: %s: table of %d mappings at revision %d, %d snapshots, %d deltas", timeout, what, len(tb.m), tb.rev, len(tb.snapshots), len(tb.deltas))
		}
	}
}

func (tb *table) check(t *testing.T) {
	t.Helper()
	tb.mu.Lock()
	defer tb.mu.Unlock()
	for _, e := range tb.errs {
		t.Errorf("applier: %s", e)
	}
}

// equals reports whether the table holds exactly want (IPv4 -> IPv6).
func (tb *table) equals(want map[netip.Prefix]netip.Prefix) bool {
	if len(tb.m) != len(want) {
		return false
	}
	for k, v := range want {
		if tb.m[k] != v {
			return false
		}
	}
	return true
}

// mappingN is the n-th test mapping: 100.64.0.0/10 (shared address space)
// to 2001:db8:100::/48; no traffic is ever sent to them.
func mappingN(n int) translator.Mapping {
	a4 := netip.AddrFrom4([4]byte{100, byte(64 + n>>16&63), byte(n >> 8), byte(n)})
	var a6 [16]byte
	copy(a6[:], netip.MustParseAddr("2001:db8:100::").AsSlice())
	a6[12], a6[13], a6[14], a6[15] = byte(n>>24), byte(n>>16), byte(n>>8), byte(n)
	return translator.Mapping{IPv4: netip.PrefixFrom(a4, 32), IPv6: netip.PrefixFrom(netip.AddrFrom16(a6), 128)}
}

// putMappings writes mappings [from, to) in transactions of 128 puts
// (etcd's default --max-txn-ops), workers at a time.
func putMappings(t testing.TB, cli *clientv3.Client, prefix string, from, to, workers int) {
	t.Helper()
	var wg sync.WaitGroup
	errc := make(chan error, workers)
	const batch = 128
	next := make(chan int)
	go func() {
		for i := from; i < to; i += batch {
			next <- i
		}
		close(next)
	}()
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				var ops []clientv3.Op
				for n := i; n < min(i+batch, to); n++ {
					m := mappingN(n)
					ops = append(ops, clientv3.OpPut(etcdsource.MappingKey(prefix, m.IPv4), etcdsource.MappingValue(m)))
				}
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				_, err := cli.Txn(ctx).Then(ops...).Commit()
				cancel()
				if err != nil {
					errc <- err
					for range next {
					}
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errc)
	if err := <-errc; err != nil {
		t.Fatalf("put mappings %d to %d: %v", from, to, err)
	}
}

var pseudo = netip.MustParsePrefix("64:ff9b::/96")

// etcdTable reads every valid mapping under prefix straight from etcd:
// what a node's table must equal.
func etcdTable(t *testing.T, cli *clientv3.Client, prefix string) map[netip.Prefix]netip.Prefix {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := cli.Get(ctx, prefix+"/mappings/", clientv3.WithPrefix())
	if err != nil {
		t.Fatalf("read %s: %v", prefix, err)
	}
	want := map[netip.Prefix]netip.Prefix{}
	for _, kv := range resp.Kvs {
		name := strings.TrimPrefix(string(kv.Key), prefix+"/mappings/")
		a, err4 := netip.ParseAddr(name)
		b, err6 := netip.ParseAddr(string(kv.Value))
		if err4 == nil && err6 == nil && !pseudo.Contains(b) {
			want[netip.PrefixFrom(a, 32)] = netip.PrefixFrom(b, 128)
		}
	}
	return want
}
