package daemon

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/map646/map646/config"
	"github.com/map646/map646/lab/netlab"
	"github.com/map646/map646/routing"
	"github.com/map646/map646/translator"
	"github.com/map646/map646/translator/dataplane"
	"github.com/map646/map646/translator/tun"
)

// idleDevice is a tun device that is never read: the data plane is not
// run, only its table changed.
type idleDevice struct{}

func (idleDevice) Name() string                             { return "idle0" }
func (idleDevice) Queues() int                              { return 1 }
func (idleDevice) ReadBatch(int, []tun.Packet) (int, error) { select {} }
func (idleDevice) WriteBatch(int, []tun.Packet) error       { return nil }
func (idleDevice) Dropped() uint64                          { return 0 }
func (idleDevice) SetBusyPoll(time.Duration)                {}
func (idleDevice) Close() error                             { return nil }

const updatesConfig = `[translator]
pseudo_prefix = "64:ff9b::/96"
ipv4_address = "192.0.2.1"
ipv6_address = "2001:db8:64::1"

[[mapping]]
ipv4 = "198.51.100.10"
ipv6 = "2001:db8:1::10"

[[mapping]]
ipv4 = "198.51.100.11"
ipv6 = "2001:db8:1::11"
`

// newUpdateDaemon returns a daemon with a data plane that is not run, no
// kernel routes and a fake speaker: enough for the table's updates.
func newUpdateDaemon(t testing.TB) (*daemon, *fakeSpeaker) {
	t.Helper()
	cfg, err := config.Parse([]byte(updatesConfig), "test.toml", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	tr, err := cfg.NewTranslator()
	if err != nil {
		t.Fatal(err)
	}
	sp := &fakeSpeaker{}
	var log logRecorder
	lc := &lifecycle{node: NewNode(log.logger(), time.Now), bgp: sp, hm: allHealthy{}, log: log.logger(), now: time.Now}
	d := &daemon{cfg: cfg, log: log.logger(), ctx: context.Background(), lc: lc,
		dp: dataplane.New(tr, idleDevice{}, dataplane.Options{ICMPErrorRate: 1, ICMPErrorBurst: 1})}
	d.tables = &tableView{dp: d.dp}
	d.tables.cfg.Store(cfg)
	if err := lc.ready(d.ctx, planOf(cfg, tr)); err != nil {
		t.Fatal(err)
	}
	return d, sp
}

// sameAsDesired checks that what the speaker announces, changed part by
// part, is what the node's state calls for as a whole, attributes
// included.
func sameAsDesired(t *testing.T, step string, d *daemon, sp *fakeSpeaker) {
	t.Helper()
	got, want := sp.Announced(), d.lc.node.Desired(d.lc.plan)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s: the speaker announces %v, the node calls for %v", step, got, want)
	}
}

// announcedIPv4 returns the IPv4 prefixes the fake speaker announces.
func announcedIPv4(sp *fakeSpeaker) []netip.Prefix {
	var out []netip.Prefix
	for _, a := range sp.Announced() {
		if a.Prefix.Addr().Is4() {
			out = append(out, a.Prefix)
		}
	}
	slices.SortFunc(out, netip.Prefix.Compare)
	return out
}

