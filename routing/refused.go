package routing

import (
	"context"
	"log/slog"
	"net/netip"
	"sync"
	"time"
)

// gobgpRefusedMsg is what GoBGP logs, at info level, for each TCP
// connection to the listener from an address that is no neighbor, with
// the address as the "Key" attribute. Anyone who can reach port 179 can
// make it log one line per connection.
const gobgpRefusedMsg = "Can't find configuration for a new passive connection"

// Limits of the refused-connection log: in each window, one line per
// source address and at most refusedLinesPerWindow lines in all; what is
// left out is counted and summed up in one line at the end of the window.
const (
	refusedWindow         = time.Minute
	refusedLinesPerWindow = 10
)

// refusedLog rate-limits the lines about refused connections. The set of
// sources is emptied with each window and holds at most
// refusedLinesPerWindow addresses, so a flood from many addresses costs no
// memory either.
type refusedLog struct {
	log   func(r slog.Record) // writes a line to the daemon's log
	now   func() time.Time
	after func(time.Duration, func()) // time.AfterFunc, for the summary

	mu         sync.Mutex
	start      time.Time // of the current window
	sources    map[netip.Addr]bool
	suppressed int
	summary    bool // a summary is scheduled for the current window
}

func newRefusedLog(log func(slog.Record)) *refusedLog {
	return &refusedLog{
		log:   log,
		now:   time.Now,
		after: func(d time.Duration, f func()) { time.AfterFunc(d, f) },
	}
}

// refused is given each refused-connection record from GoBGP; it logs the
// record or counts it.
func (l *refusedLog) refused(r slog.Record, from netip.Addr) {
	l.mu.Lock()
	now := l.now()
	if l.sources == nil || now.Sub(l.start) >= refusedWindow {
		l.start, l.sources = now, map[netip.Addr]bool{}
	}
	if l.sources[from] || len(l.sources) >= refusedLinesPerWindow {
		l.suppressed++
		if !l.summary {
			l.summary = true
			l.after(l.start.Add(refusedWindow).Sub(now), l.flush)
		}
		l.mu.Unlock()
		return
	}
	l.sources[from] = true
	l.mu.Unlock()
	l.log(r)
}

// flush writes the summary of the window that ended; the next refused
// connection starts a new window.
func (l *refusedLog) flush() {
	l.mu.Lock()
	n := l.suppressed
	l.suppressed, l.summary = 0, false
	l.mu.Unlock()
	if n == 0 {
		return
	}
	r := slog.NewRecord(l.now(), slog.LevelWarn, "refused more BGP connections from addresses that are not neighbors", 0)
	r.AddAttrs(slog.Int("not_logged", n), slog.Duration("within", refusedWindow))
	l.log(r)
}

// refusedSource returns the source address of a refused-connection record
// from GoBGP.
func refusedSource(r slog.Record) (netip.Addr, bool) {
	if r.Message != gobgpRefusedMsg {
		return netip.Addr{}, false
	}
	var from netip.Addr
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "Key" {
			from, _ = netip.ParseAddr(a.Value.String())
			return false
		}
		return true
	})
	// A record without the address is still rate-limited, as one source.
	return from, true
}

// handleRefused is the part of captureHandler.Handle for refused
// connections.
func (h *captureHandler) handleRefused(ctx context.Context, r slog.Record) bool {
	from, ok := refusedSource(r)
	if !ok || h.refused == nil {
		return false
	}
	if !h.forward(ctx, r.Level) {
		return true
	}
	h.refused.refused(r, from)
	return true
}
