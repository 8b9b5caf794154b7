package daemon

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/map646/map646/cmd/map646/control"
	"github.com/map646/map646/config"
	"github.com/map646/map646/config/etcdsource"
	"github.com/map646/map646/translator"
	"github.com/map646/map646/translator/dataplane"
)

// The mapping table at run time (issue 15): lookups and listings are
// served from a snapshot, outside the loop, so that a client reading a
// million rows slowly holds nothing up; a change is an event of the loop,
// like a reload: ApplyMappings.
//
// ApplyMappings is also the entry point of a mapping source other than
// the file (etcd): it applies the changes with their origin and writes
// nothing; the source is the durable copy.

// tableView is what the control socket's mapping commands read outside
// the loop: the configuration in use (its mapping file, [[mapping]]
// entries and pseudo prefix), published by the loop, and the data plane,
// whose table and counters are safe to read from any goroutine.
type tableView struct {
	cfg atomic.Pointer[config.Config]
	dp  *dataplane.DataPlane
	// origins says where the mappings applied with an Origin by a source
	// other than the file come from, by mapping; written by the loop. The
	// etcd source's are not stored: sourceOrigin computes them.
	origins sync.Map
	// source is the etcd source (nil with the file): mapping add|del
	// write to it. Set before the control socket is served.
	source *etcdsource.Source
}

// sourceOrigin returns where m comes from when a source other than the
// file applied it: its etcd key (computed from m: one key per IPv4
// prefix, nothing stored per mapping, which at a million mappings would
// cost more than the table), or what record kept.
func (tv *tableView) sourceOrigin(m translator.Mapping) (string, bool) {
	if tv.source != nil {
		return tv.source.KeyOf(m.IPv4), true
	}
	if o, ok := tv.origins.Load(m); ok {
		return o.(string), true
	}
	return "", false
}

// record keeps the origins of changes applied without the file.
func (tv *tableView) record(changes []translator.MappingChange) {
	if tv == nil {
		return
	}
	for _, c := range changes {
		if c.Op == translator.Del {
			tv.origins.Delete(c.Mapping)
		} else if c.Origin != "" {
			tv.origins.Store(c.Mapping, c.Origin)
		}
	}
}

// Lookup says what the running table does with addr.
func (h controlHandler) Lookup(addr string) (control.LookupResult, error) {
	a, err := netip.ParseAddr(addr)
	if err != nil {
		return control.LookupResult{}, fmt.Errorf("lookup: %q is not an IPv4 or IPv6 address", addr)
	}
	a = a.Unmap()
	cfg := h.tv.cfg.Load()
	r := control.LookupResult{Address: a.String()}
	var m translator.Mapping
	counts, found := h.tv.dp.Lookup(func(tr *translator.Translator) int {
		t := tr.Table()
		var id int
		var ok bool
		if a.Is4() {
			id, ok = t.Lookup4(a)
		} else {
			id, ok = t.Lookup6(a)
		}
		if !ok {
			return -1
		}
		m = t.Mapping(id)
		r.Mapping = &control.MappingRow{ID: id, IPv4: config.FormatSide(m.IPv4), IPv6: config.FormatSide(m.IPv6)}
		return id
	})
	if found {
		setCounts(r.Mapping, counts)
		if o, ok := h.tv.sourceOrigin(m); ok {
			r.Origin = o
		} else {
			r.Origin = originOf(cfg, m)
		}
		r.Translated, r.Note = mappedForm(m, a)
		return r, nil
	}
	r.Mapping = nil
	r.Translated, r.Note = pseudoForm(cfg.Translator.Config, a)
	return r, nil
}

func setCounts(row *control.MappingRow, c dataplane.MappingCounts) {
	row.Packets4to6, row.Bytes4to6 = c.Packets4to6, c.Bytes4to6
	row.Packets6to4, row.Bytes6to4 = c.Packets6to4, c.Bytes6to4
}

