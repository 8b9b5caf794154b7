package dataplane

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/map646/map646/translator"
	"github.com/map646/map646/translator/fastpath"
	"github.com/map646/map646/translator/tun"
)

// BatchSize is the number of packets a worker reads at once, and the number
// of translator.Out it keeps for their outputs.
const BatchSize = 64

// DataPlane translates the packets of a tun device. Build it with New, run
// it with Run; Swap replaces the translator while it runs.
type DataPlane struct {
	// dev is the device served, replaced by Reopen when it failed; the
	// workers, Probe and Stats load it.
	dev     atomic.Pointer[device]
	dropped atomic.Uint64 // Dropped of the devices Reopen replaced
	log     *slog.Logger
	// limiter bounds the ICMP errors the translator generates, except the
	// path MTU signals, which pmtuLimiter bounds: a flood of packets that
	// earn other errors (TTL 1, no mapping) must not starve the
	// Fragmentation Needed and Packet Too Big that path MTU discovery
	// depends on.
	limiter     *limiter
	pmtuLimiter *limiter
	workers     []*worker

	state atomic.Pointer[state]
	// mu serializes Swap with itself and with the readers of the
	// per-mapping counters, which must not see them between a swap and
	// the carrying over of the old counts.
	mu sync.Mutex

	running atomic.Bool

	// probe is what the self-check (Probe, probe.go) shares with the
	// workers: the secret that marks its packets, and the heartbeat clock.
	probe probeState
	// batchHook, when set, runs at the start of every batch: tests hold
	// a worker inside a batch with it (SetBatchHook).
	batchHook atomic.Pointer[func(q int)]

	// fast is the kernel fast path attached at the device (fastpath.go).
	fast fastPath
}

// device is one device and its closing, once.
type device struct {
	tun.Device
	closeOnce sync.Once
	closeErr  error
}

func (d *device) close() error {
	d.closeOnce.Do(func() { d.closeErr = d.Device.Close() })
	return d.closeErr
}

// state is what a worker loads once per batch: the translator and the
// per-mapping counters sized to its table.
type state struct {
	tr      *translator.Translator
	entries *counters // the per-mapping counters
	epoch   uint64    // 1 for the first table, +1 per Swap
}

func newState(tr *translator.Translator, epoch uint64) *state {
	return &state{tr: tr, entries: newCounters(countersFor(tr.Table().Span())), epoch: epoch}
}

// countersFor returns how many mappings' counters to allocate for a table
// of span ids: room for the ids that changes to it will give (Apply) before
// the counters must grow, a sixteenth more, at least twice as many as a
// table gathers before it asks for compaction.
func countersFor(span int) int { return span + max(2048, span/16) }

// Options are a data plane's settings besides its translator and device.
type Options struct {
	// ICMPErrorRate and ICMPErrorBurst limit the ICMP errors it sends
	// (translator.icmp_error_rate, icmp_error_burst: per second and
	// tokens, each at least 1); SetICMPLimit changes them.
	ICMPErrorRate, ICMPErrorBurst int
	// PMTUErrorRate and PMTUErrorBurst limit the path MTU signals among
	// them (Fragmentation Needed, Packet Too Big: the too-big errors) in a
	// bucket of their own (translator.icmp_pmtu_error_rate,
	// icmp_pmtu_error_burst); 0: as ICMPErrorRate and ICMPErrorBurst.
	// SetPMTULimit changes them.
	PMTUErrorRate, PMTUErrorBurst int
	Logger                        *slog.Logger // nil: discard
}

// New returns a data plane for dev, which it owns from now on (Run and
// Close close it), translating with tr (Swap replaces it).
func New(tr *translator.Translator, dev tun.Device, opt Options) *DataPlane {
	logger := opt.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	d := &DataPlane{
		log:     logger.With("component", "dataplane"),
		limiter: newLimiter(opt.ICMPErrorRate, opt.ICMPErrorBurst),
		pmtuLimiter: newLimiter(cmp.Or(opt.PMTUErrorRate, opt.ICMPErrorRate),
			cmp.Or(opt.PMTUErrorBurst, opt.ICMPErrorBurst)),
		probe: newProbeState(),
	}
	d.state.Store(newState(tr, 1))
	d.dev.Store(&device{Device: dev})
	for q := range dev.Queues() {
		d.workers = append(d.workers, newWorker(d, q, BatchSize))
	}
	return d
}

