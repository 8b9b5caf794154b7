package routing

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	api "github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	"github.com/osrg/gobgp/v4/pkg/metrics"
	"github.com/osrg/gobgp/v4/pkg/packet/bgp"
	"github.com/osrg/gobgp/v4/pkg/server"
	"github.com/prometheus/client_golang/prometheus"
)

// Speaker is the embedded BGP speaker. Its methods are safe for concurrent
// use.
type Speaker struct {
	log *slog.Logger
	bgp *server.BgpServer

	changes     chan struct{}
	stopWatch   context.CancelFunc
	closeOnce   sync.Once
	closeErr    error
	grpcCleanup func()

	// mu serializes the operations that change the speaker (Announce,
	// Reconfigure, Close) and guards cfg, announced and exportGen. It is
	// held across calls into GoBGP, so GoBGP's callbacks (peer events, log
	// records) must never take it: they use stMu.
	mu         sync.Mutex
	cfg        Config
	announced  map[netip.Prefix]Announcement
	exportGen  int
	exportSets []string // neighbor sets of the current export policy
	closed     bool

	// stMu guards peers, fed by GoBGP's peer events and log records.
	stMu  sync.Mutex
	peers map[netip.Addr]*peerState

	// bfd runs the BFD sessions of the neighbors that have BFD (bfd.go).
	bfd *bfdServer

	// fsmTimings is GoBGP's histogram of its FSM loop's timings, fed by
	// GoBGP from New on (Collectors).
	fsmTimings metrics.FSMTimingsCollector
}

// peerState is what the speaker learned about a neighbor from GoBGP's
// events: ListPeer has the counters but neither the time of the last state
// change nor why a session failed.
type peerState struct {
	state   bgp.FSMState
	since   time.Time
	lastErr string
	md5     bool // TCP-MD5 configured: a silent connect timeout is likely a key mismatch

	// openConfirmLimit is how long a session may wait in OpenConfirm
	// (expireOpenConfirm).
	openConfirmLimit time.Duration
	// openConfirmExpired: the speaker is closing a session stuck in
	// OpenConfirm (expireOpenConfirm); the next state change is its doing.
	openConfirmExpired bool
}

// NeighborStatus is the state of one neighbor, for `map646 status`.
type NeighborStatus struct {
	Address     netip.Addr
	PeerAS      uint32
	Description string
	Role        Role
	Families    []Family
	// State is GoBGP's session state: idle, connect, active, opensent,
	// openconfirm, established.
	State       string
	Established bool
	// Since is the time of the last state change.
	Since            time.Time
	PrefixesSent     int
	PrefixesReceived int
	// LastError says why the session last failed: a NOTIFICATION sent or
	// received, a hold timer expiry, or why the TCP connection failed.
	LastError string
	// BFD is "off", "down", "init" or "up".
	BFD string
}

// PartnerRoute is a prefix that an Established partner announces to us.
type PartnerRoute struct {
	Partner          netip.Addr
	Prefix           netip.Prefix
	GracefulShutdown bool
}

// Names of the policies the speaker installs in GoBGP.
const (
	importPolicy = "map646-import"
	exportPolicy = "map646-export" // suffixed with a generation number
)

// New starts GoBGP with cfg: the listener (unless ListenPort is -1), the
// policies (import: our own routes only; export: our own routes only, with
// each neighbor's configured next hops) and the neighbors.
func New(cfg Config, log *slog.Logger) (*Speaker, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := validateConfig(cfg); err != nil {
		return nil, err
	}
	cfg = cloneConfig(cfg)
	s := &Speaker{
		log:       log.With("component", "bgp"),
		changes:   make(chan struct{}, 1),
		cfg:       cfg,
		announced: make(map[netip.Prefix]Announcement),
		peers:     make(map[netip.Addr]*peerState),
	}
	s.bfd = newBFDServer(s.log)
	// GoBGP logs through the same logger; the capture handler also records
	// why connections fail, which GoBGP reports only in its log.
	levelVar := new(slog.LevelVar)
	levelVar.Set(slog.LevelDebug) // defer to the handler's own level until `gobgp` sets one
	ch := &captureHandler{inner: s.log.Handler(), level: levelVar, sink: s.recordConnectError}
	ch.refused = newRefusedLog(func(r slog.Record) {
		if ch.forward(context.Background(), r.Level) {
			ch.inner.Handle(context.Background(), r)
		}
	})
	gl := slog.New(ch)
	s.fsmTimings = metrics.NewFSMTimingsCollector()
	opts := []server.ServerOption{server.LoggerOption(gl, levelVar), server.TimingHookOption(s.fsmTimings)}
	if cfg.GRPCSocket != "" {
		gopts, cleanup, err := grpcOptions(cfg.GRPCSocket)
		if err != nil {
			return nil, err
		}
		s.grpcCleanup = cleanup
		opts = append(opts, gopts...)
	}
	s.bgp = server.NewBgpServer(opts...)
	go s.bgp.Serve()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.start(ctx); err != nil {
		s.Close(context.Background()) // stops GoBGP, the event watcher and the gRPC socket
		return nil, err
	}
	if cfg.GRPCSocket != "" {
		if err := waitSocket(ctx, cfg.GRPCSocket); err != nil {
			s.Close(context.Background())
			return nil, err
		}
	}
	return s, nil
}

