// Command soak is the soak test of the two-node lab (lab/topo): mixed
// traffic for a long time (10 minutes by default) while both nodes are
// reloaded and one of them drained and undrained every period, with the
// nodes' memory, goroutines and file descriptors recorded at the start and
// the end, every transferred byte verified, and the data plane's counters
// checked to add up.
//
// It is a program, like the failover experiment and the bench (`make
// soak`); run it as root with
//
//	go build -o bin/soak ./lab/soak
//	nice -n 10 ./bin/soak -duration 10m -out lab/soak/results
//
// It exits 1 when a check fails.
//
// Flags: -duration (10m), -period (1m: one reload of both nodes and one
// drain/undrain per period), -out (a directory for report.md; the report is
// printed in any case).
//
// # Traffic
//
//   - ping from the client to 198.51.100.10 and from srv10 to the client
//     (64:ff9b::c000:202), every 100 ms each;
//   - TCP transfers, one after the other: the client to srv10 and srv11 to
//     the client in turn, 8 MB each way, SHA-256 compared on both ends;
//   - a numbered UDP stream from the client to srv11, echoed back, at most
//     one datagram a millisecond and 64 unanswered (lab/lab_test.go's
//     ReloadUnderLoad stream); each datagram's content depends on its
//     number, so damage, loss and duplicates are told apart.
//
// With L4 hashing in both routers (ECMP), the flows spread over both nodes,
// and a drain moves those of the drained node to the other.
//
// # What must hold
//
//   - Memory flat: each node's RSS (VmRSS) at the end at most the larger of
//     +20 % and +10 MB over its value after the warm-up (the first period:
//     one reload, one drain cycle, every kind of traffic seen). Go's
//     collector lets the heap grow past the live data between cycles
//     (map646 runs with GOGC=10 unless GOGC is set) and a reload builds a second table before the first is
//     freed: a few MB of sawtooth on a heap of this size. A leak of a
//     reload, a drain or a connection per period would pass the margin
//     within ten periods only if each leaked less than 1 MB; the report
//     gives the samples every 10 s so a slope shows.
//   - Goroutines and open fds back to their warm-up values (+2: a metrics
//     scrape and a control-socket connection in progress hold one each),
//     waited for up to 15 s once the traffic has stopped.
//   - Nothing mistranslated: every TCP transfer's SHA-256 equal both ways,
//     no UDP datagram damaged or duplicated, no checksum error counted by a
//     receiver's kernel (nstat).
//   - No loss: every echo answered, every datagram echoed, every TCP
//     transfer complete (the drains use GRACEFUL_SHUTDOWN, wait for the
//     traffic to move, then withdraw and linger; the reloads swap tables
//     between batches).
//   - Counters add up on each node, from one scrape of its metrics:
//     packets read (map646_packets_total, all series) = packets written
//     (map646_sent_packets_total: translations and ICMP errors sent) +
//     drops (verdict "drop") + ICMP errors held back by the rate limit
//     (map646_icmp_errors_suppressed_total); with no write error and no
//     packet the device could not hand over. No traffic here needs
//     fragmenting (TCP sets DF, the rest is small), so every forwarded
//     packet is one written packet. The kernel's own counters of the tun
//     device (packets it queued to map646, packets map646 wrote) are
//     reported beside them.
//
// It imports lab/topo, lab/netlab, lab/poll and x/sys; nothing of
// map646 but through the binary.
package main
