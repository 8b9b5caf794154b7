package main

import (
	"fmt"
	"io"
	"log/slog"

	"github.com/map646/map646/cmd/map646/daemon"
	"github.com/map646/map646/config"
)

const runUsage = `Usage: map646 run -config FILE

Run the translator. map646 run, as root or as a user with the capabilities
below (the packaged unit runs it as user map646):
  1. loads and checks FILE as 'map646 check' does (a problem: exit 1; a
     FILE holding a BGP password that others may read: a WARN line);
  2. creates the control socket [control] socket (default
     /run/map646/map646.sock, mode 0600, at most 16 connections served at
     once; its directory is made when missing), refusing to start when
     another map646 answers on it (a stale one is removed), and the read-only [control] status_socket if set
     (mode 0660, group [control] status_group: status only, 16 more
     connections of its own); reads the drained flag in [node] state_dir;
  3. creates the tun device [tun] name (default map646) with its MTU,
     offloads, queues and txqueuelen, and brings it up; with offload =
     true it self-tests each offload it enabled (csum, tso4, tso6, uso4,
     uso6): a packet of each kind goes round a loop on the node (a
     host route of 203.0.113.254 or 2001:db8:646:ffff::1 back into the
     device, forwarded by the kernel, for about a millisecond) and must
     come back byte for byte; one that fails is switched off (logged at
     WARN, map646_tun_offload_enabled 0) and the node runs without it.
     Without forwarding the loop cannot work: the offloads stay on,
     untested (logged);
  4. with [fastpath] mode auto or required, attaches the kernel fast path
     (an eBPF tc program) at the device's egress: it translates the
     common case inside the kernel (TCP, UDP with a checksum, ICMP echo,
     mapped, without options or fragments) and leaves every other packet
     to the workers; where the kernel refuses it (no BPF, no CAP_BPF, a
     kernel before 6.6) auto logs a WARN and goes on without it, required
     refuses to start. The same after a recovery re-creates the device;
     a reload gives it the new table; a fast path that fails (its part of
     the dataplane check every 10 s, a reload it cannot take) is detached
     with a WARN and the node serves on the tun path, announcements kept;
     starts one worker thread per device queue (with [tun] busy_poll, a
     worker whose queue is empty reads on for that long before it sleeps);
  5. serves Prometheus metrics at http://[metrics] listen/metrics
     (default 127.0.0.1:9646; loopback only unless allow_remote = true;
     a connection is closed when its request header takes over 5 s, its
     request 10 s, its answer 30 s, or it idles 30 s);
  6. removes routes of protocol 246 left by an earlier map646 (logged), then
     routes every mapped IPv4 prefix (adjacent ones merged) and the pseudo
     prefix into the device: 'ip route show proto 246' lists them;
  7. with [bgp], starts the BGP speaker (GoBGP v4) and its neighbors; then
     the [health] checks (without [health]: one dataplane check), and logs
     "started" (with the device, its queues and offloads, the mappings,
     the routes and the time it took). The node is starting still: it
     serves, and logs "node state" state=serving, once every check has
     risen (with the default dataplane check, about 3 s later).
     With [mappings] source = "etcd" it starts with an empty table and
     follows etcd (config/etcdsource): the whole prefix read at one
     revision, then watched; each change applied as a delta (its route
     and announcement only). Until the first table is applied (etcd's,
     or the one cached in [node] state_dir when etcd is unreachable:
     logged, and status says "from cache") the node stays starting and
     announces nothing. Losing etcd later withdraws nothing: status says
     "stale since T". The node publishes its record (revision served,
     state) under PREFIX/nodes/ID on a lease, ID its [bgp] router_id,
     without [bgp] its host name: 'map646 status -cluster' lists them.
The kernel routes the translated packets: enable forwarding
(sysctl net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1) for packets
that leave the node; map646 warns at start when it is off.

It refuses to start, with a message saying why, when it lacks a capability
it needs, when /dev/net/tun is missing or it cannot open it read-write, when
a network interface of the device's name exists already (map646 creates its
own device and never takes one over), or when another map646 runs in the
same network namespace (it holds the abstract unix socket @map646 there;
two would remove each other's routes).

Capabilities (root has them all; a missing one is named with its reason):
  CAP_NET_ADMIN         always: the tun device, its routes, and the sysctl
                        net.ipv4.conf.DEVICE.accept_local (a holder of
                        CAP_NET_ADMIN may write its namespace's sysctls)
  CAP_NET_RAW           with an icmp6 check, unless map646's group is in
                        net.ipv4.ping_group_range (a ping socket then does)
  CAP_NET_BIND_SERVICE  when bgp.listen_port (default 179) or the port of
                        [metrics] listen is under
                        net.ipv4.ip_unprivileged_port_start (1024)
  CAP_BPF               with [fastpath] mode = "required" (with "auto", its
                        lack leaves the tun path alone, with a WARN)
As another user than root it also needs read-write access to /dev/net/tun
(mode 0666 under udev), read access to FILE, and write access to the
control socket's directory and [node] state_dir: the unit's
RuntimeDirectory=map646 and StateDirectory=map646 (/run/map646,
/var/lib/map646) are the defaults.

systemd (Type=notify, with NOTIFY_SOCKET set; nothing is sent without it):
READY=1 once started (the node itself may still be starting, drained or
failed: STATUS= and 'map646 status' say which); RELOADING=1 and READY=1
around each reload; STOPPING=1 when the shutdown begins; STATUS= the node's
state and cause as they change; with WatchdogSec= (WATCHDOG_USEC),
WATCHDOG=1 every half of it from the daemon loop, only while every data
plane worker runs and none is stuck in a batch: a hung daemon or a dead
data plane that the recovery (below) does not bring back within WatchdogSec
gets map646 killed and restarted by systemd.

The node's states (logged as "node state" with state, from and cause;
'map646 status' shows them):
  starting  nothing announced until the data plane runs and every check
            has risen (rise passes in a row);
  serving   the mapped IPv4 prefixes (or the [bgp] aggregates covering
            them) announced to the neighbors carrying ipv4-unicast, the
            pseudo prefix to those carrying ipv6-unicast, with [bgp] med
            and communities; partners get both;
  failed    a check is down (fall failures in a row): the side it withdraws
            (ipv4, ipv6 or all) is withdrawn; back to serving when every
            check is up again;
  draining  'map646 drain': GRACEFUL_SHUTDOWN and drain_med, then withdrawn;
  drained   nothing announced until 'map646 undrain'; this survives a
            restart (the flag in [node] state_dir). A drained node still
            translates what reaches it.
Nothing a BGP neighbor sends enters the node's routing table.

Signals:
  SIGHUP           reload: re-read and check FILE; if it is valid, remove
                   the routes of the mappings that went, switch the table
                   between two batches (no packet lost or translated half
                   by each), add the routes of the new mappings, apply the
                   ICMP error rates, [tun] busy_poll, the [bgp] neighbors and
                   attributes, the [health] checks (unchanged checks keep
                   their state), and announce accordingly. An invalid FILE
                   is refused, its problems logged (never the value of
                   a password or of a key that looks like one), the
                   running configuration kept; so is a mapping file over
                   [translator] max_mapping_file_bytes or max_mappings,
                   before it is read whole. The rest of [tun],
                   [metrics], [log], [fastpath], [control], [node] state_dir, adding or
                   removing [bgp], the speaker's AS, router id,
                   listener and grpc_socket, [mappings] source and
                   [mappings.etcd] need a restart: the reload
                   applies the rest, logs the keys it left and counts as
                   failed (map646 reload exits 1 naming them).
                   With the etcd source the reload keeps etcd's table.
                   'map646 reload' does the same and prints the result.
  SIGTERM, SIGINT  stop: withdraw every announcement; keep translating for
                   [node] linger (default 2s) while routers converge (not
                   without [bgp] or with nothing announced; a second signal
                   cuts it short); stop the etcd source (its record
                   removed, its cache written); close the BGP sessions
                   (Cease); remove every route map646 added, detach the
                   fast path, stop the workers, close the
                   device (the kernel deletes it); exit 0, or 1 if
                   something failed on the way down.

Logs go to stderr through log/slog ([log] format text or json, level);
nothing is logged per packet: packets are counted (metrics below), rare
events are logged at most once per 10 s per worker.

Metrics:
  map646_packets_total{direction,verdict,reason}   every packet read
      (direction 4to6 or 6to4; verdict forward, drop or icmp-error; reason
      as 'map646 translate' names it, or gso-segment-failed), and every
      packet the fast path translated (forward)
  map646_bytes_total{direction}, map646_sent_packets_total{direction},
  map646_sent_bytes_total{direction}
  map646_icmp_errors_sent_total, map646_icmp_errors_suppressed_total
      (held back by the rate limits), and the same split by kind:
  map646_icmp_errors_sent_by_kind_total{kind},
  map646_icmp_errors_suppressed_by_kind_total{kind}
      (kind pmtu: Fragmentation Needed and Packet Too Big, limited by
      translator.icmp_pmtu_error_rate and icmp_pmtu_error_burst; other:
      the rest, by icmp_error_rate and icmp_error_burst)
  map646_local_addresses{family}   the node's local addresses, as prefixes
      (its addresses and the local, broadcast and anycast routes of the
      local routing table), followed as they change: no packet is translated toward them, nor toward the
      translator's own (reason local-destination), unless
      translator.allow_local_destinations
  map646_probe_packets_total   the dataplane check's own probe datagrams
      (also counted above, as 4to6 ttl-expired; a drain leaves them out)
  map646_gso_packets_total{path}, map646_gso_segments_total
  map646_write_errors_total, map646_device_dropped_total, map646_batches_total
  map646_tun_offload_enabled{offload}   1 or 0 for csum, tso4, tso6, uso4,
      uso6: what the kernel has (with offload = false, all 0); 0 where the
      self-test at start switched the offload off
  map646_mapping_packets_total{entry,direction},
  map646_mapping_bytes_total{entry,direction}
      per mapping (entry: its IPv4 side), for the first [metrics]
      mapping_series mappings (default 1000): every mapping is counted,
      but a million of them as series would overwhelm Prometheus
  map646_fastpath_attached   1 while the kernel fast path is attached
  map646_fastpath_packets_total{direction}   packets it translated (also
      in map646_packets_total, map646_sent_packets_total and the
      per-mapping counters; not in map646_bytes_total and
      map646_sent_bytes_total)
  map646_fastpath_punts_total{reason}   packets it left to the tun path
  map646_fastpath_internal_errors_total   packets it lost: must stay 0
  map646_tun_offload_selftest_failed{offload}   1 where the last self-test
      (at start, or of a re-created device) found the offload broken
  map646_node_state{state} (1 for the current state),
  map646_node_state_transitions_total{to}   entries into each state
  map646_health_check_up{check},
  map646_health_check_transitions_total{check,to}   falls (down) and rises
      (up): a flap between two scrapes shows here, not in the gauges
  map646_bgp_neighbor_established{neighbor}, map646_announced_prefixes
  map646_mappings, map646_reloads_total{result}, map646_build_info
  map646_reload_last_attempt_timestamp_seconds,
  map646_reload_last_success_timestamp_seconds   (the start counts as a
      load): the attempt later than the success while the last reload failed
  map646_etcd_revision, map646_etcd_current_revision,
  map646_etcd_stale_seconds, map646_etcd_table, map646_etcd_from_cache,
  map646_etcd_mappings, map646_etcd_bad_entries,
  map646_etcd_deltas_applied_total, map646_etcd_snapshots_total
      with [mappings] source = "etcd" (config/etcdsource Register)
  GoBGP's own: bgp_* per neighbor (messages sent and received by type,
      bgp_peer_state, bgp_peer_flop_count, bgp_routes_received,
      bgp_routes_advertised, ...) and its main loop's fsm_loop_* histograms
  and the Go runtime's go_* and process_* metrics. Alerting rules and a
  Grafana dashboard for them: config/examples/monitoring.

When the data plane stops under it (the device deleted: ip link del),
map646 withdraws everything at once, re-creates the device with the same
settings, restarts the workers, re-installs the routes, probes the new
device and announces again once every check is up; a failed attempt is
retried (0.5 s, doubling up to 30 s). Each step is logged ("recovery: ...").

The daemon runs Go's collector with GOGC=10 unless the environment sets
GOGC: its heap is mostly pointer-free tables, cheap to collect, and the
default (100) lets a node with a million mappings peak at twice its live
memory while it builds table pages.

Every 2 s it checks that [node] state_dir can be written (a drain records
the drained flag there): status shows state_dir "not writable: ..." and
the log says so; the node keeps serving (translation does not need it),
but a drain is refused until it can be recorded.

Exit codes: 0 after SIGTERM or SIGINT, 1 when it cannot start or fails
(the health monitor stopped), 2 for a usage error.

Example:
  map646 check -config /etc/map646/map646.toml && map646 run -config /etc/map646/map646.toml
  kill -HUP $(pidof map646)    # after editing the mappings, or: map646 reload
  map646 status
`

// Preconditions, replaced by tests.
var (
	effectiveCaps = daemon.EffectiveCaps
	tunDevice     = "/dev/net/tun"
)

// runRun is `map646 run`: the flags, the configuration, the preflight,
// then the daemon (package daemon) until it stops.
func runRun(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("run")
	configPath := fs.String("config", "", "the configuration `FILE` (required); SIGHUP re-reads it")
	if code, done := parseFlags(fs, runUsage, args, stdout, stderr); done {
		return code
	}
	if *configPath == "" {
		return usageError(stderr, "run", "-config is required")
	}
	cfg, _, ok := loadConfig(*configPath, stderr)
	if !ok {
		return exitError
	}
	caps, err := effectiveCaps()
	if err != nil {
		fmt.Fprintln(stderr, "map646 run:", err)
		return exitError
	}
	if err := daemon.Preflight(cfg, caps, tunDevice); err != nil {
		fmt.Fprintln(stderr, err)
		return exitError
	}
	// Run logs why it failed; the exit code says that it did.
	if err := daemon.Run(*configPath, cfg, newLogger(cfg.Log, stderr), fullVersion()); err != nil {
		return exitError
	}
	return exitOK
}

func newLogger(c config.Log, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: c.Level}
	if c.JSON {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