func (s *Speaker) start(ctx context.Context) error {
	cfg := s.cfg
	g := &api.Global{
		Asn:        cfg.LocalAS,
		RouterId:   cfg.RouterID.String(),
		ListenPort: int32(cfg.ListenPort),
	}
	if cfg.ListenPort == 0 {
		g.ListenPort = bgp.BGP_PORT
	}
	for _, a := range cfg.ListenAddresses {
		g.ListenAddresses = append(g.ListenAddresses, a.String())
	}
	if err := s.bgp.StartBgp(ctx, &api.StartBgpRequest{Global: g}); err != nil {
		return fmt.Errorf("routing: start BGP (AS %d, router id %s, port %d): %w", cfg.LocalAS, cfg.RouterID, cfg.ListenPort, err)
	}

	wctx, cancel := context.WithCancel(context.Background())
	s.stopWatch = cancel
	if err := s.bgp.WatchEvent(wctx, server.WatchEventMessageCallbacks{OnPeerUpdate: s.onPeerEvent}, server.WatchPeer()); err != nil {
		return fmt.Errorf("routing: watch peer events: %w", err)
	}

	if err := s.installImportPolicy(ctx); err != nil {
		return err
	}
	if err := s.installExportPolicy(ctx, cfg.Neighbors); err != nil {
		return err
	}
	for _, n := range cfg.Neighbors {
		if err := s.addPeer(ctx, n); err != nil {
			return err
		}
	}
	s.applyListenerGTSM(cfg)
	if cfg.ListenPort != -1 && slices.ContainsFunc(cfg.ListenAddresses, netip.Addr.IsUnspecified) {
		s.log.Warn("BGP port open on every address of this node: set bgp.listen_addresses to the addresses the neighbors reach", "addresses", cfg.ListenAddresses, "port", g.ListenPort)
	}
	return nil
}

// installImportPolicy makes the RIB hold our own routes and nothing a peer
// sends. A bare "default reject" would also reject our own AddPath routes
// (ROUTING-NOTES), hence the statement accepting LOCAL routes. Received
// routes stay in each neighbor's Adj-RIB-In, which is stored before the
// import policy (PartnerRoutes reads it).
func (s *Speaker) installImportPolicy(ctx context.Context) error {
	p := &api.Policy{
		Name: importPolicy,
		Statements: []*api.Statement{{
			Name:       importPolicy + "-local",
			Conditions: &api.Conditions{RouteType: api.Conditions_ROUTE_TYPE_LOCAL},
			Actions:    &api.Actions{RouteAction: api.RouteAction_ROUTE_ACTION_ACCEPT},
		}},
	}
	if err := s.bgp.AddPolicy(ctx, &api.AddPolicyRequest{Policy: p}); err != nil {
		return fmt.Errorf("routing: add import policy: %w", err)
	}
	err := s.bgp.SetPolicyAssignment(ctx, &api.SetPolicyAssignmentRequest{Assignment: &api.PolicyAssignment{
		Name:          "global",
		Direction:     api.PolicyDirection_POLICY_DIRECTION_IMPORT,
		Policies:      []*api.Policy{{Name: importPolicy}},
		DefaultAction: api.RouteAction_ROUTE_ACTION_REJECT,
	}})
	if err != nil {
		return fmt.Errorf("routing: assign import policy: %w", err)
	}
	return nil
}

