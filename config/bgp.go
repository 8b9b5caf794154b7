package config

import (
	"fmt"
	"math"
	"net/netip"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/map646/map646/routing"
)

// Limits of [bgp] and [[bgp.neighbor]].
const (
	maxASN         = 1<<32 - 1
	asTrans        = 23456 // RFC 6793: stands for a 4-byte ASN on 2-byte sessions, never a real one
	maxPasswordLen = 80    // TCP_MD5SIG_MAXKEYLEN
	maxHoldTime    = 65535 * time.Second
	minHoldTime    = 3 * time.Second // RFC 4271 §4.2: 0 or at least three seconds
	minBFDInterval = 50 * time.Millisecond
	maxBFDInterval = 10 * time.Second
	maxSocketPath  = 107 // sun_path holds 108 bytes with the terminating NUL
	// grpcBindExtra is what routing adds to the gRPC socket's directory to
	// bind it privately: "/.gobgp" and up to 10 random digits, then "/s".
	grpcBindExtra   = len("/.gobgp4294967295/s")
	communityFormat = `"ASN:VALUE" with each part from 0 to 65535, e.g. "65000:100"`
)

// Well-known communities (RFC 1997, RFC 7999, RFC 8326) that an operator
// may attach: they limit how far routers pass the announcements on.
var allowedWellKnown = map[uint32]string{
	0xFFFFFF01: "NO_EXPORT",
	0xFFFFFF02: "NO_ADVERTISE",
	0xFFFFFF03: "NO_EXPORT_SUBCONFED",
}

