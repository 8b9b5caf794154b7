package dataplane

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/map646/map646/translator/tun"
)

// openFDs counts this process's open file descriptors.
func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// TestReopenAfterDeviceDeleted: an operator deletes the device under the
// data plane (ip link del); every worker's read fails and Run returns an
// error naming the device. Reopen with a new device of the same name and
// Run again: the probe passes on the new device, the counters went on from
// where they were, and no file descriptor of the old device is left.
func TestReopenAfterDeviceDeleted(t *testing.T) {
	for _, offload := range []bool{false, true} {
		name := "plain"
		if offload {
			name = "offload"
		}
		t.Run(name, func(t *testing.T) {
			inNetns(t, func() { testReopen(t, offload) })
		})
	}
}

func testReopen(t *testing.T, offload bool) {
	open := func() tun.Device {
		t.Helper()
		var dev tun.Device
		var err error
		if offload {
			dev, err = tun.OpenOffload(probeDev, 1500, 2, 1000)
		} else {
			dev, err = tun.OpenPlain(probeDev, 1500)
		}
		if err != nil {
			t.Fatal(err)
		}
		return dev
	}
	setup := func(d *DataPlane) {
		t.Helper()
		l, err := netlink.LinkByName(probeDev)
		if err != nil {
			t.Fatal(err)
		}
		if err := netlink.AddrAdd(l, &netlink.Addr{IPNet: netipNet(nodeAddr)}); err != nil {
			t.Fatal(err)
		}
		r, err := NewRoutes(probeDev, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close() // the routes stay; the test counts descriptors
		if err := r.Add(Prefixes(d.Translator())); err != nil {
			t.Fatal(err)
		}
	}
	start := func(d *DataPlane) (context.CancelFunc, chan error) {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- d.Run(ctx) }()
		waitWorkers(t, d)
		return cancel, done
	}

	fds := openFDs(t)
	d := newDataPlane(t, newConfig(t, "", ""), open())
	setup(d)
	_, done := start(d)
	if err := probe(d, 2*time.Second); err != nil {
		t.Fatalf("before: %v", err)
	}
	before := waitStats(t, d, func(s Stats) bool { return s.Probes >= 1 })
	inUse := openFDs(t)

	l, err := netlink.LinkByName(probeDev)
	if err != nil {
		t.Fatal(err)
	}
	if err := netlink.LinkDel(l); err != nil {
		t.Fatalf("ip link del %s: %v", probeDev, err)
	}
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), probeDev) {
			t.Fatalf("Run after the device was deleted: %v; want an error naming %s", err, probeDev)
		}
		t.Logf("Run returned: %v", err)
	case <-time.After(5 * time.Second):
		t.Fatal("Run still runs 5 s after the device was deleted")
	}
	if err := probe(d, time.Second); err == nil {
		t.Fatal("the probe passes with the device deleted")
	}

	if err := d.Reopen(open()); err != nil {
		t.Fatal(err)
	}
	setup(d)
	cancel, done := start(d)
	if err := d.Reopen(d.Device()); err == nil || !strings.Contains(err.Error(), "while Run runs") {
		t.Errorf("Reopen while Run runs: %v", err)
	}
	if err := probe(d, 2*time.Second); err != nil {
		t.Fatalf("after Reopen: %v", err)
	}
	after := waitStats(t, d, func(s Stats) bool { return s.Probes > before.Probes && s.Batches > before.Batches })
	if after.Probes <= before.Probes || after.Batches <= before.Batches {
		t.Errorf("counters after Reopen: probes %d batches %d; before %d %d: they must go on", after.Probes, after.Batches, before.Probes, before.Batches)
	}
	if n := openFDs(t); n != inUse {
		t.Errorf("%d file descriptors open after Reopen, %d before the deletion: the old device's are left", n, inUse)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
	if n := openFDs(t); n != fds {
		t.Errorf("%d file descriptors open after Run ended, %d before New", n, fds)
	}
}
