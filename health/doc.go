// Package health runs the node's health checks and turns their results
// into state changes: probes in, "this side may be announced" out.
//
// # Contract
//
// A Monitor runs every Check on its own goroutine: one probe per
// Interval, bounded by Timeout. A check starts down; Rise consecutive
// passes make it up, Fall consecutive failures make it down again, so a
// single lost probe never changes anything when Fall > 1. The transition
// happens on the probe that completes the count: Changes is notified at
// once (a channel with a buffer of one, never blocking the monitor), so a
// failing check takes its side down at most one Interval after the failure
// before it, the Fall-th. Every transition is logged (component=health,
// check=NAME) with its cause, the last probe's error.
//
// Healthy answers per side: a check that is down withdraws what its
// Withdraws says (both sides, or the IPv4 or IPv6 side only). Status gives
// each check's state, since when, its last error and counters, among
// them its transitions up and down (Rises, Falls), which a reload that
// redefines the check keeps.
//
// The package imports no BGP: a BGP check asks a Sessions (the routing
// speaker satisfies it) whether a neighbor is established, and the data
// plane check calls a Prober (translator/dataplane's DataPlane.Probe).
// Deciding what to announce from Healthy is the daemon's job.
//
// # Probes
//
//   - dataplane: Prober.Probe.
//   - icmp6: an ICMPv6 echo request to Addr, answered by an echo reply with
//     the same identifier, sequence number and payload. It uses an
//     unprivileged ICMPv6 datagram ("ping") socket when the kernel allows
//     (net.ipv4.ping_group_range), else a raw socket (root or CAP_NET_RAW).
//   - tcp: a TCP connection to AddrPort is accepted (and closed at once).
//   - http: a GET of URL answers 2xx or 3xx (redirects are not followed);
//     a new connection per probe, so a dead server is noticed rather than
//     hidden behind a kept-alive connection; no proxy from the environment.
//   - bgp: at least one of Neighbors is established.
//
// A probe that outlives its Timeout counts as failed even if it ends well.
//
// # Reload
//
// Update replaces the checks. A check whose definition did not change
// keeps its goroutine, state and counters. A check redefined under the same
// name keeps its up or down state (so that a reload of every node at once
// does not withdraw them all) but restarts its counts; a new name starts
// down, like every check at start.
//
// # Imports
//
// It owns the checks, their goroutines and their state. It imports the
// standard library and golang.org/x/sys/unix only: the Sessions and Prober
// interfaces are how routing and the data plane reach it, wired by the
// daemon.
package health
