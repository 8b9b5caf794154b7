package routing

import (
	"context"
	"log/slog"
	"net/netip"
)

// captureHandler is the slog.Handler GoBGP logs through. It forwards every
// record to the daemon's handler (filtered by level, which the gobgp CLI may
// change) and picks out the one fact GoBGP reports nowhere else: why an
// outgoing connection to a neighbor failed ("failed to connect", logged at
// debug level by the peer's FSM, whose logger carries the neighbor address
// as the "Key" attribute). It also rate-limits GoBGP's line about each
// refused connection (refused.go), and drops GoBGP's lines about the
// events the speaker logs itself (gobgpDuplicates).
type captureHandler struct {
	inner slog.Handler
	level *slog.LevelVar
	peer  netip.Addr // from a "Key" attribute added with With
	sink  func(peer netip.Addr, msg string)
	// refused rate-limits GoBGP's line about each connection from an
	// address that is no neighbor (refused.go).
	refused *refusedLog
}

// Enabled is true for every record of a peer's logger, so that debug-level
// connection failures reach Handle even when the daemon logs at info.
func (h *captureHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.peer.IsValid() || h.forward(ctx, l)
}

func (h *captureHandler) forward(ctx context.Context, l slog.Level) bool {
	return l >= h.level.Level() && h.inner.Enabled(ctx, l)
}

// gobgpDuplicates are GoBGP's lines about events the speaker logs itself
// (onPeerEvent, addPeer, deletePeer, Close), by GoBGP's message, with the
// speaker's line that says it: the speaker's says more (the state it came
// from, why a session went down, at WARN when it was not our doing), so
// GoBGP's is dropped and each event makes one line. GoBGP's other lines
// (notifications sent and received, hold timer expiry, malformed
// messages) say what the speaker's do not, and pass.
var gobgpDuplicates = map[string]string{
	"Peer Up":                     "neighbor up",
	"Peer Down":                   "neighbor down",
	"Add a peer configuration":    "neighbor added",
	"Delete a peer configuration": "neighbor removed, or speaker stopped",
	"shutting down":               "speaker stopped",
}

func (h *captureHandler) Handle(ctx context.Context, r slog.Record) error {
	if _, dup := gobgpDuplicates[r.Message]; dup {
		return nil
	}
	if h.handleRefused(ctx, r) {
		return nil
	}
	if h.peer.IsValid() && r.Message == "failed to connect" {
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "Error" {
				h.sink(h.peer, "connect: "+a.Value.String())
				return false
			}
			return true
		})
	}
	if !h.forward(ctx, r.Level) {
		return nil
	}
	return h.inner.Handle(ctx, r)
}

func (h *captureHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	c := *h
	c.inner = h.inner.WithAttrs(attrs)
	for _, a := range attrs {
		if a.Key == "Key" {
			if addr, err := netip.ParseAddr(a.Value.String()); err == nil {
				c.peer = addr
			}
		}
	}
	return &c
}

func (h *captureHandler) WithGroup(name string) slog.Handler {
	c := *h
	c.inner = h.inner.WithGroup(name)
	return &c
}