// installExportPolicy replaces the global export policy with one built
// for neighbors. GoBGP has per-neighbor policies only for route-server
// clients, so one global policy carries a statement per neighbor and
// family with a configured next hop (matched on the receiving neighbor),
// then accepts LOCAL routes and rejects the rest: even if a received route
// reached the RIB, it would not be re-advertised.
//
// The new policy gets a new name and is swapped in with one assignment,
// so a neighbor never sees a half-built policy; the old one is deleted.
func (s *Speaker) installExportPolicy(ctx context.Context, neighbors []Neighbor) error {
	gen := s.exportGen + 1
	name := fmt.Sprintf("%s-%d", exportPolicy, gen)
	var stmts []*api.Statement
	var sets []string
	for i, n := range neighbors {
		for _, fam := range n.Families {
			nh := n.NextHopIPv4
			if fam == IPv6Unicast {
				nh = n.NextHopIPv6
			}
			if !nh.IsValid() {
				continue
			}
			set := fmt.Sprintf("%s-n%d", name, i)
			if !slices.Contains(sets, set) {
				err := s.bgp.AddDefinedSet(ctx, &api.AddDefinedSetRequest{DefinedSet: &api.DefinedSet{
					DefinedType: api.DefinedType_DEFINED_TYPE_NEIGHBOR,
					Name:        set,
					List:        []string{netip.PrefixFrom(n.Address, n.Address.BitLen()).String()},
				}})
				if err != nil {
					return fmt.Errorf("routing: export policy: neighbor set for %s: %w", n.Address, err)
				}
				sets = append(sets, set)
			}
			stmts = append(stmts, &api.Statement{
				Name: fmt.Sprintf("%s-n%d-%s", name, i, fam),
				Conditions: &api.Conditions{
					NeighborSet: &api.MatchSet{Type: api.MatchSet_TYPE_ANY, Name: set},
					AfiSafiIn:   []*api.Family{apiFamily(fam)},
				},
				// No route action: set the next hop and go on to the next
				// statement.
				Actions: &api.Actions{Nexthop: &api.NexthopAction{Address: nh.String()}},
			})
		}
	}
	stmts = append(stmts, &api.Statement{
		Name:       name + "-local",
		Conditions: &api.Conditions{RouteType: api.Conditions_ROUTE_TYPE_LOCAL},
		Actions:    &api.Actions{RouteAction: api.RouteAction_ROUTE_ACTION_ACCEPT},
	})
	if err := s.bgp.AddPolicy(ctx, &api.AddPolicyRequest{Policy: &api.Policy{Name: name, Statements: stmts}}); err != nil {
		return fmt.Errorf("routing: add export policy: %w", err)
	}
	err := s.bgp.SetPolicyAssignment(ctx, &api.SetPolicyAssignmentRequest{Assignment: &api.PolicyAssignment{
		Name:          "global",
		Direction:     api.PolicyDirection_POLICY_DIRECTION_EXPORT,
		Policies:      []*api.Policy{{Name: name}},
		DefaultAction: api.RouteAction_ROUTE_ACTION_REJECT,
	}})
	if err != nil {
		return fmt.Errorf("routing: assign export policy: %w", err)
	}
	oldName, oldSets := fmt.Sprintf("%s-%d", exportPolicy, s.exportGen), s.exportSets
	hadOld := s.exportGen != 0
	s.exportGen, s.exportSets = gen, sets
	if !hadOld {
		return nil
	}
	// The old policy is no longer assigned: failing to delete it leaks a
	// little memory in GoBGP and nothing else, so it is only logged.
	if err := s.bgp.DeletePolicy(ctx, &api.DeletePolicyRequest{Policy: &api.Policy{Name: oldName}, All: true}); err != nil {
		s.log.Warn("cannot delete the previous export policy", "policy", oldName, "err", err)
	}
	for _, set := range oldSets {
		d := &api.DefinedSet{DefinedType: api.DefinedType_DEFINED_TYPE_NEIGHBOR, Name: set}
		if err := s.bgp.DeleteDefinedSet(ctx, &api.DeleteDefinedSetRequest{DefinedSet: d, All: true}); err != nil {
			s.log.Warn("cannot delete a neighbor set of the previous export policy", "set", set, "err", err)
		}
	}
	return nil
}

// addPeer adds one neighbor to GoBGP.
func (s *Speaker) addPeer(ctx context.Context, n Neighbor) error {
	ps := &peerState{state: bgp.BGP_FSM_IDLE, since: time.Now(), md5: n.Password != "",
		openConfirmLimit: max(cmp.Or(n.HoldTime, gobgpHoldTime), openConfirmFloor)}
	s.stMu.Lock()
	s.peers[n.Address] = ps
	s.stMu.Unlock()
	if err := s.bgp.AddPeer(ctx, &api.AddPeerRequest{Peer: s.apiPeer(n)}); err != nil {
		s.stMu.Lock()
		delete(s.peers, n.Address)
		s.stMu.Unlock()
		return fmt.Errorf("routing: add neighbor %s (AS %d): %w", n.Address, n.PeerAS, err)
	}
	if n.BFD.Enabled {
		local, _ := netip.ParseAddr(s.localAddress(n.Address)) // "": the kernel chooses
		addr := n.Address
		if err := s.bfd.add(addr, local, n.BFD, func(why bfdDown) { s.onBFDDown(addr, ps, why) }); err != nil {
			s.deletePeer(ctx, addr)
			return err
		}
	}
	s.log.Info("neighbor added", "peer", n.Address, "peer_as", n.PeerAS, "families", familyNames(n.Families), "passive", n.Passive, "md5", n.Password != "", "bfd", n.BFD.Enabled)
	return nil
}