// TestApplyUpdates: deltas and snapshots from a mapping source change the
// table, and the announcements follow exactly as if computed anew from
// the table (planOf); a small snapshot goes as a delta (the ids of the
// mappings kept stay), a large one is swapped whole; a conflict is
// refused naming the mapping in the way.
func TestApplyUpdates(t *testing.T) {
	d, sp := newUpdateDaemon(t)
	check := func(step string) {
		t.Helper()
		var want []netip.Prefix
		for _, p := range planOf(d.cfg, d.dp.Translator()).IPv4 {
			want = append(want, p)
		}
		slices.SortFunc(want, netip.Prefix.Compare)
		if got := announcedIPv4(sp); !slices.Equal(got, want) {
			t.Errorf("%s: announced %v, the table calls for %v", step, got, want)
		}
		sameAsDesired(t, step, d, sp)
	}
	check("start")
	mp := func(a, b string) translator.Mapping {
		m, err := d.cfg.ParseMapping(a, b)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	id10, _ := d.dp.Translator().Table().Lookup4(netip.MustParseAddr("198.51.100.10"))

	if _, err := d.ApplyMappings([]translator.MappingChange{
		{Op: translator.Add, Mapping: mp("198.51.100.12/30", "2001:db8:2::/126"), Origin: "etcd /m/1"},
		{Op: translator.Del, Mapping: mp("198.51.100.11", "2001:db8:1::11"), Origin: "etcd /m/2"},
	}, false); err != nil {
		t.Fatal(err)
	}
	check("delta")
	_, err := d.ApplyMappings([]translator.MappingChange{{Op: translator.Add, Mapping: mp("198.51.100.13", "2001:db8:3::13")}}, false)
	if err == nil || !strings.Contains(err.Error(), "overlaps mapping") || !strings.Contains(err.Error(), "is 198.51.100.12/30 2001:db8:2::/126)") {
		t.Errorf("an overlap: %v", err)
	}

	snap := []translator.MappingChange{{Mapping: mp("198.51.100.10", "2001:db8:1::10"), Origin: "etcd /m/10"}, {Mapping: mp("203.0.113.0/24", "2001:db8:5::/120"), Origin: "etcd /m/5"}}
	u := make(chan error, 1)
	d.applyUpdate(MappingUpdate{Snapshot: snap, Result: u})
	if err := <-u; err != nil {
		t.Fatal(err)
	}
	check("small snapshot")
	h := controlHandler{tv: d.tables}
	if l, err := h.Lookup("203.0.113.9"); err != nil || l.Origin != "etcd /m/5" || l.Translated != "2001:db8:5::9" {
		t.Errorf("lookup of a mapping from the snapshot: %+v, %v", l, err)
	}
	if l, err := h.Lookup("198.51.100.10"); err != nil || l.Origin != "etcd /m/10" {
		t.Errorf("lookup of a mapping the snapshot kept: %+v, %v", l, err)
	}
	if id, ok := d.dp.Translator().Table().Lookup4(netip.MustParseAddr("198.51.100.10")); !ok || id != id10 {
		t.Errorf("a small snapshot moved 198.51.100.10 from id %d to %d", id10, id)
	}

	snap = snap[:0]
	for i := range 2000 {
		snap = append(snap, translator.MappingChange{Mapping: mp(fmt.Sprintf("100.64.%d.%d", i/250, i%250+1), fmt.Sprintf("2001:db8:9::%x", i+1))})
	}
	if err := d.ApplySnapshot(snap); err != nil {
		t.Fatal(err)
	}
	check("large snapshot")
	if n := d.dp.Translator().Table().Len(); n != 2000 {
		t.Errorf("%d mappings after the large snapshot, want 2000", n)
	}
	var calls [][]routing.Announcement
	sp.mu.Lock()
	calls = sp.calls
	sp.mu.Unlock()
	if len(calls) < 4 {
		t.Errorf("%d announcements, want one per update", len(calls))
	}
}

// TestCompactionUnderChanges: once deletions leave more than an eighth of
// the ids unused, a compaction starts in the background; changes made
// while it runs are applied to its result, which lands: nothing is lost,
// the ids are numbered anew. (The overlay's additions never start one:
// past maxReloadDelta they are folded in by a rebuild on the loop.)
func TestCompactionUnderChanges(t *testing.T) {
	d, _ := newUpdateDaemon(t)
	mapping := func(i int) translator.Mapping {
		return translator.Mapping{IPv4: netip.MustParsePrefix(fmt.Sprintf("100.64.%d.%d/32", i/250, i%250+1)),
			IPv6: netip.MustParsePrefix(fmt.Sprintf("2001:db8:9::%x/128", i+1))}
	}
	change := func(op translator.ChangeOp, i int) {
		t.Helper()
		if _, err := d.ApplyMappings([]translator.MappingChange{{Op: op, Mapping: mapping(i)}}, false); err != nil {
			t.Fatal(err)
		}
	}
	const n = 6000
	for i := range n {
		change(translator.Add, i)
		if d.compacting {
			t.Fatalf("a compaction started after %d additions", i+1)
		}
	}
	if p := d.dp.Translator().Table().Pending(); p > maxReloadDelta {
		t.Fatalf("%d additions pending in the overlay, more than %d", p, maxReloadDelta)
	}
	del := 0
	for ; !d.compacting; del++ {
		if del >= n {
			t.Fatal("no compaction started after every mapping added was deleted")
		}
		change(translator.Del, del)
	}
	for i := n; i < n+10; i++ { // while it runs
		change(translator.Add, i)
	}
	d.compacted(<-d.compactC)
	tab := d.dp.Translator().Table()
	if want := 2 + n - del + 10; tab.Len() != want || tab.Span() != tab.Len() || tab.NeedsCompaction() {
		t.Errorf("after the compaction: %d mappings, span %d, needs compaction %v; want %d, ids numbered anew but for the 10 changes since in its overlay",
			tab.Len(), tab.Span(), tab.NeedsCompaction(), want)
	}
	for j := del; j < n+10; j++ {
		if _, ok := tab.Lookup4(mapping(j).IPv4.Addr()); !ok {
			t.Fatalf("mapping %d lost by the compaction", j)
		}
	}
	for j := range del {
		if _, ok := tab.Lookup4(mapping(j).IPv4.Addr()); ok {
			t.Fatalf("mapping %d deleted but back after the compaction", j)
		}
	}
}

// TestDeltaRoutesAndAnnouncements: random additions and deletions on a
// node with kernel routes (a veth in a namespace) and nested
// aggregates: after each, the kernel routes are exactly those the table
// calls for (dataplane.Prefixes) and the announced IPv4 prefixes those
// ipv4Announced computes anew, though both were changed by the delta only.
func TestDeltaRoutesAndAnnouncements(t *testing.T) {
	netlab.RequireRoot(t)
	ns := netlab.NewNS(t, "delta")
	ns.IP(t, "link", "add", "m646a", "type", "veth", "peer", "name", "m646b")
	ns.IP(t, "link", "set", "m646a", "up")
	d, sp := newUpdateDaemon(t)
	d.cfg.BGP.Aggregates = []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24"), netip.MustParsePrefix("198.51.100.0/26"), netip.MustParsePrefix("203.0.113.0/25")}
	err := ns.Do(func() error {
		r, err := dataplane.NewRoutes("m646a", nil)
		if err != nil {
			return err
		}
		d.routes = r
		return r.Add(dataplane.Prefixes(d.dp.Translator()))
	})
	if err != nil {
		t.Fatal(err)
	}
	defer d.routes.Close()
	d.lc.plan.MED, d.lc.plan.Communities = 20, []uint32{65001<<16 | 7}
	d.lc.setIPv4(d.ctx, ipv4Announced(dataplane.Prefixes(d.dp.Translator()), d.cfg.BGP.Aggregates))

	r := rand.New(rand.NewPCG(9, 10))
	var live []translator.Mapping
	for _, m := range d.dp.Translator().Table().All() {
		live = append(live, m)
	}
	applied, withAgg, withoutAgg := 0, 0, 0
	for step := range 300 {
		var c translator.MappingChange
		if len(live) > 0 && r.IntN(2) == 0 {
			c = translator.MappingChange{Op: translator.Del, Mapping: live[r.IntN(len(live))]}
		} else {
			third := []byte{100, 100, 101}[r.IntN(3)]
			first := []byte{198, 198, 203}[r.IntN(3)]
			second := map[byte]byte{198: 51, 203: 0}[first]
			if first == 203 {
				third = 113
			}
			l := 27 + r.IntN(6)
			p4 := netip.PrefixFrom(netip.AddrFrom4([4]byte{first, second, third, byte(r.IntN(256))}), l).Masked()
			p6 := netip.PrefixFrom(netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, 0x7, 0, byte(step), 14: byte(step >> 8)}), 96+l)
			c = translator.MappingChange{Op: translator.Add, Mapping: translator.Mapping{IPv4: p4, IPv6: p6.Masked()}}
		}
		if _, err := d.ApplyMappings([]translator.MappingChange{c}, false); err != nil {
			if strings.Contains(err.Error(), "overlaps") || strings.Contains(err.Error(), "duplicates") {
				continue
			}
			t.Fatalf("step %d: %v", step, err)
		}
		applied++
		if c.Op == translator.Del {
			live = slices.DeleteFunc(live, func(m translator.Mapping) bool { return m == c.Mapping })
		} else {
			live = append(live, c.Mapping)
		}
		tr := d.dp.Translator()
		want := dataplane.Prefixes(tr)
		slices.SortFunc(want, netip.Prefix.Compare)
		if got := d.routes.Installed(); !slices.Equal(got, want) {
			t.Fatalf("step %d (%s %v): kernel routes %v, the table calls for %v", step, c.Op, c.Mapping, got, want)
		}
		wantAnn := ipv4Announced(dataplane.Prefixes(tr), d.cfg.BGP.Aggregates)
		if got := announcedIPv4(sp); !slices.Equal(got, wantAnn) {
			t.Fatalf("step %d (%s %v): announced %v, want %v", step, c.Op, c.Mapping, got, wantAnn)
		}
		sameAsDesired(t, fmt.Sprint("step ", step), d, sp)
		if slices.Contains(wantAnn, d.cfg.BGP.Aggregates[2]) {
			withAgg++
		} else {
			withoutAgg++
		}
	}
	// The aggregate 203.0.113.0/25 must have come and gone.
	if sp.changes < applied/2 {
		t.Errorf("%d of %d changes announced by Change, the rest by the whole set", sp.changes, applied)
	}
	if applied < 100 || withAgg < 10 || withoutAgg < 10 {
		t.Errorf("%d of 300 changes applied; 203.0.113.0/25 announced after %d, not after %d: too few to test", applied, withAgg, withoutAgg)
	}
}

