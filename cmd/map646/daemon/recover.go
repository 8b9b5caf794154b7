package daemon

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/map646/map646/config"
	"github.com/map646/map646/health"
	"github.com/map646/map646/translator/dataplane"
	"github.com/map646/map646/translator/tun"
)

// The data plane's recovery. When the data plane stops under the daemon
// (an operator ran `ip link del` on the device: every read fails with
// EBADFD, the kernel has deleted the device's routes with it), map646 does
// not exit: the node
//
//  1. withdraws everything at once (node failed, cause the error): it
//     cannot translate, and the health checks would take fall intervals to
//     see it;
//  2. closes what is left of the old device and its route handle;
//  3. creates the device again with the same [tun] settings, in a
//     goroutine of its own (the offload self-test waits up to a second per
//     packet the loop loses), gives it to the data plane (dataplane.Reopen:
//     the counters go on) and restarts the workers;
//  4. removes stale routes of protocol 246 and adds the routes of the
//     table in use;
//  5. proves the new device translates: the data plane's own probe must
//     pass as many times in a row as the dataplane check's rise, at its
//     interval (as a starting node waits for its checks to rise), in a
//     goroutine of its own so that the daemon loop stays responsive;
//  6. becomes ready again: it announces as soon as every check is up (a
//     check that went down meanwhile must rise first).
//
// A failed attempt undoes its part and is retried after a back-off that
// doubles from recoverFirst to recoverMax. Each step is logged.

const (
	recoverFirst = 500 * time.Millisecond
	recoverMax   = 30 * time.Second
	// recoverProbeFor: how long the first probe of a new device is
	// retried before the attempt is called failed (the workers start, the
	// routes settle).
	recoverProbeFor = 3 * time.Second
)

// recovery is the state of a recovery in progress.
type recovery struct {
	since    time.Time // when the data plane stopped
	attempts int       // failed attempts so far
	start    time.Time // of the current attempt
}

// runDataPlane starts the data plane's workers.
func (d *daemon) runDataPlane() {
	ctx, cancel := context.WithCancel(d.ctx)
	d.stopDP, d.dpDone = cancel, make(chan error, 1)
	go func() { d.dpDone <- d.dp.Run(ctx) }()
}

// installRoutes routes want into the device dev, after removing the
// leftovers of an earlier map646 or device.
func (d *daemon) installRoutes(dev string, want []netip.Prefix) error {
	var err error
	if d.routes, err = dataplane.NewRoutes(dev, d.log); err != nil {
		return err
	}
	if _, err := d.routes.RemoveStale(); err != nil {
		return err
	}
	return d.routes.Add(want)
}

// dataPlaneFailed starts the recovery: the data plane's Run returned err.
func (d *daemon) dataPlaneFailed(err error) {
	d.recovery = recovery{since: time.Now()}
	d.provenC = nil // a proof under way was of the device that failed now
	d.log.Error("the data plane stopped; the node withdraws and re-creates the device", "err", err, "device", d.cfg.Tun.Name)
	ctx, cancel := context.WithTimeout(d.ctx, 5*time.Second)
	defer cancel()
	if aerr := d.lc.dataPlaneDown(ctx, "data plane stopped: "+err.Error()); aerr != nil {
		d.log.Error("recovery: the withdrawal failed; it is retried", "err", aerr)
	} else {
		d.log.Info("recovery: withdrawn", "took", time.Since(d.recovery.since).Round(time.Millisecond))
	}
	d.recoverDataPlane()
}

// openedDevice is what the goroutine that creates the device hands the
// loop.
type openedDevice struct {
	dev tun.Device
	err error
}

// recoverDataPlane makes one attempt: step 2, then step 3's creation of the
// device, off the loop: creating it runs the offload self-test, which waits
// up to selfTestWait for each packet its loop loses, and the daemon loop
// must meanwhile answer the control socket and the drain's timers. The
// goroutine touches nothing of the daemon's but the self-test's metric
// (safe from any goroutine): it opens a device from a copy
// of [tun] and hands it over (deviceOpened). Until then the node is as
// between two attempts: withdrawn, the data plane stopped, no routes.
func (d *daemon) recoverDataPlane() {
	d.recovery.start = time.Now()
	d.dp.Close() // what is left of the old device; closed already by Run
	if d.routes != nil {
		// The kernel deleted the routes with the device; a device that
		// is still there goes with its last descriptor.
		d.routes.Close()
		d.routes = nil
	}
	tc, log, selfTestFailed := d.cfg.Tun, d.log, d.offloadSelfTest
	opened := make(chan openedDevice, 1)
	d.openedC = opened
	go func() {
		dev, err := openDevice(tc, log, selfTestFailed)
		opened <- openedDevice{dev, err}
	}()
}

