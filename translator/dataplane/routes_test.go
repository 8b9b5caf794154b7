package dataplane

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/map646/map646/lab/labreq"
	"github.com/map646/map646/translator"
)

// TestPrefixes: mapped IPv4 prefixes become the fewest routes covering
// exactly them, plus the pseudo prefix.
func TestPrefixes(t *testing.T) {
	for _, tc := range []struct {
		ipv4 []string
		want string
	}{
		{nil, "64:ff9b::/96"},
		{[]string{"198.51.100.10"}, "198.51.100.10/32 64:ff9b::/96"},
		// Adjacent but not aligned: .11 and .12 cannot share a /31.
		{[]string{"198.51.100.11", "198.51.100.12", "198.51.100.10"}, "198.51.100.10/31 198.51.100.12/32 64:ff9b::/96"},
		{[]string{"198.51.100.16/29", "198.51.100.24/29", "198.51.100.32"}, "198.51.100.16/28 198.51.100.32/32 64:ff9b::/96"},
		// A whole /24 from singles, in random order, and a gap.
		{shuffled(256, "203.0.113.%d"), "203.0.113.0/24 64:ff9b::/96"},
		{slices.DeleteFunc(shuffled(256, "203.0.113.%d"), func(s string) bool { return s == "203.0.113.128" }),
			"203.0.113.0/25 203.0.113.129/32 203.0.113.130/31 203.0.113.132/30 203.0.113.136/29 203.0.113.144/28 203.0.113.160/27 203.0.113.192/26 64:ff9b::/96"},
		{[]string{"0.0.0.0/1", "128.0.0.0/1"}, "0.0.0.0/0 64:ff9b::/96"},
		{[]string{"255.255.255.254"}, "255.255.255.254/32 64:ff9b::/96"},
	} {
		var ms []translator.Mapping
		for i, s := range tc.ipv4 {
			p := prefix(s)
			ms = append(ms, translator.Mapping{IPv4: p, IPv6: netip.PrefixFrom(netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, byte(i >> 8), 0, byte(i)}), 128-(32-p.Bits()))})
		}
		table, err := translator.NewTable(ms)
		if err != nil {
			t.Fatal(err)
		}
		tr, err := translator.New(translator.Config{
			PseudoPrefix: netip.MustParsePrefix("64:ff9b::/96"), IPv4Addr: netip.MustParseAddr("192.0.2.1"),
			IPv6Addr: netip.MustParseAddr("2001:db8:64::1"), IPv6MTU: 1500, IPv4MTU: 1500, LowestIPv6MTU: 1280,
		}, table)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, p := range Prefixes(tr) {
			got = append(got, p.String())
		}
		if g := strings.Join(got, " "); g != tc.want {
			t.Errorf("%d mappings: got %s, want %s", len(tc.ipv4), g, tc.want)
		}
	}
}

func shuffled(n int, format string) []string {
	s := make([]string, n)
	for i := range s {
		s[i] = fmt.Sprintf(format, (i*37)%n) // 37 is prime to 256
	}
	return s
}

// inNetns runs f on a thread moved into a fresh network namespace named
// m646d + a random suffix, deleted when the test ends. Netlink sockets made
// in f stay in that namespace.
func inNetns(t *testing.T, f func()) {
	t.Helper()
	labreq.Root(t, "create network namespaces, devices and routes")
	var b [4]byte
	rand.Read(b[:])
	name := "m646d" + hex.EncodeToString(b[:])
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer orig.Close()
	ns, err := netns.NewNamed(name) // and moves this thread into it
	if err != nil {
		t.Fatalf("create network namespace %s: %v", name, err)
	}
	ns.Close()
	t.Cleanup(func() {
		if err := netns.DeleteNamed(name); err != nil {
			t.Errorf("delete network namespace %s: %v", name, err)
		}
	})
	defer func() {
		if err := netns.Set(orig); err != nil {
			panic("cannot return to the original network namespace: " + err.Error())
		}
	}()
	f()
}

// link adds an up link called name in the current namespace: a veth
// whose peer (name + "p") is up too (this kernel may lack dummy links).
func link(t *testing.T, name string) netlink.Link {
	t.Helper()
	l := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: name}, PeerName: name + "p"}
	if err := netlink.LinkAdd(l); err != nil {
		t.Fatalf("add veth %s: %v", name, err)
	}
	for _, n := range []string{name, name + "p"} {
		if err := netlink.LinkSetUp(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: n}}); err != nil {
			t.Fatal(err)
		}
	}
	l2, err := netlink.LinkByName(name)
	if err != nil {
		t.Fatal(err)
	}
	return l2
}

// kernelRoutes lists the routes of RouteProtocol as the kernel has them.
func kernelRoutes(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, family := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		rs, err := netlink.RouteListFiltered(family, &netlink.Route{Protocol: RouteProtocol}, netlink.RT_FILTER_PROTOCOL)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rs {
			l, _ := netlink.LinkByIndex(r.LinkIndex)
			out = append(out, r.Dst.String()+" dev "+l.Attrs().Name)
		}
	}
	slices.Sort(out)
	return out
}

func routeStrings(dev string, ps ...string) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p + " dev " + dev
	}
	slices.Sort(out)
	return out
}

func prefixes(ss ...string) []netip.Prefix {
	ps := make([]netip.Prefix, len(ss))
	for i, s := range ss {
		ps[i] = netip.MustParsePrefix(s)
	}
	return ps
}