// decodeBGP reads [bgp] and its [[bgp.neighbor]] entries. It follows
// [translator] and the mappings: partners' next hops default to the
// translator's addresses and aggregates are checked against the table.
// Without the section the node runs no speaker and BGP stays zero. It
// returns the neighbors' addresses, for the bgp health checks, including
// those of neighbors with problems (which are reported once, here).
func (c *Config) decodeBGP(root *section) map[netip.Addr]bool {
	addrs := map[netip.Addr]bool{}
	if !root.has("bgp") {
		return addrs
	}
	s := root.table("bgp")
	if s.broken {
		return addrs
	}
	b := &c.BGP
	b.Enabled = true
	b.ListenPort = DefaultBGPPort
	b.DrainMED = DefaultDrainMED

	s.require("local_as", "local_as = 64512")
	if n, ok := asNumber(s, "local_as"); ok {
		b.LocalAS = n
	}
	// The router id is not taken from translator.ipv4_address: nodes that
	// serve the same table may share that address, and two speakers with
	// one BGP identifier cannot peer with each other (RFC 6286 §2.2).
	s.require("router_id", `router_id = "192.0.2.2"`)
	if v, ok := s.str("router_id"); ok {
		a, err := netip.ParseAddr(v)
		switch {
		case err != nil || !a.Is4():
			s.bad("router_id", v, "not an IPv4 address; accepted: an IPv4 address unique to this node, e.g. \"192.0.2.2\" (the BGP identifier, RFC 6286)")
		case a.IsUnspecified():
			s.bad("router_id", v, "must not be 0.0.0.0 (RFC 6286 §2.1); accepted: an IPv4 address unique to this node, e.g. \"192.0.2.2\"")
		default:
			b.RouterID = a
		}
	}

	// listen_port first: the addresses are judged with it.
	var port int
	if s.integer("listen_port", &port, -1, 65535, "-1: no listener") {
		if port == 0 {
			s.bad("listen_port", int64(port), "0 is not a port; accepted: 1 to 65535, or -1 for no listener")
		} else {
			b.ListenPort = port
		}
	}
	b.ListenAddresses = []netip.Addr{netip.IPv4Unspecified(), netip.IPv6Unspecified()}
	if list, ok := s.stringList("listen_addresses"); ok {
		if port == -1 {
			s.bad("listen_addresses", anyList(list), "has no effect with listen_port = -1 (no listener); leave it out")
		} else if as, ok := listenAddresses(s, list); ok {
			b.ListenAddresses = as
		}
	}
	if b.ListenPort == -1 {
		b.ListenAddresses = nil
	}
	if v, ok := s.str("grpc_socket"); ok && v != "" {
		if !filepath.IsAbs(v) {
			s.bad("grpc_socket", v, `not an absolute path; accepted: the path of a unix socket, e.g. "/run/map646-gobgp.sock", never a network address: the gRPC API has no authentication`)
		} else if strings.Contains(v, ",") {
			// GoBGP splits its gRPC listen addresses on commas.
			s.bad("grpc_socket", v, `contains ","; accepted: a path without commas (GoBGP reads a comma as a list of addresses)`)
		} else if msg := checkSocketPath(v); msg != "" {
			s.bad("grpc_socket", v, "%s", msg)
		} else if dir := filepath.Dir(v); len(dir)+grpcBindExtra > maxSocketPath {
			s.bad("grpc_socket", v, "its directory is %d bytes long; the socket is first bound in a private directory inside it (%s/.gobgpNNNNNNNNNN/s, so that it is 0600 before anyone can reach it), which leaves at most %d bytes for the directory",
				len(dir), dir, maxSocketPath-grpcBindExtra)
		} else {
			b.GRPCSocket = v
		}
	}

	var med int
	medOK := s.integer("med", &med, 0, maxASN, "") || !s.has("med")
	if medOK {
		b.MED = uint32(med)
	}
	var drain int
	if s.integer("drain_med", &drain, 0, maxASN, "") {
		if medOK && uint32(drain) <= b.MED {
			s.bad("drain_med", int64(drain), "must be greater than med (%d): a draining node must look worse than a serving one", b.MED)
		} else {
			b.DrainMED = uint32(drain)
		}
	} else if !s.has("drain_med") && medOK && b.MED >= DefaultDrainMED {
		s.bad("med", int64(med), "must be less than drain_med (%d, the default): a draining node must look worse than a serving one; set drain_med higher", DefaultDrainMED)
	}
	if list, ok := s.stringList("communities"); ok {
		b.Communities = communities(s, list)
	}
	if list, ok := s.stringList("aggregates"); ok {
		b.Aggregates = c.aggregates(s, list)
	}

	r, present := s.raw("neighbor")
	neighbors := s.tables("neighbor")
	if a, isArray := r.([]any); !present || (isArray && len(a) == 0) {
		s.d.add(Problem{File: s.d.file, Line: s.header, Key: "bgp.neighbor",
			Msg: "missing; [bgp] needs at least one [[bgp.neighbor]] to announce to (leave [bgp] out to run without BGP)"})
	}
	seen := map[netip.Addr]*section{}
	for _, ns := range neighbors {
		n, ok := c.decodeNeighbor(ns)
		// A neighbor with other problems still claims its address.
		if n.Address.IsValid() {
			addrs[n.Address] = true
			if first := seen[n.Address]; first != nil {
				ns.bad("address", raw(ns, "address"), "already the address of %s%s; each neighbor may be listed once", first.name, lineRef(first.header))
				ok = false
			} else {
				seen[n.Address] = ns
			}
		}
		if ok {
			b.Neighbors = append(b.Neighbors, n)
		}
	}
	s.done()
	return addrs
}