// Run runs one worker per device queue until ctx is done or a worker
// fails, then closes the device (the only way to wake a blocked read) and
// returns once every worker has stopped. It returns nil when ctx ended it.
// After it returned, Reopen and Run again serve a new device.
func (d *DataPlane) Run(ctx context.Context) error {
	if !d.running.CompareAndSwap(false, true) {
		return errors.New("dataplane: Run called twice")
	}
	defer d.running.Store(false)
	errc := make(chan error, len(d.workers))
	var wg sync.WaitGroup
	for _, w := range d.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errc <- w.run()
		}()
	}
	var errs []error
	select {
	case <-ctx.Done():
	case err := <-errc:
		errs = append(errs, err) // a worker stopped on its own: stop them all
	}
	errs = append(errs, d.Close())
	wg.Wait()
	close(errc)
	for err := range errc {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Close closes the device, which stops the workers. It is safe to call
// twice.
func (d *DataPlane) Close() error { return d.dev.Load().close() }

// Reopen makes dev, a new device with as many queues, the one the data
// plane serves, in place of one that failed under it (an operator deleted
// the interface: every read fails and Run returns). Call it after Run has
// returned, then Run again. The old device is closed; the translator, the
// counters (their sums go on), the ICMP limiter and the probe's secret
// stay.
func (d *DataPlane) Reopen(dev tun.Device) error {
	if d.running.Load() {
		return errors.New("dataplane: Reopen while Run runs")
	}
	if dev.Queues() != len(d.workers) {
		return fmt.Errorf("dataplane: the new device %s has %d queues, the data plane %d", dev.Name(), dev.Queues(), len(d.workers))
	}
	// The program went with the old device: the owner attaches one to the
	// new device (AttachFastPath) once it is up.
	d.DetachFastPath("the device was re-created")
	old := d.dev.Load()
	err := old.close()
	d.dropped.Add(old.Dropped())
	d.dev.Store(&device{Device: dev})
	if err != nil {
		return fmt.Errorf("dataplane: close the old device: %w", err)
	}
	return nil
}

// Device returns the device served now.
func (d *DataPlane) Device() tun.Device { return d.dev.Load().Device }

// Translator returns the translator in use.
func (d *DataPlane) Translator() *translator.Translator { return d.state.Load().tr }

// Swap makes tr the translator of every batch read from now on. It returns
// once no worker uses the old one any more (at most one batch later), with
// the per-mapping counts of the mappings tr keeps carried over.
func (d *DataPlane) Swap(tr *translator.Translator) {
	d.mu.Lock()
	defer d.mu.Unlock()
	old := d.state.Load()
	next := newState(tr, old.epoch+1)
	d.state.Store(next)
	// The program follows once the workers have the table: meanwhile it
	// translates with the old one, as a worker does its batch.
	d.swapFastPath(old, tr)
	d.waitFor(next.epoch)
	carryOver(old, next)
}

// Apply makes tr the translator of every batch read from now on, like
// Swap, for a tr made from the one in use by Translator.Apply or Rebuild:
// its table keeps the ids of the entries it keeps, so the per-mapping
// counters stay where they are, shared by the two states, and those of
// every other mapping are untouched. It does not wait for the workers: a
// batch translated with the old table counts into ids that stay valid (a
// deleted entry's id is never given again). When tr's table has given out
// more ids than the counters have room for, they grow by chunks, the
// existing ones shared. It costs what a pointer store costs; the table's
// own Apply is the expensive part, and it is done before.
//
// changes are what made tr's table from the one in use: the attached fast
// path gets them too (ApplyFastPathDelta), after the tun path, so that a
// mapping is never translated by the program and refused by the workers.
func (d *DataPlane) Apply(tr *translator.Translator, changes []translator.MappingChange) {
	d.applyTun(tr)
	del, add := fastPathDelta(tr.Table(), changes)
	d.ApplyFastPathDelta(tr, del, add)
}

// fastPathDelta returns the program's half of changes, which made table:
// the mappings to remove, and those to add with the ids table gave them
// (the program counts into the tun path's counter of the same id). An
// addition that a later change of the same batch withdrew is not in table
// (Table.Rebuild); the lookup of its address finds another mapping there,
// or none, and it is left out: the program, which removes before it adds,
// would otherwise keep it.
func fastPathDelta(table *translator.Table, changes []translator.MappingChange) (del []translator.Mapping, add []fastpath.Entry) {
	for _, c := range changes {
		switch c.Op {
		case translator.Del:
			del = append(del, c.Mapping)
		case translator.Add:
			if id, ok := table.Lookup4(c.Mapping.IPv4.Addr()); ok && table.Mapping(id) == c.Mapping {
				add = append(add, fastpath.Entry{Mapping: c.Mapping, Index: int32(id)})
			}
		}
	}
	return del, add
}

// Step makes tr, whose table is on its way through a Rebuild of the one
// in use (translator.Table.Rebuild: the ids of the entries kept do not
// move), the translator of every batch read from now on, as Apply does,
// but the fast path is not told: it keeps the table it has until Apply
// gives it the changes.
func (d *DataPlane) Step(tr *translator.Translator) { d.applyTun(tr) }

// applyTun is Apply's half for the workers.
func (d *DataPlane) applyTun(tr *translator.Translator) {
	d.mu.Lock()
	defer d.mu.Unlock()
	old := d.state.Load()
	entries := old.entries
	if span := tr.Table().Span(); span > entries.ids() {
		entries = entries.grown(countersFor(span))
	}
	d.state.Store(&state{tr: tr, entries: entries, epoch: old.epoch + 1})
}

// waitFor waits until every worker is idle or on the table of epoch.
func (d *DataPlane) waitFor(epoch uint64) {
	for _, w := range d.workers {
		for {
			c := w.pub.cur.Load()
			if c == idle || (c != busy && c >= epoch) {
				break
			}
			time.Sleep(20 * time.Microsecond)
		}
	}
}

// SetICMPLimit changes the ICMP error rate limit: rate errors per second,
// bursts of burst.
func (d *DataPlane) SetICMPLimit(rate, burst int) { d.limiter.set(rate, burst) }

// SetPMTULimit changes the rate limit of the path MTU signals.
func (d *DataPlane) SetPMTULimit(rate, burst int) { d.pmtuLimiter.set(rate, burst) }

// limiterFor returns the bucket of the ICMP errors generated for r.
func (d *DataPlane) limiterFor(r translator.Reason) *limiter {
	if r == translator.ReasonTooBig {
		return d.pmtuLimiter
	}
	return d.limiter
}

// Stats returns the counters summed over the workers.
func (d *DataPlane) Stats() Stats {
	var s Stats
	for _, w := range d.workers {
		s.add(w.pub)
	}
	s.DeviceDropped = d.dropped.Load() + d.dev.Load().Dropped()
	// What the fast path translated never reached a worker: forwarded
	// packets all the same, read and written back by the kernel.
	s.FastPath[Dir4to6], s.FastPath[Dir6to4] = d.fastPathTranslated()
	for _, dir := range []Direction{Dir4to6, Dir6to4} {
		s.Packets[dir][translator.Forward][translator.ReasonNone] += s.FastPath[dir]
		s.SentPackets[dir] += s.FastPath[dir]
	}
	return s
}

// Mappings calls fn for each of the first n mappings of the table in use
// (all if n < 0), in id order (translator.Table.All), with its id and
// counters; fn returns false to stop. Swap waits while it runs: a caller
// that may be slow (a client reading a million rows) should copy what it
// needs and let go.
func (d *DataPlane) Mappings(n int, fn func(id int, m translator.Mapping, c MappingCounts) bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	st := d.state.Load()
	t := st.tr.Table()
	// What the fast path counted, by id: read whole for a whole listing;
	// entry by entry for the first n (a scrape's mapping_series), which
	// must not copy a million-entry array each time.
	var fast []fastpath.EntryCounts
	if n < 0 {
		fast = d.fastPathEntries(t.Span())
	}
	for id, m := range t.All() {
		if n == 0 {
			return
		}
		n--
		c := st.counts(id)
		if fast != nil {
			if id < len(fast) {
				c = c.plus(fast[id])
			}
		} else {
			c = c.plus(d.fastPathEntry(id))
		}
		if !fn(id, m, c) {
			return
		}
	}
}

// plus returns c with the fast path's counts of the same mapping added.
func (c MappingCounts) plus(f fastpath.EntryCounts) MappingCounts {
	c.Packets4to6 += f.Packets4to6
	c.Bytes4to6 += f.Bytes4to6
	c.Packets6to4 += f.Packets6to4
	c.Bytes6to4 += f.Bytes6to4
	return c
}

// Counts returns the counters of the mapping of id id in the table in
// use (zero for an id that is not).
func (d *DataPlane) Counts(id int) MappingCounts {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.state.Load().counts(id).plus(d.fastPathEntry(id))
}

// Lookup returns the translator in use and, read from the same state, the
// counters of the mapping of id id: the pair a lookup shows, consistent.
func (d *DataPlane) Lookup(fn func(tr *translator.Translator) int) (MappingCounts, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	st := d.state.Load()
	id := fn(st.tr)
	if id < 0 || !st.tr.Table().Live(id) {
		return MappingCounts{}, false
	}
	return st.counts(id).plus(d.fastPathEntry(id)), true
}

// Snapshot is the table in use at one moment and its counters, read
// without the data plane's lock: the table is immutable, and the counters, read
// atomically, go on counting (after a later swap they are those of the
// table the snapshot holds, which counts no more).
type Snapshot struct {
	st *state
	d  *DataPlane // for the fast path's counts
}

// Snapshot returns the table in use now and its counters.
func (d *DataPlane) Snapshot() Snapshot { return Snapshot{d.state.Load(), d} }

// Table returns the snapshot's table.
func (s Snapshot) Table() *translator.Table { return s.st.tr.Table() }

// Counts returns the counters of the mapping of id id of the snapshot's
// table, the fast path's included.
func (s Snapshot) Counts(id int) MappingCounts {
	return s.st.counts(id).plus(s.d.fastPathEntry(id))
}

func (st *state) counts(id int) MappingCounts {
	e := st.entries.of(id)
	if e == nil {
		return MappingCounts{}
	}
	return MappingCounts{
		Packets4to6: atomic.LoadUint64(&e[ePackets4to6]),
		Bytes4to6:   atomic.LoadUint64(&e[eBytes4to6]),
		Packets6to4: atomic.LoadUint64(&e[ePackets6to4]),
		Bytes6to4:   atomic.LoadUint64(&e[eBytes6to4]),
	}
}

// worker serves one queue. Everything in it but pub belongs to the
// worker's goroutine.
type worker struct {
	d   *DataPlane
	q   int
	pub *published

	in      []tun.Packet      // the read batch
	outs    []*translator.Out // one per translation until the next flush
	nout    int               // outs in use
	perOut  int               // the most packets one Out holds
	wr      []tun.Packet      // outputs waiting to be written
	segMem  []byte            // room for the segments of a super-packet
	segs    [][]byte          // views into segMem given to tun.Segment
	pend    pending
	entries *entryPending
	probes  uint64 // probe datagrams of the current batch (published apart: see batch)
	echoes  uint64 // the kernel's errors about the fast path's probes, likewise
	// hb tells Probe whether the worker runs and since when it has been
	// in its current batch (probe.go); written once per batch.
	hb heartbeat

	lastLog    time.Time // of the last rate-limited log line
	suppressed int       // log lines held back since
}

// segMemSize bounds the segments of one super-packet: 64 KB of payload and
// the copied headers of each segment.
const (
	segMemSize = 8 << 16
	segHeaders = 256 // room for the headers of one segment
	maxSegs    = segMemSize / (segHeaders + 1)
)

func newWorker(d *DataPlane, q, batch int) *worker {
	w := &worker{
		d:       d,
		q:       q,
		pub:     &published{},
		in:      tun.NewBatch(batch),
		outs:    make([]*translator.Out, batch),
		segMem:  make([]byte, segMemSize),
		segs:    make([][]byte, maxSegs),
		pend:    newPending(),
		entries: newEntryPending(),
	}
	for i := range w.outs {
		w.outs[i] = translator.NewOut()
	}
	w.perOut = cap(w.outs[0].Pkts)
	w.wr = make([]tun.Packet, 0, 4*batch+w.perOut)
	return w
}

// run serves the queue until the device is closed.
func (w *worker) run() error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	dev := w.d.dev.Load() // one device per Run: Reopen waits for Run's end
	w.hb.alive.Store(true)
	defer w.hb.alive.Store(false)
	for {
		n, err := dev.ReadBatch(w.q, w.in)
		if err != nil {
			if errors.Is(err, os.ErrClosed) {
				return nil
			}
			return fmt.Errorf("dataplane: queue %d: %w", w.q, err)
		}
		w.batch(w.in[:n])
	}
}