// TestRoutes: routes are added into the device with protocol 246,
// changed as a difference, refused over a route someone else owns,
// left-overs removed at start, and exactly what was added removed at the
// end.
func TestRoutes(t *testing.T) {
	inNetns(t, func() {
		link(t, "m646r0")
		other := link(t, "m646r1")
		r, err := NewRoutes("m646r0", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		first := prefixes("198.51.100.10/32", "198.51.100.16/28", "64:ff9b::/96")
		if err := r.Add(first); err != nil {
			t.Fatal(err)
		}
		if got, want := kernelRoutes(t), routeStrings("m646r0", "198.51.100.10/32", "198.51.100.16/28", "64:ff9b::/96"); !slices.Equal(got, want) {
			t.Fatalf("kernel routes %q, want %q", got, want)
		}

		// A reload: .10 goes, .11 comes, the /28 and the pseudo prefix stay.
		add, del := r.Diff(prefixes("198.51.100.11/32", "198.51.100.16/28", "64:ff9b::/96"))
		if fmt.Sprint(add) != "[198.51.100.11/32]" || fmt.Sprint(del) != "[198.51.100.10/32]" {
			t.Fatalf("diff: add %v, remove %v", add, del)
		}
		if err := r.Remove(del); err != nil {
			t.Fatal(err)
		}
		if err := r.Add(add); err != nil {
			t.Fatal(err)
		}
		if got, want := kernelRoutes(t), routeStrings("m646r0", "198.51.100.11/32", "198.51.100.16/28", "64:ff9b::/96"); !slices.Equal(got, want) {
			t.Fatalf("after the diff: kernel routes %q, want %q", got, want)
		}

		// A route someone else added is not replaced.
		theirs := &netlink.Route{LinkIndex: other.Attrs().Index, Dst: prefixNet(netip.MustParsePrefix("203.0.113.0/24")), Protocol: 4}
		if err := netlink.RouteAdd(theirs); err != nil {
			t.Fatal(err)
		}
		err = r.Add(prefixes("203.0.113.0/24", "198.51.100.12/32"))
		if !errors.Is(err, syscall.EEXIST) || !strings.Contains(err.Error(), "map646 does not replace routes it did not add") {
			t.Errorf("adding over someone else's route: %v", err)
		}
		if !slices.Equal(r.Installed(), prefixes("198.51.100.11/32", "198.51.100.12/32", "198.51.100.16/28", "64:ff9b::/96")) {
			t.Errorf("installed %v: the other route must be added, the failed one not", r.Installed())
		}

		// Leftovers of an earlier process, found by their protocol.
		old, err := NewRoutes("m646r1", nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := old.Add(prefixes("192.0.2.128/25", "2001:db8:ff::/48")); err != nil {
			t.Fatal(err)
		}
		old.Close()
		n, err := r.RemoveStale()
		if err != nil || n != 2 {
			t.Errorf("RemoveStale removed %d (%v), want 2", n, err)
		}
		if got, want := kernelRoutes(t), routeStrings("m646r0", "198.51.100.11/32", "198.51.100.12/32", "198.51.100.16/28", "64:ff9b::/96"); !slices.Equal(got, want) {
			t.Errorf("after RemoveStale: kernel routes %q, want %q", got, want)
		}

		// The end: exactly ours go; theirs stays.
		if err := r.RemoveAll(); err != nil {
			t.Fatal(err)
		}
		if got := kernelRoutes(t); len(got) != 0 {
			t.Errorf("routes left: %q", got)
		}
		if rs, _ := netlink.RouteListFiltered(netlink.FAMILY_V4, theirs, netlink.RT_FILTER_PROTOCOL|netlink.RT_FILTER_OIF); len(rs) != 1 {
			t.Errorf("someone else's route was removed")
		}
	})
}

func prefixNet(p netip.Prefix) *net.IPNet { return (&Routes{}).route(p).Dst }

// TestRouteScale measures adding and removing 1,000 and 100,000 /32
// routes (from 198.18.0.0/15, the benchmarking block), and 1,000,000 (from
// 10.0.0.0/8) with MAP646_ROUTES_1M=1.
func TestRouteScale(t *testing.T) {
	if testing.Short() {
		t.Skip("skipped with -short: installs up to 100,000 routes")
	}
	sizes := []int{1000, 100000}
	if os.Getenv("MAP646_ROUTES_1M") == "1" {
		sizes = append(sizes, 1000000)
	}
	inNetns(t, func() {
		link(t, "m646s0")
		r, err := NewRoutes("m646s0", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		for _, n := range sizes {
			base := uint32(198)<<24 | 18<<16
			if n > 1<<17 {
				base = 10 << 24
			}
			ps := make([]netip.Prefix, n)
			for i := range ps {
				a := base + uint32(i)
				ps[i] = netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(a >> 24), byte(a >> 16), byte(a >> 8), byte(a)}), 32)
			}
			start := time.Now()
			if err := r.Add(ps); err != nil {
				t.Fatal(err)
			}
			added := time.Since(start)
			start = time.Now()
			if err := r.RemoveAll(); err != nil {
				t.Fatal(err)
			}
			removed := time.Since(start)
			t.Logf("%s routes: added in %v (%.1f µs each), removed in %v", strconv.Itoa(n),
				added.Round(time.Millisecond), float64(added.Microseconds())/float64(n), removed.Round(time.Millisecond))
		}
	})
}