// decodeNeighbor reads one [[bgp.neighbor]] entry; ok is false if it has a
// problem.
func (c *Config) decodeNeighbor(s *section) (n routing.Neighbor, ok bool) {
	before := s.d.len()
	b := &c.BGP

	s.require("address", `address = "192.0.2.254"`)
	if v, ok := s.str("address"); ok {
		a, err := netip.ParseAddr(v)
		switch {
		case err != nil || a.Zone() != "":
			s.bad("address", v, "not an IP address; accepted: the neighbor's IPv4 or IPv6 address, e.g. \"192.0.2.254\" or \"2001:db8:ffff::1\"")
		case a.IsLinkLocalUnicast():
			s.bad("address", v, "link-local neighbors are not supported; accepted: a global or unique-local address of the neighbor")
		default:
			if msg := checkSpecial(netip.PrefixFrom(a, a.BitLen())); msg != "" && !a.IsLoopback() {
				s.bad("address", v, "%s", msg)
			} else {
				n.Address = a
			}
		}
	}
	s.require("peer_as", "peer_as = 64496")
	if as, ok := asNumber(s, "peer_as"); ok {
		n.PeerAS = as
	}
	// port stays 0 when absent: routing reads that as 179.
	var port int
	if s.integer("port", &port, 1, 65535, "the neighbor's BGP port") {
		n.Port = uint16(port)
	}
	if v, ok := s.str("description"); ok {
		n.Description = v
	}
	if s.enum("role", "router", "partner") == "partner" {
		n.Role = routing.Partner
	}

	// families: by default the session's own family; a partner carries both.
	switch {
	case n.Role == routing.Partner:
		n.Families = []routing.Family{routing.IPv4Unicast, routing.IPv6Unicast}
	case n.Address.Is6():
		n.Families = []routing.Family{routing.IPv6Unicast}
	default:
		n.Families = []routing.Family{routing.IPv4Unicast}
	}
	if list, ok := s.stringList("families"); ok {
		if fs, ok := families(s, list); ok {
			if n.Role == routing.Partner && len(fs) < 2 {
				s.bad("families", anyList(list), `a partner must carry both "ipv4-unicast" and "ipv6-unicast": it reports every prefix it announces, and the node checks them all before a drain; leave the key out`)
			} else {
				n.Families = fs
			}
		}
	}

	if r, ok := s.raw("password"); ok {
		// The value is never echoed: it is a secret.
		v, isString := r.(string)
		switch {
		case !isString:
			s.bad("password", nil, "must be a string, not %s", typeName(r))
		case v == "" || len(v) > maxPasswordLen:
			s.bad("password", nil, "must be 1 to %d bytes long, not %d (TCP-MD5 key, RFC 2385); to use none, leave the key out", maxPasswordLen, len(v))
		default:
			n.Password = v
		}
	}

	// No "0s" (no hold timer, RFC 4271 §4.2): GoBGP reads a zero hold time
	// as its default of 90 s, so the session would differ from the file.
	n.HoldTime = DefaultHoldTime
	bgpTimer(s, "hold_time", &n.HoldTime, minHoldTime, maxHoldTime)
	// The default keepalive is a third of the hold time, whole seconds.
	n.KeepaliveTime = (n.HoldTime / 3).Truncate(time.Second)
	if bgpTimer(s, "keepalive_time", &n.KeepaliveTime, time.Second, maxHoldTime) && n.KeepaliveTime >= n.HoldTime {
		s.bad("keepalive_time", raw(s, "keepalive_time"), "must be less than hold_time (%ds), a third of it by custom (RFC 4271 §10)", n.HoldTime/time.Second)
	}
	n.ConnectRetry = DefaultConnectRetry
	bgpTimer(s, "connect_retry", &n.ConnectRetry, time.Second, maxHoldTime)

	s.boolean("passive", &n.Passive)
	if n.Passive && b.ListenPort == -1 {
		s.bad("passive", true, "a passive neighbor must connect to this node, but bgp.listen_port = -1 (no listener); set a listen_port or passive = false")
	}
	var ttl int
	if s.integer("multihop_ttl", &ttl, 0, 255, "0: directly connected") {
		n.MultihopTTL = uint8(ttl)
	}
	// GTSM by default where it can work: a directly connected neighbor
	// sends with TTL 255, a multihop one cannot.
	n.TTLSecurity = n.MultihopTTL == 0
	s.boolean("ttl_security", &n.TTLSecurity)
	if n.TTLSecurity && n.MultihopTTL > 0 {
		s.bad("ttl_security", true, "GTSM (RFC 5082) accepts only packets sent from one hop away (TTL 255), and this neighbor is set multihop (multihop_ttl = %d); set ttl_security = false or multihop_ttl = 0", n.MultihopTTL)
	}
	n.MaxPrefixes = c.defaultMaxPrefixes()
	var maxPrefixes int
	if s.integer("max_prefixes", &maxPrefixes, 0, maxASN, "0: no limit") {
		n.MaxPrefixes = uint32(maxPrefixes)
	}

	s.boolean("bfd", &n.BFD.Enabled)
	n.BFD.Interval = DefaultBFDInterval
	n.BFD.Multiplier = DefaultBFDMultiplier
	s.duration("bfd_interval", &n.BFD.Interval, minBFDInterval, maxBFDInterval, "")
	s.integer("bfd_multiplier", &n.BFD.Multiplier, 1, 255, "")
	// Any multihop_ttl, even 1, makes GoBGP treat the session as multihop,
	// and its BFD is single-hop only.
	if n.BFD.Enabled && n.MultihopTTL > 0 {
		s.bad("bfd", true, "the speaker's BFD is single-hop (RFC 5881) and this neighbor is set multihop (multihop_ttl = %d); set bfd = false or multihop_ttl = 0", n.MultihopTTL)
	}
	if !n.BFD.Enabled {
		for _, k := range []string{"bfd_interval", "bfd_multiplier"} {
			if r, ok := s.raw(k); ok {
				s.bad(k, r, "has no effect without bfd = true; set bfd = true or leave the key out")
			}
		}
	}

	c.nextHops(s, &n)
	s.done()
	return n, s.d.len() == before
}