// batch translates and writes one batch, then publishes its counters.
func (w *worker) batch(pkts []tun.Packet) {
	// The heartbeat before cur: a reader that sees cur busy sees this
	// batch's start or a later one, never an older one (probe.go).
	w.hb.start.Store(w.d.probe.now())
	w.pub.cur.Store(busy)
	if h := w.d.batchHook.Load(); h != nil {
		(*h)(w.q) // tests only: a worker stuck in a batch
	}
	st := w.d.state.Load()
	w.pub.cur.Store(st.epoch)
	for i := range pkts {
		w.packet(st, &pkts[i])
	}
	w.flush()
	w.entries.flush(st.entries)
	w.pend.publish(w.pub)
	// The probes after their verdicts, and Stats reads them before the
	// verdicts: a snapshot never holds more probes than packets read, so
	// the packets read less the probes never goes below zero.
	if w.probes > 0 {
		atomic.AddUint64(&w.pub.v[cProbes], w.probes)
		w.probes = 0
	}
	if w.echoes > 0 {
		atomic.AddUint64(&w.pub.v[cProbeEchoes], w.echoes)
		w.echoes = 0
	}
	// The batch count last: a reader that sees it sees every other counter
	// of the batch.
	atomic.AddUint64(&w.pub.v[cBatches], 1)
	w.pub.cur.Store(idle)
}

