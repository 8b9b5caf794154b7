package fastpath

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/map646/map646/translator"
)

// MaxLengths is the most prefix lengths the fast path probes on each side
// of the table (one hash probe each, unrolled by the verifier); a table
// with more makes it punt everything.
const MaxLengths = 8

// FastPath is the loaded program and its maps, filled from one translator
// configuration and table. It is not attached to anything: its owner
// attaches Program() where it wants it (see doc.go).
type FastPath struct {
	objs     xlatObjects
	disabled string
	own      []netip.Prefix // the translator's own addresses; nil: local destinations allowed
	// settings are those written, and lens4, lens6 every prefix length
	// the hashes may hold, longest first: ApplyDelta adds to them.
	settings     xlatSettings
	lens4, lens6 []uint8
}

// Link says what precedes the IP header of the packets the program sees.
type Link int

const (
	// LinkTun: nothing, the packet starts with its IP header, as at the
	// egress of map646's tun device.
	LinkTun Link = iota
	// LinkEthernet: a 14-byte Ethernet header, as in BPF_PROG_TEST_RUN, which
	// always gives a tc program an Ethernet frame. The program rewrites its
	// EtherType with the protocol.
	LinkEthernet
)

// Load loads the program into the kernel and fills its maps from cfg and
// table, the translator's configuration and mapping table (table may be
// nil: no mappings), for packets of the link type link. It needs CAP_BPF
// (root) and a kernel with BPF; its error then says why, and the tun path
// carries every packet alone.
func Load(cfg translator.Config, table *translator.Table, link Link) (*FastPath, error) {
	if table == nil {
		table, _ = translator.NewTable(nil)
	}
	spec, err := loadXlat()
	if err != nil {
		return nil, err
	}
	if link == LinkEthernet {
		if err := spec.Variables[xlatVarL2Len].Set(uint32(14)); err != nil {
			return nil, fmt.Errorf("fastpath: %w", err)
		}
	}
	// The hashes are preallocated: room for DeltaRoom additions (ApplyDelta)
	// on top of the table, and never empty. Sized by the table's Span, not
	// its Len: the entries are indexed by the table's ids, which a table
	// changed by deltas (translator.Table.Apply) gives out past Len.
	spec.Maps[xlatMapTable4].MaxEntries = uint32(table.Span() + DeltaRoom)
	spec.Maps[xlatMapTable6].MaxEntries = uint32(table.Span() + DeltaRoom)
	spec.Maps[xlatMapEntries].MaxEntries = uint32(table.Span() + DeltaRoom)
	fp := &FastPath{}
	if err := spec.LoadAndAssign(&fp.objs, nil); err != nil {
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
			return nil, fmt.Errorf("fastpath: the kernel's verifier refused the program: %+v", ve)
		}
		return nil, fmt.Errorf("fastpath: loading the program: %w", err)
	}
	if err := fp.fill(cfg, table); err != nil {
		fp.Close()
		return nil, err
	}
	return fp, nil
}

// Close unloads the program and frees its maps (an attachment holds its own
// reference to the program).
func (fp *FastPath) Close() error { return fp.objs.Close() }

// Program returns the tc program, to attach or to test-run.
func (fp *FastPath) Program() *ebpf.Program { return fp.objs.Map646Fastpath }

// Disabled says why the program punts every packet under this
// configuration, or "" when it does not.
func (fp *FastPath) Disabled() string { return fp.disabled }

func (fp *FastPath) fill(cfg translator.Config, table *translator.Table) error {
	s, lens4, lens6 := settingsFor(cfg, table)
	fp.settings, fp.lens4, fp.lens6 = s, lens4, lens6
	if err := fp.fillTable(table); err != nil {
		return err
	}
	if err := fp.fillLocal(cfg); err != nil {
		return err
	}
	// The settings last: until they are written the program punts all.
	return fp.writeSettings()
}

// writeSettings writes fp.settings with the prefix lengths fp.lens4 and
// fp.lens6, enabled unless they are too many (Disabled).
func (fp *FastPath) writeSettings() error {
	s := fp.settings
	s.Enabled = 0
	fp.disabled = disabledReason(fp.lens4, fp.lens6)
	if fp.disabled == "" {
		s.Enabled = 1
	}
	s.N4 = uint8(min(len(fp.lens4), MaxLengths))
	s.N6 = uint8(min(len(fp.lens6), MaxLengths))
	s.Lens4, s.Lens6 = [MaxLengths]uint8{}, [MaxLengths]uint8{}
	copy(s.Lens4[:], fp.lens4)
	copy(s.Lens6[:], fp.lens6)
	if err := fp.objs.SettingsMap.Put(uint32(0), &s); err != nil {
		return fmt.Errorf("fastpath: writing the settings: %w", err)
	}
	fp.settings = s
	return nil
}

