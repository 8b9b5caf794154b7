package main

import (
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/map646/map646/lab/netlab"
	"github.com/map646/map646/lab/poll"
	"github.com/map646/map646/lab/topo"
)

// Options of the experiment.
type Options struct {
	// Bin is the map646 binary; "" builds this module's.
	Bin string
	// Interval between probes of the timeline (the paper's: 100 ms).
	Interval time.Duration
	// Hold is how long the probes run after each event settles.
	Hold time.Duration
	// HoldTimer also runs the silent death without BFD (hold timer 3 s).
	HoldTimer bool
	// Progress receives what the experiment does, as it does it.
	Progress io.Writer
	// Abort (may be nil) ends the experiment early, cleaning up (Ctrl-C).
	Abort <-chan struct{}
	// MaxOutage is the target for the outage at a silent death with BFD;
	// 0 is the paper's 500 ms.
	MaxOutage time.Duration
	// Prometheus runs a real Prometheus with the shipped alerting rules
	// on the lab with BFD (prometheus.go): the silent death then lasts
	// until its alert fires.
	Prometheus bool
	// FastPath runs both nodes with the kernel fast path ([fastpath] mode
	// = "required").
	FastPath bool
}

func (o Options) maxOutage() time.Duration {
	if o.MaxOutage == 0 {
		return 500 * time.Millisecond
	}
	return o.MaxOutage
}

// Addresses the experiment adds to the lab of lab/topo: more client
// addresses (routers hash ICMP on addresses only, so one source would put
// every probe on one node), and the listener that tokyo's IPv6-side health
// check connects to.
var (
	extraClients = []string{"192.0.2.3", "192.0.2.4", "192.0.2.5", "192.0.2.6"}
	checkTarget  = "[" + topo.Server10 + "]:7001"
	flowTarget6  = "[" + topo.Server10 + "]:7002"
	flowTarget4  = topo.Public10 + ":7002"
)

// Lab is the two-node lab with what the experiment adds.
type Lab struct {
	*topo.Lab
	BFD        bool
	Srcs, Dsts []netip.Addr
	check      *listener // the target of tokyo's "backend-ipv6" check
	t          netlab.TB
	// prom scrapes the nodes (Options.Prometheus); Alert is when it
	// alerted on tokyo's silent death.
	prom  *prometheus
	Alert *AlertResult
}

// NewLab builds the lab (BFD 100 ms x 3 on the router sessions, or only
// the 3 s hold timer), with a health check on tokyo alone that withdraws
// its IPv6 side (the pseudo prefix) when a TCP listener on srv10 stops
// answering: how the timeline makes tokyo stop announcing on one side
// the map646 way. It waits until both routers route both prefixes over
// both nodes.
func NewLab(t netlab.TB, o Options, bfd bool) *Lab {
	t.Helper()
	l := &Lab{BFD: bfd, Lab: topo.New(t, topo.Options{Bin: o.Bin, BFD: bfd, NoStart: true}), t: t}
	l.Srcs = []netip.Addr{netip.MustParseAddr(topo.Client4)}
	for _, a := range extraClients {
		l.Client.AddAddr(t, "c0", a+"/29")
		l.Srcs = append(l.Srcs, netip.MustParseAddr(a))
	}
	l.Dsts = []netip.Addr{netip.MustParseAddr(topo.Public10), netip.MustParseAddr(topo.Public11)}
	l.check = &listener{ns: l.Servers[0], addr: checkTarget}
	l.check.start(t)
	l.Tokyo.Config.Checks = append(l.Tokyo.Config.Checks, topo.Check{Name: "backend-ipv6", Type: "tcp", Addr: checkTarget,
		Interval: 100 * time.Millisecond, Timeout: 80 * time.Millisecond, Rise: 2, Fall: 2, Withdraw: "ipv6"})
	withProm := o.Prometheus && bfd
	for _, n := range l.Nodes {
		if withProm {
			n.Config.MetricsListen = metricsListen(n)
		}
		if o.FastPath {
			n.Config.Extra += "\n[fastpath]\nmode = \"required\"\n"
		}
		n.Start(t)
	}
	l.WaitConverged(t, 30*time.Second)
	if withProm {
		l.prom = startPrometheus(t, l.Upstream, l.Nodes)
	}
	return l
}

// NodeNames is the nodes' names, tokyo first.
func (l *Lab) NodeNames() []string {
	var s []string
	for _, n := range l.Nodes {
		s = append(s, n.Name)
	}
	return s
}