// packet translates one packet read from the device.
func (w *worker) packet(st *state, p *tun.Packet) {
	b := p.Bytes()
	dir := direction(b)
	w.pend.add(cBytesIn+int(dir), uint64(len(b)))
	if p.GSOSize == 0 {
		w.translate(st, dir, b)
		return
	}
	// Translated in place: the payload stays in the read buffer, which is
	// not reused before the batch is written (flush runs at its end). Taken
	// whole only when the kernel's segments of the result are what the
	// per-packet path would make of each segment; otherwise split below.
	res, off, n, seg, ok := st.tr.TranslateGSOInPlace(p.Buf, p.Off, p.Len, p.GSOSize)
	if ok {
		w.pend.add(cGSOWhole, 1)
		w.pend.add(verdictIndex(dir, res.Verdict, res.Reason), 1)
		if res.Verdict == translator.Forward {
			w.send(dir, p.Buf[off:off+n], seg)
			if res.Entry >= 0 && w.entries.add(res.Entry, dir, len(b)) {
				w.entries.flush(st.entries)
			}
		}
		return
	}
	n, err := w.segment(p)
	if err != nil {
		w.pend.add(verdictIndex(dir, translator.Drop, ReasonSegmentFailed), 1)
		w.logRare("cannot split a super-packet", "err", err, "len", p.Len, "gso_size", p.GSOSize)
		return
	}
	w.pend.add(cGSOSegmented, 1)
	w.pend.add(cGSOSegments, uint64(n))
	for _, s := range w.segs[:n] {
		w.translate(st, dir, s)
	}
}

