package config

import (
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/map646/map646/health"
)

// Limits of [[health.check]].
const (
	minCheckInterval = 100 * time.Millisecond
	maxCheckInterval = time.Hour
	minCheckTimeout  = 10 * time.Millisecond
	maxRiseFall      = 100
)

// checkName is what a check's name may hold: it appears in logs, in
// `map646 status` and as a metrics label.
var checkName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

var kinds = map[string]health.Kind{
	"dataplane": health.DataPlane,
	"icmp6":     health.ICMPv6,
	"tcp":       health.TCP,
	"http":      health.HTTP,
	"bgp":       health.BGP,
}

// DefaultCheck is the check of a configuration without [health]: the data
// plane itself, gating every announcement. A node must not attract traffic
// it cannot translate, so it is never left without one.
func DefaultCheck() health.Check {
	return health.Check{
		Name:      "dataplane",
		Kind:      health.DataPlane,
		Interval:  DefaultCheckInterval,
		Timeout:   DefaultCheckTimeout,
		Rise:      DefaultRise,
		Fall:      DefaultFall,
		Withdraws: health.Both,
	}
}

// decodeHealth reads [health] and its [[health.check]] entries; neighbors
// are the addresses of the [[bgp.neighbor]] entries, which bgp checks name.
func (c *Config) decodeHealth(root *section, neighbors map[netip.Addr]bool) {
	if !root.has("health") {
		c.Health.Checks = []health.Check{DefaultCheck()}
		return
	}
	s := root.table("health")
	if s.broken {
		return
	}
	r, present := s.raw("check")
	entries := s.tables("check")
	if a, isArray := r.([]any); !present || (isArray && len(a) == 0) {
		s.d.add(Problem{File: s.d.file, Line: s.header, Key: "health.check",
			Msg: "missing; [health] needs at least one [[health.check]] (leave [health] out for the default: one dataplane check)"})
	}
	seen := map[string]*section{}
	for _, cs := range entries {
		ch, ok := c.decodeCheck(cs, neighbors)
		if ch.Name != "" {
			if first := seen[ch.Name]; first != nil {
				cs.bad("name", ch.Name, "already the name of %s%s; names must be unique", first.name, lineRef(first.header))
				ok = false
			} else {
				seen[ch.Name] = cs
			}
		}
		if ok {
			c.Health.Checks = append(c.Health.Checks, ch)
		}
	}
	s.done()
}

// decodeCheck reads one [[health.check]] entry; ok is false if it has a
// problem.
func (c *Config) decodeCheck(s *section, neighbors map[netip.Addr]bool) (ch health.Check, ok bool) {
	before := s.d.len()

	s.require("name", `name = "web"`)
	if v, ok := s.str("name"); ok {
		if !checkName.MatchString(v) {
			s.bad("name", v, `must be 1 to 64 letters, digits, "-", "_" or ".", starting with a letter or digit`)
		} else {
			ch.Name = v
		}
	}
	s.require("type", `type = "dataplane"`)
	if v, ok := s.str("type"); ok {
		if ch.Kind = kinds[v]; ch.Kind == 0 {
			s.bad("type", v, `must be one of "dataplane", "icmp6", "tcp", "http", "bgp"`)
		}
	}
	c.checkTarget(s, &ch, neighbors)

	ch.Interval = DefaultCheckInterval
	intervalOK := s.duration("interval", &ch.Interval, minCheckInterval, maxCheckInterval, "") || !s.has("interval")
	// The default timeout leaves room for the next probe at short intervals.
	ch.Timeout = min(DefaultCheckTimeout, ch.Interval/2)
	if s.duration("timeout", &ch.Timeout, minCheckTimeout, maxCheckInterval, "") && intervalOK && ch.Timeout >= ch.Interval {
		s.bad("timeout", raw(s, "timeout"), "must be shorter than interval (%s): one probe ends before the next starts", fmtDuration(ch.Interval))
	}
	ch.Rise, ch.Fall = DefaultRise, DefaultFall
	s.integer("rise", &ch.Rise, 1, maxRiseFall, "passes that make a down check up")
	s.integer("fall", &ch.Fall, 1, maxRiseFall, "failures that make an up check down")
	switch s.enum("withdraw", "all", "ipv4", "ipv6") {
	case "ipv4":
		ch.Withdraws = health.IPv4Side
	case "ipv6":
		ch.Withdraws = health.IPv6Side
	}
	s.done()
	return ch, s.d.len() == before
}