// DefaultMaxPrefixes is the part of a neighbor's default prefix limit
// that does not depend on the mappings (defaultMaxPrefixes).
const DefaultMaxPrefixes = 1000

// defaultMaxPrefixes is a neighbor's default max_prefixes: the number of
// mappings (what a partner serving the same table sends back, at most)
// plus DefaultMaxPrefixes, room for a router's default and connected
// routes. The node imports nothing, so more can only cost memory: GoBGP
// keeps every received route in the neighbor's Adj-RIB-In, and a router
// leaking a full table (about a million IPv4 routes) would hold a large
// part of the node's memory.
func (c *Config) defaultMaxPrefixes() uint32 {
	if c.table == nil {
		return DefaultMaxPrefixes // the mappings have problems of their own
	}
	return uint32(c.table.Len()) + DefaultMaxPrefixes
}

// nextHops reads next_hop_ipv4 and next_hop_ipv6 of a neighbor and checks
// that every family it carries has a next hop: the session's own address
// serves its own family only. A partner never installs our routes, so its
// missing next hop defaults to the translator's address of that family.
func (c *Config) nextHops(s *section, n *routing.Neighbor) {
	pseudo := c.Translator.PseudoPrefix
	if v, ok := s.str("next_hop_ipv4"); ok {
		if a, msg := parseAddr(v, "IPv4", "192.0.2.2"); msg != "" {
			s.bad("next_hop_ipv4", v, "%s", msg)
		} else if !slices.Contains(n.Families, routing.IPv4Unicast) {
			s.bad("next_hop_ipv4", v, `has no effect: the neighbor does not carry "ipv4-unicast"; leave it out or add the family`)
		} else {
			n.NextHopIPv4 = a
		}
	}
	if v, ok := s.str("next_hop_ipv6"); ok {
		a, msg := parseAddr(v, "IPv6", "2001:db8:64::2")
		if msg == "" && pseudo.IsValid() && pseudo.Contains(a) {
			msg = "lies in the pseudo prefix " + pseudo.String() + ", which this node announces; accepted: a global unicast address of this node outside it"
		}
		switch {
		case msg != "":
			s.bad("next_hop_ipv6", v, "%s", msg)
		case !slices.Contains(n.Families, routing.IPv6Unicast):
			s.bad("next_hop_ipv6", v, `has no effect: the neighbor does not carry "ipv6-unicast"; leave it out or add the family`)
		default:
			n.NextHopIPv6 = a
		}
	}
	if !n.Address.IsValid() {
		return // reported already
	}
	if n.Address.Is4() && slices.Contains(n.Families, routing.IPv6Unicast) && !n.NextHopIPv6.IsValid() && !s.has("next_hop_ipv6") {
		if n.Role == routing.Partner {
			n.NextHopIPv6 = c.Translator.IPv6Addr
		} else {
			s.bad("next_hop_ipv6", nil, `missing; "ipv6-unicast" over an IPv4 session needs next_hop_ipv6, a global IPv6 address of this node (without one, the session's IPv4 address is sent as the next hop and routers drop the route), e.g. next_hop_ipv6 = "2001:db8:64::2"`)
		}
	}
	if n.Address.Is6() && slices.Contains(n.Families, routing.IPv4Unicast) && !n.NextHopIPv4.IsValid() && !s.has("next_hop_ipv4") {
		if n.Role == routing.Partner {
			n.NextHopIPv4 = c.Translator.IPv4Addr
		} else {
			s.bad("next_hop_ipv4", nil, `missing; "ipv4-unicast" over an IPv6 session needs next_hop_ipv4, an IPv4 address of this node, e.g. next_hop_ipv4 = "192.0.2.2"`)
		}
	}
}

