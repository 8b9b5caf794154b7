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
//   - Exposure: TTL security (GTSM, RFC 5082) per neighbor, also on
//     GoBGP's listening sockets while every neighbor has it (gtsm.go: GoBGP
//     sets it on an accepted socket only after reading what came with the
//     handshake); a per-family prefix limit, after which GoBGP closes the
//     session with a Cease 6/1 and the speaker enables the neighbor again
//     PrefixLimitRestart later; GoBGP's line about each connection from an
//     address that is no neighbor rate-limited (refused.go).
//   - Idle hold after a reset: when GoBGP resets a session itself with a
//     Cease "Administrative Reset" (what the speaker asks for when BFD
//     goes down), it then stays idle, refusing connections both ways, for
//     the neighbor's IdleHoldTimeAfterReset: 30 s by default, which kept a
//     node revived after a silent death unrouted for 30 s. The speaker sets
//     it to the neighbor's connect retry (5 s when unset), the operator's
//     word on how soon a failed session should be tried again; there is no
//     separate key for it. Other failures (hold timer expiry, a
//     NOTIFICATION received, TCP closed) idle for GoBGP's fixed 5 s.
//   - OpenConfirm hold timer: GoBGP v4.9 arms none in OpenConfirm before
//     a neighbor's first session, and a connection collision can leave it
//     there waiting on a connection its peer parked unread (two GoBGP
//     speakers, such as partner nodes, both wait). The speaker closes a
//     session still in OpenConfirm a hold time (at least 10 s) after it
//     got there, by disabling and enabling the neighbor
//     (expireOpenConfirm).
//   - Metrics: Collectors returns GoBGP's own Prometheus collectors
//     (github.com/osrg/gobgp/v4/pkg/metrics, as gobgpd registers them):
//     bgp_* per neighbor and the fsm_loop_* timings of GoBGP's main loop.
//     The package imports no metrics registry; the daemon registers them.
//   - BFD is the speaker's own (bfd.go), not GoBGP's: single-hop, RFC 5880
//     and 5881, TTL 255 checked. When BFD leaves Up by expiry or because
//     the neighbor signalled Down, an Established session is reset with a
//     Cease "BFD is down". When the neighbor sends AdminDown (BFD turned
//     off on the router), BFD goes down and the session stays, as RFC 5882
//     §4.2 asks; GoBGP v4.9's BFD resets the session on AdminDown and has
//     no option against it. A router's new BFD session (BIRD starts one
//     with each BGP session) is taken at once: GoBGP's BFD peer kept the
//     old discriminator and reset the next session, which the speaker
//     worked around by re-creating the neighbor after each session loss.
//   - Reconfigure adds, removes and re-creates neighbors; next-hop and
//     description changes keep the session. Local AS, router id, listener
//     and gRPC socket need a restart and are refused.
//   - Close sends a Cease NOTIFICATION to every neighbor (they withdraw our
//     routes at once) and stops GoBGP; it is safe to call twice.
//   - Logs: GoBGP logs through the logger given to New (component bgp),
//     but for its lines about events the speaker logs itself, with more to
//     say (neighbor added, up, down, removed; speaker stopped): those of
//     GoBGP are dropped, one line per event (capture.go).
//
// # Inspecting the speaker with the gobgp CLI
//
// With Config.GRPCSocket set (the [bgp] grpc_socket key), GoBGP's gRPC API
// is served on that unix socket, mode 0600, and nowhere else: the API has
// no authentication and can change everything, so never expose it on a
// network address. The CLI must be of the same major version as the
// server (Debian's gobgp package is 3.x and cannot talk to it):
//
//	go run github.com/osrg/gobgp/v4/cmd/gobgp@v4.9.0 --target unix:///run/map646-gobgp.sock neighbor
//	go run github.com/osrg/gobgp/v4/cmd/gobgp@v4.9.0 --target unix:///run/map646-gobgp.sock global rib -a ipv4
//	go run github.com/osrg/gobgp/v4/cmd/gobgp@v4.9.0 --target unix:///run/map646-gobgp.sock neighbor 192.0.2.1 adj-in
//	go run github.com/osrg/gobgp/v4/cmd/gobgp@v4.9.0 --target unix:///run/map646-gobgp.sock global policy
//
// (--target takes unix:///absolute/path; -u/-p are for TCP and are not
// served. TestGobgpCLI runs the first two when GOBGP_CLI names the binary
// built by `go install github.com/osrg/gobgp/v4/cmd/gobgp@v4.9.0`.) Use it
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