func (s *Speaker) deletePeer(ctx context.Context, addr netip.Addr) error {
	s.bfd.remove(addr)
	err := s.bgp.DeletePeer(ctx, &api.DeletePeerRequest{Address: addr.String()})
	s.stMu.Lock()
	delete(s.peers, addr)
	s.stMu.Unlock()
	if err != nil {
		return fmt.Errorf("routing: delete neighbor %s: %w", addr, err)
	}
	s.log.Info("neighbor removed", "peer", addr)
	return nil
}

// apiPeer translates a Neighbor into GoBGP's peer configuration.
func (s *Speaker) apiPeer(n Neighbor) *api.Peer {
	p := &api.Peer{
		Conf: &api.PeerConf{
			NeighborAddress: n.Address.String(),
			PeerAsn:         n.PeerAS,
			Description:     n.Description,
			AuthPassword:    n.Password,
		},
		Timers: &api.Timers{Config: &api.TimersConfig{
			HoldTime:          seconds(n.HoldTime),
			KeepaliveInterval: seconds(n.KeepaliveTime),
			ConnectRetry:      seconds(n.ConnectRetry),
			// Without it GoBGP idles 30 s after a reset: see idleHoldAfterReset.
			IdleHoldTimeAfterReset: idleHoldAfterReset(n),
		}},
		Transport: &api.Transport{
			PassiveMode:  n.Passive,
			RemotePort:   uint32(n.Port),
			LocalAddress: s.localAddress(n.Address),
		},
	}
	if n.MultihopTTL > 0 {
		p.EbgpMultihop = &api.EbgpMultihop{Enabled: true, MultihopTtl: uint32(n.MultihopTTL)}
	}
	if n.TTLSecurity {
		// GoBGP then sends with TTL 255 and sets the minimum TTL on the
		// session's socket, outgoing or accepted.
		p.TtlSecurity = &api.TtlSecurity{Enabled: true, TtlMin: 255}
	}
	for _, f := range n.Families {
		af := &api.AfiSafi{Config: &api.AfiSafiConfig{Family: apiFamily(f), Enabled: true}}
		if n.MaxPrefixes > 0 {
			// GoBGP counts the Adj-RIB-In, which holds every received
			// route whatever the import policy says, after each UPDATE.
			af.PrefixLimits = &api.PrefixLimit{Family: apiFamily(f), MaxPrefixes: n.MaxPrefixes}
		}
		p.AfiSafis = append(p.AfiSafis, af)
	}
	return p
}

// localAddress is the source address of the sessions to neighbor: the
// first listen address of its family, so that the neighbor sees the same
// address whichever side connects. Without listen addresses the kernel
// chooses ("" lets GoBGP leave it unset).
func (s *Speaker) localAddress(neighbor netip.Addr) string {
	for _, a := range s.cfg.ListenAddresses {
		if a.Is4() == neighbor.Is4() && !a.IsUnspecified() {
			return a.String()
		}
	}
	return ""
}

