package daemon

import (
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	sd "github.com/coreos/go-systemd/v22/daemon"
)

// map646 run as a systemd service of Type=notify (sd_notify(3)); without
// NOTIFY_SOCKET in the environment every message below is a no-op.
//
//   - READY=1 once start is done: the device, its workers and routes, the
//     metrics server, the speaker, the health monitor and the control
//     socket all run. The node may still be starting (its checks rising),
//     drained or failed: READY says the daemon started, not that the node
//     announces; STATUS= and 'map646 status' say what it does.
//   - RELOADING=1 with MONOTONIC_USEC= when a reload (SIGHUP or 'map646
//     reload') begins, READY=1 when it ends, applied or refused: the
//     daemon runs on either way; 'map646 reload' exits 1 for a refusal.
//   - STOPPING=1 when the shutdown begins (a signal, or the health monitor
//     stopped), before the withdrawal and the linger.
//   - STATUS= the node's state and its cause, whenever they change.
//   - WATCHDOG=1, when systemd set WATCHDOG_USEC (WatchdogSec=), every half
//     of it, from the daemon loop and only while the data plane's workers
//     all run and none is stuck in a batch (dataplane.Alive): a hung loop
//     or a dead or stuck data plane stops the pings, and systemd kills and
//     restarts map646 (Restart=on-failure) after WatchdogSec. When the
//     device is deleted under it the daemon re-creates it on its own
//     (recover.go); the pings resume as soon as the new workers run, so
//     systemd steps in only when that takes longer than WatchdogSec. A
//     reload, which can take half a minute for a million scattered
//     mappings, is pinged through from a goroutine of its own while the
//     data plane is alive.

// serviceManager sends the daemon's notifications to systemd.
type serviceManager struct {
	log *slog.Logger
	// every is how often WATCHDOG=1 is sent: half of WATCHDOG_USEC; 0
	// without a watchdog.
	every   time.Duration
	pinging bool   // the last watchdog tick sent WATCHDOG=1 (the loop's)
	status  string // the last STATUS= sent (the loop's)
	// failed: the last notification could not be sent; read and written
	// by the loop and a reload's watchdog goroutine.
	failed atomic.Bool
}

func newServiceManager(log *slog.Logger) *serviceManager {
	s := &serviceManager{log: log}
	usec, err := sd.SdWatchdogEnabled(false)
	if err != nil {
		log.Warn("systemd watchdog: WATCHDOG_USEC is unreadable; no watchdog pings", "err", err)
	}
	s.every = usec / 2
	return s
}

// notify sends state (newline-separated assignments); a failure is logged
// once until a notification goes through again.
func (s *serviceManager) notify(state string) {
	if _, err := sd.SdNotify(false, state); err != nil {
		if !s.failed.Swap(true) {
			s.log.Warn("cannot notify systemd (NOTIFY_SOCKET)", "err", err, "message", strings.ReplaceAll(state, "\n", " "))
		}
		return
	}
	if s.failed.Swap(false) {
		s.log.Info("notifying systemd again (NOTIFY_SOCKET)")
	}
}

// ready says start or a reload is done, with the node's status.
func (s *serviceManager) ready(status string) {
	s.status = status
	s.notify("READY=1\nSTATUS=" + status)
}

// reloading says a reload begins. systemd 253 and later want the
// CLOCK_MONOTONIC time with it, to tell this reload's READY=1 from an
// earlier one's.
func (s *serviceManager) reloading() {
	s.status = "reloading"
	s.notify("RELOADING=1\n" + sd.SdNotifyMonotonicUsec() + "STATUS=reloading")
}

// stopping says the shutdown begins.
func (s *serviceManager) stopping() {
	s.status = "stopping"
	s.notify("STOPPING=1\nSTATUS=stopping")
}

// setStatus sends STATUS= when status changed.
func (s *serviceManager) setStatus(status string) {
	if status != s.status {
		s.status = status
		s.notify("STATUS=" + status)
	}
}

// watchdogTick returns the channel of the watchdog's ticks, nil without a
// watchdog, and the function that stops it.
func (s *serviceManager) watchdogTick() (<-chan time.Time, func()) {
	if s.every <= 0 {
		return nil, func() {}
	}
	t := time.NewTicker(s.every)
	return t.C, t.Stop
}

// watchdog sends WATCHDOG=1 when dead is nil, and logs when the pings stop
// and start again.
func (s *serviceManager) watchdog(dead error) {
	if dead != nil {
		if s.pinging {
			s.log.Error("systemd watchdog: no more pings while the data plane is down: systemd restarts map646 after WatchdogSec unless it comes back", "err", dead)
		}
		s.pinging = false
		return
	}
	if !s.pinging {
		s.log.Info("systemd watchdog: pinging while the data plane runs", "every", s.every.String())
	}
	s.pinging = true
	s.notify("WATCHDOG=1")
}

// pingDuring keeps the watchdog pinged while the loop is busy with a long
// task, as long as alive says the data plane runs; the returned function
// stops it and waits for it.
func (s *serviceManager) pingDuring(alive func() error) (stop func()) {
	if s.every <= 0 {
		return func() {}
	}
	done, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		t := time.NewTicker(s.every)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				if alive() == nil {
					s.notify("WATCHDOG=1")
				}
			}
		}
	}()
	return func() { close(done); <-stopped }
}

// statusLine is the node's state for STATUS=: the state, and its cause
// unless that says no more.
func (c *lifecycle) statusLine() string {
	v := c.view.Load()
	line := v.state.String()
	if v.cause != "" {
		line += ": " + v.cause
	}
	return strings.ReplaceAll(line, "\n", "; ")
}

// reloadNotifying is reload between systemd's RELOADING=1 and READY=1, the
// watchdog pinged through it.
func (d *daemon) reloadNotifying() (string, error) {
	d.sd.reloading()
	stop := d.sd.pingDuring(d.dp.Alive)
	msg, err := d.reload()
	stop()
	d.sd.ready(d.lc.statusLine())
	return msg, err
}