// Probe starts a prober from every client address to both servers, with
// a sniffer on each node's device.
func (l *Lab) Probe(t netlab.TB, interval time.Duration, syns chan<- Segment) *Prober {
	t.Helper()
	p := NewProber(t, l.Client, l.Srcs, l.Dsts, interval, time.Second)
	for _, n := range l.Nodes {
		Sniff(t, n.NS, n.Name, n.M.Device, p, syns)
	}
	return p
}

// reviveWait bounds the wait for a revived node to be routed again, its
// router sessions Established with BFD up. Measured (lab TestBFDRevive):
// 1.0 to 7.4 s, the time for both sides to connect again (BIRD's error
// wait grows with each death, up to its 10 s). Past it the revival has
// failed and the step fails, saying why.
const reviveWait = 20 * time.Second

// revive brings a silently dead node back (bridge ports up, SIGCONT) and
// waits until both routers route over both nodes and the node's router
// sessions are Established with BFD up; it returns how long that took.
// The node is never restarted: coming back by itself is what is measured.
// GoBGP v4.8 once kept a revived node's BFD sessions resetting every new
// BGP session forever ("BFD is down"; BIRD: "unknown session id"), and
// this experiment restarted the node then; map646's speaker now runs BFD
// itself (routing/bfd.go), so a revival that fails is a regression,
// reported with each session's state and last error.
func (l *Lab) revive(st netlab.Stoppable, n *topo.Node, say func(string, ...any)) time.Duration {
	at := time.Now()
	n.Revive(st)
	say("%s's bridge ports up (and its map646 continued); its sessions re-establish", n.Name)
	if _, err := l.waitBoth(reviveWait); err == nil && l.steady(st, n, at.Add(reviveWait)) {
		return time.Since(at)
	}
	var why []string
	for _, nb := range n.Status(st).Neighbors {
		if nb.Role == "router" {
			why = append(why, fmt.Sprintf("%s %s (BFD %s, last error: %s)", nb.Address, nb.State, nb.BFD, nb.LastError))
		}
	}
	st.Fatalf("failover: %s not routed again with its sessions up within %v of its revival (not restarted: see revive): %s",
		n.Name, reviveWait, strings.Join(why, "; "))
	return 0
}

// steady tells whether n's router sessions are established and, with BFD,
// their BFD sessions up, asking until deadline: a session that BFD resets
// over and over is routed for a moment at each try.
func (l *Lab) steady(st netlab.Stoppable, n *topo.Node, deadline time.Time) bool {
	// The control socket has no push.
	return poll.Until(time.Until(deadline), 100*time.Millisecond, func() bool {
		for _, nb := range n.Status(st).Neighbors {
			if nb.Role == "router" && (!nb.Established || (l.BFD && nb.BFD != "up")) {
				return false
			}
		}
		return true
	})
}

// waitBoth waits until both routers route over both nodes, or returns the
// error of the first that does not.
func (l *Lab) waitBoth(timeout time.Duration) (time.Duration, error) {
	at := time.Now()
	err := netlab.Attempt(func() error {
		l.WaitConverged(netlab.Stoppable{TB: l.t}, timeout)
		return nil
	})
	return time.Since(at), err
}

// listener is a TCP listener in a namespace that accepts and closes
// connections, stopped and started again by the experiment.
type listener struct {
	ns   *netlab.NS
	addr string
	mu   sync.Mutex
	ln   net.Listener
}

func (c *listener) start(t netlab.TB) {
	t.Helper()
	ln := c.ns.Listen(t, "tcp", c.addr)
	c.mu.Lock()
	c.ln = ln
	c.mu.Unlock()
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			conn.Close()
		}
	}()
}

func (c *listener) stop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ln != nil {
		c.ln.Close()
		c.ln = nil
	}
}

// Freeze: a silent death also stops the node's map646 (SIGSTOP; SIGCONT
// at the revival), as a hung machine: it can send nothing, not even on
// the links that are already cut. The routers see the same death either
// way: no carrier loss, no TCP reset, no notification.
const Freeze = true

