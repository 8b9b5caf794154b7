package etcdsource

import (
	"fmt"
	"time"

	"github.com/map646/map646/translator"
)

// Snapshot is a whole table: every accepted mapping under the prefix at
// Revision, each from the key MappingKey(prefix, m.IPv4), built into the
// translator's table by the source from its own compact records (a
// million mappings never exist as a []translator.Mapping on the way, 64
// MB). It replaces the table applied before; Table.All yields the
// mappings in IPv4 order.
type Snapshot struct {
	Table    *translator.Table
	Revision int64
	// FromCache is true for the table read from the state directory at
	// start-up, etcd being unreachable; a snapshot from etcd follows when
	// it is reached.
	FromCache bool
}

// Op is what a Delta does.
type Op uint8

const (
	Put    Op = iota + 1 // add Mapping
	Delete               // remove Mapping
)

func (o Op) String() string {
	switch o {
	case Put:
		return "put"
	case Delete:
		return "delete"
	}
	return fmt.Sprintf("Op(%d)", uint8(o))
}

// Delta is one change to the table applied before. A changed value arrives
// as a Delete of the old mapping then a Put of the new one, both at the
// revision of the change. A Put never overlaps a mapping in the table (the
// source refused it otherwise, see BadEntry); a Delete names a mapping
// that is in it.
type Delta struct {
	Op       Op
	Key      string
	Mapping  translator.Mapping
	Revision int64
}

// Applier receives the table's changes, one call at a time, in revision
// order, from the source's goroutine. A call that returns nil has applied
// the changes: the revision the node then serves is published as applied.
//
// ApplyDeltas gets the changes of one or more revisions, which apply as
// one step (during a bulk load, thousands); it returns an error only when
// it applied none of them (its table and the source's disagree: a bug),
// and the source then sends the whole table. The slice is the Applier's:
// the source keeps no reference to it, so that an Applier that makes
// something else of the deltas need not hold them while it applies.
type Applier interface {
	ApplySnapshot(Snapshot)
	ApplyDeltas([]Delta) error
}

// BadEntry is a key the source refused: it is not in the table, and stays
// listed until it is deleted or fixed (an overlap is retried when the
// entry it lost to goes away).
type BadEntry struct {
	Key      string
	Value    string // as stored, at most maxShownValue bytes
	Reason   string
	Revision int64 // the key's ModRevision
}

// maxShownValue bounds the value a BadEntry keeps: a key's value may be
// anything up to etcd's request limit.
const maxShownValue = 200

// State is where the served table stands.
type State uint8

const (
	NoTable   State = iota // nothing to serve: the node must not announce
	FromCache              // the cached table, etcd not reached since start-up
	Synced                 // following etcd
	Stale                  // following etcd until StaleSince, not reaching it now
)

func (s State) String() string {
	switch s {
	case NoTable:
		return "no table"
	case FromCache:
		return "from cache"
	case Synced:
		return "synced"
	case Stale:
		return "stale"
	}
	return fmt.Sprintf("State(%d)", uint8(s))
}

// Status is the source's state for `map646 status` and the node's record.
type Status struct {
	State State
	Since time.Time // when State began
	// Revision is the etcd revision of the table served: every change up
	// to it is applied.
	Revision int64
	// StaleSince is when etcd was last reached (zero while Synced); for a
	// table FromCache, when the cache was written.
	StaleSince time.Time
	// EtcdRevision is etcd's current revision when last reached.
	EtcdRevision int64
	Mappings     int
	BadEntries   int
	// Applied counts the deltas applied and Snapshots the whole tables.
	Applied, Snapshots uint64
}

// String is the one-line summary: "synced, revision 1234, 1000 mappings",
// "from cache, stale since 2026-12-07T11:02:03Z, revision 1234", "no table".
func (s Status) String() string {
	switch s.State {
	case NoTable:
		return "no table"
	case Synced:
		return fmt.Sprintf("synced, revision %d, %d mappings, %d bad entries", s.Revision, s.Mappings, s.BadEntries)
	}
	return fmt.Sprintf("%s, stale since %s, revision %d, %d mappings, %d bad entries",
		s.State, s.StaleSince.UTC().Format(time.RFC3339), s.Revision, s.Mappings, s.BadEntries)
}

// HasTable reports whether there is a table to serve: a node without one
// must not announce its prefixes.
func (s Status) HasTable() bool { return s.State != NoTable }
