// Package routing is map646's embedded BGP speaker, built on GoBGP v4
// (github.com/osrg/gobgp/v4) running in the same process.
//
// The contract:
//
//   - Declarative. Announce is given the whole set of announcements the
//     node wants (prefix, MED, communities) and reconciles: it adds what is
//     missing, replaces what changed (a new UPDATE, never a withdrawal in
//     between), and withdraws what is gone. Announced says what is
//     announced now, also after a partial failure.
//   - It knows nothing of health, drain or the data plane. It never decides
//     whether to announce; the daemon does, and calls Announce.
//   - It accepts nothing from peers. GoBGP's global import policy accepts
//     routes of type LOCAL (ours) and rejects everything else, so a route a
//     neighbor sends never enters the RIB, is never re-advertised, and
//     never reaches the kernel (zebra is off). The export policy, too, lets
//     only LOCAL routes out. What partners send stays in their Adj-RIB-In
//     (GoBGP stores it before the import policy), which PartnerRoutes reads
//     so that a drain can refuse to withdraw the last node announcing a
//     prefix.
//   - Families decide who gets what: IPv4 prefixes go to the neighbors that
//     carry ipv4-unicast, IPv6 prefixes to those that carry ipv6-unicast
//     (a family that is not negotiated on a session is never sent on it);
//     partners get every family they carry.
//   - Next hops: routes are added with an unspecified next hop, which GoBGP
//     replaces with the session's local address; a neighbor's configured
//     NextHopIPv4 / NextHopIPv6 is set by a statement of the global export
//     policy that matches that neighbor and family. An IPv6 prefix over an
//     IPv4 session needs NextHopIPv6 (New and Reconfigure refuse the
//     configuration otherwise): GoBGP would send the IPv4 session address in
//     MP_REACH_NLRI and routers drop such a route.
//   - Sessions: source address = the first listen address of the
//     neighbor's family (so the neighbor sees one address whichever side
//     connects); TCP-MD5, hold/keepalive/connect-retry timers (whole
//     seconds), passive mode, eBGP multihop TTL and single-hop BFD come from
//     the Neighbor. Neighbors reports each session's state, the time of its
//     last change, prefixes sent and received, BFD state and the last
//     error: the NOTIFICATION or timer that took it down, or why the TCP
//     connection failed (with a hint when TCP-MD5 is configured, since a
//     key mismatch shows only as a connect timeout).
//   - Idle hold after a reset: when GoBGP resets a session itself with a
//     Cease "Administrative Reset" (its BFD does so when BFD goes down), it
//     then stays idle, refusing connections both ways, for the neighbor's
//     IdleHoldTimeAfterReset: 30 s by default, which kept a node revived
//     after a silent death unrouted for 30 s. The speaker sets it to the
//     neighbor's connect retry (5 s when unset), the operator's word on
//     how soon a failed session should be tried again; there is no
//     separate key for it. Other failures (hold timer expiry, a
//     NOTIFICATION received, TCP closed) idle for GoBGP's fixed 5 s. A BFD
//     neighbor skips both: it is re-created right after the loss (next
//     point), and a new neighbor connects at once.
//   - BFD neighbors are re-created after each session loss. In GoBGP v4.8
//     a reset requested while the session is not Established (its BFD
//     expiring between two sessions) stays queued and ends the next
//     session as soon as it is Established, and its BFD peer keeps the
//     remote discriminator of the session it knew. Against BIRD 2, which
//     deletes its BFD session with its BGP session and starts a new one,
//     that is a loop: every new session reset with "BFD is down", every
//     ~3 s, until a restart (a node frozen with SIGSTOP and thawed in the
//     lab started it on the first try). So when a BFD neighbor's session
//     leaves Established for any reason but our own deletion, the speaker
//     deletes the neighbor from GoBGP and adds it again (new FSM, new BFD
//     peer, no idle hold): the log says "neighbor re-created after its
//     session loss". Details and the one race left (a flap, not a loop) in
//     bfdrenew.go.
//   - Reconfigure adds, removes and re-creates neighbors; next-hop and
//     description changes keep the session. Local AS, router id, listener
//     and gRPC socket need a restart and are refused.
//   - Close sends a Cease NOTIFICATION to every neighbor (they withdraw our
//     routes at once) and stops GoBGP; it is safe to call twice.
//
// # Inspecting the speaker with the gobgp CLI
//
// With Config.GRPCSocket set (the [bgp] grpc_socket key), GoBGP's gRPC API
// is served on that unix socket, mode 0600, and nowhere else: the API has
// no authentication and can change everything, so never expose it on a
// network address. The CLI must be of the same major version as the
// server (Debian's gobgp package is 3.x and cannot talk to it):
//
//	go run github.com/osrg/gobgp/v4/cmd/gobgp@v4.8.0 --target unix:///run/map646-gobgp.sock neighbor
//	go run github.com/osrg/gobgp/v4/cmd/gobgp@v4.8.0 --target unix:///run/map646-gobgp.sock global rib -a ipv4
//	go run github.com/osrg/gobgp/v4/cmd/gobgp@v4.8.0 --target unix:///run/map646-gobgp.sock neighbor 192.0.2.1 adj-in
//	go run github.com/osrg/gobgp/v4/cmd/gobgp@v4.8.0 --target unix:///run/map646-gobgp.sock global policy
//
// (--target takes unix:///absolute/path; -u/-p are for TCP and are not
// served. TestGobgpCLI runs the first two when GOBGP_CLI names the binary
// built by `go install github.com/osrg/gobgp/v4/cmd/gobgp@v4.8.0`.) Use it
// to look; change things through map646's configuration and `map646
// reload`, since the daemon reconciles GoBGP to its own state
// and would undo or be confused by changes made behind its back.
//
// # Imports
//
// It owns the GoBGP server, its neighbors, policies and announced paths.
// It imports GoBGP v4 and the standard library only: nothing of map646, so
// that health, drain and the data plane stay the daemon's decisions.
package routing
