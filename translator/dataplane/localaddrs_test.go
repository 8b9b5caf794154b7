package dataplane

import (
	"bytes"
	"context"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/map646/map646/translator"
)

// refused says whether the set holds a prefix that contains a.
func refused(set *translator.LocalAddrs, a string) bool {
	for _, p := range set.Prefixes() {
		if p.Contains(netip.MustParseAddr(a)) {
			return true
		}
	}
	return false
}

// waitRefused waits up to 5 s for a to be refused (want) or not.
func waitRefused(t *testing.T, set *translator.LocalAddrs, a string, want bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); refused(set, a) != want; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s refused: %v, want %v, not within 5 s: %v", a, !want, want, set.Prefixes())
		}
	}
}

// netnsName returns the name of the current network namespace, one
// inNetns made, so that ip(8) runs in it whatever thread forks it.
func netnsName(t *testing.T) string {
	t.Helper()
	cur, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer cur.Close()
	names, err := os.ReadDir("/run/netns")
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if !strings.HasPrefix(n.Name(), "m646d") {
			continue
		}
		h, err := netns.GetFromName(n.Name())
		if err != nil {
			continue
		}
		same := h.Equal(cur)
		h.Close()
		if same {
			return n.Name()
		}
	}
	t.Fatal("the current network namespace has no name in /run/netns")
	return ""
}

