// Package dataplane runs the translator on a tun device: one worker per
// device queue, batches in and out, counters, the ICMP error rate limit,
// and the kernel routes that bring the traffic to the device.
//
// # Workers
//
// Run starts one goroutine per queue of the device, locked to its OS
// thread. Each owns its packet buffers (tun.NewBatch), a pool of
// translator.Out, a write batch and its counters: nothing is shared on the
// hot path but the current table (one atomic load per batch), the per-mapping
// counters (one atomic add per mapping and batch) and the ICMP rate limiter
// (touched only when the translator generates an error). A worker reads a
// batch, translates every packet with the table it loaded at the start of
// the batch, writes the outputs back to the same queue (the kernel routes
// them) and publishes its counters. Handling a packet does not allocate.
//
// Super-packets (GSO) go to translator.TranslateGSOInPlace, which rewrites
// the header in the read buffer and leaves the payload where it is, and
// keeps the segment size: the segments the kernel cuts from what is written
// are those Translate would make of the segments read. Those it declines
// (segments that Translate would fragment, refuse as too big, or give other
// flags, TTL expiry, ICMP errors, hairpinning) are split by tun.Segment and
// each segment is translated on its own.
//
// # Reload
//
// Swap installs a new translator between batches: a batch is translated
// entirely by one table, so no packet is lost or half translated across a
// reload. Swap returns once every worker has left the old table, and carries
// the per-mapping counters over to the mappings that remain.
//
// Apply installs a translator whose table was changed by a delta
// (translator.Table.Apply): the ids of the mappings kept do not move, so
// the per-mapping counters stay where they are, shared by the old and new
// state, and nothing is waited for or copied. RouteDelta gives the kernel
// routes such a change touches: those of the span of mapped addresses it
// joins or leaves.
//
// # Counters
//
// Counters are kept per worker, in a block of its own (no false sharing):
// the worker adds up a batch in plain fields and publishes the sums with
// atomic adds; Stats sums the workers with atomic loads. A packet is one
// read from the device: a super-packet the translator takes whole counts
// once; one it declines counts as the segments it is split into. Every
// packet gets one verdict, so for each direction
//
//	packets read = forward + drop + icmp-error  (+ segments - super-packets split)
//
// The data plane's own probe datagrams (Probe) are packets like any other
// in these counts, and are also counted apart in Stats.Probes so that the
// daemon can leave them out of the traffic a drain waits to fall. A
// worker publishes its probe count after the batch's verdicts and Stats
// loads it first, so a snapshot never holds more probes than packets read.
//
// Per-mapping counters (packets and bytes each way) are one array for all
// workers, sized to the table: a per-worker copy would cost 32 bytes per
// mapping and worker, a gigabyte for a million mappings on 32 CPUs.
//
// # Fast path
//
// AttachFastPath attaches the kernel fast path (translator/fastpath) at
// the egress of the device: what it translates never reaches a worker, and
// is counted in Stats as forwarded (Stats.FastPath says how much). Swap
// gives it the new table, Reopen detaches it (the owner attaches it to the
// new device), LocalAddrsChanged gives it the node's addresses, and Probe
// checks it every 10 s, detaching it when it fails (fastpath.go).
//
// # Routes
//
// Routes installs a route into the device for every mapped IPv4 prefix
// (adjacent ones merged) and for the pseudo prefix, with protocol
// RouteProtocol (246), applies changes as a difference, and removes exactly
// what it added.
//
// # Imports
//
// It owns the workers, their counters, the fast path's program and the
// routes it added. It imports translator, translator/tun and
// translator/fastpath (and prometheus, netlink, x/sys, cilium/ebpf); nothing
// of the daemon, the configuration, health or routing: the daemon
// (cmd/map646/daemon) builds it and feeds it.
package dataplane
