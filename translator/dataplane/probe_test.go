package dataplane

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/map646/map646/lab/poll"
	"github.com/map646/map646/translator"
	"github.com/map646/map646/translator/tun"
)

// The probe tests run as root, each in a network namespace of its own
// (inNetns), on a real tun device with two queues, the routes of Prefixes
// and the address nodeAddr on the device (the probe's source).

const probeDev = "m646p0"

var nodeAddr = netip.MustParsePrefix("192.0.2.2/32")

type probeNode struct {
	d      *DataPlane
	routes *Routes
	link   netlink.Link
}

// newProbeNode builds the node in the current namespace; setup, when not
// nil, runs on the data plane before Run. start false: no Run.
func newProbeNode(t *testing.T, keys string, addr netip.Prefix, start bool, setup func(*DataPlane)) *probeNode {
	t.Helper()
	dev, err := tun.OpenOffload(probeDev, 1500, 2, 1000)
	if err != nil {
		t.Fatal(err)
	}
	d := newDataPlane(t, newConfig(t, keys, ""), dev)
	if setup != nil {
		setup(d)
	}
	if start {
		run(t, d)
		waitWorkers(t, d)
	} else {
		t.Cleanup(func() { d.Close() })
	}
	l, err := netlink.LinkByName(probeDev)
	if err != nil {
		t.Fatal(err)
	}
	if err := netlink.AddrAdd(l, &netlink.Addr{IPNet: netipNet(addr)}); err != nil {
		t.Fatalf("address %v on %s: %v", addr, probeDev, err)
	}
	r, err := NewRoutes(probeDev, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	if err := r.Add(Prefixes(d.Translator())); err != nil {
		t.Fatal(err)
	}
	return &probeNode{d: d, routes: r, link: l}
}

// waitWorkers waits until every worker of d runs.
func waitWorkers(t *testing.T, d *DataPlane) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for _, w := range d.workers {
		if !poll.Until(time.Until(deadline), time.Millisecond, w.hb.alive.Load) {
			t.Fatalf("the worker of queue %d not running after 5 s", w.q)
		}
	}
}

func netipNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

func probe(d *DataPlane, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return d.Probe(ctx)
}

// wantProbeError fails unless err is an error whose text holds every part.
func wantProbeError(t *testing.T, err error, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("the probe passed; want an error with %q", parts)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Fatalf("probe error %q does not say %q", err, p)
		}
	}
}

// TestProbe: on a running data plane the probe passes, and its packet is
// counted like any other: one 4->6 ttl-expired icmp-error verdict and one
// ICMP error written back per probe. With the ICMP rate limit used up, the
// probe still passes, while an ordinary packet earning an error is held
// back by the limit (so the limit was really in force).
func TestProbe(t *testing.T) {
	inNetns(t, func() {
		n := newProbeNode(t, "", nodeAddr, true, nil)
		const probes = 5
		for i := range probes {
			if err := probe(n.d, 2*time.Second); err != nil {
				t.Fatalf("probe %d: %v", i, err)
			}
		}
		// The answer can reach the probe before the worker publishes the
		// batch's counters (it publishes after writing): wait for them.
		s := waitStats(t, n.d, func(s Stats) bool { return s.Probes == probes && s.SentPackets[Dir4to6] == probes })
		if got := s.Packets[Dir4to6][translator.ICMPError][translator.ReasonTTLExpired]; got != probes {
			t.Errorf("%d ttl-expired verdicts, want %d", got, probes)
		}
		if s.ICMPErrorsSent != probes || s.SentPackets[Dir4to6] != probes {
			t.Errorf("%d ICMP errors sent, %d packets written, want %d each", s.ICMPErrorsSent, s.SentPackets[Dir4to6], probes)
		}
		if s.Probes != probes {
			t.Errorf("Stats.Probes = %d, want %d", s.Probes, probes)
		}

		// Use up the limit, then an ordinary TTL-1 datagram to the same
		// address is refused its error; the probe is not.
		n.d.SetICMPLimit(1, 1)
		for n.d.limiter.allow() {
		}
		sendTTL1(t, netip.MustParseAddr("198.51.100.10"), []byte("not a probe"))
		if !poll.Until(5*time.Second, time.Millisecond, func() bool { return n.d.Stats().ICMPErrorsSuppressed != 0 }) {
			t.Fatal("the ordinary datagram's error was not suppressed: the limit is not in force")
		}
		if err := probe(n.d, 2*time.Second); err != nil {
			t.Fatalf("probe with the ICMP limit used up: %v", err)
		}
		if s := waitStats(t, n.d, func(s Stats) bool { return s.Probes == probes+1 }); s.ICMPErrorsSuppressed != 1 || s.ICMPErrorsSent != probes+1 || s.Probes != probes+1 {
			t.Errorf("suppressed %d, sent %d, probes %d; want 1, %d and %d (the ordinary datagram is no probe)",
				s.ICMPErrorsSuppressed, s.ICMPErrorsSent, s.Probes, probes+1, probes+1)
		}
	})
}