// bgpTimer stores the value of key, a duration of whole seconds from lo to
// hi, in *dst: BGP's timers count in seconds, so "1500ms" would be cut
// short silently.
func bgpTimer(s *section, key string, dst *time.Duration, lo, hi time.Duration) bool {
	var d time.Duration
	if !s.duration(key, &d, math.MinInt64, math.MaxInt64, "") {
		return false
	}
	if d%time.Second != 0 || d < lo || d > hi {
		s.bad(key, raw(s, key), "must be whole seconds from %ds to %ds (BGP counts in seconds)", lo/time.Second, hi/time.Second)
		return false
	}
	*dst = d
	return true
}

// asNumber reads an AS number.
func asNumber(s *section, key string) (uint32, bool) {
	var n int
	if !s.integer(key, &n, 1, maxASN, "") {
		return 0, false
	}
	if n == asTrans {
		s.bad(key, int64(n), "23456 is AS_TRANS (RFC 6793), a placeholder, not an AS; accepted: 1 to 4294967295 except 23456")
		return 0, false
	}
	return uint32(n), true
}

// listenAddresses parses the speaker's listen addresses.
func listenAddresses(s *section, list []string) ([]netip.Addr, bool) {
	if len(list) == 0 {
		s.bad("listen_addresses", anyList(list), "must list at least one address; for no listener set listen_port = -1")
		return nil, false
	}
	var as []netip.Addr
	for _, v := range list {
		a, err := netip.ParseAddr(v)
		switch {
		case err != nil || a.Zone() != "":
			s.bad("listen_addresses", v, `not an IP address; accepted: addresses of this node, or "0.0.0.0" and "::" for all`)
			return nil, false
		case slices.Contains(as, a):
			s.bad("listen_addresses", v, "is listed twice")
			return nil, false
		}
		as = append(as, a)
	}
	return as, true
}

// ListensEverywhere reports whether the speaker accepts sessions on every
// address of the node (0.0.0.0 or ::), which `map646 check` and the
// daemon warn about: anyone who can reach the port can open a TCP
// connection, and only then is it refused.
func ListensEverywhere(c routing.Config) bool {
	if c.ListenPort == -1 {
		return false
	}
	return slices.ContainsFunc(c.ListenAddresses, netip.Addr.IsUnspecified)
}

// checkSocketPath checks the path of a unix socket.
func checkSocketPath(v string) string {
	switch {
	case !filepath.IsAbs(v):
		return "not an absolute path; accepted: the path of a unix socket, e.g. \"/run/map646.sock\""
	case filepath.Clean(v) != v:
		return "not a clean path; did you mean " + strconv.Quote(filepath.Clean(v)) + "?"
	case len(v) > maxSocketPath:
		return fmt.Sprintf("is %d bytes long; a unix socket path holds at most %d", len(v), maxSocketPath)
	}
	return ""
}

// families parses a neighbor's address families.
func families(s *section, list []string) ([]routing.Family, bool) {
	if len(list) == 0 {
		s.bad("families", anyList(list), `must list at least one of "ipv4-unicast", "ipv6-unicast"`)
		return nil, false
	}
	var fs []routing.Family
	for _, v := range list {
		var f routing.Family
		switch v {
		case "ipv4-unicast":
			f = routing.IPv4Unicast
		case "ipv6-unicast":
			f = routing.IPv6Unicast
		default:
			s.bad("families", v, `unknown family; accepted: "ipv4-unicast", "ipv6-unicast"`)
			return nil, false
		}
		if slices.Contains(fs, f) {
			s.bad("families", v, "is listed twice")
			return nil, false
		}
		fs = append(fs, f)
	}
	// IPv4 first, whatever the order written: the speaker needs no order.
	slices.Sort(fs)
	return fs, true
}

