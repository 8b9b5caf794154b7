package translator

import (
	"fmt"
	"net/netip"
	"sync/atomic"
)

// Policy selects which addresses the translator accepts.
type Policy uint8

const (
	// PolicyDatacenter is the paper's model and RFC 7755 SIIT-DC: from the
	// IPv4 side only destinations in the mapping table are translated (every
	// IPv4 source becomes an address of the pseudo prefix); from the IPv6 side
	// only sources in the mapping table are accepted. ICMPv6 errors from
	// datacenter routers are the exception: their source becomes an RFC 6791
	// address.
	PolicyDatacenter Policy = iota
	// PolicySIIT is general SIIT (RFC 7915 with RFC 7757): any address not in
	// the table is translated through the pseudo prefix, in both directions,
	// for sources and destinations.
	PolicySIIT
)

func (p Policy) String() string {
	if p == PolicySIIT {
		return "siit"
	}
	return "datacenter"
}

// Hairpin selects how a packet from the IPv6 side to a mapped IPv4 address
// is handled (RFC 7757 §4).
type Hairpin uint8

const (
	// HairpinIntrinsic sends it back to the IPv6 side: destination through
	// the table, source through the pseudo prefix (RFC 7757 §4.2.2), ICMP
	// errors included.
	HairpinIntrinsic Hairpin = iota
	// HairpinOff emits the IPv4 packet; the routing system must bring it back.
	HairpinOff
)

func (h Hairpin) String() string {
	if h == HairpinOff {
		return "off"
	}
	return "intrinsic"
}

// Config holds the translator's parameters. The zero value is not valid:
// build one with the fields set and pass it to New.
type Config struct {
	// PseudoPrefix is the RFC 6052 prefix (length 32, 40, 48, 56, 64 or 96)
	// that represents IPv4 addresses on the IPv6 side.
	PseudoPrefix netip.Prefix
	Policy       Policy
	Hairpin      Hairpin

	// IPv4Addr and IPv6Addr are the translator's own addresses: the sources
	// of the ICMP errors it generates (RFC 7915 §4.4, §5.4).
	IPv4Addr netip.Addr
	IPv6Addr netip.Addr
	// RFC6791Pool holds the IPv4 sources given to ICMPv6 errors whose IPv6
	// source cannot be translated (datacenter routers, RFC 6791, RFC 7755).
	// One address is chosen per packet by a hash of the IPv6 source. Empty:
	// IPv4Addr is used.
	RFC6791Pool []netip.Addr

	// LowestIPv6MTU is the size to which IPv4 packets without DF are
	// fragmented (RFC 7915 §4, default 1280). IPv6MTU and IPv4MTU are the
	// next-hop MTUs of each side.
	LowestIPv6MTU int
	IPv6MTU       int
	IPv4MTU       int

	// DropUDPZeroChecksum drops unfragmented IPv4 UDP with checksum zero
	// instead of computing the checksum (RFC 7915 §4.5).
	DropUDPZeroChecksum bool
	// ZeroTrafficClass sets IPv6 Traffic Class and IPv4 TOS to zero instead
	// of copying them (RFC 7915 §4.1, §5.1).
	ZeroTrafficClass bool
	// GenerateIPv4ID gives IPv4 packets of 89 to 1280 bytes a non-zero
	// Identification instead of zero (RFC 7915 §5.1).
	GenerateIPv4ID bool
	// ICMPErrors makes the translator answer packets it cannot translate with
	// ICMP errors (RFC 7915 §4.4, §5.4). Off: such packets are only dropped.
	ICMPErrors bool

	// LocalAddrs holds the node's local addresses (prefixes), kept current
	// by its owner (nil: none known). A packet whose translated destination
	// is in them, or is one of the translator's own addresses above, is dropped for
	// ReasonLocalDestination (local.go), unless AllowLocalDestinations.
	LocalAddrs             *LocalAddrs
	AllowLocalDestinations bool
}

// Minimum MTUs: IPv6 links carry at least 1280 bytes (RFC 8200), IPv4 links
// at least 68 (RFC 791); a translator whose IPv4 side carries less than 1260
// cannot honour RFC 7915's DF rule, so it is refused.
const (
	MinIPv6MTU = 1280
	MinIPv4MTU = 1260
	MaxMTU     = 65535
)

// Translator translates packets between IPv4 and IPv6. It is immutable and
// safe for concurrent use; Config.LocalAddrs, which it reads on every
// packet, is replaced atomically by its owner.
type Translator struct {
	cfg      Config
	table    *Table
	pool     rfc6052
	wkp      bool // the pseudo prefix is the well-known 64:ff9b::/96
	addr4    [4]byte
	addr6    [16]byte
	pool6791 [][4]byte
	own      *addrSet      // addr4, addr6 and the RFC 6791 pool: never translated toward
	ids      atomic.Uint32 // IPv4 Identification, when generated
}

