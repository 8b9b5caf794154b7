// Package daemon is `map646 run`: the translator on its tun device, joined
// to the BGP speaker and the health checks by the node's life cycle.
//
// It owns the running node: the device, the data plane and its recovery
// (recover.go), the kernel routes, the metrics server, the servers of the
// control socket and of the read-only status socket, the speaker, the health monitor, and the node's state. One
// goroutine owns all of it: the daemon loop (run.go), which handles every
// event that changes it, one at a time (signals, the control socket's
// commands, health and BGP changes, the data plane stopping, the drain's
// timers), and writes the shutdown order in one function. The node state
// machine (node.go) is pure; the lifecycle (lifecycle.go) feeds it and
// turns it into announcements; a drain (drain.go) is a state the loop
// drives; the drained flag (drainflag.go) keeps it across a restart.
// Other goroutines read the node only through the view the loop publishes
// (lifecycle.Status), and its transition counts (Node.Entered, atomic).
//
// The metrics (metrics.go, wiring.go): what /metrics serves is collectors
// plus, once the speaker runs, GoBGP's own collectors (routing's
// Speaker.Collectors). State and check transitions are counters, so that a
// node or a check that fails and recovers between two scrapes leaves a
// trace the gauges cannot. The alerting rules and the Grafana dashboard of
// config/examples/monitoring use these names; monitoring_test.go checks
// each name they use against what the collectors describe, and runs
// promtool on the rules.
//
// It needs capabilities, not root (caps.go: Preflight names a missing one
// and why), and speaks systemd's notify protocol (systemd.go): READY,
// RELOADING, STOPPING, STATUS, and a watchdog pinged from the loop only
// while the data plane's workers run (dataplane.Alive). The unit is
// cmd/map646/package/map646.service.
//
// The mapping table changes at run time (mappings.go): a `map646 mapping
// add|del` or a MappingUpdate from another mapping source is an event of
// the loop, applied as a delta to the table, its kernel routes and its
// announcements (ApplyMappings, ApplySnapshot); lookups and listings read
// a snapshot of the table outside the loop.
//
// It imports the project's config, translator, translator/dataplane,
// translator/tun, routing and health, and cmd/map646/control for the
// socket's protocol and the status schema; nothing imports it but the
// command (cmd/map646), which parses the flags, loads the configuration
// and calls Run. It is the one place that joins health to routing.
package daemon