// onPeerEvent records a neighbor's state change and why it happened, logs
// it, and notifies Changes().
func (s *Speaker) onPeerEvent(ev *apiutil.WatchEventMessage_PeerEvent, t time.Time) {
	if ev.Type != apiutil.PEER_EVENT_STATE {
		return
	}
	st := ev.Peer.State
	addr := st.NeighborAddress
	reason := ""
	switch st.DisconnectReason {
	case api.PeerState_DISCONNECT_REASON_UNSPECIFIED:
	case api.PeerState_DISCONNECT_REASON_IDLE_TIMER_EXPIRED:
		// Idle to active once the idle hold is over: the session is being
		// tried again, nothing failed. Recording it would replace the
		// reason of the failure before it (a NOTIFICATION sent, a hold
		// timer expiry) seconds after it happened.
	default:
		reason = st.DisconnectMessage
	}

	s.stMu.Lock()
	ps, ok := s.peers[addr]
	if !ok {
		// A deleted neighbor's last event: nobody asks about it any more.
		s.stMu.Unlock()
		return
	}
	old := ps.state
	changed := old != st.SessionState
	// GoBGP reports the prefix limit only as its admin state; the
	// session's end looks like any closed connection ("read-failed").
	prefixLimit := changed && st.AdminState == api.PeerState_ADMIN_STATE_PFX_CT && st.SessionState == bgp.BGP_FSM_IDLE
	if prefixLimit {
		reason = fmt.Sprintf("sent Cease \"Maximum Number of Prefixes Reached\" (more than max_prefixes); tried again %v later", prefixLimitRestart)
	}
	if ps.openConfirmExpired && changed {
		// The change the speaker's disable caused, unless the session had
		// left OpenConfirm by itself just before.
		ps.openConfirmExpired = false
		if st.DisconnectReason == api.PeerState_DISCONNECT_REASON_ADMIN_DOWN {
			reason = openConfirmExpiredReason
		}
	}
	ps.state = st.SessionState
	if changed {
		ps.since = t
	}
	if reason != "" && st.DisconnectReason != api.PeerState_DISCONNECT_REASON_DECONFIGURED {
		ps.lastErr = reason
	}
	limit := ps.openConfirmLimit
	s.stMu.Unlock()

	if prefixLimit {
		s.restartAfterPrefixLimit(addr)
	}
	if changed && st.SessionState == bgp.BGP_FSM_OPENCONFIRM {
		time.AfterFunc(limit, func() { s.expireOpenConfirm(addr, ps, t) })
	}
	if changed {
		attrs := []any{"peer", addr, "state", stateName(st.SessionState), "from", stateName(old)}
		if reason != "" {
			attrs = append(attrs, "reason", reason)
		}
		if old == bgp.BGP_FSM_ESTABLISHED && st.DisconnectReason == api.PeerState_DISCONNECT_REASON_DECONFIGURED {
			// Our own doing: Close or a reload that removed the neighbor.
			s.log.Info("neighbor down", attrs...)
		} else if old == bgp.BGP_FSM_ESTABLISHED {
			s.log.Warn("neighbor down", attrs...)
		} else if st.SessionState == bgp.BGP_FSM_ESTABLISHED {
			s.log.Info("neighbor up", attrs...)
		} else {
			s.log.Debug("neighbor state", attrs...)
		}
	}
	select {
	case s.changes <- struct{}{}:
	default:
	}
}

// PrefixLimitRestart is how long a session closed because the neighbor
// sent more than MaxPrefixes stays down before it is tried again. GoBGP
// alone would keep it down until an operator enables it, and the shared
// upstream leaking a full table would then cut every node off for good;
// a minute keeps the cost of a peer that leaks again to one Adj-RIB-In
// of MaxPrefixes routes a minute.
const PrefixLimitRestart = time.Minute

// prefixLimitRestart is PrefixLimitRestart; tests shorten it.
var prefixLimitRestart = PrefixLimitRestart

// restartAfterPrefixLimit enables the neighbor again PrefixLimitRestart
// after GoBGP shut it down for its prefix limit. Called from GoBGP's event
// callback, which must not wait: the timer runs on its own goroutine.
func (s *Speaker) restartAfterPrefixLimit(addr netip.Addr) {
	s.log.Warn("neighbor sent more prefixes than max_prefixes; session closed, trying again later", "peer", addr, "retry_in", prefixLimitRestart)
	time.AfterFunc(prefixLimitRestart, func() {
		// After Close or once the neighbor is removed GoBGP answers with an
		// error, which then means nothing.
		err := s.bgp.EnablePeer(context.Background(), &api.EnablePeerRequest{Address: addr.String()})
		if err != nil {
			s.log.Debug("cannot enable the neighbor after its prefix limit", "peer", addr, "err", err)
			return
		}
		s.log.Info("neighbor enabled again after its prefix limit", "peer", addr)
	})
}

// gobgpHoldTime is the hold time GoBGP proposes when none is configured.
const gobgpHoldTime = 90 * time.Second

// openConfirmFloor is the shortest wait in OpenConfirm before the
// speaker closes the session, whatever the hold time. When only one side
// of a collision is stuck so, the other GoBGP recovers it: after its idle
// hold (5 s) it takes up the connection it had parked and sends the
// KEEPALIVE (measured: up 5-9 s after the start). Closing sooner (at a
// hold time of 3 s) cut that short and made both sides start over
// together, to collide again. Router and speaker pairs started 30 at a
// time under load, not up within 25 s: 1 of 600 (stuck for good) without
// this timer; 6 of 900 with it at 3 s; 0 of 900 with this floor (the one
// stuck for good up after 22 s).
const openConfirmFloor = 10 * time.Second

const openConfirmExpiredReason = "no KEEPALIVE in OpenConfirm within the hold time (at least 10 s): connections closed, tried again"