// New checks cfg and returns a Translator for it. table may be nil (no
// explicit mappings).
func New(cfg Config, table *Table) (*Translator, error) {
	pool, err := newRFC6052(cfg.PseudoPrefix)
	if err != nil {
		return nil, err
	}
	if !cfg.IPv4Addr.Is4() {
		return nil, fmt.Errorf("translator: own IPv4 address %v is not an IPv4 address", cfg.IPv4Addr)
	}
	if !cfg.IPv6Addr.Is6() || cfg.IPv6Addr.Is4In6() {
		return nil, fmt.Errorf("translator: own IPv6 address %v is not an IPv6 address", cfg.IPv6Addr)
	}
	if cfg.IPv6MTU < MinIPv6MTU || cfg.IPv6MTU > MaxMTU {
		return nil, fmt.Errorf("translator: IPv6 MTU %d outside %d..%d", cfg.IPv6MTU, MinIPv6MTU, MaxMTU)
	}
	if cfg.IPv4MTU < MinIPv4MTU || cfg.IPv4MTU > MaxMTU {
		return nil, fmt.Errorf("translator: IPv4 MTU %d outside %d..%d", cfg.IPv4MTU, MinIPv4MTU, MaxMTU)
	}
	if cfg.LowestIPv6MTU < MinIPv6MTU || cfg.LowestIPv6MTU > cfg.IPv6MTU {
		return nil, fmt.Errorf("translator: lowest IPv6 MTU %d outside %d..%d (the IPv6 MTU)", cfg.LowestIPv6MTU, MinIPv6MTU, cfg.IPv6MTU)
	}
	if table == nil {
		table, _ = NewTable(nil)
	}
	// A mapped IPv6 prefix inside the pseudo prefix would make an address
	// mean two things; the lookup order in dst6 relies on there being none.
	for i, m := range table.All() {
		if m.IPv6.Overlaps(cfg.PseudoPrefix) {
			return nil, fmt.Errorf("translator: mapping %d: IPv6 prefix %v overlaps the pseudo prefix %v", i, m.IPv6, cfg.PseudoPrefix)
		}
	}
	t := &Translator{
		cfg:   cfg,
		table: table,
		pool:  pool,
		wkp:   cfg.PseudoPrefix == WellKnownPrefix,
		addr4: cfg.IPv4Addr.As4(),
		addr6: cfg.IPv6Addr.As16(),
	}
	for _, a := range cfg.RFC6791Pool {
		if !a.Is4() {
			return nil, fmt.Errorf("translator: RFC 6791 pool address %v is not IPv4", a)
		}
		t.pool6791 = append(t.pool6791, a.As4())
	}
	if len(t.pool6791) == 0 {
		t.pool6791 = [][4]byte{t.addr4}
	}
	t.own = newAddrSet(hostPrefixes(append([]netip.Addr{cfg.IPv4Addr, cfg.IPv6Addr}, cfg.RFC6791Pool...)))
	return t, nil
}

// Apply returns a Translator like t whose table has changes applied
// (Table.Apply), t's table staying as it was. It refuses, as New does, an
// added IPv6 prefix that overlaps the pseudo prefix. It costs what the
// table's Apply costs: nothing here depends on the size of the table.
func (t *Translator) Apply(changes []MappingChange) (*Translator, error) {
	if err := t.checkPseudo(changes); err != nil {
		return nil, err
	}
	table, err := t.table.Apply(changes)
	if err != nil {
		return nil, err
	}
	return t.WithTable(table), nil
}

// checkPseudo refuses the additions among changes whose IPv6 side
// overlaps the pseudo prefix, as New refuses such mappings.
func (t *Translator) checkPseudo(changes []MappingChange) error {
	var probs []MappingError
	for i, c := range changes {
		if c.Op == Add && c.Mapping.IPv6.IsValid() && c.Mapping.IPv6.Overlaps(t.cfg.PseudoPrefix) {
			probs = append(probs, MappingError{Index: i, Other: -1, Msg: fmt.Sprintf(
				"%s overlaps the pseudo prefix %s (translator.pseudo_prefix); accepted: IPv6 addresses outside it", c.Mapping.IPv6, t.cfg.PseudoPrefix)})
		}
	}
	if len(probs) > 0 {
		return &TableError{Problems: probs}
	}
	return nil
}

// PlanRebuild checks changes as Apply does and plans the table's Rebuild
// (Table.PlanRebuild); the caller gives each table on the way and the
// result to WithTable.
func (t *Translator) PlanRebuild(changes []MappingChange) (*RebuildPlan, error) {
	if err := t.checkPseudo(changes); err != nil {
		return nil, err
	}
	return t.table.PlanRebuild(changes)
}

// WithTable returns a Translator like t with table in place of its own,
// which must have been made from it by Apply or Compact: the checks New
// makes of the mappings (the pseudo prefix) are not made again.
func (t *Translator) WithTable(table *Table) *Translator {
	n := &Translator{cfg: t.cfg, table: table, pool: t.pool, wkp: t.wkp, addr4: t.addr4, addr6: t.addr6,
		pool6791: t.pool6791, own: t.own}
	n.ids.Store(t.ids.Load())
	return n
}

// trafficClass returns the IPv6 Traffic Class for an IPv4 TOS, or the
// reverse: copied, or zero by configuration (RFC 7915 §4.1, §5.1).
func (t *Translator) trafficClass(v uint8) uint8 {
	if t.cfg.ZeroTrafficClass {
		return 0
	}
	return v
}

// Config returns the configuration the Translator was built with.
func (t *Translator) Config() Config { return t.cfg }

// Table returns the mapping table.
func (t *Translator) Table() *Table { return t.table }

// WellKnownPrefix is 64:ff9b::/96 (RFC 6052 §2.1).
var WellKnownPrefix = netip.MustParsePrefix("64:ff9b::/96")

// Translate translates one IP packet into o, which it resets first: IPv4
// goes to IPv6 and IPv6 to IPv4, chosen by the version nibble. pkt is not
// modified. Translate does not allocate.
func (t *Translator) Translate(pkt []byte, o *Out) Result {
	o.reset()
	if len(pkt) == 0 {
		return drop(ReasonTruncated)
	}
	switch pkt[0] >> 4 {
	case 4:
		return t.translate4(pkt, o, false)
	case 6:
		return t.translate6(pkt, o)
	}
	return drop(ReasonBadVersion)
}