// waitStats returns the data plane's counters once done accepts them, and
// the last ones read after 5 s otherwise (the checks that follow then say
// what is wrong).
func waitStats(t *testing.T, d *DataPlane, done func(Stats) bool) Stats {
	t.Helper()
	var s Stats
	poll.Until(5*time.Second, time.Millisecond, func() bool { s = d.Stats(); return done(s) })
	return s
}

// sendTTL1 sends payload in a UDP datagram with TTL 1 to dst.
func sendTTL1(t *testing.T, dst netip.Addr, payload []byte) {
	t.Helper()
	dialer := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		c.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_TTL, 1) })
		return serr
	}}
	c, err := dialer.Dial("udp4", netip.AddrPortFrom(dst, 9).String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write(payload); err != nil {
		t.Fatal(err)
	}
}

// TestProbeDeviceDown: a device taken down fails the probe by name.
func TestProbeDeviceDown(t *testing.T) {
	inNetns(t, func() {
		n := newProbeNode(t, "", nodeAddr, true, nil)
		if err := probe(n.d, 2*time.Second); err != nil {
			t.Fatalf("before: %v", err)
		}
		if err := netlink.LinkSetDown(n.link); err != nil {
			t.Fatal(err)
		}
		wantProbeError(t, probe(n.d, 2*time.Second), "device "+probeDev+" is administratively down")
	})
}

// TestProbeNoRoute: without the routes into the device the probe fails
// before sending anything; with the mapped prefix routed elsewhere it
// names where, and still sends nothing (no ttl-expired drop or error).
func TestProbeNoRoute(t *testing.T) {
	inNetns(t, func() {
		n := newProbeNode(t, "", nodeAddr, true, nil)
		if err := n.routes.RemoveAll(); err != nil {
			t.Fatal(err)
		}
		wantProbeError(t, probe(n.d, 2*time.Second), "no route to the mapped address 198.51.100.10")

		other := link(t, "m646pv")
		if err := netlink.RouteAdd(&netlink.Route{LinkIndex: other.Attrs().Index, Dst: netipNet(netip.MustParsePrefix("198.51.100.0/24"))}); err != nil {
			t.Fatal(err)
		}
		wantProbeError(t, probe(n.d, 2*time.Second), "the route to the mapped address 198.51.100.10 leads to m646pv, not into "+probeDev)
		if s := n.d.Stats(); s.Packets[Dir4to6][translator.ICMPError][translator.ReasonTTLExpired] != 0 {
			t.Errorf("the probe reached the device without a route")
		}
	})
}