// TimelineSteps are the paper's Figure 4 events, extended: both nodes
// serving; tokyo's pseudo prefix withdrawn by its health check and back;
// tokyo drained and undrained; tokyo dead silently and back. Each step
// waits until the routers' FIBs show the change (or fails saying what it
// waited for), then probes for hold; the revival waits (see revive) only
// with wait. Without BFD only the baseline and the
// silent death are run (the comparison the hold timer gives).
func (l *Lab) TimelineSteps(t netlab.TB, hold time.Duration, wait bool, maxOutage time.Duration) []Step {
	st := netlab.Stoppable{TB: t}
	tokyo, osaka := l.Tokyo, l.Osaka
	conv := 30 * time.Second
	waitFIB := func(say func(string, ...any), ns *netlab.NS, prefix string, nodes ...*topo.Node) {
		gws := topo.Gateways4(nodes...)
		if ns == l.Backend {
			gws = topo.Gateways6(nodes...)
		}
		say("waiting until %s routes %s via %v", ns.Role, prefix, nodeNames(nodes))
		ns.WaitFIB(st, prefix, conv, fmt.Sprintf("via %v", gws), topo.Multipath(gws...))
	}
	base := Step{Name: "ecmp", Label: "1. both nodes serving (ECMP)", Hold: hold, MaxLost: 0}
	dies := Step{Name: "tokyo-dies", Label: "5. tokyo dies silently", Hold: hold, MaxLost: -1,
		Do: func(say func(string, ...any)) error {
			at := tokyo.KillSilently(st, Freeze)
			if Freeze {
				say("tokyo's bridge ports down and its map646 stopped (SIGSTOP): the routers keep their carrier and hear nothing more")
			} else {
				say("tokyo's bridge ports down: the routers keep their carrier and hear nothing more")
			}
			_, up := l.Upstream.WaitFIB(st, topo.Prefix4, conv, "via osaka", topo.Multipath(topo.Gateways4(osaka)...))
			_, back := l.Backend.WaitFIB(st, topo.Pseudo, conv, "via osaka", topo.Multipath(topo.Gateways6(osaka)...))
			say("the upstream's FIB dropped tokyo after %.0f ms, the backend's after %.0f ms",
				up.Sub(at).Seconds()*1e3, back.Sub(at).Seconds()*1e3)
			if l.prom == nil {
				return nil
			}
			say("tokyo stays dead until Prometheus's %s alert for it fires", deadAlert)
			res, err := l.prom.waitAlert(tokyo.Name, at)
			if err != nil {
				return fmt.Errorf("prometheus: %w", err)
			}
			l.Alert = &res
			say("%s", res)
			return nil
		}}
	if l.BFD {
		dies.MaxOutage = maxOutage
	}
	back := Step{Name: "tokyo-back", Label: "6. tokyo comes back", Hold: hold, MaxLost: -1,
		Do: func(say func(string, ...any)) error {
			if !wait {
				tokyo.Revive(st)
				say("tokyo's bridge ports up (and its map646 continued); not waiting for its sessions (the last step)")
				return nil
			}
			took := l.revive(st, tokyo, say)
			say("routed via tokyo again %.1f s after the revival", took.Seconds())
			return nil
		}}
	if !l.BFD {
		dies.Label = "5. tokyo dies silently (no BFD: hold timer 3 s)"
		return []Step{base, dies, back}
	}
	return []Step{
		base,
		{Name: "ipv6-withdrawn", Label: "2. tokyo withdraws 64:ff9b::/96 (health check)", Hold: hold, MaxLost: 0,
			Do: func(say func(string, ...any)) error {
				l.check.stop()
				say("stopped the listener of tokyo's backend-ipv6 check (%s)", checkTarget)
				waitFIB(say, l.Backend, topo.Pseudo, osaka)
				return nil
			}},
		{Name: "ipv6-back", Label: "2'. tokyo re-announces 64:ff9b::/96", Hold: hold, MaxLost: 0,
			Do: func(say func(string, ...any)) error {
				l.check.start(st)
				say("listener back; the check rises after 2 passes")
				waitFIB(say, l.Backend, topo.Pseudo, tokyo, osaka)
				return nil
			}},
		{Name: "drain", Label: "3. tokyo drained", Hold: hold, MaxLost: 0,
			Do: func(say func(string, ...any)) error {
				say("map646 drain on tokyo (GRACEFUL_SHUTDOWN, wait for idle, withdraw, linger)")
				out, err := tokyo.Drain(false)
				if err != nil {
					return fmt.Errorf("map646 drain: %v\n%s", err, out)
				}
				waitFIB(say, l.Upstream, topo.Prefix4, osaka)
				waitFIB(say, l.Backend, topo.Pseudo, osaka)
				return nil
			}},
		{Name: "undrain", Label: "4. tokyo undrained", Hold: hold, MaxLost: 0,
			Do: func(say func(string, ...any)) error {
				out, err := tokyo.Undrain()
				if err != nil {
					return fmt.Errorf("map646 undrain: %v\n%s", err, out)
				}
				waitFIB(say, l.Upstream, topo.Prefix4, tokyo, osaka)
				waitFIB(say, l.Backend, topo.Pseudo, tokyo, osaka)
				return nil
			}},
		dies,
		back,
	}
}

func nodeNames(nodes []*topo.Node) string {
	s := ""
	for i, n := range nodes {
		if i > 0 {
			s += "+"
		}
		s += n.Name
	}
	return s
}
