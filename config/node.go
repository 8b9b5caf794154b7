package config

import (
	"net/netip"
	"path/filepath"
	"time"

	"github.com/map646/map646/health"
	"github.com/map646/map646/routing"
)

// BGP is the [bgp] section with its [[bgp.neighbor]] entries. Without a
// [bgp] section the node runs no speaker: it translates and routes locally.
type BGP struct {
	// Enabled is true when the section is present.
	Enabled bool
	// Config is the speaker's configuration, ready for routing.New.
	routing.Config

	// MED and Communities are the attributes of every announcement while
	// the node serves.
	MED         uint32
	Communities []uint32
	// DrainMED replaces MED while the node drains (with the
	// GRACEFUL_SHUTDOWN community added): worse than MED, so that routers
	// that ignore the community still prefer the other nodes.
	DrainMED uint32
	// Aggregates are IPv4 prefixes announced instead of the mapped
	// prefixes they cover (each one only while it covers a mapping).
	Aggregates []netip.Prefix
}

// Health is the [health] section: the checks that gate the announcements.
type Health struct {
	Checks []health.Check
}

// Node is the [node] section: the node's life cycle.
type Node struct {
	// StateDir holds the state that survives a restart (the drained flag).
	StateDir string
	// Linger is how long the node keeps translating after a withdrawal
	// (drain, SIGTERM) while the routers converge.
	Linger time.Duration
	// DrainTimeout bounds the wait for the tun traffic to fall to
	// DrainIdlePPS packets per second after the GRACEFUL_SHUTDOWN
	// re-announcement; the drain withdraws when either happens.
	DrainTimeout time.Duration
	DrainIdlePPS int
}

// Control is the [control] section: the unix socket of `map646 status`,
// `drain`, `undrain` and `reload`, and the read-only one of status alone.
type Control struct {
	// Socket is the path of the control socket, created mode 0600.
	Socket string
	// StatusSocket is the path of the read-only status socket, created
	// mode 0660: it answers status and refuses every other command, for a
	// monitoring user who must not drain the node. "": none.
	StatusSocket string
	// StatusGroup is the group that owns StatusSocket (its members may
	// ask for the status); "": the daemon's own group.
	StatusGroup string
}

// Defaults of [bgp], [health], [node] and [control].
const (
	DefaultBGPPort       = 179
	DefaultHoldTime      = 90 * time.Second
	DefaultConnectRetry  = 5 * time.Second
	DefaultBFDInterval   = 300 * time.Millisecond
	DefaultBFDMultiplier = 3
	DefaultDrainMED      = 1000
	DefaultCheckInterval = time.Second
	DefaultCheckTimeout  = 500 * time.Millisecond
	DefaultRise          = 3
	DefaultFall          = 3
	DefaultStateDir      = "/var/lib/map646"
	DefaultLinger        = 2 * time.Second
	DefaultDrainTimeout  = 30 * time.Second
	DefaultDrainIdlePPS  = 10
	DefaultControlSocket = "/run/map646/map646.sock" // the directory: systemd's RuntimeDirectory=map646
)

// Limits of [node].
const (
	maxLinger       = time.Hour
	maxDrainTimeout = time.Hour
	maxDrainIdlePPS = 1 << 30
)

// decodeNode reads [node].
func (c *Config) decodeNode(s *section) {
	n := &c.Node
	n.StateDir = DefaultStateDir
	n.Linger = DefaultLinger
	n.DrainTimeout = DefaultDrainTimeout
	n.DrainIdlePPS = DefaultDrainIdlePPS
	if v, ok := s.str("state_dir"); ok {
		switch {
		case !filepath.IsAbs(v):
			s.bad("state_dir", v, `not an absolute path; accepted: a directory such as "/var/lib/map646"`)
		case filepath.Clean(v) != v:
			s.bad("state_dir", v, "not a clean path; did you mean %q?", filepath.Clean(v))
		default:
			n.StateDir = v
		}
	}
	s.duration("linger", &n.Linger, 0, maxLinger, "translating on after a withdrawal")
	s.duration("drain_timeout", &n.DrainTimeout, 0, maxDrainTimeout, "")
	s.integer("drain_idle_pps", &n.DrainIdlePPS, 0, maxDrainIdlePPS, "packets per second through the tun device")
	s.done()
}

// decodeControl reads [control]; it follows [bgp], whose gRPC socket must
// be another file.
func (c *Config) decodeControl(s *section) {
	c.Control.Socket = DefaultControlSocket
	if v, ok := s.str("socket"); ok {
		if msg := checkSocketPath(v); msg != "" {
			s.bad("socket", v, "%s", msg)
		} else {
			c.Control.Socket = v
		}
	}
	if c.Control.Socket == c.BGP.GRPCSocket {
		s.bad("socket", c.Control.Socket, "is also bgp.grpc_socket; the control socket and the gRPC API need a path each")
	}
	if v, ok := s.str("status_socket"); ok {
		switch msg := checkSocketPath(v); {
		case msg != "":
			s.bad("status_socket", v, "%s", msg)
		case v == c.Control.Socket:
			s.bad("status_socket", v, "is also control.socket; the read-only socket needs a path of its own")
		case v == c.BGP.GRPCSocket:
			s.bad("status_socket", v, "is also bgp.grpc_socket; the status socket and the gRPC API need a path each")
		default:
			c.Control.StatusSocket = v
		}
	}
	if v, ok := s.str("status_group"); ok {
		switch {
		case !s.has("status_socket"):
			s.bad("status_group", v, `has no effect without status_socket; set status_socket = "/run/map646-status.sock" too, or leave it out`)
		case !validGroupName(v):
			s.bad("status_group", v, `not a group name; accepted: a group of the system (letters, digits, "_", "-", "."; not starting with "-"), e.g. "map646-status"`)
		default:
			c.Control.StatusGroup = v
		}
	}
	s.done()
}

// validGroupName reports whether v can name a group (the portable
// characters of POSIX user and group names; numeric ids are not taken).
func validGroupName(v string) bool {
	if v == "" || len(v) > 32 || v[0] == '-' {
		return false
	}
	digits := true
	for _, r := range v {
		switch {
		case r >= '0' && r <= '9':
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r == '_', r == '-', r == '.':
			digits = false
		default:
			return false
		}
	}
	return !digits
}
