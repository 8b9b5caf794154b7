package daemon

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// The daemon loop: one goroutine owns the node's state (the lifecycle, the
// configuration, the data plane's recovery) and handles every event that
// changes it, one at a time: signals, the control socket's commands, the
// drain's timers, health and BGP changes, the data plane stopping and its
// recovery, the retry tick and the state_dir check. Slow work that must
// not hold it up (proving a re-created device) runs in a goroutine of its
// own and comes back as an event.

// retryEvery is how often a failed announcement is retried and [node]
// state_dir checked.
const retryEvery = 2 * time.Second

func (d *daemon) run() error {
	// Signals are taken from the start: a SIGTERM while the routes are
	// being installed waits for the start to finish, then stops.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigs)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	d.ctx = ctx

	if err := d.start(); err != nil {
		d.log.Error("cannot start", "err", err)
		if err := d.shutdown(nil); err != nil {
			d.log.Error("cleanup after the failed start", "err", err)
		}
		return err
	}
	return d.loop(sigs)
}

// loop handles the events until the daemon stops: it returns nil after a
// SIGTERM or SIGINT with a clean shutdown, else what failed.
func (d *daemon) loop(sigs chan os.Signal) error {
	var hmChanges, bgpChanges <-chan struct{}
	if d.hm != nil {
		hmChanges = d.hm.Changes()
	}
	if d.bgp != nil {
		bgpChanges = d.bgp.Changes()
	}
	retry := time.NewTicker(retryEvery)
	defer retry.Stop()
	ctx := d.ctx
	d.checkStateDir()
	for {
		select {
		case sig := <-sigs:
			if sig == syscall.SIGHUP {
				d.reload()
				continue
			}
			d.log.Info("stopping", "signal", sig.String())
			if err := d.shutdown(sigs); err != nil {
				d.log.Error("stopped with errors", "err", err)
				return err
			}
			d.log.Info("stopped")
			return nil
		case r := <-d.requests:
			if r.command == "reload" {
				r.answer(d.reload())
			} else {
				d.lc.handle(ctx, r)
			}
		case now := <-d.lc.drainTick():
			d.lc.drainSample(ctx, now)
		case <-d.lc.drainTimer():
			d.lc.drainTimerFired(ctx)
		case <-hmChanges:
			d.lc.reconcile(ctx)
		case <-bgpChanges:
			d.lc.reconcile(ctx)
		case <-retry.C:
			if d.lc.needsRetry() {
				d.lc.reconcile(ctx)
			}
			d.checkStateDir()
		case <-d.recoverC:
			d.recoverC = nil
			d.recoverDataPlane()
		case err := <-d.provenC:
			d.provenC = nil
			d.dataPlaneProven(err)
		case err := <-d.hmDone:
			d.hmDone = nil
			d.log.Error("the health monitor stopped; the node withdraws and stops", "err", err)
			if err := d.shutdown(nil); err != nil {
				d.log.Error("cleanup", "err", err)
			}
			return fmt.Errorf("the health monitor stopped: %w", err)
		case err := <-d.dpDone:
			d.dpDone = nil // Run has returned
			d.dataPlaneFailed(err)
		}
	}
}

// shutdown takes the daemon down. This is the one place its order is
// written:
//  1. withdraw every announcement, so routers move the traffic to the other
//     nodes;
//  2. keep translating for [node] linger while they converge (a withdrawal
//     takes milliseconds to reach a router, but a slow one must not lose
//     packets; a second signal on sigs cuts the wait short). Meanwhile the
//     control socket's drain and undrain are still carried out, and a
//     running drain goes on; a reload is refused;
//  3. end a drain still running (its client hears where it stopped; the
//     node restarts drained) and close the control socket;
//  4. close the speaker (a Cease to every peer), then the health monitor;
//  5. remove the kernel routes, so the kernel sends nothing more into the
//     device while the workers translate what is queued;
//  6. stop the data plane, which closes the device (the kernel deletes it
//     with its last queue); stop the metrics server.
//
// Without [bgp], or with nothing announced, there is nothing to withdraw
// and no linger. It undoes whatever part of start was done, and returns
// everything that failed on the way.
func (d *daemon) shutdown(sigs <-chan os.Signal) error {
	var errs []error
	ctx, cancel := context.WithTimeout(d.ctx, 10*time.Second)
	defer cancel()
	if d.lc != nil && d.bgp != nil { // 1 and 2
		n := len(d.bgp.Announced())
		if err := d.lc.withdrawAll(ctx); err != nil {
			errs = append(errs, fmt.Errorf("withdraw: %w", err))
		}
		if linger := d.cfg.Node.Linger; n > 0 && linger > 0 {
			d.log.Info("withdrawn; translating while routers converge", "prefixes", n, "linger", linger)
			d.linger(linger, sigs)
		}
	}
	if d.lc != nil { // 3
		d.lc.interruptDrain(context.Canceled)
	}
	if d.control != nil {
		d.control.Close()
	} else if d.controlLn != nil {
		d.controlLn.Close()
	}
	if d.bgp != nil { // 4
		if err := d.bgp.Close(ctx); err != nil {
			errs = append(errs, fmt.Errorf("bgp: %w", err))
		}
	}
	if d.stopHM != nil {
		d.stopHM()
		if d.hmDone != nil {
			<-d.hmDone
		}
	}
	if d.routes != nil { // 5
		n := len(d.routes.Installed())
		start := time.Now()
		if err := d.routes.RemoveAll(); err != nil {
			errs = append(errs, err)
		}
		d.log.Info("routes removed", "count", n-len(d.routes.Installed()), "took", time.Since(start).Round(time.Millisecond))
		d.routes.Close()
	}
	if d.dp != nil { // 6
		if d.stopDP != nil {
			d.stopDP()
		}
		if d.dpDone != nil {
			if err := <-d.dpDone; err != nil {
				errs = append(errs, err)
			}
		} else if err := d.dp.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	if d.metrics != nil {
		ctx, cancel := context.WithTimeout(d.ctx, 2*time.Second)
		defer cancel()
		if err := d.metrics.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("metrics server: %w", err))
		}
	}
	return errors.Join(errs...)
}

// linger waits for d (shutdown's step 2) or a signal on sigs (nil: none),
// still serving the control socket's drain and undrain and a running
// drain's timers; nothing else changes the node while it stops.
func (d *daemon) linger(wait time.Duration, sigs <-chan os.Signal) {
	done := time.After(wait)
	for {
		select {
		case <-done:
			return
		case sig := <-sigs: // nil sigs: never
			d.log.Warn("linger cut short", "signal", sig.String())
			return
		case r := <-d.requests:
			if r.command == "reload" {
				r.answer("", errStopping)
			} else {
				d.lc.handle(d.ctx, r)
			}
		case now := <-d.lc.drainTick():
			d.lc.drainSample(d.ctx, now)
		case <-d.lc.drainTimer():
			d.lc.drainTimerFired(d.ctx)
		}
	}
}
