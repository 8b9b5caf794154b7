package dataplane

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	ebpflink "github.com/cilium/ebpf/link"

	"github.com/map646/map646/translator"
	"github.com/map646/map646/translator/fastpath"
)

// The kernel fast path (translator/fastpath): a tc program at the egress of
// the device translates the common case inside the kernel and puts the
// result back on the device's ingress; what it punts reaches the workers as
// before. The data plane owns the program and its attachment, because both
// follow what it owns: the device (a re-created one has no program until
// AttachFastPath), the translator (Swap loads a program for the new table
// and replaces the old one at the link, without a gap) and the counters
// (Stats counts what the program translated as forwarded packets, so that
// the drain, the status and the soak's balance see that traffic too;
// Mappings adds its per-mapping counts, and a program replaced or
// detached leaves them to the data plane's: fold).
//
// Whether to attach is the daemon's decision ([fastpath] mode); the data
// plane only says whether it could, and detaches the program, leaving every
// packet to the workers, whenever the program fails: a swap or a local
// address update it cannot apply, or its check (checkFastPath).

// fastPath is the program attached, if any, and the counts of those it
// replaced. mu serializes everything that changes it; what also depends on
// the table in use (attaching, replacing, detaching: the per-mapping
// counts) takes DataPlane.mu first, as Swap does.
type fastPath struct {
	mu   sync.Mutex
	prog *fastpath.FastPath // nil: not attached
	link ebpflink.Link
	id   uint32
	why  string // why it is not attached; "" before the first attempt
	// base holds the final counts of the programs replaced or detached:
	// the counters stay monotonic across reloads and re-attachments.
	base map[string]uint64
	// lastCheck is when checkFastPath last sent its probe.
	lastCheck time.Time
}

// FastPathStatus is what the fast path is doing, for the status.
type FastPathStatus struct {
	Attached bool
	// Why says why it is not attached, or "" (also "" before any attempt).
	Why       string
	ProgramID uint32
	// Disabled says why the attached program punts every packet under the
	// table in use (fastpath.FastPath.Disabled), or "".
	Disabled string
	// Counters are the programs' counters since the data plane was made
	// (fastpath.FastPath.Counters), summed over every program attached.
	Counters map[string]uint64
}

// AttachFastPath loads the fast path for the translator in use and attaches
// it at the egress of the device (in the caller's network namespace). It
// does nothing when one is attached. Its error says why the kernel refused
// (no BPF, no CAP_BPF and CAP_NET_ADMIN, a kernel before 6.6 without tcx);
// the workers then carry every packet.
func (d *DataPlane) AttachFastPath() error {
	d.mu.Lock() // the table must not change under the program being loaded
	defer d.mu.Unlock()
	f := &d.fast
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.prog != nil {
		return nil
	}
	err := f.attach(d.Translator(), d.Device().Name())
	if err != nil {
		f.why = err.Error()
		return err
	}
	d.log.Info("fast path attached", "device", d.Device().Name(), "program_id", f.id, "disabled", f.prog.Disabled())
	return nil
}

// attach loads a program for tr and attaches it to the device dev.
func (f *fastPath) attach(tr *translator.Translator, dev string) error {
	ifi, err := net.InterfaceByName(dev)
	if err != nil {
		return fmt.Errorf("fastpath: device %s: %w", dev, err)
	}
	prog, err := fastpath.Load(tr.Config(), tr.Table(), fastpath.LinkTun)
	if err != nil {
		return err
	}
	l, err := prog.Attach(ifi.Index)
	if err != nil {
		prog.Close()
		return err
	}
	f.prog, f.link, f.why = prog, l, ""
	f.id = programID(prog)
	return nil
}

func programID(prog *fastpath.FastPath) uint32 {
	if info, err := prog.Program().Info(); err == nil {
		if id, ok := info.ID(); ok {
			return uint32(id)
		}
	}
	return 0
}

// DetachFastPath detaches the fast path, if attached, and records why: the
// workers carry every packet from now on.
func (d *DataPlane) DetachFastPath(why string) {
	// d.mu first, as Swap takes them: the per-mapping counts go to the
	// table in use, which must not change meanwhile.
	d.mu.Lock()
	defer d.mu.Unlock()
	f := &d.fast
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.prog != nil {
		d.log.Info("fast path detached", "program_id", f.id, "why", why)
	}
	f.detach(why, d.state.Load().entries)
}

// detach closes the link and the program, keeping their counts: the
// per-mapping ones in entries, those of the table the program has.
func (f *fastPath) detach(why string, entries *counters) {
	f.why = why
	if f.prog == nil {
		return
	}
	if f.link != nil {
		f.link.Close()
	}
	fold(f.prog, entries)
	f.retire(f.prog)
	f.prog, f.link, f.id = nil, nil, 0
}

