package dataplane

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"slices"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/map646/map646/translator"
)

// FollowLocalAddrs keeps set equal to the local addresses of the node (of
// the network namespace of the calling thread) until ctx ends, so that the
// translator refuses to translate toward them (translator.LocalAddrs). It
// subscribes to the kernel's address and route notifications, reads the
// local addresses, and returns; a goroutine then reads them again after
// each notification, and calls changed, if not nil, after each read
// (AttachFastPath's program follows them: LocalAddrsChanged). An error means
// the first read failed: set is left as it was. log may be nil.
//
// The local addresses are the node's addresses and every destination of
// the kernel's local routing table (table 255) that it delivers to the
// node itself: local routes, whole prefixes included (127.0.0.0/8 on lo,
// any `ip route add local` such as AnyIP), broadcast routes (the subnet
// broadcast address the kernel installs for an IPv4 address, with or
// without `brd`) and anycast routes (an IPv6 subnet's router anycast
// address). A tenant must not reach any of them through the pseudo-prefix.
//
// Why notifications and a full read each time: a local address added to
// the node is refused from the moment the kernel reports it, not up to a
// polling period later; and reading all of them rather than applying each
// notification means a notification lost cannot leave the set wrong. The
// kernel loses notifications only when the socket's buffer overflows, and
// then the subscription ends with an error (ENOBUFS) and its channel is
// closed: it is made anew and everything read again.
func FollowLocalAddrs(ctx context.Context, set *translator.LocalAddrs, log *slog.Logger, changed func()) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ns, err := netns.Get()
	if err != nil {
		return fmt.Errorf("dataplane: local addresses: %w", err)
	}
	enter := !processIn(ns)
	var h *netlink.Handle
	if enter {
		h, err = netlink.NewHandleAt(ns)
	} else {
		h, err = netlink.NewHandle()
	}
	if err != nil {
		ns.Close()
		return fmt.Errorf("dataplane: local addresses: netlink: %w", err)
	}
	f := &addrFollower{ns: ns, enter: enter, h: h, set: set, log: log, changed: changed}
	f.subscribe = f.subscribeKernel
	return f.start(ctx)
}

// processIn reports whether the process (its first thread) is in the
// network namespace ns. The caller's thread is, unless it moved to another
// namespace (tests do); then netlink must enter ns for each socket it makes
// (setns, which needs CAP_SYS_ADMIN). map646 run never moves a thread, so
// it follows its namespace with CAP_NET_ADMIN alone.
func processIn(ns netns.NsHandle) bool {
	self, err := netns.GetFromPid(os.Getpid())
	if err != nil {
		return false
	}
	defer self.Close()
	return ns.Equal(self)
}

// addrFollower is FollowLocalAddrs' goroutine and what it reads with.
type addrFollower struct {
	ns        netns.NsHandle  // the namespace followed
	enter     bool            // netlink enters ns for its sockets: it is not the process's (processIn)
	h         *netlink.Handle // in ns
	set       *translator.LocalAddrs
	changed   func() // called after each read; may be nil
	log       *slog.Logger
	subscribe func(context.Context) (*subscription, error) // subscribeKernel; tests end subscriptions with theirs
}

// subscription is one subscription to the address and the route
// notifications; each channel is closed when it ends.
type subscription struct {
	addrs  <-chan netlink.AddrUpdate
	routes <-chan netlink.RouteUpdate
	end    func() // ends both, and lets their goroutines finish
}

// start subscribes, reads, and starts following.
func (f *addrFollower) start(ctx context.Context) error {
	sub, err := f.subscribe(ctx)
	if err == nil {
		if err = f.read(); err != nil {
			sub.end()
		}
	}
	if err != nil {
		f.close()
		return fmt.Errorf("dataplane: local addresses: %w", err)
	}
	f.log.Info("refusing to translate toward the node's local addresses", "prefixes", len(f.set.Prefixes()))
	go f.follow(ctx, sub)
	return nil
}

func (f *addrFollower) close() {
	f.h.Close()
	f.ns.Close()
}

