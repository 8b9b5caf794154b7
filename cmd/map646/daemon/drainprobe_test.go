package daemon

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/map646/map646/translator"
	"github.com/map646/map646/translator/dataplane"
)

// simCounters stands for the data plane's counters as the daemon reads
// them (packetsRead of Stats): every read, probes more probe datagrams and
// real more packets of traffic have been read. With lag, every other
// snapshot shows one probe's verdict before its probe count, as a
// snapshot taken between the two can.
type simCounters struct {
	mu       sync.Mutex
	s        dataplane.Stats
	probes   uint64
	real     uint64
	lag, odd bool
	reads    int
}

func (c *simCounters) packets() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.s.Packets[dataplane.Dir4to6][translator.ICMPError][translator.ReasonTTLExpired] += c.probes
	c.s.Probes += c.probes
	c.s.Packets[dataplane.Dir4to6][translator.Forward][translator.ReasonNone] += c.real
	s := c.s
	c.odd = !c.odd
	if c.lag && c.odd {
		s.Packets[dataplane.Dir4to6][translator.ICMPError][translator.ReasonTTLExpired]++ // a probe whose count comes next time
	}
	c.reads++
	return packetsRead(s)
}

// TestDrainIgnoresProbes: a drain on a node that reads nothing but its
// own data-plane probes finishes at once: the probes are not traffic
// (with a dataplane check every 100 ms they alone are 10 packets/s, the
// default drain_idle_pps, and the drain used to wait out drain_timeout).
// The same probes with real traffic still wait for the timeout, so the
// subtraction hides nothing real.
func TestDrainIgnoresProbes(t *testing.T) {
	t.Run("probes only", func(t *testing.T) {
		c := newTestCtl(t, t.TempDir())
		c.tm.Timeout = 5 * time.Second
		sim := &simCounters{probes: 1000, lag: true} // 1000 probes a millisecond
		c.lifecycle.packets = sim.packets
		start := time.Now()
		var progress []string
		msg, err := c.Drain(context.Background(), true, func(p string) { progress = append(progress, p) })
		took := time.Since(start)
		if err != nil || !strings.HasPrefix(msg, "drained:") {
			t.Fatalf("Drain = %q, %v", msg, err)
		}
		if strings.Contains(c.log.buf.String(), "drain_timeout") {
			t.Fatalf("the drain waited for its timeout (%v) on probes alone:\n%s", took, c.log.buf.String())
		}
		if !strings.Contains(strings.Join(progress, "\n"), "traffic fell to 0 packets/s") {
			t.Errorf("progress %q: want traffic at 0 packets/s", progress)
		}
		t.Logf("drained after %v (%d samples)", took.Round(time.Millisecond), sim.reads)
	})
	t.Run("probes and traffic", func(t *testing.T) {
		c := newTestCtl(t, t.TempDir())
		c.tm.Timeout = 50 * time.Millisecond
		c.lifecycle.packets = (&simCounters{probes: 1000, real: 1000}).packets
		msg, err := c.Drain(context.Background(), true, func(string) {})
		if err != nil || !strings.HasPrefix(msg, "drained:") {
			t.Fatalf("Drain = %q, %v", msg, err)
		}
		if !strings.Contains(c.log.buf.String(), "drain_timeout 50ms passed with traffic still flowing") {
			t.Errorf("real traffic did not hold the drain until its timeout:\n%s", c.log.buf.String())
		}
	})
}

// TestPacketsRead: the packets read less the probes, never wrapped below
// zero.
func TestPacketsRead(t *testing.T) {
	var s dataplane.Stats
	s.Packets[dataplane.Dir4to6][translator.ICMPError][translator.ReasonTTLExpired] = 7
	s.Packets[dataplane.Dir6to4][translator.Forward][translator.ReasonNone] = 5
	s.Packets[dataplane.DirOther][translator.Drop][translator.ReasonBadVersion] = 1
	s.Probes = 6
	if got := packetsRead(s); got != 7 {
		t.Errorf("packetsRead = %d, want 7 (13 read, 6 of them probes)", got)
	}
	s.Probes = 20
	if got := packetsRead(s); got != 0 {
		t.Errorf("packetsRead with more probes than packets = %d, want 0", got)
	}
	if tr := trafficOf(s); tr.ProbePackets != 20 {
		t.Errorf("TrafficStatus.ProbePackets = %d, want 20", tr.ProbePackets)
	}
}
