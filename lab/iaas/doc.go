// Command iaas is the IaaS controller experiment of issue 15: the mapping
// table as a live resource shared by three map646 nodes through etcd, as
// in the papers' IaaS, where the cloud controller creates and destroys
// virtual machines all day and every translator node must translate every
// VM's flows.
//
//	go build -o bin/iaas ./lab/iaas && ./bin/iaas -full -map646 $PWD/bin/map646 -out lab/iaas/results
//
// (make iaas). As root; Debian's bird2 and etcd-server are installed if
// missing. The short form is TestIaaS, in make test.
//
// # The lab
//
// lab/topo's SIIT-DC lab with three nodes (tokyo, osaka, kyoto) behind the
// BIRD upstream and backend, which route over all three (ECMP), and
// lab/etcdlab's cluster of three etcd members with TLS and client
// certificates. Each node has a second link, eth0, on the cluster's
// switch (etcdlab.Cluster.Attach), and [mappings] source = "etcd"
// (prefix /iaas, the lab's client certificate, 1 s timeouts). The
// controller writes from a namespace of its own on the same switch.
//
//	client4 ── upstream (BIRD) ══ECMP══ tokyo, osaka, kyoto ══ backend (BIRD) ── vms
//	            probe sources                 │ eth0              2001:db8:2::/96 local
//	            192.0.2.40-42                 │
//	                                 etcd switch ── etcd1..3, ctrl
//
// Every mapping of the experiment maps IPv4 address A to 2001:db8:2::A
// (the last 32 bits), and the VMs' namespace routes 2001:db8:2::/96 to
// its loopback ("local"), so that one UDP socket on [::] receives for
// every VM, reads each datagram's destination (IPV6_PKTINFO), and checks
// it and its source (64:ff9b:: + the IPv4 source) against the addresses
// the datagram says it was sent to and from: a mistranslation cannot go
// unseen. The established mappings are 198.51.100.32-39 (plus topo's
// 198.51.100.10 and .11). The lab sends packets to documentation
// addresses only, so the controller's VMs take theirs from
// 198.51.100.64-254 and reuse them: the churn keeps at most churnWindow
// (128) VMs at once, deleting the oldest before each creation past it.
// The million's mappings (100.80.0.0 onwards: a million do not fit in the
// documentation ranges) are never sent a packet: a node's lookup says
// whether it serves them.
//
// # Proving a change on each node
//
// The upstream has one source address per node (192.0.2.40 + i) and a
// policy rule per address (iif lo) whose table routes everything to node
// i: a probe sent from it goes through that node whatever BGP says. After
// each Put the controller sends a probe to the new VM through every node
// each millisecond until it arrives, translated, at the VM: the
// propagation to that node is the time from just before the Put to that
// arrival (an upper bound: it includes etcd's commit and one probe's
// path). After a Delete it sends, each round, a probe to the deleted VM
// and then a marker to an established mapping along the same path; the
// first marker that arrives without its probe proves that the node no
// longer translates it (a datagram to an unmapped address goes back to
// the upstream, which drops it: its source is the upstream's own).
//
// # The run
//
//  1. churn: Changes VMs created one by one (past 128 live, each after
//     the deletion of the oldest), every change proven on all three nodes; p50/p99 of the time to the slowest
//     node and per node; the p99 asserted (100 ms in the full run, 1 s in
//     the short form: a shared machine).
//  2. the etcd leader killed: 20 changes must reach all three (the first
//     waits for the election), then the member restarts.
//  3. kyoto cut off from etcd (its eth0's switch port down): it must say
//     stale (map646_etcd_stale_seconds, `map646 status`), keep serving;
//     40 adds and 20 deletes reach the other two; on heal it must serve
//     etcd's revision and count, and every change of the cut is probed
//     through it.
//  4. osaka cut off and restarted: it must serve its cached table (same
//     count, map646_etcd_from_cache 1, status "from cache") and translate
//     a churn VM; on heal it syncs.
//  5. tokyo drained (`map646 drain`) and undrained.
//  6. Cycles add/del cycles on one mapping: goroutines, descriptors and
//     the Go heap of each node compared between the first half's end and
//     the second's.
//  7. full only: a million mappings loaded into etcd (transactions of 128
//     puts, four writers) while the nodes watch: the time from the load's
//     end until all three serve them (target 10 s, asserted) and each
//     node's VmHWM then (target 300 MB, asserted); then each node
//     restarted on them: the time until it serves them, the millionth
//     looked up on it, its VmHWM (targets 10 s and 300 MB, asserted). The
//     asserted targets hold in the full run only.
//
// Throughout, a numbered UDP stream (16 flows, two per established
// mapping, spread by the upstream's L4 hash over the three nodes) flows
// from the IPv4 client; every phase but the restart must lose none of it,
// and no datagram may arrive mistranslated.
//
// Results: summary.md, changes.csv (each change, per node), revisions.csv
// (each node's revision, staleness, size, RSS, Go heap in use and heap
// freed but not yet returned to the kernel, every 100 ms),
// phases.csv, propagation-cdf.png and revisions.png.
package main