// expireOpenConfirm runs the hold timer that GoBGP v4.9 does not run in
// OpenConfirm before a neighbor's first session (it arms it with the
// negotiated hold time, which is 0 until a session was Established): a
// session still in the OpenConfirm it entered at since, a hold time
// (openConfirmFloor at least) later, is closed, as RFC 4271 §8.2.2 asks.
// Without it such a session waits for good, and GoBGP refuses every new
// connection from the neighbor meanwhile.
// It happens when both sides connect at once (a connection collision,
// RFC 4271 §6.8) and each takes the other's connection to OpenConfirm
// before its own has received an OPEN: GoBGP then parks its own
// connection unread and never sends the KEEPALIVE the neighbor waits for
// there. Two GoBGP speakers, such as partner nodes, end up both waiting;
// a router that goes silent after the OPEN exchange does the same.
//
// GoBGP's ResetPeer would only queue a NOTIFICATION for the next
// Established session: the neighbor is disabled instead (GoBGP closes the
// session's connection and the parked one) and enabled again once GoBGP
// has taken that in; it is tried again after GoBGP's idle hold (5 s).
func (s *Speaker) expireOpenConfirm(addr netip.Addr, ps *peerState, since time.Time) {
	if !s.disableStuck(addr, ps, since) {
		return
	}
	ctx := context.Background()
	// GoBGP queues one admin state change per neighbor and drops a second
	// one sent before its FSM took the first: wait for the disable to
	// show, or the enable would be lost and the neighbor stay disabled.
	disabled := func() bool {
		down := false
		s.bgp.ListPeer(ctx, &api.ListPeerRequest{Address: addr.String()}, func(p *api.Peer) {
			down = p.GetState().GetAdminState() == api.PeerState_ADMIN_STATE_DOWN
		})
		return down
	}
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for end := time.Now().Add(10 * time.Second); !disabled() && time.Now().Before(end); {
		<-tick.C
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	// A neighbor re-created by a reload meanwhile is enabled already:
	// GoBGP only logs that it is.
	if err := s.bgp.EnablePeer(ctx, &api.EnablePeerRequest{Address: addr.String()}); err != nil {
		s.log.Error("cannot enable a neighbor after closing its session stuck in OpenConfirm", "peer", addr, "err", err)
	}
}

// disableStuck disables the neighbor if its session is still in the
// OpenConfirm it entered at since, and reports whether it did. Holding mu,
// no reload re-creates the neighbor between the check and the disable.
func (s *Speaker) disableStuck(addr netip.Addr, ps *peerState, since time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stMu.Lock()
	stuck := !s.closed && s.peers[addr] == ps && ps.state == bgp.BGP_FSM_OPENCONFIRM && ps.since.Equal(since)
	if stuck {
		ps.openConfirmExpired = true
	}
	s.stMu.Unlock()
	if !stuck {
		return false
	}
	s.log.Warn("neighbor sent no KEEPALIVE in OpenConfirm in time; closing the connections and trying again", "peer", addr, "waited", ps.openConfirmLimit)
	err := s.bgp.DisablePeer(context.Background(), &api.DisablePeerRequest{Address: addr.String(), Communication: "hold timer expired in OpenConfirm"})
	if err != nil {
		s.stMu.Lock()
		ps.openConfirmExpired = false
		s.stMu.Unlock()
		s.log.Warn("cannot close a session stuck in OpenConfirm", "peer", addr, "err", err)
		return false
	}
	return true
}

// onBFDDown is called by a neighbor's BFD session when it leaves Up. BFD
// failed (expiry, or the neighbor signalled Down): the session, if
// Established, is reset at once with a Cease "BFD is down", which is what
// BFD is for. AdminDown: nothing (RFC 5882 §4.2, bfd.go). A session not
// Established has nothing to reset: GoBGP would queue the NOTIFICATION
// for the next one. Called on the BFD session's goroutine, which must not
// wait for GoBGP: the reset runs on its own. ps is the neighbor's state
// when its BFD session was created: a reload that deleted and added the
// neighbor since has a new one, whose session this BFD failure says
// nothing about. The reset holds mu, so that no reload re-creates the
// neighbor between the check and the reset.
func (s *Speaker) onBFDDown(addr netip.Addr, ps *peerState, why bfdDown) {
	if why == bfdAdminDown {
		return
	}
	go func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.closed || !s.establishedAs(addr, ps) {
			return
		}
		// After Close, GoBGP answers "server stopped".
		err := s.bgp.ResetPeer(context.Background(), &api.ResetPeerRequest{Address: addr.String(), Communication: "BFD is down"})
		if err != nil {
			s.log.Warn("BFD is down but the session could not be reset", "peer", addr, "err", err)
		}
	}()
}