// communities parses standard communities (RFC 1997).
func communities(s *section, list []string) []uint32 {
	var cs []uint32
	for _, v := range list {
		c, msg := parseCommunity(v)
		if msg == "" && slices.Contains(cs, c) {
			msg = "is listed twice"
		}
		if msg != "" {
			s.bad("communities", v, "%s", msg)
			continue
		}
		cs = append(cs, c)
	}
	return cs
}

func parseCommunity(v string) (uint32, string) {
	hi, lo, ok := strings.Cut(v, ":")
	a, err1 := strconv.ParseUint(hi, 10, 16)
	b, err2 := strconv.ParseUint(lo, 10, 16)
	if !ok || err1 != nil || err2 != nil {
		return 0, "not a community; accepted: " + communityFormat
	}
	c := uint32(a)<<16 | uint32(b)
	switch {
	case c == routing.GracefulShutdown:
		return 0, "GRACEFUL_SHUTDOWN (RFC 8326) is added by map646 itself while the node drains; attached always, it would drain the node for good"
	case c == 0xFFFF029A:
		return 0, "BLACKHOLE (RFC 7999) would make routers drop the traffic to the mapped prefixes"
	case a == 0xFFFF && allowedWellKnown[c] == "":
		return 0, "lies in the well-known range 65535:x (RFC 1997); accepted there: 65535:65281 (NO_EXPORT), 65535:65282 (NO_ADVERTISE), 65535:65283 (NO_EXPORT_SUBCONFED)"
	case a == 0:
		return 0, "lies in the reserved range 0:x (RFC 1997); accepted: " + communityFormat
	}
	return c, ""
}

// aggregates parses the aggregates and checks them against the mappings:
// each must cover at least one mapped IPv4 prefix (else it attracts traffic
// the node cannot translate), and none may lie inside a mapped prefix (the
// rest of that mapping would be announced by no route).
func (c *Config) aggregates(s *section, list []string) []netip.Prefix {
	var aggs []netip.Prefix
	for _, v := range list {
		p, msg := parsePrefix(v, "IPv4", "198.51.100.0/24")
		if msg == "" {
			for _, q := range aggs {
				if q.Overlaps(p) {
					msg = "overlaps the aggregate " + q.String() + "; aggregates must not overlap"
					break
				}
			}
		}
		if msg != "" {
			s.bad("aggregates", v, "%s", msg)
			continue
		}
		aggs = append(aggs, p)
	}
	if c.table == nil || len(aggs) == 0 {
		return aggs // the mappings have problems of their own
	}
	covers := make([]int, len(aggs))
	partly := make([]int, len(aggs)) // 1 + index of the first mapping partly covered
	for i := range c.table.Len() {
		m := c.table.Mapping(i).IPv4
		for j, a := range aggs {
			switch {
			case !a.Overlaps(m):
			case a.Bits() <= m.Bits():
				covers[j]++
			case partly[j] == 0:
				partly[j] = i + 1
			}
		}
	}
	var ok []netip.Prefix
	for j, a := range aggs {
		switch {
		case partly[j] != 0:
			i := partly[j] - 1
			s.bad("aggregates", a.String(), "covers only part of the mapped prefix %s (%s); an aggregate must cover whole mappings",
				c.table.Mapping(i).IPv4, c.MappingSource(i))
		case covers[j] == 0:
			s.bad("aggregates", a.String(), "covers no mapped IPv4 prefix; it would attract traffic the node cannot translate")
		default:
			ok = append(ok, a)
		}
	}
	return ok
}

// raw returns the value of key as decoded, for messages.
func raw(s *section, key string) any {
	v, _ := s.raw(key)
	return v
}

// lineRef returns " (line N)", or "" if the line is unknown.
func lineRef(line int) string {
	if line == 0 {
		return ""
	}
	return fmt.Sprintf(" (line %d)", line)
}

// anyList turns a list of strings back into the decoded form, for messages.
func anyList(list []string) []any {
	a := make([]any, len(list))
	for i, v := range list {
		a[i] = v
	}
	return a
}