// TestBulkRebuild: a batch past maxReloadDelta (a bulk load arriving
// through etcd) builds the table anew instead of an overlay: every change
// lands, nothing is left pending, the announcements are the table's; a
// bulk batch with one overlap is refused whole, naming it, the table as
// it was.
func TestBulkRebuild(t *testing.T) {
	d, sp := newUpdateDaemon(t)
	vm := func(i int) translator.Mapping {
		return translator.Mapping{IPv4: netip.MustParsePrefix(fmt.Sprintf("100.64.%d.%d/32", i/250, i%250+1)),
			IPv6: netip.MustParsePrefix(fmt.Sprintf("2001:db8:9::%x/128", i+1))}
	}
	var changes []translator.MappingChange
	for i := range 3000 {
		changes = append(changes, translator.MappingChange{Op: translator.Add, Mapping: vm(i)})
	}
	changes = append(changes, translator.MappingChange{Op: translator.Del, Mapping: vm(17)})
	if !rebuildBetter(d.dp.Translator().Table(), changes) {
		t.Fatal("a batch of 3001 changes goes on the overlay")
	}
	msg, err := d.ApplyMappings(changes, false)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(msg, "3000 adds and 1 dels") {
		t.Errorf("reply %q does not count the batch", msg)
	}
	tab := d.dp.Translator().Table()
	if tab.Len() != 2+2999 || tab.Pending() != 0 || tab.Span() != tab.Len() {
		t.Errorf("after the bulk batch: %d mappings, %d pending, span %d; want %d, none, %d", tab.Len(), tab.Pending(), tab.Span(), 2+2999, 2+2999)
	}
	if _, ok := tab.Lookup4(netip.MustParseAddr("100.64.0.18")); ok {
		t.Error("the mapping deleted in the batch is there")
	}
	if _, ok := tab.Lookup4(netip.MustParseAddr("100.64.11.250")); !ok {
		t.Error("the batch's last mapping is missing")
	}
	want := planOf(d.cfg, d.dp.Translator()).IPv4
	slices.SortFunc(want, netip.Prefix.Compare)
	if got := announcedIPv4(sp); !slices.Equal(got, want) {
		t.Errorf("announced %d prefixes, the table calls for %d", len(got), len(want))
	}
	sameAsDesired(t, "bulk", d, sp)

	changes = changes[:0]
	for i := range 2000 {
		changes = append(changes, translator.MappingChange{Op: translator.Add, Mapping: vm(5000 + i)})
	}
	changes[1500].Mapping = translator.Mapping{IPv4: netip.MustParsePrefix("100.64.0.0/24"), // holds 100.64.0.1 ...
		IPv6: netip.MustParsePrefix("2001:db8:a::/120")}
	_, err = d.ApplyMappings(changes, false)
	if err == nil || !strings.Contains(err.Error(), "refused, nothing changed") || !strings.Contains(err.Error(), "100.64.0.0/24 overlaps mapping") {
		t.Errorf("a bulk batch with an overlap: %v", err)
	}
	if n := d.dp.Translator().Table().Len(); n != 2+2999 {
		t.Errorf("%d mappings after a refused batch, want %d", n, 2+2999)
	}
}