// checkTarget reads the target of a check, target or neighbors by kind.
// Targets are IPv6: the backends live in an IPv6-only datacenter, and an
// IPv4 target would test a path the translated traffic never takes.
func (c *Config) checkTarget(s *section, ch *health.Check, neighbors map[netip.Addr]bool) {
	// Both keys are accepted whatever the type (one with the wrong type
	// gets its own message), in this order in the list of accepted keys.
	s.has("target")
	s.has("neighbors")
	kind := ch.Kind
	if kind == 0 {
		return // unknown type: the target cannot be judged
	}
	if kind != health.BGP {
		if r, ok := s.raw("neighbors"); ok {
			s.bad("neighbors", r, "only a bgp check has neighbors; this %s check has %s", kind, targetOf(kind))
		}
	}
	switch kind {
	case health.DataPlane:
		if r, ok := s.raw("target"); ok {
			s.bad("target", r, "a dataplane check has no target: it probes the node's own translation path; leave it out")
		}
	case health.ICMPv6:
		s.require("target", `target = "2001:db8:1::10"`)
		if v, ok := s.str("target"); ok {
			if a, msg := backendAddr(v); msg != "" {
				s.bad("target", v, "%s", msg)
			} else {
				ch.Addr = a
			}
		}
	case health.TCP:
		s.require("target", `target = "[2001:db8:1::10]:80"`)
		if v, ok := s.str("target"); ok {
			ap, err := netip.ParseAddrPort(v)
			msg := ""
			switch {
			case err != nil:
				if _, err := netip.ParseAddr(v); err == nil {
					msg = `has no port; accepted: "[IPV6]:PORT", e.g. "[2001:db8:1::10]:80"`
				} else {
					msg = `not "[IPV6]:PORT"; accepted: e.g. "[2001:db8:1::10]:80"`
				}
			case ap.Port() == 0:
				msg = "port 0 cannot be connected to; accepted: a port from 1 to 65535"
			default:
				_, msg = backendAddr(ap.Addr().String())
			}
			if msg != "" {
				s.bad("target", v, "%s", msg)
			} else {
				ch.AddrPort = ap
			}
		}
	case health.HTTP:
		s.require("target", `target = "http://[2001:db8:1::10]/health"`)
		if v, ok := s.str("target"); ok {
			if msg := checkURL(v); msg != "" {
				s.bad("target", v, "%s", msg)
			} else {
				ch.URL = v
			}
		}
	case health.BGP:
		if r, ok := s.raw("target"); ok {
			s.bad("target", r, `a bgp check has neighbors, not a target; e.g. neighbors = ["2001:db8:ffff::1"]`)
		}
		s.require("neighbors", `neighbors = ["2001:db8:ffff::1"]`)
		list, ok := s.stringList("neighbors")
		if !ok {
			return
		}
		if len(list) == 0 {
			s.bad("neighbors", anyList(list), "must name at least one [[bgp.neighbor]] address")
			return
		}
		if !c.BGP.Enabled {
			s.bad("neighbors", anyList(list), "this node has no [bgp] section: there are no sessions to check")
			return
		}
		for _, v := range list {
			a, err := netip.ParseAddr(v)
			switch {
			case err != nil:
				s.bad("neighbors", v, "not an IP address; accepted: the address of a [[bgp.neighbor]]")
			case !neighbors[a]:
				s.bad("neighbors", v, "is not the address of a [[bgp.neighbor]]")
			case slices.Contains(ch.Neighbors, a):
				s.bad("neighbors", v, "is listed twice")
			default:
				ch.Neighbors = append(ch.Neighbors, a)
			}
		}
	}
}

func targetOf(k health.Kind) string {
	if k == health.DataPlane {
		return "no target"
	}
	return "a target"
}

// backendAddr parses the IPv6 address of a backend.
func backendAddr(v string) (netip.Addr, string) {
	a, err := netip.ParseAddr(v)
	switch {
	case err != nil || a.Zone() != "":
		return a, `not an IPv6 address; accepted: e.g. "2001:db8:1::10"`
	case a.Is4():
		return a, "is IPv4; the backends are checked over IPv6, the side the translated traffic takes (the datacenter is IPv6-only); accepted: an IPv6 address"
	}
	return a, checkSpecial(netip.PrefixFrom(a, 128))
}

// checkURL checks the URL of an http check: http or https, with a name or
// an IPv6 literal as the host.
func checkURL(v string) string {
	const accepted = `accepted: e.g. "http://[2001:db8:1::10]/health" or "https://www.example.com/health"`
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Opaque != "" {
		return "not an http or https URL; " + accepted
	}
	if p := u.Port(); p != "" && !validPort(p) || p == "0" {
		return "has an invalid port; " + accepted
	}
	host := u.Hostname()
	if a, err := netip.ParseAddr(host); err == nil {
		if _, msg := backendAddr(a.String()); msg != "" {
			return strings.Replace(msg, "accepted: an IPv6 address", "accepted: a URL with an IPv6 literal or a name", 1)
		}
		return ""
	}
	if strings.Trim(host, "0123456789.") == "" {
		return "the host is not a valid address or name; " + accepted
	}
	return ""
}
