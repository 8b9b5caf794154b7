// Command failover is the paper's failover experiment (its Figure 4,
// extended) on the two-node lab of lab/topo, and the proof that flows
// survive a node's failure: `make lab` runs it in full, as root,
//
//	go run ./lab/failover -full -out lab/failover/results
//
// and `make test` runs its short form (TestFailover, on the tun path and
// again with the kernel fast path). Flags: -full, -out DIR (default
// failover-results), -map646 BINARY (default $MAP646_BIN, or a build of
// ./cmd/map646), -fastpath (both nodes with [fastpath] mode =
// "required"). It exits 1 when a target is missed.
//
// # The timeline
//
// An ICMP echo every 100 ms from the IPv4 client to the mapped addresses
// of the two IPv6 servers, from five client addresses in turn (192.0.2.2
// to .6: the routers hash ICMP on addresses only, so one source would put
// every probe on one node), and for each probe its round-trip time or its
// loss (no answer within 1 s), and which node carried its request and its
// reply. The events, each waited for in the routers' kernel FIBs:
//
//  1. both nodes serving: the upstream and the backend spread the probes
//     over tokyo and osaka (ECMP);
//  2. tokyo withdraws the pseudo prefix 64:ff9b::/96 only, the map646 way:
//     a health check on tokyo alone (tcp to srv10 port 7001, withdraw =
//     "ipv6") fails because the experiment closes that listener; replies
//     shift to osaka while requests still go through tokyo (the paper's
//     "stopped router advertisement"); 2'. the listener is back, the check
//     rises, tokyo re-announces;
//  3. `map646 drain` on tokyo: everything through osaka;
//  4. `map646 undrain`: traffic comes back;
//  5. tokyo dies silently: its two bridge ports go down and its map646 is
//     frozen (SIGSTOP), so the routers keep their carrier and get no TCP
//     reset and no notification: only BFD (100 ms x 3) or the hold timer
//     (3 s) tells them;
//  6. it comes back (SIGCONT, ports up), the same process: it must be
//     routed again, its router sessions Established with BFD up, within
//     20 s (measured: 1 to 7.5 s), or the step fails naming each session's
//     state and last error. It is never restarted. (It once was: GoBGP
//     v4.8's BFD reset every new session of a revived node forever; map646
//     now runs BFD itself, see routing/bfd.go and lab TestBFDRevive.)
//
// In the full run (-full, make lab) a real Prometheus (Debian's, in the
// upstream's namespace, prometheus.go) scrapes both nodes every second on
// their sw4 addresses and evaluates the shipped alerting rules
// (config/examples/monitoring/map646.rules.yml) every second; at step 5
// tokyo stays dead until the rule Map646Down fires for it (and for no
// other node), and the summary says when, counted from the death: pending
// (the first evaluation after a failed scrape) and firing (pending + the
// rule's "for").
//
// Targets: no probe lost in steps 2 to 4; at most 0.5 s of outage at the
// silent death with BFD (1 s in the short form of make test). The full run
// also times the silent death on a lab without BFD (hold timer 3 s), for
// comparison.
//
// # Flows survive
//
// A TCP connection from the client to srv10 that tokyo carries both ways
// (chosen among new connections by the sniffers: the routers hash TCP on
// ports), paced pseudo-random data until the client half-closes, and a
// ping every 20 ms; meanwhile tokyo dies silently and comes back. The
// connection must never be reset and must deliver exactly what the server
// sent (byte count and SHA-256); the longest wait between two reads of the
// client is its longest stall. A stateless translator allows this: the
// surviving node translates the flow's next packet as the dead one would
// have; a NAT64 would have lost the flow's state.
//
// # Attribution
//
// Exact, not inferred from counters: a sniffer per node, an AF_PACKET
// socket on the node's tun device opened inside the node's namespace, with
// a kernel filter that keeps only ICMP, ICMPv6 and TCP SYNs, recognises
// each probe by the run's ICMP identifier and a tag and sequence number in
// the payload, which the translator carries unchanged into ICMPv6. The
// IPv4 echo request routed into a node's device names the node that
// carried the request; the IPv6 echo reply routed into it names the node
// that carried the reply; a lost probe seen entering a node and never
// translated was lost inside that node.
//
// # Outputs and measures
//
// timeline.csv (every probe of every run: time, source, destination, RTT
// or loss, carriers, the event whose window it was sent in), one PNG per
// run (above: RTT on a log scale, coloured by request/reply carriers,
// losses as red crosses along the top; below: a row per node and
// direction with a mark for each probe it carried, and a row of losses;
// events as dashed lines, marks as dotted ones) and summary.md. Per
// event, over the probes sent from it to the next event: probes lost, the
// longest outage, the RTT median before (previous window) and after, the
// share of each carrier. An outage is a burst of lost probes (losses less
// than 1 s apart: probes rotate over flows that ECMP spreads over both
// nodes, so the losses of one dead node alternate with answers through the
// other); its length runs from the first lost probe's sending to the last
// one's plus one interval, so its resolution is the probe interval.
//
// Ctrl-C (SIGINT) or SIGTERM ends a run at the next step; what ran is
// written and every namespace and process is removed (a second Ctrl-C
// quits at once; the next lab run deletes what that leaves).
//
// It imports lab/topo, lab/netlab, lab/poll, x/sys (the sniffers)
// and gonum/plot; nothing of map646 but through the binary.
package main