// DeltaRoom is how many mappings ApplyDelta can add beyond the table the
// program was loaded with: the hashes are preallocated (about 160 bytes
// per slot for both), and past this a change needs a new program (Load).
const DeltaRoom = 1024

// ErrNoRoom says that the hashes are full: load a new program for the
// changed table instead.
var ErrNoRoom = errors.New("fastpath: no room left in the mapping hashes for another mapping")

// Entry is a mapping and its entry index in the table (the index the tun
// path counts it under).
type Entry struct {
	Mapping translator.Mapping
	Index   int32
}

// ApplyDelta changes the program's table in place, as the running table
// changed: the mappings of del removed, those of add added. It is the
// fast path's half of a table delta (the data plane's other half swaps the
// Translator): call it once the tun path's table has the change, so that
// between the two the program only punts what the tun path then
// translates. Removals go first, so that an address moving from one
// mapping to another is never in two. A new prefix length widens the
// probes (written after the entries, so no probe finds an entry missing);
// a length left without entries stays probed (a miss costs one lookup).
// ErrNoRoom means DeltaRoom additions were used up: load a new program.
func (fp *FastPath) ApplyDelta(del []translator.Mapping, add []Entry) error {
	for _, m := range del {
		a4, a6 := m.IPv4.Addr().As4(), m.IPv6.Addr().As16()
		if err := fp.objs.Table4.Delete(xlatKey4{Len: uint32(m.IPv4.Bits()), Addr: be32(a4)}); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("fastpath: removing %v: %w", m.IPv4, err)
		}
		if err := fp.objs.Table6.Delete(xlatKey6{Len: uint32(m.IPv6.Bits()), Addr: a6}); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("fastpath: removing %v: %w", m.IPv6, err)
		}
	}
	lens := false
	for _, e := range add {
		m := e.Mapping
		a4, a6 := m.IPv4.Addr().As4(), m.IPv6.Addr().As16()
		err := fp.objs.Table4.Put(xlatKey4{Len: uint32(m.IPv4.Bits()), Addr: be32(a4)},
			xlatVal4{V6: a6, Len6: uint32(m.IPv6.Bits()), Entry: uint32(e.Index)})
		if err == nil {
			err = fp.objs.Table6.Put(xlatKey6{Len: uint32(m.IPv6.Bits()), Addr: a6},
				xlatVal6{V4: be32(a4), Len4: uint32(m.IPv4.Bits()), Entry: uint32(e.Index)})
		}
		if errors.Is(err, unix.E2BIG) {
			return ErrNoRoom
		}
		if err != nil {
			return fmt.Errorf("fastpath: adding %v %v: %w", m.IPv4, m.IPv6, err)
		}
		n4, n6 := len(fp.lens4), len(fp.lens6)
		fp.lens4 = sortedDesc(appendNew(fp.lens4, uint8(m.IPv4.Bits())))
		fp.lens6 = sortedDesc(appendNew(fp.lens6, uint8(m.IPv6.Bits())))
		lens = lens || len(fp.lens4) != n4 || len(fp.lens6) != n6
	}
	if lens {
		return fp.writeSettings()
	}
	return nil
}

func sortedDesc(s []uint8) []uint8 {
	slices.Sort(s)
	slices.Reverse(s)
	return s
}

// settingsFor translates the configuration into the program's settings
// (without the prefix lengths: writeSettings), and returns the prefix
// lengths present on each side of the table, longest first.
func settingsFor(cfg translator.Config, table *translator.Table) (s xlatSettings, lens4, lens6 []uint8) {
	p := cfg.PseudoPrefix.Addr().As16()
	s.PseudoHi = binary.BigEndian.Uint64(p[:8])
	s.PseudoLo = binary.BigEndian.Uint64(p[8:])
	s.PseudoLen = uint32(cfg.PseudoPrefix.Bits())
	s.Ipv6Mtu = uint32(cfg.IPv6MTU)
	s.Ipv4Mtu = uint32(cfg.IPv4MTU)
	s.LowestIpv6Mtu = uint32(cfg.LowestIPv6MTU)
	s.Wkp = flag(cfg.PseudoPrefix == translator.WellKnownPrefix)
	s.HairpinOff = flag(cfg.Hairpin == translator.HairpinOff)
	s.ZeroTc = flag(cfg.ZeroTrafficClass)
	s.GenerateId = flag(cfg.GenerateIPv4ID)
	s.AllowLocal = flag(cfg.AllowLocalDestinations)
	for _, m := range table.All() {
		lens4 = appendNew(lens4, uint8(m.IPv4.Bits()))
		lens6 = appendNew(lens6, uint8(m.IPv6.Bits()))
	}
	return s, sortedDesc(lens4), sortedDesc(lens6)
}