// TestProbeUntranslatableSource: a node whose only address the translator
// refuses as a source (non-global behind the well-known prefix) cannot
// probe, and the error says why instead of timing out. When
// translator.ipv4_address is one of the node's addresses, the probe falls
// back to it; its answer then comes from a local address, which the kernel
// accepts from the device only with accept_local (as map646 run sets it).
func TestProbeUntranslatableSource(t *testing.T) {
	inNetns(t, func() {
		n := newProbeNode(t, "", netip.MustParsePrefix("10.1.2.3/32"), true, nil)
		wantProbeError(t, probe(n.d, 2*time.Second), "would not answer a probe to 198.51.100.10", "from 10.1.2.3", "non-global-wkp")

		lo, err := netlink.LinkByName("lo")
		if err == nil {
			err = netlink.LinkSetUp(lo)
		}
		if err == nil {
			err = netlink.AddrAdd(lo, &netlink.Addr{IPNet: netipNet(netip.MustParsePrefix("192.0.2.1/32"))})
		}
		if err != nil {
			t.Fatal(err)
		}
		wantProbeError(t, probe(n.d, 300*time.Millisecond), "no answer to a probe 192.0.2.1 -> 198.51.100.10")
		if err := os.WriteFile("/proc/sys/net/ipv4/conf/"+probeDev+"/accept_local", []byte("1"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := probe(n.d, 2*time.Second); err != nil {
			t.Fatalf("from translator.ipv4_address with accept_local: %v", err)
		}
	})
}

// TestProbeWorkers: before Run the workers are not running; a worker held
// inside a batch longer than stuckAfter fails the probe, named.
func TestProbeWorkers(t *testing.T) {
	inNetns(t, func() {
		n := newProbeNode(t, "", nodeAddr, false, nil)
		wantProbeError(t, probe(n.d, 2*time.Second), "the worker of queue 0 is not running", "the worker of queue 1 is not running")
	})
	inNetns(t, func() {
		var hold atomic.Bool
		held := make(chan int, 2)
		release := make(chan struct{})
		n := newProbeNode(t, "", nodeAddr, true, func(d *DataPlane) {
			d.probe.stuckAfter = 50 * time.Millisecond
			d.SetBatchHook(func(q int) {
				if hold.Load() {
					held <- q
					<-release
				}
			})
		})
		var once sync.Once
		t.Cleanup(func() { once.Do(func() { close(release) }) }) // before Run's cleanup: a held worker would never stop
		if err := probe(n.d, 2*time.Second); err != nil {
			t.Fatalf("before: %v", err)
		}
		hold.Store(true)
		err := probe(n.d, 500*time.Millisecond)
		q := <-held
		wantProbeError(t, err, "has been stuck in one batch")
		if !strings.Contains(err.Error(), "queue "+string(rune('0'+q))) {
			t.Errorf("the error %q does not name queue %d, the one held", err, q)
		}
		hold.Store(false)
		once.Do(func() { close(release) })
		// Released, the worker finishes its batch and is alive again.
		poll.Until(5*time.Second, time.Millisecond, func() bool { return n.d.workersAlive() == nil })
		if err := probe(n.d, 2*time.Second); err != nil {
			t.Fatalf("after release: %v", err)
		}
	})
}

// TestProbeICMPErrorsOff: with icmp_errors = false the translator drops
// the probe silently; the probe passes on the worker's drop counter.
func TestProbeICMPErrorsOff(t *testing.T) {
	inNetns(t, func() {
		n := newProbeNode(t, "icmp_errors = false", nodeAddr, true, nil)
		if err := probe(n.d, 2*time.Second); err != nil {
			t.Fatal(err)
		}
		if s := waitStats(t, n.d, func(s Stats) bool { return s.Probes == 1 }); s.Packets[Dir4to6][translator.Drop][translator.ReasonTTLExpired] != 1 || s.SentPackets[Dir4to6] != 0 || s.Probes != 1 {
			t.Errorf("ttl-expired drops %d, sent %d, probes %d; want 1, 0 and 1", s.Packets[Dir4to6][translator.Drop][translator.ReasonTTLExpired], s.SentPackets[Dir4to6], s.Probes)
		}
	})
}

// TestProbeDuringSwap: probes keep passing while the table is swapped
// back and forth.
func TestProbeDuringSwap(t *testing.T) {
	inNetns(t, func() {
		n := newProbeNode(t, "", nodeAddr, true, nil)
		tr := n.d.Translator()
		stop := make(chan struct{})
		swapped := make(chan int)
		go func() {
			i := 0
			for {
				select {
				case <-stop:
					swapped <- i
					return
				default:
				}
				n.d.Swap(tr)
				i++
			}
		}()
		var errs []error
		for range 20 {
			errs = append(errs, probe(n.d, 2*time.Second))
		}
		close(stop)
		if i := <-swapped; i == 0 {
			t.Error("no swap happened during the probes")
		}
		if err := errors.Join(errs...); err != nil {
			t.Fatal(err)
		}
	})
}

// TestProbeRPFilter: a Time Exceeded the kernel drops on its way back
// (strict rp_filter, nothing routes translator.ipv4_address into the
// device) fails the probe after its timeout: the probe needs the answer,
// not merely a worker that read the datagram.
func TestProbeRPFilter(t *testing.T) {
	inNetns(t, func() {
		n := newProbeNode(t, "", nodeAddr, true, nil)
		for _, f := range []string{"all", probeDev} {
			if err := os.WriteFile("/proc/sys/net/ipv4/conf/"+f+"/rp_filter", []byte("1"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		wantProbeError(t, probe(n.d, 300*time.Millisecond), "no answer to a probe 192.0.2.2 -> 198.51.100.10 within its timeout")
		if s := n.d.Stats(); s.ICMPErrorsSent != 1 {
			t.Errorf("%d ICMP errors sent, want 1: the worker answered, the kernel dropped it", s.ICMPErrorsSent)
		}
	})
}