// TestMergeSorted: the one-pass merge of a bulk batch's routes into the
// announced list gives what putting them in one by one gives, on random
// lists, additions and deletions (some already there, some absent).
func TestMergeSorted(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	pfx := func() netip.Prefix {
		return netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 51, 100, byte(r.IntN(64) * 4)}), 30+r.IntN(3)).Masked()
	}
	sorted := func(n int) []netip.Prefix {
		set := map[netip.Prefix]bool{}
		for range n {
			set[pfx()] = true
		}
		return slices.SortedFunc(maps.Keys(set), netip.Prefix.Compare)
	}
	for round := range 500 {
		list, add, del := sorted(r.IntN(40)), sorted(r.IntN(10)), sorted(r.IntN(10))
		add = slices.DeleteFunc(add, func(p netip.Prefix) bool { return slices.Contains(del, p) })
		want := slices.Clone(list)
		var wantAdded, wantRemoved []netip.Prefix
		for _, p := range del {
			if i, ok := slices.BinarySearchFunc(want, p, netip.Prefix.Compare); ok {
				want = slices.Delete(want, i, i+1)
				wantRemoved = append(wantRemoved, p)
			}
		}
		for _, p := range add {
			if i, ok := slices.BinarySearchFunc(want, p, netip.Prefix.Compare); !ok {
				want = slices.Insert(want, i, p)
				wantAdded = append(wantAdded, p)
			}
		}
		got, added, removed := mergeSorted(slices.Clone(list), add, del)
		if !slices.Equal(got, want) || !slices.Equal(added, wantAdded) || !slices.Equal(removed, wantRemoved) {
			t.Fatalf("round %d: mergeSorted(%v, +%v, -%v) = %v +%v -%v, want %v +%v -%v", round, list, add, del, got, added, removed, want, wantAdded, wantRemoved)
		}
	}
}

