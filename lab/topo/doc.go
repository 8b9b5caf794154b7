// Package topo builds the labs' topologies in network namespaces, on
// netlab's TB, so that a test (*testing.T) and an experiment (a program's
// netlab.Script) build them the same way:
//
//   - Single (single.go): one node between an IPv4 client and one or two
//     IPv6 servers: the first lab (lab/lab_test.go), the failover prober's
//     tests and each subject of the bench (lab/bench);
//   - Lab (New): the two-node SIIT-DC lab of DESIGN.md, below: the routing
//     labs, the failover experiment and the soak; with Options.Nodes, the
//     same lab with up to four nodes (kyoto and sapporo at the next
//     addresses on sw4 and sw6), every node a partner of every other.
//
// The two-node lab has real BIRD 2 routers on both sides, two real map646
// nodes (tokyo and osaka) serving the same table, IPv6-only servers behind
// the backend.
//
//	client4                upstream (BIRD, AS 65000)                       sw (bridges)
//	c0 192.0.2.2/29 ────── u-c 192.0.2.1/29
//	default via .1         u-sw 192.0.2.17/28 ─────────────────── p-up ─┐
//	                       ECMP (merge paths), GSHUT filter, BFD        │ bridge sw4
//	                                                                    │ 192.0.2.16/28
//	tokyo (map646, AS 65001)                                            │
//	  n4 192.0.2.18/28 ──────────────────────────────────────── p4-tokyo ┤
//	  n6 2001:db8:100::2/64 ─────────────────────────────────── p6-tokyo ┐
//	osaka (map646, AS 65001)                                            ││
//	  n4 192.0.2.19/28 ──────────────────────────────────────── p4-osaka ┘│
//	  n6 2001:db8:100::3/64 ─────────────────────────────────── p6-osaka ─┤ bridge sw6
//	                                                                      │ 2001:db8:100::/64
//	backend (BIRD, AS 65002)                                              │
//	  b-sw 2001:db8:100::1/64 ───────────────────────────────── p-back ───┘
//	  bridge srv 2001:db8:1::1/64 ─┬── srv10: s0 2001:db8:1::10/64 (default via ::1)
//	  ECMP, GSHUT filter, BFD      └── srv11: s0 2001:db8:1::11/64 (default via ::1)
//
// Both bridges live in one namespace of their own ("sw"), so that a node
// can die silently: taking its bridge ports down (KillSilently) cuts it off
// while the routers keep their carrier, as when a machine hangs or a
// cable behind a switch breaks (this kernel has no netem or tc drop
// actions). Only BFD or the BGP hold timer notices.
//
// Each node translates with the same table: 198.51.100.10 <-> 2001:db8:1::10
// (srv10) and 198.51.100.11 <-> 2001:db8:1::11 (srv11), pseudo prefix
// 64:ff9b::/96 (the client is 64:ff9b::c000:202 to the servers). A node
// has default routes to the routers (via 192.0.2.17 and 2001:db8:100::1)
// for the packets it has translated. Its eBGP sessions: the upstream over
// IPv4 (ipv4-unicast: the mapped prefixes), the backend over IPv6
// (ipv6-unicast: the pseudo prefix); tokyo and osaka peer with each other
// over sw4 as partners (iBGP, both families), which is how a drain learns
// that the other node still announces. The routers announce nothing to the
// nodes unless Options.PeerRoutes (203.0.113.0/24 from the upstream,
// 2001:db8:ffff::/48 from the backend: routes that must not enter a
// node's RIB).
//
// With Options.NoBGP the nodes run without [bgp] and the routers hold
// static multipath routes to both nodes instead: the data path alone.
//
// Everything is removed when the test ends (netlab's cleanups). Node
// configurations follow map646's configuration file ([bgp] with
// [[bgp.neighbor]], [[health.check]], [node], [control]); NodeConfig renders
// them and a test may change a node's before (re)starting it.
//
// It owns the topologies: their namespaces, links, routers and nodes,
// through netlab's TB. It imports lab/netlab, lab/poll and
// cmd/map646/control (to read the nodes' status); lab/failover, lab/soak, lab/bench and the lab
// tests import it.
package topo
