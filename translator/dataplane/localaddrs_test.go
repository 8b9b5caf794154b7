package dataplane

import (
	"context"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/map646/map646/translator"
)

// TestFollowLocalAddrs: the set holds the namespace's addresses (and the
// IPv4 broadcast address of each subnet) from the start, and follows an
// address added and one removed.
func TestFollowLocalAddrs(t *testing.T) {
	inNetns(t, func() {
		l := link(t, "m646a")
		addAddr := func(s string) *netlink.Addr {
			a, err := netlink.ParseAddr(s)
			if err != nil {
				t.Fatal(err)
			}
			if err := netlink.AddrAdd(l, a); err != nil {
				t.Fatalf("add %s: %v", s, err)
			}
			return a
		}
		addAddr("192.0.2.60/24")
		addAddr("2001:db8:9::1/64")
		set := translator.NewLocalAddrs()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		if err := FollowLocalAddrs(ctx, set, nil); err != nil {
			t.Fatal(err)
		}
		has := func(s string) bool { return slices.Contains(set.Addrs(), netip.MustParseAddr(s)) }
		for _, a := range []string{"192.0.2.60", "192.0.2.255", "2001:db8:9::1"} {
			if !has(a) {
				t.Errorf("the set lacks %s: %v", a, set.Addrs())
			}
		}
		waitFor := func(what string, cond func() bool) {
			t.Helper()
			for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatalf("%s: not within 5 s: %v", what, set.Addrs())
				}
			}
		}
		added := addAddr("203.0.113.60/32")
		waitFor("203.0.113.60 added", func() bool { return has("203.0.113.60") })
		if err := netlink.AddrDel(l, added); err != nil {
			t.Fatal(err)
		}
		waitFor("203.0.113.60 removed", func() bool { return !has("203.0.113.60") })
		if !has("192.0.2.60") {
			t.Errorf("the addresses that stayed are gone: %v", set.Addrs())
		}
	})
}
