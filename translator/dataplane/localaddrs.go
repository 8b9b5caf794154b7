package dataplane

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/map646/map646/translator"
)

// FollowLocalAddrs keeps set equal to the addresses of the node (of the
// network namespace of the calling thread) until ctx ends, so that the
// translator refuses to translate toward them (translator.LocalAddrs). It
// subscribes to the kernel's address notifications, reads every address,
// and returns; a goroutine then reads every address again after each
// notification. An error means the first read failed: set is left as it
// was. log may be nil.
//
// Why notifications and a full read each time: an address added to the
// node is refused from the moment the kernel reports it, not up to a
// polling period later; and reading all of them rather than applying each
// notification means a notification lost cannot leave the set wrong. The
// kernel loses notifications only when the socket's buffer overflows, and
// then the subscription ends with an error (ENOBUFS): it is made anew and
// every address read again.
func FollowLocalAddrs(ctx context.Context, set *translator.LocalAddrs, log *slog.Logger) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ns, err := netns.Get()
	if err != nil {
		return fmt.Errorf("dataplane: local addresses: %w", err)
	}
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		ns.Close()
		return fmt.Errorf("dataplane: local addresses: netlink: %w", err)
	}
	f := &addrFollower{ns: ns, h: h, set: set, log: log}
	updates, err := f.subscribe(ctx)
	if err == nil {
		err = f.read()
	}
	if err != nil {
		f.close()
		return fmt.Errorf("dataplane: local addresses: %w", err)
	}
	log.Info("refusing to translate toward the node's own addresses", "addresses", len(set.Addrs()))
	go f.follow(ctx, updates)
	return nil
}

// addrFollower is FollowLocalAddrs' goroutine and what it reads with.
type addrFollower struct {
	ns  netns.NsHandle  // the namespace followed
	h   *netlink.Handle // in ns
	set *translator.LocalAddrs
	log *slog.Logger
}

func (f *addrFollower) close() {
	f.h.Close()
	f.ns.Close()
}

// subscribe subscribes to the IPv4 and IPv6 address notifications until
// ctx ends; the channel is closed when the subscription ends.
func (f *addrFollower) subscribe(ctx context.Context) (<-chan netlink.AddrUpdate, error) {
	ch := make(chan netlink.AddrUpdate, 64)
	err := netlink.AddrSubscribeWithOptions(ch, ctx.Done(), netlink.AddrSubscribeOptions{
		Namespace: &f.ns, ReceiveBufferSize: 1 << 20})
	if err != nil {
		return nil, fmt.Errorf("subscribe: %w", err)
	}
	return ch, nil
}

// follow reads the addresses again after each notification, and
// subscribes anew when the subscription ends before ctx.
func (f *addrFollower) follow(ctx context.Context, updates <-chan netlink.AddrUpdate) {
	defer f.close()
	for {
		select {
		case _, ok := <-updates:
			if !ok {
				if ctx.Err() != nil {
					return
				}
				f.log.Warn("address notifications lost; subscribing again")
				if updates = f.resubscribe(ctx); updates == nil {
					return
				}
			}
			drain(updates) // a burst of changes: one read
			if err := f.read(); err != nil {
				// The last addresses read stay refused; the next
				// notification reads again.
				f.log.Error("cannot read the node's addresses; the last ones read stay refused", "err", err)
				continue
			}
			f.log.Info("the node's addresses changed", "addresses", len(f.set.Addrs()))
		case <-ctx.Done():
			return
		}
	}
}

// resubscribe subscribes again, once a second until it succeeds or ctx
// ends (nil).
func (f *addrFollower) resubscribe(ctx context.Context) <-chan netlink.AddrUpdate {
	for {
		updates, err := f.subscribe(ctx)
		if err == nil {
			return updates
		}
		f.log.Error("cannot subscribe to address notifications; retrying", "err", err)
		select {
		case <-time.After(time.Second):
		case <-ctx.Done():
			return nil
		}
	}
}

func drain(updates <-chan netlink.AddrUpdate) {
	for {
		select {
		case <-updates:
		default:
			return
		}
	}
}

// read puts in the set every address of the node, and the IPv4 broadcast
// addresses of its subnets, which the kernel delivers locally too.
func (f *addrFollower) read() error {
	list, err := f.h.AddrList(nil, netlink.FAMILY_ALL)
	if err != nil {
		return fmt.Errorf("list: %w", err)
	}
	var out []netip.Addr
	add := func(ip net.IP) {
		if a, ok := netip.AddrFromSlice(ip); ok {
			out = append(out, a.Unmap())
		}
	}
	for _, a := range list {
		if a.IPNet != nil {
			add(a.IP)
		}
		add(a.Broadcast)
	}
	f.set.Set(out)
	return nil
}