// mappedForm translates a, which m holds, to the other side.
func mappedForm(m translator.Mapping, a netip.Addr) (string, string) {
	t, err := translator.NewTable([]translator.Mapping{m})
	if err != nil {
		return "", "mapped"
	}
	if a.Is4() {
		v6, _, _ := t.Map4(a.As4())
		return netip.AddrFrom16(v6).String(), "mapped: translated to and from IPv6 through this mapping"
	}
	v4, _, _ := t.Map6(a.As16())
	return netip.AddrFrom4(v4).String(), "mapped: translated to and from IPv4 through this mapping"
}

// pseudoForm says what the policy does with an address no mapping holds.
func pseudoForm(tc translator.Config, a netip.Addr) (string, string) {
	pseudo := tc.PseudoPrefix
	siit := tc.Policy == translator.PolicySIIT
	if a.Is4() {
		v6, ok := translator.EmbedIPv4(pseudo, a)
		if !ok {
			return "", "not mapped, and without a form in the pseudo prefix " + pseudo.String() + " (RFC 6052 §3.1: a non-global address behind 64:ff9b::/96): not translated"
		}
		if siit {
			return v6.String(), "not mapped: translated through the pseudo prefix " + pseudo.String() + " as source and as destination (policy siit)"
		}
		return v6.String(), "not mapped: as a source (a client) it becomes " + v6.String() + " in the pseudo prefix " + pseudo.String() + "; as a destination it is not translated (policy datacenter: only mapped destinations)"
	}
	if v4, ok := translator.ExtractIPv4(pseudo, a); ok {
		if siit {
			return v4.String(), "in the pseudo prefix " + pseudo.String() + ": translated to and from " + v4.String() + " (policy siit)"
		}
		return v4.String(), "in the pseudo prefix " + pseudo.String() + ": as a destination it stands for the IPv4 client " + v4.String() + "; as a source it is dropped (policy datacenter: only mapped sources)"
	}
	if siit {
		return "", "neither mapped nor in the pseudo prefix " + pseudo.String() + ": not translated"
	}
	return "", "neither mapped nor in the pseudo prefix " + pseudo.String() + ": not translated (policy datacenter: an unmapped IPv6 source is dropped)"
}

// originOf says where m is written: a [[mapping]] entry, a line of the
// mapping file (read anew: the file changes at run time).
func originOf(cfg *config.Config, m translator.Mapping) string {
	if src := cfg.InlineSource(m); src != "" {
		return src
	}
	line, err := cfg.MappingFileLine(m)
	switch {
	case err != nil:
		return "unknown (" + err.Error() + ")"
	case line > 0:
		return cfg.MappingOrigin(line)
	}
	return "not in the configuration nor in the mapping file (applied at run time by another source)"
}

