package netlab

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// The kernel FIB of a namespace, read through netlink (what `ip route`
// prints, without a process per look, so that a route change is timed to
// the millisecond), and waited on through route notifications.

// FIBRoute is the main table's route to exactly one prefix.
type FIBRoute struct {
	Prefix   netip.Prefix
	Present  bool
	Protocol string    // "bird", "kernel", "boot", "static", or the number ("246")
	Type     string    // "unicast", "blackhole", ...
	NextHops []NextHop // several for a multipath route, sorted
}

func (r FIBRoute) String() string {
	if !r.Present {
		return r.Prefix.String() + " absent"
	}
	hops := make([]string, len(r.NextHops))
	for i, h := range r.NextHops {
		hops[i] = h.String()
	}
	return fmt.Sprintf("%s %s proto %s %s", r.Type, r.Prefix, r.Protocol, strings.Join(hops, ", "))
}

// Via returns the gateways of the route, sorted.
func (r FIBRoute) Via() []netip.Addr {
	var out []netip.Addr
	for _, h := range r.NextHops {
		if h.Via.IsValid() {
			out = append(out, h.Via)
		}
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

// FIB returns the namespace's main-table route to exactly prefix.
func (n *NS) FIB(t TB, prefix string) FIBRoute {
	t.Helper()
	pfx, err := netip.ParsePrefix(prefix)
	if err != nil {
		t.Fatalf("netlab: FIB %q: not a prefix: %v", prefix, err)
	}
	h, err := n.netlinkHandle()
	if err != nil {
		t.Fatalf("netlab: in %s: %v", n.Role, err)
	}
	defer h.Close()
	r, err := fibRoute(h, pfx)
	if err != nil {
		t.Fatalf("netlab: in %s: %v", n.Role, err)
	}
	return r
}

func (n *NS) netlinkHandle() (*netlink.Handle, error) {
	nsh, err := netns.GetFromName(n.Name)
	if err != nil {
		return nil, fmt.Errorf("namespace %s: %w", n.Name, err)
	}
	defer nsh.Close()
	h, err := netlink.NewHandleAt(nsh)
	if err != nil {
		return nil, fmt.Errorf("netlink in %s: %w", n.Name, err)
	}
	return h, nil
}

var protoNames = map[netlink.RouteProtocol]string{
	unix.RTPROT_KERNEL: "kernel", unix.RTPROT_BOOT: "boot", unix.RTPROT_STATIC: "static",
	unix.RTPROT_BIRD: "bird", unix.RTPROT_RA: "ra",
}

var typeNames = map[int]string{
	unix.RTN_UNICAST: "unicast", unix.RTN_BLACKHOLE: "blackhole", unix.RTN_UNREACHABLE: "unreachable",
	unix.RTN_PROHIBIT: "prohibit", unix.RTN_LOCAL: "local",
}

func fibRoute(h *netlink.Handle, pfx netip.Prefix) (FIBRoute, error) {
	pfx = pfx.Masked()
	out := FIBRoute{Prefix: pfx}
	family := netlink.FAMILY_V4
	if pfx.Addr().Is6() {
		family = netlink.FAMILY_V6
	}
	routes, err := h.RouteListFiltered(family, &netlink.Route{Dst: ipNet(pfx), Table: unix.RT_TABLE_MAIN},
		netlink.RT_FILTER_DST|netlink.RT_FILTER_TABLE)
	if err != nil {
		return out, fmt.Errorf("list routes to %s: %w", pfx, err)
	}
	if len(routes) == 0 {
		return out, nil
	}
	devName := func(index int) string {
		if l, err := h.LinkByIndex(index); err == nil {
			return l.Attrs().Name
		}
		return fmt.Sprintf("if%d", index)
	}
	hop := func(gw []byte, index int) NextHop {
		nh := NextHop{Dev: devName(index)}
		if a, ok := netip.AddrFromSlice(gw); ok {
			nh.Via = a.Unmap()
		}
		return nh
	}
	// One route per prefix in the main table here; IPv6 may list a
	// multipath route as one route per next hop: merge them.
	for _, r := range routes {
		out.Present = true
		out.Protocol = protoNames[r.Protocol]
		if out.Protocol == "" {
			out.Protocol = fmt.Sprint(int(r.Protocol))
		}
		out.Type = typeNames[r.Type]
		if out.Type == "" {
			out.Type = fmt.Sprint(r.Type)
		}
		if len(r.MultiPath) > 0 {
			for _, m := range r.MultiPath {
				out.NextHops = append(out.NextHops, hop(m.Gw, m.LinkIndex))
			}
		} else if r.Gw != nil || r.LinkIndex != 0 {
			out.NextHops = append(out.NextHops, hop(r.Gw, r.LinkIndex))
		}
	}
	slices.SortFunc(out.NextHops, func(a, b NextHop) int {
		if c := a.Via.Compare(b.Via); c != 0 {
			return c
		}
		return strings.Compare(a.Dev, b.Dev)
	})
	return out, nil
}

// WaitFIB waits until the namespace's route to prefix satisfies cond, and
// returns it with the time the change was seen. It looks at once, then
// again on every route notification of the namespace (no polling: the time
// returned is within a millisecond of the kernel's change). After timeout it
// fails t, showing the namespace's routes.
func (n *NS) WaitFIB(t TB, prefix string, timeout time.Duration, what string, cond func(FIBRoute) bool) (FIBRoute, time.Time) {
	t.Helper()
	r, at, err := n.waitFIB(prefix, timeout, cond)
	if err != nil {
		out4, _ := command(DefaultTimeout, nil, "ip", "-n", n.Name, "-4", "route")
		out6, _ := command(DefaultTimeout, nil, "ip", "-n", n.Name, "-6", "route")
		t.Fatalf("netlab: in %s: route %s: %s not met within %v (%v); last seen: %v\nip route:\n%s\nip -6 route:\n%s",
			n.Role, prefix, what, timeout, err, r, out4, out6)
	}
	return r, at
}

func (n *NS) waitFIB(prefix string, timeout time.Duration, cond func(FIBRoute) bool) (FIBRoute, time.Time, error) {
	pfx, err := netip.ParsePrefix(prefix)
	if err != nil {
		return FIBRoute{}, time.Time{}, fmt.Errorf("not a prefix: %v", err)
	}
	nsh, err := netns.GetFromName(n.Name)
	if err != nil {
		return FIBRoute{}, time.Time{}, err
	}
	defer nsh.Close()
	h, err := netlink.NewHandleAt(nsh)
	if err != nil {
		return FIBRoute{}, time.Time{}, err
	}
	defer h.Close()
	// Subscribe before the first look, so that no change falls between.
	updates := make(chan netlink.RouteUpdate, 256)
	done := make(chan struct{})
	defer close(done)
	subErr := make(chan error, 1)
	err = netlink.RouteSubscribeWithOptions(updates, done, netlink.RouteSubscribeOptions{
		Namespace: &nsh,
		ErrorCallback: func(e error) {
			select {
			case subErr <- e:
			default:
			}
		},
	})
	if err != nil {
		return FIBRoute{}, time.Time{}, fmt.Errorf("subscribe to routes: %w", err)
	}
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		r, err := fibRoute(h, pfx)
		now := time.Now()
		if err != nil {
			return r, now, err
		}
		if cond(r) {
			return r, now, nil
		}
		select {
		case _, ok := <-updates:
			if !ok {
				return r, now, fmt.Errorf("route notifications ended")
			}
			// Drain the burst: one look after the last queued update.
			for len(updates) > 0 {
				<-updates
			}
		case e := <-subErr:
			return r, now, fmt.Errorf("route notifications: %w", e)
		case <-deadline.C:
			return r, now, fmt.Errorf("timed out")
		}
	}
}
