package routing

import (
	"errors"
	"fmt"
	"slices"
	"time"
)

// validateConfig checks what the speaker needs to be true before any of it
// reaches GoBGP. Package config validates the file with line numbers; this
// guards the API itself (a bad value must be an error, never a panic or a
// silently different session).
func validateConfig(c Config) error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("routing: "+format, args...))
	}
	if c.LocalAS == 0 {
		bad("local AS is 0; want 1-4294967295")
	}
	if !c.RouterID.Is4() || c.RouterID.IsUnspecified() {
		bad("router id %v: want a non-zero IPv4 address", c.RouterID)
	}
	if c.ListenPort < -1 || c.ListenPort > 65535 {
		bad("listen port %d: want 1-65535, 0 for 179, or -1 for no listener", c.ListenPort)
	}
	for _, a := range c.ListenAddresses {
		if !a.IsValid() || a.Zone() != "" {
			bad("listen address %v: want an IPv4 or IPv6 address without zone", a)
		}
	}
	seen := map[string]bool{}
	for i, n := range c.Neighbors {
		where := fmt.Sprintf("neighbor %d (%v)", i+1, n.Address)
		if !n.Address.IsValid() || n.Address.IsUnspecified() || n.Address.Zone() != "" {
			bad("%s: want a unicast address without zone", where)
			continue
		}
		if seen[n.Address.String()] {
			bad("%s: configured twice", where)
		}
		seen[n.Address.String()] = true
		if n.PeerAS == 0 {
			bad("%s: peer AS is 0", where)
		}
		if n.Role != Router && n.Role != Partner {
			bad("%s: unknown role %d", where, n.Role)
		}
		if len(n.Families) == 0 {
			bad("%s: no address family; want ipv4-unicast and/or ipv6-unicast", where)
		}
		for j, f := range n.Families {
			if f != IPv4Unicast && f != IPv6Unicast {
				bad("%s: unknown address family %d", where, f)
			}
			if slices.Contains(n.Families[:j], f) {
				bad("%s: family %s listed twice", where, f)
			}
		}
		if n.NextHopIPv4.IsValid() && (!n.NextHopIPv4.Is4() || n.NextHopIPv4.IsUnspecified()) {
			bad("%s: IPv4 next hop %v is not a usable IPv4 address", where, n.NextHopIPv4)
		}
		if n.NextHopIPv6.IsValid() && (!n.NextHopIPv6.Is6() || n.NextHopIPv6.Is4In6() || n.NextHopIPv6.IsUnspecified() || n.NextHopIPv6.Zone() != "") {
			bad("%s: IPv6 next hop %v is not a usable IPv6 address", where, n.NextHopIPv6)
		}
		// GoBGP would put the IPv4 session address into an IPv6 route's
		// MP_REACH next hop, and routers drop such a route.
		if slices.Contains(n.Families, IPv6Unicast) && n.Address.Is4() && !n.NextHopIPv6.IsValid() {
			bad("%s: ipv6-unicast over an IPv4 session needs an explicit IPv6 next hop", where)
		}
		if slices.Contains(n.Families, IPv4Unicast) && n.Address.Is6() && !n.NextHopIPv4.IsValid() {
			bad("%s: ipv4-unicast over an IPv6 session needs an explicit IPv4 next hop", where)
		}
		if n.HoldTime != 0 && n.HoldTime < 3*time.Second {
			bad("%s: hold time %v: want 0 (default) or at least 3s (RFC 4271)", where, n.HoldTime)
		}
		if n.HoldTime > 65535*time.Second || n.KeepaliveTime < 0 || n.ConnectRetry < 0 {
			bad("%s: timers out of range (hold %v, keepalive %v, connect retry %v)", where, n.HoldTime, n.KeepaliveTime, n.ConnectRetry)
		}
		if n.HoldTime != 0 && n.KeepaliveTime >= n.HoldTime {
			bad("%s: keepalive %v must be shorter than the hold time %v", where, n.KeepaliveTime, n.HoldTime)
		}
		if n.Passive && c.ListenPort == -1 {
			bad("%s: passive, but the speaker has no listener (listen port -1): the session could never come up", where)
		}
		if len(n.Password) > 80 {
			bad("%s: TCP-MD5 password longer than 80 bytes (the kernel's limit)", where)
		}
		if n.TTLSecurity && n.MultihopTTL > 0 {
			bad("%s: TTL security (GTSM) is for directly connected neighbors; it cannot run with multihop TTL %d", where, n.MultihopTTL)
		}
		if n.BFD.Enabled {
			if n.BFD.Interval < time.Millisecond || n.BFD.Interval > time.Hour {
				bad("%s: BFD interval %v: want 1ms-1h", where, n.BFD.Interval)
			}
			if n.BFD.Multiplier < 1 || n.BFD.Multiplier > 255 {
				bad("%s: BFD multiplier %d: want 1-255", where, n.BFD.Multiplier)
			}
			if n.MultihopTTL > 0 {
				bad("%s: BFD is single-hop only in GoBGP; it cannot run with multihop TTL %d", where, n.MultihopTTL)
			}
		}
	}
	return errors.Join(errs...)
}

func cloneConfig(c Config) Config {
	c.ListenAddresses = slices.Clone(c.ListenAddresses)
	c.Neighbors = slices.Clone(c.Neighbors)
	for i := range c.Neighbors {
		c.Neighbors[i].Families = slices.Clone(c.Neighbors[i].Families)
	}
	return c
}