// segment splits p into w.segs[:n].
func (w *worker) segment(p *tun.Packet) (int, error) {
	// At most Len/GSOSize segments (the payload is shorter than the
	// packet); tun.Segment refuses if the memory holds too few.
	per := p.GSOSize + segHeaders
	n := min((p.Len+p.GSOSize-1)/p.GSOSize, len(w.segMem)/per)
	for i := range n {
		w.segs[i] = w.segMem[i*per : i*per : (i+1)*per]
	}
	return tun.Segment(*p, w.segs[:n])
}

// translate translates one packet (or segment) b.
func (w *worker) translate(st *state, dir Direction, b []byte) {
	o := w.nextOut()
	res := st.tr.Translate(b, o)
	// The self-check's packets are answered whatever the ICMP rate limit
	// and counted apart, so that a drain can tell them from real traffic
	// (probe.go). Only packets earning an error are looked at, or dropped
	// for their TTL (the probe with icmp_errors off): rare ones.
	probe := (res.Verdict == translator.ICMPError || res.Reason == translator.ReasonTTLExpired) && w.d.probe.is(b)
	if probe {
		w.probes++
	}
	// The kernel's answer to the fast path's check (checkFastPath): one
	// length compare per packet, the rest only on that length.
	if len(b) == echoLen && w.d.probe.isEcho(b) {
		w.echoes++
	}
	w.result(st, dir, res, o, len(b), probe)
}

