package control

import (
	"fmt"
	"time"
)

// Status is the answer to the control command "status", printed by
// `map646 status -json`. It is a stable interface: fields are added, never
// renamed or removed. Times are RFC 3339, durations milliseconds.
type Status struct {
	Version string     `json:"version"`
	Node    NodeStatus `json:"node"`
	// Health: each configured check, in configuration order.
	Health []CheckStatus `json:"health"`
	// Neighbors: each BGP neighbor, in configuration order (none without
	// [bgp]).
	Neighbors []NeighborStatus `json:"neighbors"`
	// Announced: what the speaker announces now, sorted by prefix.
	Announced []AnnouncedStatus `json:"announced"`
	Traffic   TrafficStatus     `json:"traffic"`
	// Mappings is where the mapping table comes from and how it stands.
	Mappings *MappingsStatus `json:"mappings,omitempty"`
}

// NodeStatus is the node's state machine.
type NodeStatus struct {
	// State: starting, serving, draining, drained or failed.
	State string    `json:"state"`
	Since time.Time `json:"since"`
	Cause string    `json:"cause"`
	// Drain is the last progress line of a running drain; "" otherwise.
	Drain string `json:"drain,omitempty"`
	// BGP says whether a speaker runs ([bgp] configured).
	BGP bool `json:"bgp"`
	// StateDir: "ok" when [node] state_dir took a test write at the last
	// check (every 2 s), else "not writable: " and why (a full disk:
	// "no space left on device"): a drain would be refused.
	StateDir string `json:"state_dir"`
}

// CheckStatus is one health check (health.Status).
type CheckStatus struct {
	Name   string `json:"name"`
	Kind   string `json:"kind"`
	Target string `json:"target,omitempty"`
	// Withdraws is what the node withdraws while the check is down: all,
	// ipv4 or ipv6.
	Withdraws string    `json:"withdraws"`
	Up        bool      `json:"up"`
	Since     time.Time `json:"since"`
	// LastError is the error of the last failed probe ("" if none failed).
	LastError      string  `json:"last_error,omitempty"`
	LastDurationMS float64 `json:"last_duration_ms"`
	// Passes and Failures are consecutive; Checked counts every probe.
	Passes   int `json:"passes"`
	Failures int `json:"failures"`
	Checked  int `json:"checked"`
	// Rises and Falls count its transitions up and down since it was
	// added.
	Rises uint64 `json:"rises"`
	Falls uint64 `json:"falls"`
}

// NeighborStatus is one BGP neighbor (routing.NeighborStatus).
type NeighborStatus struct {
	Address     string   `json:"address"`
	PeerAS      uint32   `json:"peer_as"`
	Description string   `json:"description,omitempty"`
	Role        string   `json:"role"` // router or partner
	Families    []string `json:"families"`
	// State is GoBGP's: idle, connect, active, opensent, openconfirm,
	// established.
	State       string    `json:"state"`
	Established bool      `json:"established"`
	Since       time.Time `json:"since"`
	Sent        int       `json:"prefixes_sent"`
	Received    int       `json:"prefixes_received"`
	LastError   string    `json:"last_error,omitempty"`
	BFD         string    `json:"bfd"` // off, down, init, up
}

// AnnouncedStatus is one announced prefix with its attributes.
type AnnouncedStatus struct {
	Prefix string `json:"prefix"`
	MED    uint32 `json:"med"`
	// Communities as ASN:value; 65535:0 is GRACEFUL_SHUTDOWN.
	Communities []string `json:"communities,omitempty"`
}

// TrafficStatus is the data plane's counters since the start.
type TrafficStatus struct {
	// Directions "4to6" and "6to4", by the version of the packet read.
	Directions map[string]DirectionStatus `json:"directions"`
	// Other counts packets read that were neither IPv4 nor IPv6.
	Other                uint64 `json:"other_packets"`
	ICMPErrorsSent       uint64 `json:"icmp_errors_sent"`
	ICMPErrorsSuppressed uint64 `json:"icmp_errors_suppressed"`
	WriteErrors          uint64 `json:"write_errors"`
	DeviceDropped        uint64 `json:"device_dropped"`
	// ProbePackets counts the data plane's own health-check probes read
	// (4to6, also in Directions["4to6"]): not traffic, and not waited for
	// by a drain.
	ProbePackets uint64 `json:"probe_packets"`
}

// DirectionStatus counts one direction.
type DirectionStatus struct {
	Packets     uint64 `json:"packets"` // read
	Bytes       uint64 `json:"bytes"`   // read
	Forwarded   uint64 `json:"forwarded"`
	Dropped     uint64 `json:"dropped"`
	ICMPErrors  uint64 `json:"icmp_errors"` // answered with an ICMP error
	SentPackets uint64 `json:"sent_packets"`
	SentBytes   uint64 `json:"sent_bytes"`
}

// Community formats a BGP community as ASN:value, as Status shows it.
func Community(c uint32) string { return fmt.Sprintf("%d:%d", c>>16, c&0xffff) }

// MappingsStatus is where the mapping table comes from ([mappings]
// source) and how it stands: for the etcd source, the revision served and
// since when etcd has not been reached.
type MappingsStatus struct {
	// Source is "file" or "etcd".
	Source string `json:"source"`
	// State: "file" for the file; for etcd: synced, stale, from cache
	// (etcd not reached since the start: the cached table is served) or
	// no table (nothing to serve: the node announces nothing).
	State string    `json:"state"`
	Since time.Time `json:"since"`
	// Summary is the one line status shows: "synced, revision 1234, 1000
	// mappings, 0 bad entries", "stale since T, revision R, ...".
	Summary  string `json:"summary"`
	Mappings int    `json:"mappings"`
	// The etcd source's: the revision of the table served, etcd's
	// revision when last reached, when it was last reached (zero while
	// synced; the cache's time for a table from cache).
	Revision     int64      `json:"revision,omitempty"`
	EtcdRevision int64      `json:"etcd_revision,omitempty"`
	StaleSince   *time.Time `json:"stale_since,omitempty"`
	// BadEntries are the keys refused (at most MaxBadEntriesShown of
	// them, in key order); BadCount how many there are.
	BadCount   int              `json:"bad_count"`
	BadEntries []BadEntryStatus `json:"bad_entries,omitempty"`
}

// MaxBadEntriesShown bounds the bad entries a status carries.
const MaxBadEntriesShown = 20

// BadEntryStatus is a key the etcd source refused.
type BadEntryStatus struct {
	Key    string `json:"key"`
	Value  string `json:"value"`
	Reason string `json:"reason"`
}

// ClusterStatus answers "cluster" (`map646 status -cluster`): every node's
// record under the etcd prefix.
type ClusterStatus struct {
	EtcdRevision int64         `json:"etcd_revision"`
	Nodes        []ClusterNode `json:"nodes"`
}

// ClusterNode is one node's record (config/etcdsource NodeRecord) and its
// lag behind etcd's revision.
type ClusterNode struct {
	Node       string    `json:"node"`
	State      string    `json:"state"` // the node's: serving, drained...
	Table      string    `json:"table"` // its table's: synced, stale...
	Since      time.Time `json:"since"` // when Table's state began
	Revision   int64     `json:"revision"`
	Lag        int64     `json:"lag"`
	Mappings   int       `json:"mappings"`
	BadEntries int       `json:"bad_entries"`
	Version    string    `json:"version"`
}