// TestBulkRebuildLarge: bulk batches on a table past rebuildGCMin (the
// rebuild collects the old pages as it goes) land whole, every mapping
// found.
func TestBulkRebuildLarge(t *testing.T) {
	d, _ := newUpdateDaemon(t)
	mp := func(i int) translator.Mapping {
		a := uint32(100<<24|64<<16) + uint32(i)
		return translator.Mapping{IPv4: netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(a >> 24), byte(a >> 16), byte(a >> 8), byte(a)}), 32),
			IPv6: netip.PrefixFrom(netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, 0x64, 0, 0, 0, 0, 0, 0, byte(a >> 24), byte(a >> 16), byte(a >> 8), byte(a)}), 128)}
	}
	was := d.dp.Translator().Table().Len()
	n := 0
	for _, batch := range []int{rebuildGCMin, 25000} {
		var changes []translator.MappingChange
		for range batch {
			changes = append(changes, translator.MappingChange{Op: translator.Add, Mapping: mp(n)})
			n++
		}
		if _, err := d.ApplyMappings(changes, false); err != nil {
			t.Fatal(err)
		}
	}
	tab := d.dp.Translator().Table()
	if tab.Len() != was+n || tab.Pending() != 0 {
		t.Fatalf("%d mappings (%d pending), want %d", tab.Len(), tab.Pending(), was+n)
	}
	for _, i := range []int{0, rebuildGCMin - 1, rebuildGCMin, n - 1} {
		id, ok := tab.Lookup4(mp(i).IPv4.Addr())
		if !ok || tab.Mapping(id) != mp(i) {
			t.Fatalf("mapping %d: found %v, %v", i, ok, tab.Mapping(id))
		}
	}
}