// disabledReason says why the program cannot translate with these prefix
// lengths, or "".
func disabledReason(lens4, lens6 []uint8) string {
	switch {
	case len(lens4) > MaxLengths:
		return fmt.Sprintf("the table has %d IPv4 prefix lengths; the fast path probes at most %d", len(lens4), MaxLengths)
	case len(lens6) > MaxLengths:
		return fmt.Sprintf("the table has %d IPv6 prefix lengths; the fast path probes at most %d", len(lens6), MaxLengths)
	}
	return ""
}

func flag(b bool) uint8 {
	if b {
		return 1
	}
	return 0
}

func appendNew(s []uint8, v uint8) []uint8 {
	if slices.Contains(s, v) {
		return s
	}
	return append(s, v)
}

// be32 returns the uint32 whose in-memory bytes are a's, for a __be32 field.
func be32(a [4]byte) uint32 { return binary.NativeEndian.Uint32(a[:]) }

// fillTable writes every mapping into both hashes, in batches.
func (fp *FastPath) fillTable(table *translator.Table) error {
	const batch = 1 << 14
	n := table.Len()
	k4 := make([]xlatKey4, 0, min(n, batch))
	v4 := make([]xlatVal4, 0, min(n, batch))
	k6 := make([]xlatKey6, 0, min(n, batch))
	v6 := make([]xlatVal6, 0, min(n, batch))
	flush := func() error {
		if len(k4) == 0 {
			return nil
		}
		if _, err := fp.objs.Table4.BatchUpdate(k4, v4, nil); err != nil {
			return fmt.Errorf("fastpath: filling the IPv4 table: %w", err)
		}
		if _, err := fp.objs.Table6.BatchUpdate(k6, v6, nil); err != nil {
			return fmt.Errorf("fastpath: filling the IPv6 table: %w", err)
		}
		k4, v4, k6, v6 = k4[:0], v4[:0], k6[:0], v6[:0]
		return nil
	}
	// By id (translator.Table.All): the entry a packet counts into is the
	// tun path's counter of the same mapping.
	for i, m := range table.All() {
		a4, a6 := m.IPv4.Addr().As4(), m.IPv6.Addr().As16()
		k4 = append(k4, xlatKey4{Len: uint32(m.IPv4.Bits()), Addr: be32(a4)})
		v4 = append(v4, xlatVal4{V6: a6, Len6: uint32(m.IPv6.Bits()), Entry: uint32(i)})
		k6 = append(k6, xlatKey6{Len: uint32(m.IPv6.Bits()), Addr: a6})
		v6 = append(v6, xlatVal6{V4: be32(a4), Len4: uint32(m.IPv4.Bits()), Entry: uint32(i)})
		if len(k4) == batch {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	return flush()
}

// fillLocal writes the destinations the translator refuses (local.go): its
// own addresses and the node's.
func (fp *FastPath) fillLocal(cfg translator.Config) error {
	if cfg.AllowLocalDestinations {
		return nil
	}
	fp.own = []netip.Prefix{netip.PrefixFrom(cfg.IPv4Addr, 32), netip.PrefixFrom(cfg.IPv6Addr, 128)}
	for _, a := range cfg.RFC6791Pool {
		fp.own = append(fp.own, netip.PrefixFrom(a, 32))
	}
	var node []netip.Prefix
	if cfg.LocalAddrs != nil {
		node = cfg.LocalAddrs.Prefixes()
	}
	return fp.SetLocalAddrs(node)
}

// SetLocalAddrs replaces the node's addresses the program refuses to
// translate toward (translator.LocalAddrs, which the daemon keeps current):
// call it with the same prefixes whenever they change. The translator's own
// addresses stay. Under AllowLocalDestinations it does nothing. Between
// its removals and additions a packet may see a mix of both sets; the tun
// path's Translate, which sees the new set at once, refuses anything the
// program punts.
func (fp *FastPath) SetLocalAddrs(node []netip.Prefix) error {
	if fp.own == nil {
		return nil // local destinations allowed
	}
	want4, want6 := map[xlatLpm4]bool{}, map[xlatLpm6]bool{}
	for _, p := range append(slices.Clone(fp.own), node...) {
		p = p.Masked()
		if p.Addr().Is4() {
			want4[xlatLpm4{Prefixlen: uint32(p.Bits()), Addr: be32(p.Addr().As4())}] = true
		} else if p.Addr().Is6() {
			want6[xlatLpm6{Prefixlen: uint32(p.Bits()), Addr: p.Addr().As16()}] = true
		}
	}
	if err := syncSet(fp.objs.Local4, want4); err != nil {
		return fmt.Errorf("fastpath: local IPv4 addresses: %w", err)
	}
	if err := syncSet(fp.objs.Local6, want6); err != nil {
		return fmt.Errorf("fastpath: local IPv6 addresses: %w", err)
	}
	return nil
}

// syncSet makes the keys of m exactly want: new ones added first, so that
// an address staying in the set is never missing from it.
func syncSet[K comparable](m *ebpf.Map, want map[K]bool) error {
	for k := range want {
		if err := m.Put(k, uint8(1)); err != nil {
			return err
		}
	}
	var stale []K
	var k K
	var v uint8
	it := m.Iterate()
	for it.Next(&k, &v) {
		if !want[k] {
			stale = append(stale, k)
		}
	}
	if err := it.Err(); err != nil {
		return err
	}
	for _, k := range stale {
		if err := m.Delete(k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return err
		}
	}
	return nil
}

// Attach attaches the program at the egress of the device ifindex, the tun
// device of map646 (tcx: Linux 6.6 and later), in the network namespace of
// the calling thread. Closing the returned link detaches it; packets then
// all go to the tun path again. A FastPath loaded for another configuration
// replaces this one without a gap with the link's Update.
func (fp *FastPath) Attach(ifindex int) (link.Link, error) {
	l, err := link.AttachTCX(link.TCXOptions{Interface: ifindex, Program: fp.objs.Map646Fastpath, Attach: ebpf.AttachTCXEgress})
	if err != nil {
		return nil, fmt.Errorf("fastpath: attaching at the egress of device %d: %w", ifindex, err)
	}
	return l, nil
}

// Counter names, in the order of enum counter in xlat.h.
var counterNames = [...]string{
	xlatCounterC_TRANSLATED_4TO6:        "translated-4to6",
	xlatCounterC_TRANSLATED_6TO4:        "translated-6to4",
	xlatCounterC_INTERNAL_ERROR:         "internal-error",
	xlatCounterC_PUNT_DISABLED:          "punt-disabled",
	xlatCounterC_PUNT_MALFORMED:         "punt-malformed",
	xlatCounterC_PUNT_OPTIONS:           "punt-ipv4-options",
	xlatCounterC_PUNT_GSO:               "punt-gso",
	xlatCounterC_PUNT_FRAGMENT:          "punt-fragment",
	xlatCounterC_PUNT_PROTOCOL:          "punt-protocol",
	xlatCounterC_PUNT_ICMP:              "punt-icmp",
	xlatCounterC_PUNT_MARTIAN:           "punt-martian",
	xlatCounterC_PUNT_NO_MAPPING:        "punt-no-mapping",
	xlatCounterC_PUNT_MAPPED_SOURCE:     "punt-mapped-source",
	xlatCounterC_PUNT_HAIRPIN:           "punt-hairpin",
	xlatCounterC_PUNT_LOCAL:             "punt-local-destination",
	xlatCounterC_PUNT_NON_GLOBAL:        "punt-non-global-wkp",
	xlatCounterC_PUNT_TTL:               "punt-ttl",
	xlatCounterC_PUNT_BAD_TRANSPORT:     "punt-bad-transport",
	xlatCounterC_PUNT_UDP_ZERO_CHECKSUM: "punt-udp-zero-checksum",
	xlatCounterC_PUNT_CHECKSUM_ZERO:     "punt-checksum-zero",
	xlatCounterC_PUNT_TOO_BIG:           "punt-too-big",
	xlatCounterC_PUNT_GENERATE_ID:       "punt-generate-id",
	xlatCounterC_PUNT_HELPER:            "punt-helper-failed",
}

// CounterNames returns the names of Counters, in a fixed order.
func CounterNames() []string { return counterNames[:] }

// Counters returns the program's counters, summed over the CPUs, by name:
// translated-4to6, translated-6to4, internal-error, and punt-REASON.
func (fp *FastPath) Counters() (map[string]uint64, error) {
	out := make(map[string]uint64, len(counterNames))
	var per []uint64
	for i, name := range counterNames {
		if err := fp.objs.Counters.Lookup(uint32(i), &per); err != nil {
			return nil, fmt.Errorf("fastpath: counter %s: %w", name, err)
		}
		var sum uint64
		for _, v := range per {
			sum += v
		}
		out[name] = sum
	}
	return out, nil
}

// EntryCounts is one mapping's traffic through the program, as the tun
// path counts it per mapping: packets (a GSO super-packet as its
// segments) and bytes (as they came in), toward its server (4to6) and from
// it (6to4).
type EntryCounts struct {
	Packets4to6, Bytes4to6 uint64
	Packets6to4, Bytes6to4 uint64
}

// EntryCounts returns the counts of the mappings of entry 0 to n-1 (fewer
// when the program holds fewer: its table and DeltaRoom). A mapping
// ApplyDelta adds with an entry beyond them is not counted.
func (fp *FastPath) EntryCounts(n int) ([]EntryCounts, error) {
	n = min(n, int(fp.objs.Entries.MaxEntries()))
	out := make([]EntryCounts, 0, n)
	const batch = 1 << 12
	keys := make([]uint32, batch)
	vals := make([]xlatEntryCount, batch)
	var cursor ebpf.MapBatchCursor
	for len(out) < n {
		k := min(batch, n-len(out))
		got, err := fp.objs.Entries.BatchLookup(&cursor, keys[:k], vals[:k], nil)
		for _, v := range vals[:got] {
			out = append(out, EntryCounts{v.Packets4to6, v.Bytes4to6, v.Packets6to4, v.Bytes6to4})
		}
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("fastpath: per-mapping counters: %w", err)
		}
	}
	return out[:min(len(out), n)], nil
}

// EntryCount returns the counts of the mapping of entry id alone (zero
// past the program's entries): what a lookup shows, without reading the
// whole array as EntryCounts does.
func (fp *FastPath) EntryCount(id int) (EntryCounts, error) {
	if id < 0 || id >= int(fp.objs.Entries.MaxEntries()) {
		return EntryCounts{}, nil
	}
	var v xlatEntryCount
	if err := fp.objs.Entries.Lookup(uint32(id), &v); err != nil {
		return EntryCounts{}, fmt.Errorf("fastpath: the counters of entry %d: %w", id, err)
	}
	return EntryCounts{v.Packets4to6, v.Bytes4to6, v.Packets6to4, v.Bytes6to4}, nil
}

// MapMemory is what one map takes.
type MapMemory struct {
	Name               string
	MaxEntries         uint32
	KeySize, ValueSize uint32
	Charged            uint64 // bytes, as the kernel accounts them (memlock)
}

// MapMemory returns what each map takes: its size and the memory the
// kernel charges for it (memlock in /proc/self/fdinfo).
func (fp *FastPath) MapMemory() ([]MapMemory, error) {
	var out []MapMemory
	for _, m := range []struct {
		name string
		m    *ebpf.Map
	}{
		{xlatMapTable4, fp.objs.Table4}, {xlatMapTable6, fp.objs.Table6},
		{xlatMapLocal4, fp.objs.Local4}, {xlatMapLocal6, fp.objs.Local6},
		{xlatMapSettingsMap, fp.objs.SettingsMap}, {xlatMapCounters, fp.objs.Counters},
		{xlatMapEntries, fp.objs.Entries},
	} {
		n, err := memlock(m.m.FD())
		if err != nil {
			return nil, fmt.Errorf("fastpath: memory of map %s: %w", m.name, err)
		}
		out = append(out, MapMemory{Name: m.name, MaxEntries: m.m.MaxEntries(),
			KeySize: m.m.KeySize(), ValueSize: m.m.ValueSize(), Charged: n})
	}
	return out, nil
}

func memlock(fd int) (uint64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/self/fdinfo/%d", fd))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "memlock:"); ok {
			return strconv.ParseUint(strings.TrimSpace(v), 10, 64)
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, errors.New("no memlock line in fdinfo")
}
