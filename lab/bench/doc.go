// Command bench runs the paper's evaluation side by side in one run (issue
// 3, `make bench`): kernel IPv4 forwarding, kernel IPv6 forwarding, map646
// on its offload device, map646 on the plain ("water") device, map646 on
// the offload device with [tun] busy_poll (busyPoll), map646 on the
// offload device with the kernel fast path attached (map646-fastpath,
// issue 16's targets) and TAYGA, each as
// the router of its own three namespaces, measured with ping and
// iperf3 (64-byte UDP in one flow and in eight) in interleaved
// repetitions; and the paper's Figure 12, the
// mapping-table lookup against table size, from the translator's Go
// benchmark. It needs root; it installs the Debian packages it uses.
//
//	client ── veth ── router ── veth ── server   (one set per subject: topo.Single)
//	c4                x4    x6            s6
//	kernel IPv4:  192.0.2.7       192.0.2.1 | 198.51.100.1      198.51.100.10
//	kernel IPv6:  2001:db8:2::7   2001:db8:2::1 | 2001:db8:1::1 2001:db8:1::10
//	translators:  192.0.2.7       192.0.2.1 | 2001:db8:1::1     2001:db8:1::10
//	              the client dials 198.51.100.10 (mapped to 2001:db8:1::10);
//	              map646: pseudo prefix 64:ff9b::/96, TAYGA 2001:db8:ff9b::/96
//
// It writes into -out: results.md (the table, the targets met or missed,
// where packets were lost, Figure 12, the charts), runs.csv (every run),
// throughput.png, udp64.png, rtt.png, lookup.png, lookup-bench.txt (the Go
// benchmark's output) and the translators' logs; and prints progress and a
// summary. Its namespaces are netlab's (m646l*, netlab.NewNS): deleted at
// the end, on error, and on SIGINT or SIGTERM; those of a run killed by
// SIGKILL are deleted by the next netlab program or test (netlab.SweepStale).
//
// Usage:
//
//	go run ./lab/bench -out bench-results
//
// It owns its subjects' addresses and translators (lab.go), their
// measurements and the report. It imports lab/topo (each subject's
// single-node lab), lab/netlab (processes, map646 started as a process)
// and gonum/plot; nothing of map646 but through the binary and the
// translator's Go benchmark, which it runs with go test.
package main
