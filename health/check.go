package health

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"time"
)

// Kind is what a check probes.
type Kind uint8

const (
	// DataPlane: the node's own translation path works (device up, workers
	// alive, a probe packet translated end to end through the device).
	DataPlane Kind = iota + 1
	// ICMPv6: an ICMPv6 echo to Check.Addr is answered.
	ICMPv6
	// TCP: a TCP connection to Check.AddrPort is accepted.
	TCP
	// HTTP: a GET of Check.URL answers with a 2xx or 3xx status.
	HTTP
	// BGP: at least one of Check.Neighbors has an established session
	// (fate-sharing: the check fails when every one of them is down).
	BGP
)

func (k Kind) String() string {
	switch k {
	case DataPlane:
		return "dataplane"
	case ICMPv6:
		return "icmp6"
	case TCP:
		return "tcp"
	case HTTP:
		return "http"
	case BGP:
		return "bgp"
	}
	return "unknown"
}

// Side is the part of the node's announcements a failing check withdraws.
type Side uint8

const (
	// Both: every announcement (the default).
	Both Side = iota
	// IPv4Side: the mapped IPv4 prefixes only.
	IPv4Side
	// IPv6Side: the pseudo IPv6 prefix only.
	IPv6Side
)

func (s Side) String() string {
	switch s {
	case Both:
		return "all"
	case IPv4Side:
		return "ipv4"
	case IPv6Side:
		return "ipv6"
	}
	return "unknown"
}

// Check is one configured health check: a [[health.check]] section,
// typed and validated by package config.
type Check struct {
	Name string
	Kind Kind

	// The target, by kind: Addr (ICMPv6), AddrPort (TCP), URL (HTTP, with
	// a literal IPv6 address or a name), Neighbors (BGP). DataPlane has none.
	Addr      netip.Addr
	AddrPort  netip.AddrPort
	URL       string
	Neighbors []netip.Addr

	// Interval between probes; Timeout of one probe (< Interval).
	Interval, Timeout time.Duration
	// Rise consecutive passes make a down check up; Fall consecutive
	// failures make an up check down.
	Rise, Fall int
	// Withdraws is what the node stops announcing while the check is down.
	Withdraws Side
}

// Target is what the check probes, as text: the address, address and
// port, URL (its password, if any, as xxxxx), or neighbors
// (comma-separated); empty for the data plane.
func (c Check) Target() string {
	switch c.Kind {
	case ICMPv6:
		return c.Addr.String()
	case TCP:
		return c.AddrPort.String()
	case HTTP:
		return redactURL(c.URL)
	case BGP:
		s := make([]string, len(c.Neighbors))
		for i, n := range c.Neighbors {
			s[i] = n.String()
		}
		return strings.Join(s, ",")
	}
	return ""
}

// Validate reports what makes the check impossible to run: no name, an
// unknown kind, a missing or unusable target, Interval or Timeout not
// positive, Timeout not below Interval, Rise or Fall below 1.
func (c Check) Validate() error {
	if c.Name == "" {
		return errors.New("no name")
	}
	var bad string
	switch c.Kind {
	case DataPlane:
	case ICMPv6:
		if !c.Addr.Is6() || c.Addr.Is4In6() {
			bad = fmt.Sprintf("icmp6 target %v is not an IPv6 address", c.Addr)
		}
	case TCP:
		if !c.AddrPort.IsValid() || c.AddrPort.Port() == 0 {
			bad = fmt.Sprintf("tcp target %v is not an address and port", c.AddrPort)
		}
	case HTTP:
		if u, err := url.Parse(c.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad = fmt.Sprintf("http target %q is not an http or https URL", c.URL)
		}
	case BGP:
		if len(c.Neighbors) == 0 {
			bad = "a bgp check needs at least one neighbor"
		}
	default:
		bad = fmt.Sprintf("unknown kind %d", c.Kind)
	}
	switch {
	case bad != "":
	case c.Interval <= 0 || c.Timeout <= 0:
		bad = fmt.Sprintf("interval %v and timeout %v must be positive", c.Interval, c.Timeout)
	case c.Timeout >= c.Interval:
		bad = fmt.Sprintf("timeout %v must be shorter than the interval %v", c.Timeout, c.Interval)
	case c.Rise < 1 || c.Fall < 1:
		bad = fmt.Sprintf("rise %d and fall %d must be at least 1", c.Rise, c.Fall)
	}
	if bad != "" {
		return fmt.Errorf("%s: %s", c.Name, bad)
	}
	return nil
}

// Equal reports whether two checks are defined alike.
func (c Check) Equal(d Check) bool {
	return c.Name == d.Name && c.Kind == d.Kind && c.Addr == d.Addr && c.AddrPort == d.AddrPort &&
		c.URL == d.URL && slices.Equal(c.Neighbors, d.Neighbors) && c.Interval == d.Interval &&
		c.Timeout == d.Timeout && c.Rise == d.Rise && c.Fall == d.Fall && c.Withdraws == d.Withdraws
}

// redactURL returns u with the password of its user information, if any,
// replaced by xxxxx: the target is shown by status and in logs.
func redactURL(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return u
	}
	return p.Redacted()
}