// Mappings streams the mappings of a snapshot of the table overlapping
// prefix ("": all). The snapshot is the translator in use when it starts:
// immutable, it needs no lock while a slow client reads it, and a change
// meanwhile makes a new table without touching it.
func (h controlHandler) Mappings(prefix string, row func(control.MappingRow) error) (int, error) {
	var filter netip.Prefix
	if prefix != "" {
		p, err := netip.ParsePrefix(prefix)
		if err != nil {
			a, aerr := netip.ParseAddr(prefix)
			if aerr != nil {
				return 0, fmt.Errorf("mappings: %q is not a prefix or an address", prefix)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		filter = p.Masked()
	}
	snap := h.tv.dp.Snapshot()
	n := 0
	for id, m := range snap.Table().All() {
		if filter.IsValid() && !m.IPv4.Overlaps(filter) && !m.IPv6.Overlaps(filter) {
			continue
		}
		r := control.MappingRow{ID: id, IPv4: config.FormatSide(m.IPv4), IPv6: config.FormatSide(m.IPv6)}
		setCounts(&r, snap.Counts(id))
		r.Origin, _ = h.tv.sourceOrigin(m)
		if err := row(r); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// ChangeMapping parses the mapping and hands the change to the loop; with
// the etcd source, it writes it to etcd and waits until this node serves
// it (changeInEtcd).
func (h controlHandler) ChangeMapping(ctx context.Context, del bool, ipv4, ipv6 string) (string, error) {
	cfg := h.tv.cfg.Load()
	m, err := cfg.ParseMapping(ipv4, ipv6)
	if err != nil {
		return "", fmt.Errorf("refused: %w", err)
	}
	if h.tv.source != nil {
		return changeInEtcd(ctx, h.tv.source, del, m)
	}
	op := translator.Add
	if del {
		op = translator.Del
	}
	r := newRequest("mapping", false)
	r.changes = []translator.MappingChange{{Op: op, Mapping: m, Origin: "control"}}
	return h.q.ask(ctx, r, func(string) {})
}

// ApplyMappings applies changes to the running table as one delta, all or
// none, and says what it did. durable: write them to the mapping file
// first (a change from the control socket); a source that keeps its own
// copy (etcd) passes false. It runs on the loop.
//
// Only what the changes touch changes: the table's affected entries
// (translator.Table.Apply; the counters of the others stay where they
// are), the kernel routes of the spans they join or leave
// (dataplane.RouteDelta: removed before the table changes, added after,
// as a reload orders them), and the announcements those routes make.
func (d *daemon) ApplyMappings(changes []translator.MappingChange, durable bool) (string, error) {
	start := time.Now()
	cur := d.dp.Translator()
	if rebuildBetter(cur.Table(), changes) {
		return d.rebuildMappings(changes, durable)
	}
	next, err := cur.Apply(changes)
	if err != nil {
		return "", refusal(cur.Table(), changes, err)
	}
	tableTook := time.Since(start)
	fileTook, err := d.keepChanges(changes, next.Table().Len(), cur.Table().Len(), durable)
	if err != nil {
		return "", err
	}
	add, del, err := d.applyDelta(changes, func() *translator.Translator {
		d.dp.Apply(next, changes)
		return next
	})
	d.compactLater(next.Table())
	words := describeChanges(changes)
	msg := fmt.Sprintf("%s: %d mappings, %d routes added, %d removed", words, next.Table().Len(), len(add), len(del))
	d.log.Info("mappings changed", "changes", words, "durable", durable, "mappings", next.Table().Len(),
		"routes_added", len(add), "routes_removed", len(del), "table_took", tableTook.Round(time.Microsecond),
		"file_took", fileTook.Round(time.Microsecond), "took", time.Since(start).Round(time.Microsecond))
	if err != nil {
		return "", fmt.Errorf("%s, but not every change was applied: %w", msg, err)
	}
	return msg, nil
}

// applyDelta makes the table changes made from the one in use the one in
// use, with publish (the data plane's Apply, after a rebuild's steps),
// which returns its translator: the kernel routes the changes take away
// removed first (RouteDelta: what the changes touch, not a walk of the
// table), then the table, then the new routes, then the announcements
// those change. It returns the routes added and removed.
func (d *daemon) applyDelta(changes []translator.MappingChange, publish func() *translator.Translator) (add, del []netip.Prefix, err error) {
	var errRemove, errAdd error
	if d.routes != nil {
		add, del = netRouteChanges(d.routes.Has, changes)
		errRemove = d.routes.Remove(del)
	}
	next := publish()
	d.changedSinceCompact(changes)
	if d.routes != nil {
		errAdd = d.routes.Add(add)
	}
	var errAnnounce error
	if ipv4, aadd, adel, whole := d.announcedAfter(next, changes, add, del); whole {
		errAnnounce = d.lc.setIPv4(d.ctx, ipv4)
	} else {
		errAnnounce = d.lc.changeIPv4(d.ctx, ipv4, aadd, adel)
	}
	return add, del, errors.Join(errRemove, errAdd, errAnnounce)
}

// keepChanges admits changes that make a table of n mappings out of one
// of was, and keeps them where they are kept: written to the mapping file
// first (durable: a change from the control socket), or their origins
// recorded (a source with its own copy). It returns how long the write
// took. Past translator.max_mappings a durable change that grows the table
// is refused; a source with its own copy (etcd) holds its table to the
// max_mappings it started with and refuses the keys past it (each listed
// as a bad entry), so the node takes what the source accepted.
func (d *daemon) keepChanges(changes []translator.MappingChange, n, was int, durable bool) (time.Duration, error) {
	if !durable {
		d.tables.record(changes)
		return 0, nil
	}
	if max := d.cfg.Translator.MaxMappings; n > max && n > was {
		return 0, fmt.Errorf("%w: %d mappings, more than translator.max_mappings (%d)", errNothingChanged, n, max)
	}
	start := time.Now()
	if err := d.cfg.ChangeMappingFile(changes); err != nil {
		return 0, fmt.Errorf("%w: %w", errNothingChanged, err)
	}
	return time.Since(start), nil
}

// maxListedChanges is the most changes a log line or a reply names one by
// one; a bulk batch (etcd during a load) is counted instead.
const maxListedChanges = 8

// describeChanges names changes for the log and the reply: each one, or,
// for a bulk batch, how many of each op and the first few.
func describeChanges(changes []translator.MappingChange) string {
	var words []string
	for _, c := range changes[:min(len(changes), maxListedChanges)] {
		words = append(words, c.Op.String()+" "+config.FormatMapping(c.Mapping))
	}
	if len(changes) <= maxListedChanges {
		return strings.Join(words, ", ")
	}
	adds := 0
	for _, c := range changes {
		if c.Op == translator.Add {
			adds++
		}
	}
	return fmt.Sprintf("%d adds and %d dels (%s, ...)", adds, len(changes)-adds, strings.Join(words, ", "))
}

// rebuildBetter says whether changes cost less as a table built anew
// (translator.Table.Rebuild: the whole table, once) than on t's overlay,
// whose added entries Apply rebuilds at each call and checks each
// addition against: when they would take the overlay past maxReloadDelta
// additions (a bulk load arriving through etcd, or a stream of single
// additions). The table is rebuilt here, on the loop, a page at a time
// (0.2 s for 10,000 additions to a million entries), rather than compacted
// in the background: a compaction builds a second table while the first
// is served, twice the memory. A rebuilt table keeps the ids of the
// entries it keeps: the per-mapping counters stay where they are.
func rebuildBetter(t *translator.Table, changes []translator.MappingChange) bool {
	adds := 0 // a deletion costs the overlay a tombstone bit only
	for _, c := range changes {
		if c.Op == translator.Add {
			adds++
		}
	}
	return t.Pending()+adds > maxReloadDelta
}

// rebuildGCSteps is how many steps of a rebuild go between two collections
// of the old pages they replaced, for a table of at least rebuildGCMin
// entries; one more comes before the first step, one after the last and
// one once the result is in use. The collector would come by itself once the heap had grown
// by GOGC (10%: about 20 MB at a million entries), from a goal set by its
// last cycle, which may have run while the rebuild held old pages and new
// ones; a step's old pages are garbage as soon as the workers have the
// table of the step, and collecting them then keeps a node's peak near one
// table. Each collection also returns the freed memory to the kernel
// (debug.FreeOSMemory): the pages of a table are large objects, and the
// runtime could not always reuse what the old ones left, which stayed in
// RSS (heap freed and not returned: 23-47 MB at the peaks of nodes
// following the million in make iaas). Measured there, three quick runs
// of that load side by side: peaks of 255-268 MB with the memory returned,
// 269-277 MB with runtime.GC alone, for 42-44 s against 37-38 s spent
// applying the whole load. A collection costs little while the heap is the
// tables, counters and records, which hold no pointers (25,000 additions
// to a million mappings: 0.28 s without collections, 0.32 s with one
// every 4 steps), more when the node has fallen behind and the etcd client
// holds many events: with one every 2 of 32 steps, the longest rebuild of
// a node in make iaas took 6.3-7.9 s, against 2.9 s with one every 4 of
// 16.
const (
	rebuildGCSteps = 4
	rebuildGCMin   = 1 << 16
)

// rebuildMappings is ApplyMappings for a bulk batch: the table rebuilt
// with the changes (all or none), a page at a time, each table on the way
// given to the workers (dataplane.Step) so that the old pages are freed as
// the new ones are made; then the result given as a delta (dataplane.Apply:
// the fast path gets the changes), its routes and announcements computed
// anew from the whole table (publishWhole).
func (d *daemon) rebuildMappings(changes []translator.MappingChange, durable bool) (string, error) {
	start := time.Now()
	cur := d.dp.Translator()
	was := cur.Table().Len()
	plan, err := cur.PlanRebuild(changes)
	if err != nil {
		return "", refusal(cur.Table(), changes, err)
	}
	fileTook, err := d.keepChanges(changes, plan.Len(), was, durable)
	if err != nil {
		return "", err
	}
	steps := 0
	large := plan.Len() >= rebuildGCMin // the collections are for large tables
	with := cur.WithTable(nil)
	cur = nil // from the first step on, the old table's pages are the plan's alone
	if large {
		debug.FreeOSMemory() // the batch as the source had it, and the plan's own garbage
	}
	table := plan.Build(func(on *translator.Table) {
		d.dp.Step(with.WithTable(on))
		if steps++; large && steps%rebuildGCSteps == 0 {
			debug.FreeOSMemory()
		}
	})
	if large {
		debug.FreeOSMemory() // the last old pages, and the old ids
	}
	tableTook := time.Since(start) - fileTook
	next := with.WithTable(table)
	// The routes and announcements from a walk of the whole table: a bulk
	// batch's changes one by one (RouteDelta) took five times as long
	// (100,000 additions to neighbouring addresses each extend one span).
	add, del, errApply := d.publishWhole(next, func() { d.dp.Apply(next, changes) })
	if large {
		debug.FreeOSMemory() // the walk's spans and the batch: the heap goal starts from the table alone
	}
	d.compactLater(table)
	words := describeChanges(changes)
	msg := fmt.Sprintf("%s: %d mappings, %d routes added, %d removed", words, table.Len(), add, del)
	d.log.Info("mappings changed", "changes", words, "durable", durable, "mappings", table.Len(), "rebuilt", true,
		"steps", steps, "routes_added", add, "routes_removed", del, "table_took", tableTook.Round(time.Millisecond),
		"file_took", fileTook.Round(time.Millisecond), "took", time.Since(start).Round(time.Millisecond))
	if errApply != nil {
		return "", fmt.Errorf("%s, but not every change was applied: %w", msg, errApply)
	}
	return msg, nil
}

// errNothingChanged starts the error of a change refused whole: the
// table is as it was.
var errNothingChanged = errors.New("refused, nothing changed")

// refusal writes the table's refusal of changes, naming each change and,
// for a conflict, the mapping in the way.
func refusal(t *translator.Table, changes []translator.MappingChange, err error) error {
	var te *translator.TableError
	if !errors.As(err, &te) {
		return fmt.Errorf("%w: %w", errNothingChanged, err)
	}
	var lines []string
	for _, p := range te.Problems {
		c := changes[p.Index]
		line := fmt.Sprintf("%s %s: %s", c.Op, config.FormatMapping(c.Mapping), p.Msg)
		if p.Other >= 0 && t.Live(p.Other) {
			line += fmt.Sprintf(" (mapping %d is %s)", p.Other, config.FormatMapping(t.Mapping(p.Other)))
		}
		lines = append(lines, line)
	}
	return fmt.Errorf("%w: %s", errNothingChanged, strings.Join(lines, "; "))
}

// netRouteChanges returns the routes to add and to remove for changes,
// given the routes there are (has): each change's RouteDelta against the
// routes as the changes before it left them.
func netRouteChanges(has func(netip.Prefix) bool, changes []translator.MappingChange) (add, del []netip.Prefix) {
	added, removed := map[netip.Prefix]bool{}, map[netip.Prefix]bool{}
	now := func(p netip.Prefix) bool {
		switch {
		case added[p]:
			return true
		case removed[p]:
			return false
		}
		return has(p)
	}
	for _, c := range changes {
		a, r := dataplane.RouteDelta(now, c.Mapping.IPv4, c.Op == translator.Add)
		for _, p := range r {
			if added[p] {
				delete(added, p)
			} else {
				removed[p] = true
			}
		}
		for _, p := range a {
			if removed[p] {
				delete(removed, p)
			} else {
				added[p] = true
			}
		}
	}
	return slices.SortedFunc(maps.Keys(added), netip.Prefix.Compare), slices.SortedFunc(maps.Keys(removed), netip.Prefix.Compare)
}

// announcedAfter returns the IPv4 prefixes to announce once changes have
// made next and the kernel routes changed by radd and rdel (nil without
// kernel routes), changing the plan's list in place (the loop owns it) by
// what the changes touch, as ipv4Announced would compute it anew:
// without aggregates, the routes themselves; with aggregates, a route
// covered by some aggregate brings the aggregate instead, and an
// aggregate stays while a route lies inside it (Routes.AnyWithin).
// Without kernel routes (the data plane being recovered) and with
// aggregates, the list is computed anew from the table.
//
// It returns the new list and the prefixes added to it and removed from
// it, or whole when it was computed anew.
func (d *daemon) announcedAfter(next *translator.Translator, changes []translator.MappingChange, radd, rdel []netip.Prefix) (ipv4, added, removed []netip.Prefix, whole bool) {
	ipv4, aggs := d.lc.plan.IPv4, d.cfg.BGP.Aggregates
	insert := func(p netip.Prefix) {
		if i, ok := slices.BinarySearchFunc(ipv4, p, netip.Prefix.Compare); !ok {
			ipv4 = slices.Insert(ipv4, i, p)
			added = append(added, p)
		}
	}
	remove := func(p netip.Prefix) {
		if i, ok := slices.BinarySearchFunc(ipv4, p, netip.Prefix.Compare); ok {
			ipv4 = slices.Delete(ipv4, i, i+1)
			removed = append(removed, p)
		}
	}
	if len(aggs) == 0 {
		// The announced prefixes are the routes: the same walk on them.
		has := func(p netip.Prefix) bool {
			_, ok := slices.BinarySearchFunc(ipv4, p, netip.Prefix.Compare)
			return ok
		}
		add, del := netRouteChanges(has, changes)
		ipv4, added, removed = mergeSorted(ipv4, add, del)
		return ipv4, added, removed, false
	}
	if d.routes == nil {
		return ipv4Announced(dataplane.Prefixes(next), aggs), nil, nil, true
	}
	covering := func(p netip.Prefix) []netip.Prefix {
		var out []netip.Prefix
		for _, a := range aggs {
			if a.Bits() <= p.Bits() && a.Contains(p.Addr()) {
				out = append(out, a)
			}
		}
		return out
	}
	var recheck []netip.Prefix
	for _, p := range rdel {
		if c := covering(p); len(c) > 0 {
			recheck = append(recheck, c...)
		} else {
			remove(p)
		}
	}
	for _, p := range radd {
		if c := covering(p); len(c) > 0 {
			for _, a := range c {
				insert(a)
			}
		} else {
			insert(p)
		}
	}
	for _, a := range recheck {
		if !d.routes.AnyWithin(a) {
			remove(a)
		}
	}
	return ipv4, added, removed, false
}

// mergeSorted returns list, sorted by netip.Prefix.Compare, with the
// prefixes of del taken out and those of add put in (both sorted), in one
// pass: a bulk batch's thousands of routes would cost a copy of the list
// each, put in one by one. It returns those it added and removed.
func mergeSorted(list, add, del []netip.Prefix) (out, added, removed []netip.Prefix) {
	if len(add) == 0 && len(del) == 0 {
		return list, nil, nil
	}
	out = make([]netip.Prefix, 0, len(list)+len(add))
	i, j, k := 0, 0, 0
	for i < len(list) || j < len(add) {
		if i < len(list) {
			for k < len(del) && del[k].Compare(list[i]) < 0 {
				k++
			}
			if k < len(del) && del[k] == list[i] {
				removed = append(removed, list[i])
				i++
				continue
			}
		}
		switch {
		case j == len(add) || i < len(list) && list[i].Compare(add[j]) < 0:
			out = append(out, list[i])
			i++
		case i < len(list) && list[i] == add[j]:
			out = append(out, list[i])
			i, j = i+1, j+1
		default:
			out = append(out, add[j])
			added = append(added, add[j])
			j++
		}
	}
	return out, added, removed
}

// maxReloadDelta is the largest difference a reload applies as a delta;
// past it the table just loaded is swapped in whole (the overlay would
// ask for a compaction at once).
const maxReloadDelta = 1024

// compactLater builds a fresh table of t's entries in the background when
// its changes ask for it (translator.Table.NeedsCompaction: the overlay's
// additions never do, rebuildBetter folds them in first; what does is
// ids left unused by deletions, more than an eighth of the entries, which
// the compaction numbers anew); compacted swaps it in.
func (d *daemon) compactLater(t *translator.Table) {
	if d.compacting || !t.NeedsCompaction() {
		return
	}
	d.compacting, d.sinceCompact, d.compactStale = true, nil, false
	done := make(chan compaction, 1)
	d.compactC = done
	go func() {
		start := time.Now()
		nt, err := t.Compact()
		done <- compaction{from: t, to: nt, err: err, took: time.Since(start)}
	}()
}

// changedSinceCompact records changes applied while a compaction runs.
func (d *daemon) changedSinceCompact(changes []translator.MappingChange) {
	if d.compacting {
		d.sinceCompact = append(d.sinceCompact, changes...)
	}
}

// compaction is a table built anew in the background.
type compaction struct {
	from, to *translator.Table
	err      error
	took     time.Duration
}

// compacted swaps in the compacted table, with the changes made since it
// was started applied to it: a stream of changes (a controller adding
// mappings one by one) must not keep a compaction from ever landing. A
// table replaced whole meanwhile (a large reload or snapshot) makes it
// stale: it is dropped, and one is started from the table in use if that
// asks for it. The swap carries the counters over, as a reload does.
func (d *daemon) compacted(c compaction) {
	d.compacting, d.compactC = false, nil
	since, stale := d.sinceCompact, d.compactStale
	d.sinceCompact = nil
	cur := d.dp.Translator()
	to := c.to
	var err error
	switch {
	case c.err != nil:
		d.log.Error("compacting the mapping table failed; the changes stay in its overlay", "err", c.err)
		return
	case stale:
		d.compactLater(cur.Table())
		return
	case len(since) > 0:
		if to, err = to.Apply(since); err != nil { // they applied to the same entries: a bug
			d.log.Error("the changes made while compacting do not apply to the compacted table; it is dropped", "err", err)
			return
		}
	}
	d.dp.Swap(cur.WithTable(to))
	d.log.Info("mapping table compacted", "mappings", to.Len(), "changes_since", len(since), "took", c.took.Round(time.Millisecond))
}

// recordAll makes snap's origins the only ones recorded.
func (d *daemon) recordAll(snap []translator.MappingChange) {
	if d.tables == nil {
		return
	}
	d.tables.origins.Clear()
	d.tables.record(snap)
}

// MappingUpdate is what a mapping source other than the file (etcd) sends
// the daemon loop: a delta (Changes, each with its Origin) or the whole
// table (Snapshot non-nil: after a start or a compacted watch). Result, if
// not nil, gets the outcome (buffered by the sender: the loop never waits
// on it).
type MappingUpdate struct {
	Changes []translator.MappingChange
	// Snapshot is the whole table, every change an Add with its Origin.
	Snapshot []translator.MappingChange
	// Table is the whole table as Snapshot is, built, without origins
	// (the etcd source: a mapping's origin is its key,
	// tableView.sourceOrigin): a million mappings are not copied into
	// changes on the way, nor built again.
	Table  *translator.Table
	Result chan<- error
}

// applyUpdate applies u on the loop and returns what failed; the source
// keeps its own durable copy, so nothing is written to the mapping file.
func (d *daemon) applyUpdate(u MappingUpdate) error {
	var err error
	switch {
	case u.Table != nil:
		err = d.applyTable(u.Table)
	case u.Snapshot != nil:
		err = d.ApplySnapshot(u.Snapshot)
	default:
		_, err = d.ApplyMappings(u.Changes, false)
	}
	if err != nil {
		d.log.Error("mapping update refused; the running table is kept", "err", err)
	}
	if u.Result != nil {
		u.Result <- err
	}
	return err
}

// ApplySnapshot makes snap's mappings the running table: as a delta when it differs by
// at most maxReloadDelta mappings (translator.Diff), else swapped whole
// with the routes and announcements recomputed, as a reload does.
func (d *daemon) ApplySnapshot(snap []translator.MappingChange) error {
	table, err := translator.NewTableFunc(len(snap), func(i int) translator.Mapping { return snap[i].Mapping })
	if err != nil {
		return fmt.Errorf("snapshot %w: %w", errNothingChanged, err)
	}
	err = d.applyTable(table)
	if !errors.Is(err, errNothingChanged) {
		d.recordAll(snap)
	}
	return err
}

// applyTable makes table the running one (ApplySnapshot without origins).
func (d *daemon) applyTable(table *translator.Table) error {
	cur := d.dp.Translator()
	if changes, ok := translator.Diff(cur.Table(), table, maxReloadDelta); ok {
		if len(changes) == 0 {
			return nil
		}
		_, err := d.ApplyMappings(changes, false)
		return err
	}
	tr, err := translator.New(cur.Config(), table)
	if err != nil {
		return fmt.Errorf("snapshot %w: %w", errNothingChanged, err)
	}
	add, del, err := d.replaceTranslator(tr)
	d.log.Info("mapping table replaced", "mappings", table.Len(), "routes_added", add, "routes_removed", del)
	return err
}

// replaceTranslator makes tr, whose table was built whole, the one in
// use: the kernel routes that no longer apply removed first, the data
// plane swapped, the new routes added, the announcements computed anew.
// It returns how many routes it added and removed.
func (d *daemon) replaceTranslator(tr *translator.Translator) (added, removed int, err error) {
	return d.publishWhole(tr, func() { d.dp.Swap(tr) })
}

// publishWhole makes tr the one in use with publish (a swap, or the last
// step of a rebuild) and its routes and announcements computed anew from
// its whole table: the kernel routes that no longer apply removed first,
// the new ones added after. A compaction in flight is made stale.
func (d *daemon) publishWhole(tr *translator.Translator, publish func()) (added, removed int, err error) {
	var add, del []netip.Prefix
	var errRemove, errAdd error
	routes := dataplane.Prefixes(tr) // once: a walk of the whole table
	if d.routes != nil {
		add, del = d.routes.Diff(routes)
		errRemove = d.routes.Remove(del)
	}
	publish()
	d.compactStale = true
	if d.routes != nil {
		errAdd = d.routes.Add(add)
	}
	errAnnounce := d.lc.setIPv4(d.ctx, ipv4Announced(routes, d.cfg.BGP.Aggregates))
	return len(add), len(del), errors.Join(errRemove, errAdd, errAnnounce)
}

// Cluster reads every node's record from etcd (`map646 status -cluster`).
func (h controlHandler) Cluster(ctx context.Context) (control.ClusterStatus, error) {
	e := h.tv.cfg.Load().Mappings.Etcd
	return clusterStatus(ctx, h.tv.source, e.Prefix, e.RequestTimeout)
}
