// Package etcdsource reads the mapping table from etcd, the source of truth
// shared by every node of a cluster ([mappings] source = "etcd"), and hands
// its changes to the table the node serves.
//
// # Keys
//
// One key per mapping, under the configured prefix (default "/map646"):
//
//	/map646/mappings/198.51.100.10      ->  2001:db8:1::10
//	/map646/mappings/198.51.100.16/28   ->  2001:db8:2::/124
//
// The key names the IPv4 side, written as an address for a /32 and as a
// prefix otherwise (one key per IPv4 prefix: 198.51.100.10/32 is refused),
// the value is the IPv6 side as text, trailing whitespace ignored. A cloud
// controller writes it with etcdctl or any client:
//
//	etcdctl put /map646/mappings/198.51.100.10 2001:db8:1::10
//	etcdctl del /map646/mappings/198.51.100.10
//
// Each entry is checked as a line of a mapping file is (config.ParseMapping).
// A bad entry (unparsable key or value, invalid mapping, overlap with
// another key, beyond max_mappings) is refused, logged with its key and
// reason, counted and listed by BadEntries, and the rest of the table keeps
// working. Of two overlapping keys the older (lower ModRevision) wins on
// every node, whether it met them one by one through the watch or in a
// whole read; the loser is retried when the winner goes.
//
// # Life
//
// Run reads the whole prefix at one revision R, page by page (PageSize keys
// per request, each page at R), applies it as a Snapshot (the translator's
// table, built from the records below), then watches from R+1 and applies
// the changes as Deltas. The changes that arrive together are applied as
// one batch (ApplyDeltas): a controller's bulk load, thousands of keys a
// second, costs one apply per batch, not one per key. After an apply that
// took long (a large table built anew) the watch only gathers, for up to
// twice that time, and applies as soon as it has been quiet for 100 ms:
// a node following a steady bulk load spends at most a third of a CPU on it and
// serves the last key moments after the load ends. A watch that finds its
// revision compacted (after a long disconnection) reads the whole prefix
// again and applies a new Snapshot. The table is kept here in a compact
// form (24 bytes per mapping plus 8 of sorted positions), which is also
// what finds overlaps.
//
// The last table applied is cached in the state directory (written a
// second after a burst of changes, atomically). A node started while etcd
// is unreachable serves the cached table (State FromCache, "from cache,
// stale since T, revision R") until etcd answers; a node with neither has
// NoTable and must not announce.
//
// Losing etcd never withdraws anything: stateless translation with a
// slightly stale table beats every node withdrawing at once. The source
// only reports it: a probe every ProbeInterval (a linearizable read, which
// needs the cluster's quorum) turns a Synced source Stale since its last
// contact, and back when etcd answers; the watch then resumes where it
// stopped, so no change is lost. Status, the Prometheus metrics (Register)
// and the node's record say so.
//
// Each node publishes its record (NodeRecord: revision served, its table's
// state and since when, the node's own state given by Config.NodeState,
// version) as JSON under prefix/nodes/NODE_ID, on a lease renewed
// while the process lives; ReadNodes reads them all for `map646 status
// -cluster`, with each node's lag behind etcd's current revision.
//
// Add and Remove write a mapping to etcd (`map646 mapping add|del` on a
// node with the etcd source); the change then reaches every node through
// its watch, this one included (WaitRevision).
//
// The package owns the etcd client and the source's state; the table
// itself is the Applier's (the daemon's). It imports config (for the
// [mappings.etcd] section and the mapping checks) and translator (for
// Mapping), and go.etcd.io/etcd/client/v3.
package etcdsource