// subscribeKernel subscribes to the IPv4 and IPv6 address and route
// notifications until ctx ends or the subscription does.
func (f *addrFollower) subscribeKernel(ctx context.Context) (*subscription, error) {
	ctx, cancel := context.WithCancel(ctx)
	addrs := make(chan netlink.AddrUpdate, 64)
	routes := make(chan netlink.RouteUpdate, 64)
	var in *netns.NsHandle // nil: the caller's, which is ns (no setns)
	if f.enter {
		in = &f.ns
	}
	err := netlink.AddrSubscribeWithOptions(addrs, ctx.Done(), netlink.AddrSubscribeOptions{
		Namespace: in, ReceiveBufferSize: 1 << 20})
	if err != nil {
		cancel()
		return nil, fmt.Errorf("subscribe to addresses: %w", err)
	}
	err = netlink.RouteSubscribeWithOptions(routes, ctx.Done(), netlink.RouteSubscribeOptions{
		Namespace: in, ReceiveBufferSize: 1 << 20})
	if err != nil {
		cancel()
		go discard(addrs)
		return nil, fmt.Errorf("subscribe to routes: %w", err)
	}
	return &subscription{addrs: addrs, routes: routes, end: func() {
		cancel()
		// netlink's goroutines block sending on a full channel: take
		// what they still send until they close it.
		go discard(addrs)
		go discard(routes)
	}}, nil
}

func discard[T any](ch <-chan T) {
	for range ch {
	}
}

// follow reads the local addresses again after each notification that
// can change them, and subscribes anew when a subscription ends before
// ctx.
func (f *addrFollower) follow(ctx context.Context, sub *subscription) {
	defer f.close()
	for {
		var changed, open bool
		select {
		case _, open = <-sub.addrs:
			changed = open
		case u, ok := <-sub.routes:
			changed, open = ok && isLocalTable(u), ok
		case <-ctx.Done():
			sub.end()
			return
		}
		if open {
			var more bool
			more, open = sub.drain() // a burst of changes: one read
			changed = changed || more
		}
		if !open {
			sub.end()
			if ctx.Err() != nil {
				return
			}
			f.log.Warn("address or route notifications lost; subscribing again and reading every local address")
			if sub = f.resubscribe(ctx); sub == nil {
				return
			}
			changed = true
		}
		if changed {
			f.reread()
		}
	}
}

// isLocalTable says whether a route notification is about the local
// routing table: those of the other tables (the routes the node learns
// over BGP, say) cannot change the local addresses.
func isLocalTable(u netlink.RouteUpdate) bool { return u.Table == unix.RT_TABLE_LOCAL }

// reread reads the local addresses again, and says so when they changed.
func (f *addrFollower) reread() {
	before := f.set.Prefixes()
	if err := f.read(); err != nil {
		// The last addresses read stay refused; the next notification
		// reads again.
		f.log.Error("cannot read the node's local addresses; the last ones read stay refused", "err", err)
		return
	}
	if after := f.set.Prefixes(); !slices.Equal(before, after) {
		f.log.Info("the node's local addresses changed", "prefixes", len(after))
	}
}

// resubscribe subscribes again, once a second until it succeeds or ctx
// ends (nil).
func (f *addrFollower) resubscribe(ctx context.Context) *subscription {
	for {
		sub, err := f.subscribe(ctx)
		if err == nil {
			return sub
		}
		f.log.Error("cannot subscribe to address and route notifications; retrying", "err", err)
		select {
		case <-time.After(time.Second):
		case <-ctx.Done():
			return nil
		}
	}
}

// drain takes the notifications already queued, and says whether one of
// them can change the local addresses and whether both channels are
// still open: a closed channel is always ready, so a drain that did not
// stop at one would never end.
func (s *subscription) drain() (changed, open bool) {
	for {
		select {
		case _, ok := <-s.addrs:
			if !ok {
				return changed, false
			}
			changed = true
		case u, ok := <-s.routes:
			if !ok {
				return changed, false
			}
			changed = changed || isLocalTable(u)
		default:
			return changed, true
		}
	}
}

// read puts in the set every address of the node and every destination
// of the local routing table the kernel delivers to the node.
func (f *addrFollower) read() error {
	addrs, err := f.h.AddrList(nil, netlink.FAMILY_ALL)
	if err != nil {
		return fmt.Errorf("list addresses: %w", err)
	}
	routes, err := f.h.RouteListFiltered(netlink.FAMILY_ALL,
		&netlink.Route{Table: unix.RT_TABLE_LOCAL}, netlink.RT_FILTER_TABLE)
	if err != nil {
		return fmt.Errorf("list the local routing table: %w", err)
	}
	var out []netip.Prefix
	for _, a := range addrs {
		if ip, ok := netip.AddrFromSlice(a.IP); ok && a.IPNet != nil {
			out = append(out, netip.PrefixFrom(ip.Unmap(), ip.Unmap().BitLen()))
		}
	}
	for _, r := range routes {
		switch r.Type {
		case unix.RTN_LOCAL, unix.RTN_BROADCAST, unix.RTN_ANYCAST:
			if p, ok := prefixOf(r.Dst); ok {
				out = append(out, p)
			}
		}
	}
	f.set.Set(out)
	if f.changed != nil {
		f.changed()
	}
	return nil
}