// result counts res and queues the packets in o for writing. (Super-packets
// translated whole bypass it: they are written from the read buffer.)
func (w *worker) result(st *state, dir Direction, res translator.Result, o *translator.Out, n int, probe bool) {
	w.pend.add(verdictIndex(dir, res.Verdict, res.Reason), 1)
	switch res.Verdict {
	case translator.Forward:
		for _, p := range o.Pkts {
			w.send(dir, p, 0)
		}
		if res.Entry >= 0 && dir != DirOther && w.entries.add(res.Entry, dir, n) {
			w.entries.flush(st.entries)
		}
	case translator.ICMPError:
		pmtu := res.Reason == translator.ReasonTooBig
		if !probe && !w.d.limiterFor(res.Reason).allow() {
			w.pend.add(cICMPSuppressed, 1)
			if pmtu {
				w.pend.add(cPMTUSuppressed, 1)
			}
			return
		}
		w.pend.add(cICMPSent, 1)
		if pmtu {
			w.pend.add(cPMTUSent, 1)
		}
		for _, p := range o.Pkts {
			w.send(dir, p, 0)
		}
	}
}

func (w *worker) send(dir Direction, p []byte, gsoSize int) {
	w.wr = append(w.wr, tun.Packet{Buf: p, Len: len(p), GSOSize: gsoSize, Partial: gsoSize > 0})
	w.pend.add(cSentPackets+int(dir), 1)
	w.pend.add(cSentBytes+int(dir), uint64(len(p)))
}

// nextOut returns an Out for the next translation, writing the pending
// outputs first if the Outs or the write batch are used up.
func (w *worker) nextOut() *translator.Out {
	if w.nout == len(w.outs) || len(w.wr)+w.perOut > cap(w.wr) {
		w.flush()
	}
	o := w.outs[w.nout]
	w.nout++
	return o
}

// flush writes the pending outputs; their Outs are free again.
func (w *worker) flush() {
	if len(w.wr) > 0 {
		if err := w.d.dev.Load().WriteBatch(w.q, w.wr); err != nil {
			w.pend.add(cWriteErrors, 1)
			w.logRare("write to the device failed", "err", err)
		}
		clear(w.wr) // drop the references to the Outs' buffers
		w.wr = w.wr[:0]
	}
	w.nout = 0
}

// logInterval bounds the rate-limited log lines: one per interval and
// worker, with the count of those held back.
const logInterval = 10 * time.Second

// logRare logs a rare event, at most once per logInterval.
func (w *worker) logRare(msg string, args ...any) {
	now := time.Now()
	if now.Sub(w.lastLog) < logInterval {
		w.suppressed++
		return
	}
	if w.suppressed > 0 {
		args = append(args, "suppressed", w.suppressed)
	}
	w.d.log.Warn(msg, append(args, "queue", w.q)...)
	w.lastLog, w.suppressed = now, 0
}