// fold adds prog's per-mapping counts to entries (entryWords per mapping,
// of the table prog was loaded with), for prog's retirement: from then on
// the data plane's own counters hold them.
func fold(prog *fastpath.FastPath, entries *counters) {
	c, err := prog.EntryCounts(entries.ids())
	if err != nil {
		return
	}
	for i, e := range c {
		if e == (fastpath.EntryCounts{}) {
			continue
		}
		w := entries.of(i)
		if w == nil {
			break
		}
		atomic.AddUint64(&w[ePackets4to6], e.Packets4to6)
		atomic.AddUint64(&w[eBytes4to6], e.Bytes4to6)
		atomic.AddUint64(&w[ePackets6to4], e.Packets6to4)
		atomic.AddUint64(&w[eBytes6to4], e.Bytes6to4)
	}
}

// retire adds the final counts of prog, detached or replaced, to the base,
// and unloads it.
func (f *fastPath) retire(prog *fastpath.FastPath) {
	if c, err := prog.Counters(); err == nil {
		if f.base == nil {
			f.base = map[string]uint64{}
		}
		for k, v := range c {
			f.base[k] += v
		}
	}
	prog.Close()
}

// swapFastPath replaces the attached program with one for tr (Swap, with
// d.mu held); the old program's per-mapping counts go to old, the state of
// the table it had. A program that cannot be loaded or put in place leaves
// the workers alone.
func (d *DataPlane) swapFastPath(old *state, tr *translator.Translator) {
	f := &d.fast
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.prog == nil {
		return
	}
	next, err := fastpath.Load(tr.Config(), tr.Table(), fastpath.LinkTun)
	if err == nil {
		if err = f.link.Update(next.Program()); err != nil {
			next.Close()
		}
	}
	if err != nil {
		d.log.Warn("fast path detached: the new table could not be given to it; the tun path carries every packet", "err", err)
		f.detach(fmt.Sprintf("reload: %v", err), old.entries)
		return
	}
	prev := f.prog
	f.prog, f.id = next, programID(next)
	// A packet the old program is translating on another CPU may still
	// count on it after these reads: at most one per CPU, once per reload.
	fold(prev, old.entries)
	f.retire(prev)
}

// ReloadFastPath gives the attached program tr whole, settings and table
// (a reload: its settings may have changed, which a delta cannot carry),
// as Swap does; the counts of the program it replaces go to the table in
// use, whose ids tr's table keeps.
func (d *DataPlane) ReloadFastPath(tr *translator.Translator) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.swapFastPath(d.state.Load(), tr)
}

// ApplyFastPathDelta changes the attached program's table in place (the
// fast path's half of a table delta; fastpath.FastPath.ApplyDelta). When
// the program has no room left, it is replaced by one for tr, the
// translator with the changed table, as a reload does.
func (d *DataPlane) ApplyFastPathDelta(tr *translator.Translator, del []translator.Mapping, add []fastpath.Entry) {
	f := &d.fast
	f.mu.Lock()
	if f.prog == nil {
		f.mu.Unlock()
		return
	}
	err := f.prog.ApplyDelta(del, add)
	f.mu.Unlock()
	if errors.Is(err, fastpath.ErrNoRoom) {
		// The delta keeps the entries' indexes: the old program's counts
		// go to the table in use.
		d.mu.Lock()
		d.swapFastPath(d.state.Load(), tr)
		d.mu.Unlock()
		return
	}
	if err != nil {
		d.log.Warn("fast path detached: a table change could not be applied to it; the tun path carries every packet", "err", err)
		d.DetachFastPath(fmt.Sprintf("table change: %v", err))
	}
}

// LocalAddrsChanged gives the attached program the node's local addresses
// as the translator in use has them now (translator.LocalAddrs, which
// FollowLocalAddrs keeps current): call it after each change. A program
// that cannot take them is detached (it would translate toward an address
// the tun path refuses).
func (d *DataPlane) LocalAddrsChanged() {
	d.mu.Lock() // for detach: see DetachFastPath
	defer d.mu.Unlock()
	f := &d.fast
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.prog == nil {
		return
	}
	var node []netip.Prefix
	if la := d.Translator().Config().LocalAddrs; la != nil {
		node = la.Prefixes()
	}
	if err := f.prog.SetLocalAddrs(node); err != nil {
		d.log.Warn("fast path detached: the node's local addresses could not be given to it; the tun path carries every packet", "err", err)
		f.detach(fmt.Sprintf("local addresses: %v", err), d.state.Load().entries)
	}
}

// FastPathStatus returns what the fast path is doing.
func (d *DataPlane) FastPathStatus() FastPathStatus {
	f := &d.fast
	f.mu.Lock()
	defer f.mu.Unlock()
	s := FastPathStatus{Attached: f.prog != nil, Why: f.why, ProgramID: f.id, Counters: f.counters()}
	if f.prog != nil {
		s.Disabled = f.prog.Disabled()
	}
	return s
}