// recordConnectError keeps why the last outgoing connection to a neighbor
// failed (GoBGP logs it at debug level and nowhere else) and logs it once
// per distinct error, not on every retry.
func (s *Speaker) recordConnectError(peer netip.Addr, msg string) {
	s.stMu.Lock()
	ps, ok := s.peers[peer]
	if !ok || ps.state == bgp.BGP_FSM_ESTABLISHED {
		s.stMu.Unlock()
		return
	}
	if ps.md5 && isTimeout(msg) {
		// With TCP-MD5 the kernel drops segments with a wrong or missing
		// signature without a reply: a mismatch looks exactly like this.
		msg += " (TCP-MD5 is configured: check that both sides use the same password)"
	}
	same := ps.lastErr == msg
	ps.lastErr = msg
	s.stMu.Unlock()
	if !same {
		s.log.Warn("cannot connect to neighbor", "peer", peer, "err", msg)
	}
}

// Changes is notified (without blocking; buffer 1) after any neighbor
// state change.
func (s *Speaker) Changes() <-chan struct{} { return s.changes }

// establishedAs reports whether ps is still the state of the neighbor at
// addr (not re-created since) and its session is Established.
func (s *Speaker) establishedAs(addr netip.Addr, ps *peerState) bool {
	s.stMu.Lock()
	defer s.stMu.Unlock()
	return s.peers[addr] == ps && ps.state == bgp.BGP_FSM_ESTABLISHED
}

// Established reports whether the session with the neighbor at addr is
// Established.
func (s *Speaker) Established(addr netip.Addr) bool {
	s.stMu.Lock()
	defer s.stMu.Unlock()
	ps, ok := s.peers[addr]
	return ok && ps.state == bgp.BGP_FSM_ESTABLISHED
}

// Neighbors returns the status of each configured neighbor, in the order
// of the configuration.
func (s *Speaker) Neighbors() []NeighborStatus {
	s.mu.Lock()
	neighbors := slices.Clone(s.cfg.Neighbors)
	closed := s.closed
	s.mu.Unlock()

	listed := make(map[netip.Addr]*api.Peer)
	if !closed {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err := s.bgp.ListPeer(ctx, &api.ListPeerRequest{EnableAdvertised: true}, func(p *api.Peer) {
			if a, err := netip.ParseAddr(p.GetConf().GetNeighborAddress()); err == nil {
				listed[a] = p
			}
		})
		if err != nil {
			s.log.Warn("cannot list neighbors", "err", err)
		}
	}

	out := make([]NeighborStatus, 0, len(neighbors))
	for _, n := range neighbors {
		ns := NeighborStatus{
			Address:     n.Address,
			PeerAS:      n.PeerAS,
			Description: n.Description,
			Role:        n.Role,
			Families:    slices.Clone(n.Families),
			State:       "idle",
			BFD:         "off",
		}
		s.stMu.Lock()
		if ps, ok := s.peers[n.Address]; ok {
			ns.State = stateName(ps.state)
			ns.Established = ps.state == bgp.BGP_FSM_ESTABLISHED
			ns.Since = ps.since
			ns.LastError = ps.lastErr
		}
		s.stMu.Unlock()
		if p, ok := listed[n.Address]; ok {
			for _, af := range p.GetAfiSafis() {
				ns.PrefixesSent += int(af.GetState().GetAdvertised())
				ns.PrefixesReceived += int(af.GetState().GetReceived())
			}
		}
		if n.BFD.Enabled {
			ns.BFD = cmp.Or(s.bfd.state(n.Address), "down")
		}
		out = append(out, ns)
	}
	return out
}

// PartnerRoutes returns the prefixes announced to us by the partner
// neighbors whose sessions are Established, read from their Adj-RIB-In
// (received routes never enter the RIB). A partner whose table cannot be
// read contributes nothing: a drain then refuses, which is the safe side.
func (s *Speaker) PartnerRoutes() []PartnerRoute {
	s.mu.Lock()
	neighbors := slices.Clone(s.cfg.Neighbors)
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return nil
	}
	var out []PartnerRoute
	for _, n := range neighbors {
		if n.Role != Partner || !s.Established(n.Address) {
			continue
		}
		for _, f := range n.Families {
			err := s.bgp.ListPath(apiutil.ListPathRequest{
				TableType: api.TableType_TABLE_TYPE_ADJ_IN,
				Name:      n.Address.String(),
				Family:    bgpFamily(f),
			}, func(nlri bgp.NLRI, paths []*apiutil.Path) {
				pfx, ok := nlriPrefix(nlri)
				if !ok {
					return
				}
				for _, p := range paths {
					if p.Withdrawal {
						continue
					}
					out = append(out, PartnerRoute{Partner: n.Address, Prefix: pfx, GracefulShutdown: hasCommunity(p.Attrs, GracefulShutdown)})
					break
				}
			})
			if err != nil {
				s.log.Warn("cannot read a partner's routes", "peer", n.Address, "family", f, "err", err)
			}
		}
	}
	slices.SortFunc(out, func(a, b PartnerRoute) int {
		if c := a.Partner.Compare(b.Partner); c != 0 {
			return c
		}
		return a.Prefix.Compare(b.Prefix)
	})
	return out
}