// deviceOpened goes on with the attempt once the device is created: the
// rest of steps 3 and 4, then starts the proof.
func (d *daemon) deviceOpened(o openedDevice) {
	if o.err != nil {
		d.recoverFailed(fmt.Errorf("create the device: %w", o.err))
		return
	}
	// A reload meanwhile may have changed busy_poll, the one [tun]
	// setting a reload applies; the device was opened with the old one.
	o.dev.SetBusyPoll(d.cfg.Tun.BusyPoll)
	if err := d.startDevice(o.dev); err != nil {
		d.recoverFailed(err)
		return
	}
	rise, every := d.proofPlan()
	proven := make(chan error, 1)
	d.provenC = proven
	go func() { proven <- proveDataPlane(d.dp, rise, every) }()
}

// recoverFailed schedules the next attempt.
func (d *daemon) recoverFailed(err error) {
	d.recovery.attempts++
	wait := min(recoverFirst<<min(d.recovery.attempts-1, 10), recoverMax)
	d.log.Error("recovery: attempt failed; retrying", "err", err, "attempt", d.recovery.attempts, "retry_in", wait)
	d.recoverC = time.After(wait)
}

// dataPlaneProven ends an attempt with the proof's result.
func (d *daemon) dataPlaneProven(err error) {
	if err != nil {
		d.stopDP()
		if d.dpDone != nil {
			<-d.dpDone
			d.dpDone = nil
		}
		d.recoverFailed(err)
		return
	}
	d.log.Info("recovery: data plane back", "device", d.dp.Device().Name(), "attempts", d.recovery.attempts+1,
		"took", time.Since(d.recovery.start).Round(time.Millisecond), "down_for", time.Since(d.recovery.since).Round(time.Millisecond))
	ctx, cancel := context.WithTimeout(d.ctx, 5*time.Second)
	defer cancel()
	if err := d.lc.ready(ctx, d.lc.plan); err != nil {
		d.log.Warn("recovery: the announcement failed; it is retried", "err", err)
	}
}

// proofPlan is the dataplane check's rise and interval (the defaults
// without one).
func (d *daemon) proofPlan() (int, time.Duration) {
	for _, c := range d.cfg.Health.Checks {
		if c.Kind == health.DataPlane {
			return c.Rise, c.Interval
		}
	}
	return config.DefaultRise, config.DefaultCheckInterval
}

// proveDataPlane waits until the probe has passed rise times in a row,
// every interval; the first passes may take recoverProbeFor (the workers
// start, the routes settle), the others may not fail.
func proveDataPlane(dp *dataplane.DataPlane, rise int, every time.Duration) error {
	first := time.Now().Add(recoverProbeFor)
	passes := 0
	var err error
	for passes < max(rise, 1) {
		ctx, cancel := context.WithTimeout(context.Background(), max(every, time.Second))
		err = dp.Probe(ctx)
		cancel()
		switch {
		case err == nil:
			passes++
		case passes > 0 || time.Now().After(first):
			return errors.Join(fmt.Errorf("the new device failed the data plane's probe after %d passes", passes), err)
		}
		if passes < rise {
			wait := every
			if err != nil {
				wait = 50 * time.Millisecond
			}
			time.Sleep(wait)
		}
	}
	return nil
}

// startDevice gives the new device to the data plane, starts the workers
// and installs the routes; on failure it leaves the data plane stopped and
// no route of its own behind.
func (d *daemon) startDevice(dev tun.Device) (err error) {
	if err := d.dp.Reopen(dev); err != nil {
		dev.Close()
		return err
	}
	d.log.Info("recovery: device created", "device", dev.Name(), "queues", dev.Queues())
	if err := acceptLocal(dev.Name()); err != nil {
		d.log.Warn("ICMPv4 errors from translator.ipv4_address may be dropped", "err", err)
	}
	if err := d.attachFastPath(); err != nil {
		// Required, yet refused on the new device: serve on the tun path
		// rather than not at all; the status and the metric say so.
		d.log.Error("recovery: the fast path is required but could not be attached to the new device; the tun path carries every packet", "err", err)
	}
	d.runDataPlane()
	defer func() {
		if err != nil {
			d.stopDP()
			<-d.dpDone
			d.dpDone = nil
		}
	}()
	want := dataplane.Prefixes(d.dp.Translator())
	if err := d.installRoutes(dev.Name(), want); err != nil {
		return fmt.Errorf("routes: %w", err)
	}
	d.log.Info("recovery: workers running, routes installed; proving the device", "routes", len(want))
	return nil
}