// counters returns the base plus the attached program's counts (nil when
// no program was ever attached). Called with mu held.
func (f *fastPath) counters() map[string]uint64 {
	if f.base == nil && f.prog == nil {
		return nil
	}
	out := maps.Clone(f.base)
	if out == nil {
		out = map[string]uint64{}
	}
	if f.prog != nil {
		if c, err := f.prog.Counters(); err == nil {
			for k, v := range c {
				out[k] += v
			}
		}
	}
	return out
}

// fastPathEntries returns the attached program's per-mapping counts of the
// first n mappings (nil when none is attached). Called with d.mu held.
func (d *DataPlane) fastPathEntries(n int) []fastpath.EntryCounts {
	f := &d.fast
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.prog == nil {
		return nil
	}
	c, _ := f.prog.EntryCounts(n)
	return c
}

// fastPathEntry returns the attached program's counts of the mapping of
// id id (zero without a program).
func (d *DataPlane) fastPathEntry(id int) fastpath.EntryCounts {
	f := &d.fast
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.prog == nil {
		return fastpath.EntryCounts{}
	}
	c, _ := f.prog.EntryCount(id)
	return c
}

// fastPathTranslated returns the packets the fast path translated, by
// direction: what Stats adds to the forwarded ones.
func (d *DataPlane) fastPathTranslated() (in4, in6 uint64) {
	f := &d.fast
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.counters()
	return c["translated-4to6"], c["translated-6to4"]
}

// fastPathSeen is the number of packets the fast path has seen: every one
// it counted, translated or punted.
func (d *DataPlane) fastPathSeen() uint64 {
	f := &d.fast
	f.mu.Lock()
	defer f.mu.Unlock()
	var n uint64
	for _, v := range f.counters() {
		n += v
	}
	return n
}

// fastPathCheckEvery is how often Probe checks the fast path: its probe
// is translated for real and answered by the kernel with an ICMPv6 error,
// which the kernel rate-limits (net.ipv6.icmp.ratelimit, 1 s); the workers'
// probe, every check, proves the rest.
const fastPathCheckEvery = 10 * time.Second

// checkFastPath proves, at most every fastPathCheckEvery, that the attached
// program sees the packets the device sends: a UDP datagram with TTL 2 from
// src to dst (a mapped address, as the workers' probe) must move one of its
// counters. The program translates it to IPv6 with hop limit 1 and puts it
// back on the device's ingress, where the kernel's forwarding drops it and
// answers with an ICMPv6 error, which the workers recognize (probe.isEcho)
// and count apart: nothing leaves the node. A program the datagram does
// not reach (detached behind map646's back, its link broken) is detached,
// with a warning: the node goes on serving on the tun path, which Probe
// has just proven, and is not withdrawn. A punt counts as a sign of life
// (the program runs; whether it translates is what the differential
// tests prove), and other traffic the program sees meanwhile passes for
// the probe's: it proves the same.
func (d *DataPlane) checkFastPath(ctx context.Context, dev string, src, dst netip.Addr) {
	f := &d.fast
	f.mu.Lock()
	attached := f.prog != nil
	due := time.Since(f.lastCheck) >= fastPathCheckEvery
	if attached && due {
		f.lastCheck = time.Now()
	}
	f.mu.Unlock()
	if !attached || !due {
		return
	}
	if err := d.fastPathProbe(ctx, dev, src, dst); err != nil {
		d.log.Warn("fast path detached: it failed its check; the tun path carries every packet", "err", err)
		d.DetachFastPath(fmt.Sprintf("it failed its check: %v", err))
	}
}

// fastPathCheckTimeout bounds the wait for the program's counter.
const fastPathCheckTimeout = 500 * time.Millisecond

// fastPathProbe sends checkFastPath's datagram and waits for the program
// to count it.
func (d *DataPlane) fastPathProbe(ctx context.Context, dev string, src, dst netip.Addr) error {
	before := d.fastPathSeen() // a program punting all (Disabled) counts too

	conn, err := d.dialProbe(ctx, dev, src, dst, 2)
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := conn.Write(d.probe.secret[:]); err != nil {
		return fmt.Errorf("send %s -> %s: %w", src, dst, err)
	}
	deadline := time.NewTimer(fastPathCheckTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(5 * time.Millisecond) // each look is a syscall per counter
	defer tick.Stop()
	for {
		if d.fastPathSeen() != before {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil // the probe's deadline, not the program's fault
		case <-deadline.C:
			return fmt.Errorf("a datagram %s -> %s with TTL 2 did not reach the program within %v", src, dst, fastPathCheckTimeout)
		case <-tick.C:
		}
	}
}