// Collectors returns GoBGP's own Prometheus collectors, as gobgpd
// registers them: the sessions (bgp_*: per neighbor, its messages sent and
// received by type, state, flops, uptime, routes received, accepted and
// advertised per family) and the FSM loop's timings (fsm_loop_*). They read
// GoBGP at each scrape; once the speaker is closed they report an error
// (GoBGP is stopped), which the caller's registry may skip.
func (s *Speaker) Collectors() []prometheus.Collector {
	return []prometheus.Collector{metrics.NewBgpCollector(s.bgp), s.fsmTimings}
}

// Close stops the speaker: every session gets a Cease NOTIFICATION, so the
// neighbors withdraw our routes at once. It is safe to call twice.
func (s *Speaker) Close(ctx context.Context) error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		// BFD first: a reset it asks for now would race the Ceases.
		s.bfd.close()
		done := make(chan struct{})
		go func() {
			// Stop = StopBgp (Cease to every peer) + the BFD and gRPC
			// servers, which StopBgp leaves running.
			s.bgp.Stop()
			close(done)
		}()
		select {
		case <-done:
		case <-ctx.Done():
			s.closeErr = fmt.Errorf("routing: stop BGP: %w", ctx.Err())
		}
		if s.stopWatch != nil {
			s.stopWatch()
		}
		if s.grpcCleanup != nil {
			s.grpcCleanup()
		}
		s.log.Info("speaker stopped")
	})
	return s.closeErr
}

// defaultIdleHold is the idle hold after a reset when the neighbor has no
// connect retry of its own: GoBGP's fixed idle time after every other kind
// of session failure (holdtimeIdle in its fsm.go).
const defaultIdleHold = 5 * time.Second

// idleHoldAfterReset is how long GoBGP stays idle, refusing connections in
// both directions, after it reset the session with a Cease "Administrative
// Reset". That is what ResetPeer does, which the speaker calls when BFD
// goes down (onBFDDown), so a node that was cut off and comes back would
// otherwise stay unrouted for GoBGP's default of 30 s. The neighbor's
// connect retry says how soon this session should be tried again after a
// failure, so it is used here too (whole seconds, at least 1: GoBGP reads
// 0 as its default). Sessions that fail in other ways (hold timer expiry,
// a NOTIFICATION received, TCP closed) idle for GoBGP's fixed 5 s, which
// is not configurable.
func idleHoldAfterReset(n Neighbor) uint64 {
	if n.ConnectRetry > 0 {
		return seconds(n.ConnectRetry)
	}
	return seconds(defaultIdleHold)
}

func seconds(d time.Duration) uint64 {
	if d <= 0 {
		return 0 // GoBGP's default
	}
	return uint64((d + time.Second - 1) / time.Second)
}

func stateName(st bgp.FSMState) string {
	switch st {
	case bgp.BGP_FSM_IDLE:
		return "idle"
	case bgp.BGP_FSM_CONNECT:
		return "connect"
	case bgp.BGP_FSM_ACTIVE:
		return "active"
	case bgp.BGP_FSM_OPENSENT:
		return "opensent"
	case bgp.BGP_FSM_OPENCONFIRM:
		return "openconfirm"
	case bgp.BGP_FSM_ESTABLISHED:
		return "established"
	}
	return "unknown"
}

func apiFamily(f Family) *api.Family {
	if f == IPv6Unicast {
		return &api.Family{Afi: api.Family_AFI_IP6, Safi: api.Family_SAFI_UNICAST}
	}
	return &api.Family{Afi: api.Family_AFI_IP, Safi: api.Family_SAFI_UNICAST}
}

func bgpFamily(f Family) bgp.Family {
	if f == IPv6Unicast {
		return bgp.RF_IPv6_UC
	}
	return bgp.RF_IPv4_UC
}

func familyNames(fs []Family) []string {
	out := make([]string, len(fs))
	for i, f := range fs {
		out[i] = f.String()
	}
	return out
}

func nlriPrefix(n bgp.NLRI) (netip.Prefix, bool) {
	switch v := n.(type) {
	case *bgp.IPAddrPrefix:
		return v.Prefix, true
	}
	return netip.Prefix{}, false
}

func hasCommunity(attrs []bgp.PathAttributeInterface, c uint32) bool {
	for _, a := range attrs {
		if cs, ok := a.(*bgp.PathAttributeCommunities); ok && slices.Contains(cs.Value, c) {
			return true
		}
	}
	return false
}

func isTimeout(msg string) bool {
	return strings.Contains(msg, "i/o timeout") || strings.Contains(msg, "timed out")
}

var errClosed = errors.New("routing: the speaker is closed")