// ipIn runs ip(8) in the named network namespace.
func ipIn(t *testing.T, ns string, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", append([]string{"-n", ns}, args...)...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// TestFollowLocalAddrs: the set holds the namespace's addresses, and the
// IPv4 broadcast address of each subnet even when the address was added
// without one (the kernel installs the broadcast route all the same),
// from the start, and follows an address added and one removed.
func TestFollowLocalAddrs(t *testing.T) {
	inNetns(t, func() {
		ns := netnsName(t)
		link(t, "m646a")
		ipIn(t, ns, "addr", "add", "192.0.2.60/24", "dev", "m646a") // no brd
		ipIn(t, ns, "addr", "add", "2001:db8:9::1/64", "dev", "m646a", "nodad")
		set := translator.NewLocalAddrs()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		if err := FollowLocalAddrs(ctx, set, nil, nil); err != nil {
			t.Fatal(err)
		}
		for _, a := range []string{"192.0.2.60", "192.0.2.255", "2001:db8:9::1"} {
			if !refused(set, a) {
				t.Errorf("%s is not refused: %v", a, set.Prefixes())
			}
		}
		for _, a := range []string{"192.0.2.61", "2001:db8:9::2"} {
			if refused(set, a) {
				t.Errorf("%s, not the node's, is refused: %v", a, set.Prefixes())
			}
		}
		ipIn(t, ns, "addr", "add", "203.0.113.60/32", "dev", "m646a")
		waitRefused(t, set, "203.0.113.60", true)
		ipIn(t, ns, "addr", "del", "203.0.113.60/32", "dev", "m646a")
		waitRefused(t, set, "203.0.113.60", false)
		ipIn(t, ns, "addr", "del", "192.0.2.60/24", "dev", "m646a")
		waitRefused(t, set, "192.0.2.255", false)
		if !refused(set, "2001:db8:9::1") {
			t.Errorf("the address that stayed is gone: %v", set.Prefixes())
		}
	})
}

// TestFollowLocalRoutes: every address of a local route is refused: a
// /24 on lo (the kernel makes the whole /24 local) and AnyIP routes
// (ip route add local), and their removal is followed.
func TestFollowLocalRoutes(t *testing.T) {
	inNetns(t, func() {
		ns := netnsName(t)
		ipIn(t, ns, "link", "set", "lo", "up")
		set := translator.NewLocalAddrs()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		if err := FollowLocalAddrs(ctx, set, nil, nil); err != nil {
			t.Fatal(err)
		}
		for _, a := range []string{"198.51.100.77", "203.0.113.9", "2001:db8:77::5"} {
			if refused(set, a) {
				t.Fatalf("%s is refused before any route makes it local: %v", a, set.Prefixes())
			}
		}
		ipIn(t, ns, "addr", "add", "198.51.100.1/24", "dev", "lo")
		waitRefused(t, set, "198.51.100.77", true)
		ipIn(t, ns, "route", "add", "local", "203.0.113.0/24", "dev", "lo")
		waitRefused(t, set, "203.0.113.9", true)
		ipIn(t, ns, "-6", "route", "add", "local", "2001:db8:77::/64", "dev", "lo")
		waitRefused(t, set, "2001:db8:77::5", true)
		if refused(set, "203.0.114.1") || refused(set, "2001:db8:78::5") {
			t.Errorf("an address next to the local prefixes is refused: %v", set.Prefixes())
		}
		ipIn(t, ns, "route", "del", "local", "203.0.113.0/24", "dev", "lo")
		waitRefused(t, set, "203.0.113.9", false)
		ipIn(t, ns, "-6", "route", "del", "local", "2001:db8:77::/64", "dev", "lo")
		waitRefused(t, set, "2001:db8:77::5", false)
		ipIn(t, ns, "addr", "del", "198.51.100.1/24", "dev", "lo")
		waitRefused(t, set, "198.51.100.77", false)
	})
}

// lockedBuffer is a log destination safe for the follower's goroutine.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// processCPU returns the CPU time the test process has used.
func processCPU(t *testing.T) time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// TestFollowLocalAddrsResubscribes: when a subscription ends (netlink
// closes its channel on ENOBUFS), here with notifications still queued in
// front of the close, the follower subscribes once again, says so once at
// WARN, reads every address again and keeps following; and it does not
// spin on the closed channel; only route notifications of the local
// table make it read again.
func TestFollowLocalAddrsResubscribes(t *testing.T) {
	inNetns(t, func() {
		l := link(t, "m646r")
		ns, err := netns.Get()
		if err != nil {
			t.Fatal(err)
		}
		h, err := netlink.NewHandleAt(ns)
		if err != nil {
			t.Fatal(err)
		}
		var logs lockedBuffer
		set := translator.NewLocalAddrs()
		f := &addrFollower{ns: ns, h: h, set: set,
			log: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))}
		type fake struct {
			addrs  chan netlink.AddrUpdate
			routes chan netlink.RouteUpdate
		}
		subs := make(chan fake, 8)
		var subscribed atomic.Int32
		f.subscribe = func(context.Context) (*subscription, error) {
			subscribed.Add(1)
			s := fake{make(chan netlink.AddrUpdate, 64), make(chan netlink.RouteUpdate, 64)}
			subs <- s
			return &subscription{addrs: s.addrs, routes: s.routes, end: func() {}}, nil
		}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		if err := f.start(ctx); err != nil {
			t.Fatal(err)
		}
		first := <-subs
		// An address the follower learns of only by reading again after
		// the new subscription: no notification of it is sent.
		a, _ := netlink.ParseAddr("203.0.113.61/32")
		if err := netlink.AddrAdd(l, a); err != nil {
			t.Fatal(err)
		}
		for range 3 {
			first.addrs <- netlink.AddrUpdate{}
		}
		close(first.addrs)
		var second fake
		select {
		case second = <-subs:
		case <-time.After(5 * time.Second):
			t.Fatal("no new subscription within 5 s of the old one's end")
		}
		waitRefused(t, set, "203.0.113.61", true)
		// Idle now: a follower spinning on a closed channel would burn a
		// CPU for the whole wait.
		cpu0, wall0 := processCPU(t), time.Now()
		time.Sleep(500 * time.Millisecond)
		if cpu, wall := processCPU(t)-cpu0, time.Since(wall0); cpu > wall/4 {
			t.Errorf("the idle follower used %v of CPU in %v", cpu, wall)
		}
		if n := subscribed.Load(); n != 2 {
			t.Errorf("%d subscriptions, want 2 (the first and one after its end)", n)
		}
		if n := strings.Count(logs.String(), "level=WARN"); n != 1 {
			t.Errorf("%d warnings, want 1: %s", n, logs.String())
		}
		// It still follows, on the new subscription.
		if err := netlink.AddrDel(l, a); err != nil {
			t.Fatal(err)
		}
		// A route of another table (one learned over BGP) does not make
		// it read again; one of the local table does.
		second.routes <- netlink.RouteUpdate{Route: netlink.Route{Table: unix.RT_TABLE_MAIN}}
		time.Sleep(100 * time.Millisecond)
		if !refused(set, "203.0.113.61") {
			t.Errorf("a main-table route notification made the follower read again")
		}
		second.routes <- netlink.RouteUpdate{Route: netlink.Route{Table: unix.RT_TABLE_LOCAL}}
		waitRefused(t, set, "203.0.113.61", false)
	})
}
