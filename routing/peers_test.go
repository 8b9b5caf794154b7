package routing

// Misbehaving peers: a session that flaps, a peer that restarts, a peer
// that sends malformed UPDATEs (a raw BGP speaker written here, over TCP),
// a peer that announces our own prefixes back at us. What each test proves
// is said above it.

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	api "github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	"github.com/osrg/gobgp/v4/pkg/packet/bgp"

	"github.com/map646/map646/lab/labreq"
	"github.com/map646/map646/lab/poll"
)

// logLines is a slog destination that keeps every line (and passes it to
// t.Log when ROUTING_TEST_LOG is set), so that a test can assert that an
// event was logged.
type logLines struct {
	t     *testing.T
	mu    sync.Mutex
	lines []string
}

func (l *logLines) Write(p []byte) (int, error) {
	line := strings.TrimSuffix(string(p), "\n")
	l.mu.Lock()
	l.lines = append(l.lines, line)
	l.mu.Unlock()
	if os.Getenv("ROUTING_TEST_LOG") != "" {
		l.t.Log(line)
	}
	return len(p), nil
}

// grep returns the lines that contain every one of subs.
func (l *logLines) grep(subs ...string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
next:
	for _, line := range l.lines {
		for _, s := range subs {
			if !strings.Contains(line, s) {
				continue next
			}
		}
		out = append(out, line)
	}
	return out
}

// await returns the lines that contain every one of subs once there is
// one, or none after testWait: the state an event changes can be visible
// before the event's log line is written.
func (l *logLines) await(subs ...string) []string {
	var got []string
	poll.Until(testWait, 5*time.Millisecond, func() bool { got = l.grep(subs...); return len(got) > 0 })
	return got
}

// newLoggedSpeaker is newTestSpeaker with its log (info and up) kept.
func newLoggedSpeaker(t *testing.T, cfg Config) (*Speaker, *logLines) {
	t.Helper()
	ll := &logLines{t: t}
	s, err := New(cfg, slog.New(slog.NewTextHandler(ll, &slog.HandlerOptions{Level: slog.LevelInfo})))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { s.Close(context.Background()) })
	return s, ll
}

// adjInPaths lists what a GoBGP server holds in its Adj-RIB-In from peer,
// per prefix (withdrawals left out).
func adjInPaths(t *testing.T, s interface {
	ListPath(apiutil.ListPathRequest, func(bgp.NLRI, []*apiutil.Path)) error
}, peer netip.Addr, f bgp.Family) map[netip.Prefix]*apiutil.Path {
	t.Helper()
	out := make(map[netip.Prefix]*apiutil.Path)
	err := s.ListPath(apiutil.ListPathRequest{TableType: api.TableType_TABLE_TYPE_ADJ_IN, Name: peer.String(), Family: f},
		func(n bgp.NLRI, paths []*apiutil.Path) {
			p, ok := nlriPrefix(n)
			if !ok {
				return
			}
			for _, path := range paths {
				if !path.Withdrawal {
					out[p] = path
					return
				}
			}
		})
	if err != nil {
		t.Fatalf("adj-in from %s: %v", peer, err)
	}
	return out
}

// pollUntil calls cond every 10 ms until it holds or testWait passes:
// route arrivals in an Adj-RIB-In raise no event.
func pollUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	if !poll.Until(testWait, 10*time.Millisecond, cond) {
		t.Fatalf("%s: not after %v", what, testWait)
	}
}

// routerHolds reports whether router r holds, from the speaker at addrS,
// exactly want (prefix, MED, communities, AS path [65001]) in family f.
func routerHolds(t *testing.T, r *testRouter, f bgp.Family, want []Announcement) bool {
	t.Helper()
	got := adjInPaths(t, r.s, addrS, f)
	n := 0
	for _, a := range want {
		if (a.Prefix.Addr().Is4()) != (f == bgp.RF_IPv4_UC) {
			continue
		}
		n++
		p, ok := got[a.Prefix]
		if !ok {
			return false
		}
		at := attrsOf(p)
		comms := slices.Clone(at.communities)
		slices.Sort(comms)
		wc := slices.Clone(a.Communities)
		slices.Sort(wc)
		if !at.hasMED || at.med != a.MED || !slices.Equal(comms, wc) || !slices.Equal(at.asPath, []uint32{65001}) {
			return false
		}
	}
	return len(got) == n
}

// describeAdjIn is for failure messages.
func describeAdjIn(t *testing.T, r *testRouter, f bgp.Family) string {
	var b strings.Builder
	for p, path := range adjInPaths(t, r.s, addrS, f) {
		fmt.Fprintf(&b, "%s: %v; ", p, attrsOf(path))
	}
	return b.String()
}

// neighborStatus returns the speaker's status of peer.
func neighborStatus(t *testing.T, s *Speaker, peer netip.Addr) NeighborStatus {
	t.Helper()
	for _, ns := range s.Neighbors() {
		if ns.Address == peer {
			return ns
		}
	}
	t.Fatalf("no neighbor %s in %+v", peer, s.Neighbors())
	return NeighborStatus{}
}

// waitDown waits on the speaker's Changes() until peer is not Established.
func waitDown(t *testing.T, s *Speaker, peer netip.Addr) {
	t.Helper()
	deadline := time.After(testWait)
	for s.Established(peer) {
		select {
		case <-s.Changes():
		case <-deadline:
			t.Fatalf("session with %s still established after %v", peer, testWait)
		}
	}
}

// Proves: a neighbor whose session goes down and up again, in three ways
// (the router shuts the session down administratively and re-enables it;
// the router deletes the neighbor and adds it back; the router's process is replaced
// by a fresh one on the same address, which is also the "peer restarts"
// case), holds after each re-establishment exactly the announced set with
// its attributes: nothing stale from before the flap, nothing missing,
// and a change of announcements made while the session was down is what
// it gets. The other neighbor's session is not touched by any of it (its
// Since never changes) and it holds the same set throughout. Each flap is
// logged as "neighbor down" with the reason and "neighbor up".
func TestPeerFlaps(t *testing.T) {
	port := freePort(t)
	s, logs := newLoggedSpeaker(t, Config{
		LocalAS: 65001, RouterID: addrS, ListenAddresses: []netip.Addr{addrS}, ListenPort: port,
		Neighbors: []Neighbor{testNeighbor(addrR4, 65000, port, IPv4Unicast), testNeighbor(addrR3, 65003, port, IPv4Unicast)},
	})
	rp := routerPeer{testNeighbor(addrS, 65001, port), []Family{IPv4Unicast}}
	r4 := newTestRouter(t, addrR4, 65000, port, rp)
	r3 := newTestRouter(t, addrR3, 65003, port, rp)
	waitEstablished(t, s, addrR4)
	waitEstablished(t, s, addrR3)

	want := []Announcement{
		{Prefix: pfx4, MED: 10, Communities: []uint32{65001<<16 | 100}},
		{Prefix: pfx4b, MED: 20},
	}
	if err := s.Announce(context.Background(), want); err != nil {
		t.Fatal(err)
	}
	pollUntil(t, "the first set at the router", func() bool { return routerHolds(t, r4, bgp.RF_IPv4_UC, want) })
	pollUntil(t, "the first set at the other router", func() bool { return routerHolds(t, r3, bgp.RF_IPv4_UC, want) })
	r3Since := neighborStatus(t, s, addrR3).Since

	flaps := []struct {
		how  string
		down func()
		up   func()
	}{
		{"router disables the session (Cease, administrative shutdown)", func() {
			if err := r4.s.DisablePeer(context.Background(), &api.DisablePeerRequest{Address: addrS.String(), Communication: "maintenance"}); err != nil {
				t.Fatal(err)
			}
		}, func() {
			if err := r4.s.EnablePeer(context.Background(), &api.EnablePeerRequest{Address: addrS.String()}); err != nil {
				t.Fatal(err)
			}
		}},
		// (Not ResetPeer: a GoBGP router then refuses the session for its
		// idle hold after a reset, 30 s by default: the router's doing.)
		{"router deletes the neighbor and adds it back (Cease, peer de-configured)", func() {
			if err := r4.s.DeletePeer(context.Background(), &api.DeletePeerRequest{Address: addrS.String()}); err != nil {
				t.Fatal(err)
			}
		}, func() { r4.addPeer(rp) }},
		{"router process replaced (restart on the same address)", func() {
			r4.s.Stop()
		}, func() {
			r4 = newTestRouter(t, addrR4, 65000, port, rp)
		}},
	}
	for i, f := range flaps {
		downAt := time.Now()
		f.down()
		waitDown(t, s, addrR4)
		// While the session is down the announcements change: every other
		// flap withdraws pfx4b and adds 198.51.100.12/32 with new attributes,
		// then back.
		if i%2 == 0 {
			want = []Announcement{
				{Prefix: pfx4, MED: 30 + uint32(i), Communities: []uint32{GracefulShutdown}},
				{Prefix: netip.MustParsePrefix("198.51.100.12/32"), MED: 5},
			}
		} else {
			want = []Announcement{
				{Prefix: pfx4, MED: 10, Communities: []uint32{65001<<16 | 100}},
				{Prefix: pfx4b, MED: 20},
			}
		}
		if err := s.Announce(context.Background(), want); err != nil {
			t.Fatal(err)
		}
		f.up()
		waitEstablished(t, s, addrR4)
		pollUntil(t, fmt.Sprintf("flap %d (%s): the set at the router", i+1, f.how), func() bool { return routerHolds(t, r4, bgp.RF_IPv4_UC, want) })
		// Exactly that set: a marker announced now and seen at the router
		// comes after anything the speaker sent in this session, and the
		// router then holds the set plus the marker, nothing else.
		marker := netip.MustParsePrefix("198.51.100.99/32")
		withMarker := append(slices.Clone(want), Announcement{Prefix: marker, MED: 1})
		if err := s.Announce(context.Background(), withMarker); err != nil {
			t.Fatal(err)
		}
		pollUntil(t, "marker", func() bool { return adjInPaths(t, r4.s, addrS, bgp.RF_IPv4_UC)[marker] != nil })
		if !routerHolds(t, r4, bgp.RF_IPv4_UC, withMarker) {
			t.Errorf("flap %d (%s): the router holds %s; want exactly %+v", i+1, f.how, describeAdjIn(t, r4, bgp.RF_IPv4_UC), withMarker)
		}
		if err := s.Announce(context.Background(), want); err != nil {
			t.Fatal(err)
		}
		pollUntil(t, "marker withdrawn", func() bool { return routerHolds(t, r4, bgp.RF_IPv4_UC, want) })
		pollUntil(t, "the other router follows the changes", func() bool { return routerHolds(t, r3, bgp.RF_IPv4_UC, want) })
		t.Logf("flap %d (%s): back and holding the %d announcements %v after the session went down", i+1, f.how, len(want), time.Since(downAt).Round(time.Millisecond))
	}
	if ns := neighborStatus(t, s, addrR3); !ns.Established || !ns.Since.Equal(r3Since) {
		t.Errorf("the other neighbor's session changed during the flaps: %+v (up since %v before)", ns, r3Since)
	}
	if n := len(logs.grep("neighbor down", "peer="+addrR4.String(), "reason=")); n != len(flaps) {
		t.Errorf("%d \"neighbor down\" lines with a reason for %s, want %d:\n%s", n, addrR4, len(flaps), strings.Join(logs.grep("peer="+addrR4.String()), "\n"))
	}
	if n := len(logs.grep("neighbor up", "peer="+addrR4.String())); n != len(flaps)+1 {
		t.Errorf("%d \"neighbor up\" lines for %s, want %d", n, addrR4, len(flaps)+1)
	}
	if down := logs.grep("neighbor down", "peer="+addrR3.String()); len(down) != 0 {
		t.Errorf("the other neighbor went down:\n%s", strings.Join(down, "\n"))
	}
	t.Logf("log of the last flap: %s", strings.Join(logs.grep("neighbor down", "peer="+addrR4.String())[len(flaps)-1:], ""))
}

// rawPeer is a BGP speaker written by hand: it sends what a test tells it,
// byte for byte, and records what it receives.
type rawPeer struct {
	t    *testing.T
	addr netip.Addr
	conn net.Conn

	mu       sync.Mutex
	received []rawMsg
	closed   error // why reading stopped (io.EOF: the speaker closed)
	notify   chan struct{}
}

type rawMsg struct {
	typ  uint8
	body []byte
}

func (m rawMsg) String() string {
	if m.typ == bgp.BGP_MSG_NOTIFICATION && len(m.body) >= 2 {
		return fmt.Sprintf("NOTIFICATION %d/%d (%s)", m.body[0], m.body[1], notificationName(m.body[0], m.body[1]))
	}
	return fmt.Sprintf("message type %d, %d bytes", m.typ, len(m.body))
}

func notificationName(code, sub uint8) string {
	return bgp.NewNotificationErrorCode(code, sub).String()
}

// dialRaw connects from addr to the speaker at addrS:port, exchanges OPEN
// (AS 65000, hold time 90 s, 4-octet AS and ipv4-unicast capabilities) and
// KEEPALIVE, and returns once the session is Established on the
// speaker's side.
func dialRaw(t *testing.T, s *Speaker, addr netip.Addr, port int) *rawPeer {
	t.Helper()
	p := connectRaw(t, addr, port, 0)
	p.open()
	waitEstablished(t, s, addr)
	return p
}

// connectRaw opens the raw peer's TCP connection from addr to the speaker
// at addrS:port, its packets sent with IP TTL ttl (0: the system's
// default, 64).
func connectRaw(t *testing.T, addr netip.Addr, port, ttl int) *rawPeer {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: addr.AsSlice()}, Timeout: testWait}
	if ttl != 0 {
		d.Control = func(_, _ string, c syscall.RawConn) error {
			return setsockopts(c, [][3]int{{syscall.IPPROTO_IP, syscall.IP_TTL, ttl}})
		}
	}
	conn, err := d.Dial("tcp", netip.AddrPortFrom(addrS, uint16(port)).String())
	if err != nil {
		t.Fatalf("raw peer %s: %v", addr, err)
	}
	p := &rawPeer{t: t, addr: addr, conn: conn, notify: make(chan struct{}, 1)}
	t.Cleanup(func() { conn.Close() })
	go p.read()
	return p
}

// open exchanges OPEN and KEEPALIVE with the speaker.
func (p *rawPeer) open() {
	p.t.Helper()
	t, addr := p.t, p.addr
	caps := bgp.NewOptionParameterCapability([]bgp.ParameterCapabilityInterface{
		bgp.NewCapMultiProtocol(bgp.RF_IPv4_UC), bgp.NewCapFourOctetASNumber(65000),
	})
	open, err := bgp.NewBGPOpenMessage(65000, 90, addr, []bgp.OptionParameterInterface{caps})
	if err != nil {
		t.Fatal(err)
	}
	p.sendMsg(open)
	p.waitMsg("the speaker's OPEN", bgp.BGP_MSG_OPEN)
	p.sendMsg(bgp.NewBGPKeepAliveMessage())
	p.waitMsg("the speaker's KEEPALIVE", bgp.BGP_MSG_KEEPALIVE)
}

func (p *rawPeer) read() {
	var err error
	for {
		var hdr [bgp.BGP_HEADER_LENGTH]byte
		if _, err = io.ReadFull(p.conn, hdr[:]); err != nil {
			break
		}
		n := int(binary.BigEndian.Uint16(hdr[16:18]))
		if n < bgp.BGP_HEADER_LENGTH {
			err = fmt.Errorf("the speaker sent a message of length %d", n)
			break
		}
		body := make([]byte, n-bgp.BGP_HEADER_LENGTH)
		if _, err = io.ReadFull(p.conn, body); err != nil {
			break
		}
		p.mu.Lock()
		p.received = append(p.received, rawMsg{typ: hdr[18], body: body})
		p.mu.Unlock()
		p.poke()
	}
	p.mu.Lock()
	p.closed = err
	p.mu.Unlock()
	p.poke()
}

func (p *rawPeer) poke() {
	select {
	case p.notify <- struct{}{}:
	default:
	}
}

func (p *rawPeer) sendMsg(m *bgp.BGPMessage) {
	p.t.Helper()
	b, err := m.Serialize()
	if err != nil {
		p.t.Fatal(err)
	}
	p.send(b)
}

func (p *rawPeer) send(b []byte) {
	p.t.Helper()
	if _, err := p.conn.Write(b); err != nil {
		p.t.Fatalf("raw peer %s: write: %v", p.addr, err)
	}
}

// waitMsg waits for a message of type typ.
func (p *rawPeer) waitMsg(what string, typ uint8) rawMsg {
	p.t.Helper()
	deadline := time.After(testWait)
	for {
		p.mu.Lock()
		for _, m := range p.received {
			if m.typ == typ {
				p.mu.Unlock()
				return m
			}
		}
		closed := p.closed
		p.mu.Unlock()
		if closed != nil {
			p.t.Fatalf("raw peer %s: %s: connection closed (%v) after %v", p.addr, what, closed, p.received)
		}
		select {
		case <-p.notify:
		case <-deadline:
			p.t.Fatalf("raw peer %s: %s: not received after %v", p.addr, what, testWait)
		}
	}
}

// notification returns the NOTIFICATION received, if any, and whether the
// speaker closed the connection.
func (p *rawPeer) notification() (*rawMsg, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, m := range p.received {
		if m.typ == bgp.BGP_MSG_NOTIFICATION {
			return &m, p.closed != nil
		}
	}
	return nil, p.closed != nil
}

// Raw BGP messages. Path attributes are written as on the wire: flags,
// type, length, value (RFC 4271 4.3); the session has negotiated 4-octet
// AS numbers, so AS_PATH carries 4-byte ASNs.
var (
	attrOrigin  = []byte{0x40, 1, 1, 0}                      // ORIGIN IGP
	attrASPath  = []byte{0x40, 2, 6, 2, 1, 0, 0, 0xfd, 0xe8} // AS_SEQUENCE [65000]
	attrNextHop = func(a netip.Addr) []byte { b := a.As4(); return append([]byte{0x40, 3, 4}, b[:]...) }
)

// message frames body as a BGP message of type typ with a correct marker
// and length.
func message(typ uint8, body []byte) []byte {
	b := bytes.Repeat([]byte{0xff}, 16)
	b = binary.BigEndian.AppendUint16(b, uint16(bgp.BGP_HEADER_LENGTH+len(body)))
	b = append(b, typ)
	return append(b, body...)
}

// update is an UPDATE with the given raw parts and correct lengths.
func update(withdrawn, attrs, nlri []byte) []byte {
	var b []byte
	b = binary.BigEndian.AppendUint16(b, uint16(len(withdrawn)))
	b = append(b, withdrawn...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(attrs)))
	b = append(b, attrs...)
	b = append(b, nlri...)
	return message(bgp.BGP_MSG_UPDATE, b)
}

// nlri4 encodes an IPv4 prefix as NLRI: length in bits, then the bytes
// that hold them.
func nlri4(p netip.Prefix) []byte {
	a := p.Addr().As4()
	return append([]byte{byte(p.Bits())}, a[:(p.Bits()+7)/8]...)
}

func concat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// Proves: whatever a peer sends, the speaker does not crash, its other
// session (a real GoBGP router) stays Established the whole time with the
// same announcements, Announced() does not change, and nothing the peer
// sent enters the RIB. For each malformed message it records what GoBGP
// does, and checks it is what RFC 4271 / RFC 7606 ask: a header error, an
// unreadable UPDATE or an NLRI error resets the session with the right
// NOTIFICATION (shown in NeighborStatus.LastError and logged); a
// malformed attribute is "treat-as-withdraw" (the session stays up, the
// UPDATE's prefixes are withdrawn from the peer's Adj-RIB-In, GoBGP logs
// a warning). Each peer has its own address (GoBGP refuses a reset
// neighbor for 5 s); at the end every reset peer reconnects and its
// session comes back.
func TestMalformedUpdates(t *testing.T) {
	type outcome int
	const (
		reset    outcome = iota + 1 // NOTIFICATION, session down
		withdraw                    // session kept, the UPDATE's prefixes withdrawn (RFC 7606 treat-as-withdraw)
		discard                     // session kept, the UPDATE dropped: the canary keeps its previous path
		accept                      // not malformed: the UPDATE replaced the canary's path
	)
	cases := []struct {
		name string
		msg  func(canary netip.Prefix, nh netip.Addr) []byte
		want outcome
		code [2]uint8 // NOTIFICATION code/subcode for a reset
	}{
		{"wrong marker", func(c netip.Prefix, nh netip.Addr) []byte {
			m := update(nil, concat(attrOrigin, attrASPath, attrNextHop(nh)), nlri4(c))
			m[3] = 0
			return m
		}, reset, [2]uint8{1, 1}},
		{"message length 18", func(c netip.Prefix, nh netip.Addr) []byte {
			m := message(bgp.BGP_MSG_KEEPALIVE, nil)
			m[17] = 18
			return m
		}, reset, [2]uint8{1, 2}},
		{"message length 5000", func(c netip.Prefix, nh netip.Addr) []byte {
			m := update(nil, concat(attrOrigin, attrASPath, attrNextHop(nh)), nlri4(c))
			binary.BigEndian.PutUint16(m[16:], 5000)
			return append(m, make([]byte, 5000-len(m))...)
		}, reset, [2]uint8{1, 2}},
		{"unknown message type 9", func(c netip.Prefix, nh netip.Addr) []byte {
			return message(9, nil)
		}, reset, [2]uint8{1, 3}},
		{"withdrawn routes length past the end (truncated UPDATE)", func(c netip.Prefix, nh netip.Addr) []byte {
			m := update(nil, concat(attrOrigin, attrASPath, attrNextHop(nh)), nlri4(c))
			binary.BigEndian.PutUint16(m[19:], 200)
			return m
		}, reset, [2]uint8{3, 1}},
		{"attribute length past the attributes", func(c netip.Prefix, nh netip.Addr) []byte {
			bad := []byte{0x40, 2, 60, 2, 1, 0, 0, 0xfd, 0xe8} // AS_PATH claiming 60 bytes
			return update(nil, concat(attrOrigin, bad, attrNextHop(nh)), nlri4(c))
		}, discard, [2]uint8{}},
		{"ORIGIN of length 2", func(c netip.Prefix, nh netip.Addr) []byte {
			return update(nil, concat([]byte{0x40, 1, 2, 0, 0}, attrASPath, attrNextHop(nh)), nlri4(c))
		}, withdraw, [2]uint8{}},
		{"ORIGIN value 7", func(c netip.Prefix, nh netip.Addr) []byte {
			return update(nil, concat([]byte{0x40, 1, 1, 7}, attrASPath, attrNextHop(nh)), nlri4(c))
		}, withdraw, [2]uint8{}},
		{"AS_PATH segment type 9", func(c netip.Prefix, nh netip.Addr) []byte {
			return update(nil, concat(attrOrigin, []byte{0x40, 2, 6, 9, 1, 0, 0, 0xfd, 0xe8}, attrNextHop(nh)), nlri4(c))
		}, withdraw, [2]uint8{}},
		{"AS_PATH segment of 5 ASNs holding 1", func(c netip.Prefix, nh netip.Addr) []byte {
			return update(nil, concat(attrOrigin, []byte{0x40, 2, 6, 2, 5, 0, 0, 0xfd, 0xe8}, attrNextHop(nh)), nlri4(c))
		}, withdraw, [2]uint8{}},
		{"AS_PATH not starting with the peer's AS (64512)", func(c netip.Prefix, nh netip.Addr) []byte {
			return update(nil, concat(attrOrigin, []byte{0x40, 2, 6, 2, 1, 0, 0, 0xfc, 0x00}, attrNextHop(nh)), nlri4(c))
		}, accept, [2]uint8{}},
		{"AS_PATH holding our own AS (a loop)", func(c netip.Prefix, nh netip.Addr) []byte {
			return update(nil, concat(attrOrigin, []byte{0x40, 2, 10, 2, 2, 0, 0, 0xfd, 0xe8, 0, 0, 0xfd, 0xe9}, attrNextHop(nh)), nlri4(c))
		}, accept, [2]uint8{}},
		{"NEXT_HOP missing", func(c netip.Prefix, nh netip.Addr) []byte {
			return update(nil, concat(attrOrigin, attrASPath), nlri4(c))
		}, withdraw, [2]uint8{}},
		{"ORIGIN flagged optional", func(c netip.Prefix, nh netip.Addr) []byte {
			return update(nil, concat([]byte{0xc0, 1, 1, 0}, attrASPath, attrNextHop(nh)), nlri4(c))
		}, withdraw, [2]uint8{}},
		{"NLRI prefix length 33", func(c netip.Prefix, nh netip.Addr) []byte {
			a := c.Addr().As4()
			return update(nil, concat(attrOrigin, attrASPath, attrNextHop(nh)), append([]byte{33}, append(a[:], 0)...))
		}, reset, [2]uint8{3, 10}},
		{"NLRI cut short", func(c netip.Prefix, nh netip.Addr) []byte {
			a := c.Addr().As4()
			return update(nil, concat(attrOrigin, attrASPath, attrNextHop(nh)), append([]byte{32}, a[:2]...))
		}, reset, [2]uint8{3, 10}},
	}

	port := freePort(t)
	good := testNeighbor(addrR3, 65003, port, IPv4Unicast)
	neighbors := []Neighbor{good}
	rawAddr := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{127, 0, 1, byte(10 + i)}) }
	for i := range cases {
		n := testNeighbor(rawAddr(i), 65000, port, IPv4Unicast)
		// Passive: the raw peer connects. Hold 90 s: the raw peer sends
		// no KEEPALIVEs, and a hold timer expiry must not be mistaken for
		// the reaction to a message.
		n.Passive, n.HoldTime, n.KeepaliveTime = true, 90*time.Second, 30*time.Second
		neighbors = append(neighbors, n)
	}
	s, logs := newLoggedSpeaker(t, Config{
		LocalAS: 65001, RouterID: addrS, ListenAddresses: []netip.Addr{addrS}, ListenPort: port, Neighbors: neighbors,
	})
	r3 := newTestRouter(t, addrR3, 65003, port, routerPeer{testNeighbor(addrS, 65001, port), []Family{IPv4Unicast}})
	waitEstablished(t, s, addrR3)
	want := []Announcement{{Prefix: pfx4, MED: 10}}
	if err := s.Announce(context.Background(), want); err != nil {
		t.Fatal(err)
	}
	pollUntil(t, "our route at the router", func() bool { return routerHolds(t, r3, bgp.RF_IPv4_UC, want) })
	r3Since := neighborStatus(t, s, addrR3).Since

	var resetPeers []netip.Addr
	for i, c := range cases {
		addr := rawAddr(i)
		canary := netip.PrefixFrom(netip.AddrFrom4([4]byte{203, 0, 113, byte(i)}), 32)
		marker := netip.PrefixFrom(netip.AddrFrom4([4]byte{203, 0, 113, byte(100 + i)}), 32)
		p := dialRaw(t, s, addr, port)
		// The peer gets our announcement like any neighbor.
		p.waitMsg("our UPDATE", bgp.BGP_MSG_UPDATE)

		// A valid route first: the canary, which a treat-as-withdraw
		// must remove.
		p.send(update(nil, concat(attrOrigin, attrASPath, attrNextHop(addr)), nlri4(canary)))
		pollUntil(t, c.name+": canary in the Adj-RIB-In", func() bool { return adjInPaths(t, s.bgp, addr, bgp.RF_IPv4_UC)[canary] != nil })

		// The malformed message, then a valid UPDATE with a marker: GoBGP
		// handles a session's messages in order, so once the marker is in
		// the Adj-RIB-In the malformed one was handled without a reset.
		p.send(c.msg(canary, addr))
		p.conn.Write(update(nil, concat(attrOrigin, attrASPath, attrNextHop(addr)), nlri4(marker))) // may fail after a reset
		var got outcome
		deadline := time.After(testWait)
		for got == 0 {
			if n, _ := p.notification(); n != nil {
				got = reset
				break
			}
			if in := adjInPaths(t, s.bgp, addr, bgp.RF_IPv4_UC); in[marker] != nil {
				switch p := in[canary]; {
				case p == nil:
					got = withdraw
				case slices.Equal(attrsOf(p).asPath, []uint32{65000}):
					got = discard
				default:
					got = accept
				}
				break
			}
			select {
			case <-p.notify:
			case <-time.After(10 * time.Millisecond): // the Adj-RIB-In has no event
			case <-deadline:
				t.Fatalf("%s: neither a NOTIFICATION nor the marker after %v", c.name, testWait)
			}
		}
		switch got {
		case reset:
			n, _ := p.notification()
			waitDown(t, s, addr)
			ns := neighborStatus(t, s, addr)
			t.Logf("%-55s -> session reset, GoBGP sent %v; LastError %q", c.name, n, ns.LastError)
			if c.want != reset || n.body[0] != c.code[0] || n.body[1] != c.code[1] {
				t.Errorf("%s: GoBGP sent %v; want %v", c.name, n, describeOutcome(c.want == reset, c.code))
			}
			if !strings.Contains(ns.LastError, "notification-sent") {
				t.Errorf("%s: LastError %q does not say a NOTIFICATION was sent", c.name, ns.LastError)
			}
			if len(logs.await("neighbor down", "peer="+addr.String(), "reason=")) != 1 {
				t.Errorf("%s: no \"neighbor down\" line with the reason in the log", c.name)
			}
			resetPeers = append(resetPeers, addr)
		default:
			in := adjInPaths(t, s.bgp, addr, bgp.RF_IPv4_UC)
			lines := logs.grep("treated as withdraw", addr.String())
			what := map[outcome]string{withdraw: "treat-as-withdraw: the canary is withdrawn",
				discard: "UPDATE dropped: the canary keeps its previous path", accept: "UPDATE accepted into the Adj-RIB-In"}[got]
			detail := ""
			if p := in[canary]; p != nil {
				detail = fmt.Sprintf(" (canary: %v)", attrsOf(p))
			}
			t.Logf("%-55s -> session kept, %s%s; GoBGP warnings logged: %d", c.name, what, detail, len(lines))
			if got != c.want {
				t.Errorf("%s: %s; want %v", c.name, what, describeOutcome(c.want == reset, c.code))
			}
			// A malformed UPDATE is logged by GoBGP; a valid one is not.
			if (got != accept) != (len(lines) > 0) {
				t.Errorf("%s: %d warnings about the treat-as-withdraw in the log", c.name, len(lines))
			}
			if !s.Established(addr) {
				t.Errorf("%s: the session went down after all", c.name)
			}
		}
		// Whatever happened, the rest of the node is untouched.
		if ns := neighborStatus(t, s, addrR3); !ns.Established || !ns.Since.Equal(r3Since) {
			t.Fatalf("%s: the other session changed: %+v", c.name, ns)
		}
		if got := s.Announced(); len(got) != 1 || !equalAnnouncement(got[0], want[0]) {
			t.Fatalf("%s: Announced() = %+v", c.name, got)
		}
	}
	if rib := ribPrefixes(t, s.bgp, bgp.RF_IPv4_UC); !slices.Equal(rib, []netip.Prefix{pfx4}) {
		t.Errorf("RIB after the malformed UPDATEs = %v, want our %s alone", rib, pfx4)
	}
	if !routerHolds(t, r3, bgp.RF_IPv4_UC, want) {
		t.Errorf("the other router holds %s, want %+v", describeAdjIn(t, r3, bgp.RF_IPv4_UC), want)
	}

	// Every reset session comes back (after GoBGP's idle hold).
	start := time.Now()
	var wg sync.WaitGroup
	for _, addr := range resetPeers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// The speaker refuses while idle; retry as a router would.
			if poll.Until(testWait, 200*time.Millisecond, func() bool { return tryRaw(s, addr, port) }) {
				return
			}
			t.Errorf("the session with %s did not come back within %v of its reset", addr, testWait)
		}()
	}
	wg.Wait()
	t.Logf("%d reset sessions re-established %v later", len(resetPeers), time.Since(start).Round(time.Millisecond))
	// Back up, each still says why it last failed: the idle hold that
	// ended before the reconnection is not a failure.
	for _, addr := range resetPeers {
		if ns := neighborStatus(t, s, addr); !strings.Contains(ns.LastError, "notification-sent") {
			t.Errorf("%s after its reconnection: LastError %q, want the NOTIFICATION sent", addr, ns.LastError)
		}
	}
}

func describeOutcome(isReset bool, code [2]uint8) string {
	if isReset {
		return fmt.Sprintf("a session reset with NOTIFICATION %d/%d (%s)", code[0], code[1], notificationName(code[0], code[1]))
	}
	return "the outcome in the test's table"
}

// tryRaw opens a fresh session from addr and reports whether it reached
// Established (the raw peer stays connected until the test ends).
func tryRaw(s *Speaker, addr netip.Addr, port int) bool {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: addr.AsSlice()}, Timeout: time.Second}
	conn, err := d.Dial("tcp", netip.AddrPortFrom(addrS, uint16(port)).String())
	if err != nil {
		return false
	}
	caps := bgp.NewOptionParameterCapability([]bgp.ParameterCapabilityInterface{
		bgp.NewCapMultiProtocol(bgp.RF_IPv4_UC), bgp.NewCapFourOctetASNumber(65000),
	})
	open, _ := bgp.NewBGPOpenMessage(65000, 90, addr, []bgp.OptionParameterInterface{caps})
	b, _ := open.Serialize()
	ka, _ := bgp.NewBGPKeepAliveMessage().Serialize()
	conn.Write(append(b, ka...))
	// Read until the speaker's KEEPALIVE (it answers OPEN with OPEN and
	// KEEPALIVE) or until it closes.
	conn.SetReadDeadline(time.Now().Add(2 * time.Second))
	for {
		var hdr [bgp.BGP_HEADER_LENGTH]byte
		if _, err := io.ReadFull(conn, hdr[:]); err != nil {
			conn.Close()
			return false
		}
		n := int(binary.BigEndian.Uint16(hdr[16:18]))
		if _, err := io.CopyN(io.Discard, conn, int64(n-bgp.BGP_HEADER_LENGTH)); err != nil {
			conn.Close()
			return false
		}
		if hdr[18] == bgp.BGP_MSG_KEEPALIVE {
			break
		}
	}
	if !poll.Until(2*time.Second, 10*time.Millisecond, func() bool { return s.Established(addr) }) {
		conn.Close()
		return false
	}
	go func() { // keep it open; closed with the process
		io.Copy(io.Discard, conn)
	}()
	return true
}

// announceAs makes router r send pfx with the given AS path (r's own AS
// is prepended on the wire) and next hop.
func announceAs(t *testing.T, r *testRouter, pfx netip.Prefix, nh netip.Addr, asPath ...uint32) {
	t.Helper()
	nlri, _ := bgp.NewIPAddrPrefix(pfx)
	attrs := []bgp.PathAttributeInterface{bgp.NewPathAttributeOrigin(bgp.BGP_ORIGIN_ATTR_TYPE_IGP), bgp.NewPathAttributeMultiExitDisc(7)}
	if len(asPath) > 0 {
		attrs = append(attrs, bgp.NewPathAttributeAsPath([]bgp.AsPathParamInterface{bgp.NewAs4PathParam(bgp.BGP_ASPATH_ATTR_TYPE_SEQ, asPath)}))
	}
	family := bgp.RF_IPv4_UC
	if pfx.Addr().Is4() {
		a, _ := bgp.NewPathAttributeNextHop(nh)
		attrs = append(attrs, a)
	} else {
		family = bgp.RF_IPv6_UC
		a, _ := bgp.NewPathAttributeMpReachNLRI(family, []bgp.PathNLRI{{NLRI: nlri}}, nh)
		attrs = append(attrs, a)
	}
	if _, err := r.s.AddPath(apiutil.AddPathRequest{Paths: []*apiutil.Path{{Family: family, Nlri: nlri, Attrs: attrs}}}); err != nil {
		t.Fatalf("router %s: announce %s: %v", r.addr, pfx, err)
	}
}

// ribPaths returns the paths of pfx in the speaker's global RIB.
func ribPaths(t *testing.T, s *Speaker, pfx netip.Prefix) []*apiutil.Path {
	t.Helper()
	f := bgp.RF_IPv4_UC
	if pfx.Addr().Is6() {
		f = bgp.RF_IPv6_UC
	}
	var out []*apiutil.Path
	err := s.bgp.ListPath(apiutil.ListPathRequest{TableType: api.TableType_TABLE_TYPE_GLOBAL, Family: f}, func(n bgp.NLRI, paths []*apiutil.Path) {
		if p, ok := nlriPrefix(n); ok && p == pfx {
			out = append(out, paths...)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Proves: routers that announce our own prefixes back at us (the mapped
// IPv4 prefix from the upstream, the pseudo IPv6 prefix from the backend) get nothing into our
// RIB: it holds one path per prefix, our own. The UPDATEs are received
// (prefixes received counts them; they are in the Adj-RIB-In) and change
// nothing we send: neither router gets an UPDATE for our prefixes after
// theirs arrived, and both still hold our path with our attributes.
// PartnerRoutes reports what the partner announces and nothing a router
// announces, even for the same prefix.
func TestOwnPrefixesAnnouncedBack(t *testing.T) {
	port := freePort(t)
	n6 := testNeighbor(addrR6, 65002, port, IPv6Unicast)
	n6.NextHopIPv6 = nh6
	np := testNeighbor(addrP, 65001, port, IPv4Unicast, IPv6Unicast)
	np.Role, np.NextHopIPv6 = Partner, nh6
	s, logs := newLoggedSpeaker(t, Config{
		LocalAS: 65001, RouterID: addrS, ListenAddresses: []netip.Addr{addrS}, ListenPort: port,
		Neighbors: []Neighbor{testNeighbor(addrR4, 65000, port, IPv4Unicast), n6, np},
	})
	rp := func(fams ...Family) routerPeer { return routerPeer{testNeighbor(addrS, 65001, port), fams} }
	r4 := newTestRouter(t, addrR4, 65000, port, rp(IPv4Unicast))
	r6 := newTestRouter(t, addrR6, 65002, port, rp(IPv6Unicast))
	partner := newTestSpeaker(t, addrP, 65001, port, partnerOfS(port))
	for _, a := range []netip.Addr{addrR4, addrR6, addrP} {
		waitEstablished(t, s, a)
	}
	want := []Announcement{{Prefix: pfx4, MED: 10}, {Prefix: pfx6, MED: 10}}
	if err := s.Announce(context.Background(), want); err != nil {
		t.Fatal(err)
	}
	pollUntil(t, "our IPv4 route at the upstream", func() bool { return routerHolds(t, r4, bgp.RF_IPv4_UC, want) })
	pollUntil(t, "our IPv6 route at the backend", func() bool { return routerHolds(t, r6, bgp.RF_IPv6_UC, want) })
	// The partner announces the IPv4 prefix too, as a node serving the
	// same table does.
	if err := partner.Announce(context.Background(), []Announcement{{Prefix: pfx4, MED: 10}}); err != nil {
		t.Fatal(err)
	}
	// The marks below count the routers' events, which their watches
	// record after the Adj-RIB-In that routerHolds read already holds
	// the routes: wait for them, or the first UPDATE may land past the
	// mark (seen in CI).
	r4.waitFor("our IPv4 route's event", func() bool { return r4.route(pfx4) != nil })
	r6.waitFor("our IPv6 route's event", func() bool { return r6.route(pfx6) != nil })
	r4.mu.Lock()
	mark4 := len(r4.updates)
	r4.mu.Unlock()
	r6.mu.Lock()
	mark6 := len(r6.updates)
	r6.mu.Unlock()

	// Back at us: the upstream originates our IPv4 prefix, and pfx4b
	// (ours in other tests) with a longer path; the backend originates
	// the pseudo prefix.
	// (A route echoed with our own AS in its path cannot be sent by
	// GoBGP, which never sends a peer a path holding the peer's AS:
	// TestMalformedUpdates sends one by hand; it stays out of the RIB.)
	announceAs(t, r4, pfx4, addrR4)
	announceAs(t, r4, pfx4b, addrR4, 64512)
	announceAs(t, r6, pfx6, netip.MustParseAddr("2001:db8::4"))
	pollUntil(t, "the upstream's routes in the Adj-RIB-In", func() bool {
		in := adjInPaths(t, s.bgp, addrR4, bgp.RF_IPv4_UC)
		return in[pfx4] != nil && in[pfx4b] != nil
	})
	pollUntil(t, "the backend's route in the Adj-RIB-In", func() bool { return adjInPaths(t, s.bgp, addrR6, bgp.RF_IPv6_UC)[pfx6] != nil })
	pollUntil(t, "the partner's route", func() bool { return len(s.PartnerRoutes()) == 1 })

	for _, pfx := range []netip.Prefix{pfx4, pfx6, pfx4b} {
		paths := ribPaths(t, s, pfx)
		var from []string
		for _, p := range paths {
			from = append(from, fmt.Sprintf("%v (external %v)", p.PeerAddress, p.IsFromExternal))
		}
		wantN := 1
		if pfx == pfx4b {
			wantN = 0 // not ours, and nobody's route enters the RIB
		}
		if len(paths) != wantN || (wantN == 1 && (paths[0].IsFromExternal || paths[0].PeerAddress.IsValid() && !paths[0].PeerAddress.IsUnspecified())) {
			t.Errorf("RIB paths of %s: %d from %v; want %d, our own", pfx, len(paths), from, wantN)
		}
	}
	if got := s.PartnerRoutes(); !slices.Equal(got, []PartnerRoute{{Partner: addrP, Prefix: pfx4}}) {
		t.Errorf("PartnerRoutes() = %+v; want the partner's %s alone (the routers' routes are not partners')", got, pfx4)
	}
	for _, ns := range s.Neighbors() {
		wantRx := map[netip.Addr]int{addrR4: 2, addrR6: 1, addrP: 1}[ns.Address]
		if ns.PrefixesReceived != wantRx || !ns.Established {
			t.Errorf("neighbor %s: %d prefixes received, established %v; want %d, established", ns.Address, ns.PrefixesReceived, ns.Established, wantRx)
		}
	}

	// Our announcements did not move: markers sent now arrive after
	// anything the routers' routes could have caused, and before them
	// each router got nothing.
	m4, m6 := netip.MustParsePrefix("198.51.100.98/32"), netip.MustParsePrefix("64:ff9b:1::/96")
	if err := s.Announce(context.Background(), append(slices.Clone(want), Announcement{Prefix: m4}, Announcement{Prefix: m6})); err != nil {
		t.Fatal(err)
	}
	r4.waitFor("IPv4 marker", func() bool { return r4.route(m4) != nil })
	r6.waitFor("IPv6 marker", func() bool { return r6.route(m6) != nil })
	for _, c := range []struct {
		r      *testRouter
		mark   int
		marker netip.Prefix
		f      bgp.Family
	}{{r4, mark4, m4, bgp.RF_IPv4_UC}, {r6, mark6, m6, bgp.RF_IPv6_UC}} {
		c.r.mu.Lock()
		for _, ev := range c.r.updates[c.mark:] {
			if ev.from == addrS && ev.prefix != c.marker {
				t.Errorf("router %s got an UPDATE for %s (withdraw %v) after announcing our prefixes back", c.r.addr, ev.prefix, ev.withdraw)
			}
		}
		c.r.mu.Unlock()
		if p := adjInPaths(t, c.r.s, addrS, c.f); p[c.marker] == nil || !routerHolds(t, c.r, c.f, append(slices.Clone(want), Announcement{Prefix: c.marker})) {
			t.Errorf("router %s holds %s; want our %+v and the marker", c.r.addr, describeAdjIn(t, c.r, c.f), want)
		}
	}
	if lines := logs.grep("level=WARN"); len(lines) != 0 {
		t.Errorf("warnings logged while routers announced our prefixes back:\n%s", strings.Join(lines, "\n"))
	}
	if t.Failed() {
		t.Logf("the speaker's log:\n%s", strings.Join(logs.grep(""), "\n"))
	}
}

// tcpListeners returns "address:port" of every TCP socket this process has
// in LISTEN state, read from /proc (inodes of /proc/self/fd matched
// against /proc/net/tcp and tcp6).
func tcpListeners(t *testing.T) []string {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	inodes := make(map[string]bool)
	for _, fd := range fds {
		if l, err := os.Readlink("/proc/self/fd/" + fd.Name()); err == nil && strings.HasPrefix(l, "socket:[") {
			inodes[strings.TrimSuffix(strings.TrimPrefix(l, "socket:["), "]")] = true
		}
	}
	var out []string
	for _, file := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			f := strings.Fields(line)
			// sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
			if len(f) > 9 && f[3] == "0A" && inodes[f[9]] {
				out = append(out, file+" "+f[1])
			}
		}
	}
	return out
}

// Proves: with the gRPC API enabled (and no BGP listener), the speaker
// opens no TCP listening socket at all: the API is on the unix socket
// alone (GoBGP's default would be TCP port 50051 on every address). The
// socket is mode 0600, and a process of another user (nobody) cannot
// connect to it while it can connect to a 0666 socket next to it (the
// control case: the directory is open to it, so the mode is what refuses).
func TestGRPCUnixOnly(t *testing.T) {
	// Control: a TCP listener of ours is seen.
	ctl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if n := len(tcpListeners(t)); n != 1 {
		t.Fatalf("control case: %d TCP listeners found with one open; the test cannot tell", n)
	}
	ctl.Close()

	before := tcpListeners(t)
	// Not t.TempDir(): its parent is 0700, and user nobody must be able
	// to reach the socket for the mode to be what refuses it.
	dir, err := os.MkdirTemp("", "routing-grpc")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	sock := dir + "/gobgp.sock"
	s, err := New(Config{LocalAS: 65001, RouterID: addrS, ListenPort: -1, GRPCSocket: sock,
		Neighbors: []Neighbor{testNeighbor(addrR4, 65000, 179, IPv4Unicast)}}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	after := tcpListeners(t)
	var added []string
	for _, l := range after {
		if !slices.Contains(before, l) {
			added = append(added, l)
		}
	}
	if len(added) != 0 {
		t.Errorf("the speaker with the gRPC API opened TCP listeners: %v", added)
	}
	if c, err := net.DialTimeout("tcp", "127.0.0.1:50051", time.Second); err == nil {
		c.Close()
		t.Errorf("something answers on GoBGP's default gRPC port 50051")
	}
	unix, err := os.ReadFile("/proc/net/unix")
	if err != nil {
		t.Fatal(err)
	}
	// The socket is bound in a private directory next to sock, then moved
	// to sock (grpcOptions): /proc/net/unix keeps the name it was bound with.
	if !strings.Contains(string(unix), dir+"/.gobgp") {
		t.Errorf("no unix socket bound in %s/.gobgp* in /proc/net/unix", dir)
	}
	if c, err := net.DialTimeout("unix", sock, time.Second); err != nil {
		t.Errorf("%s does not answer: %v", sock, err)
	} else {
		c.Close()
	}
	t.Logf("TCP listeners of the process: %d before New, %d after (gRPC on %s)", len(before), len(after), sock)

	// Another user.
	labreq.Root(t, "connect as user nobody")
	open := dir + "/open.sock"
	l, err := net.Listen("unix", open)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	if err := os.Chmod(open, 0o666); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := dialAsNobody(t, open); err != nil {
		t.Fatalf("control case: nobody cannot connect to a 0666 socket in %s (%v): the test cannot tell", dir, err)
	}
	err = dialAsNobody(t, sock)
	if err == nil || !strings.Contains(err.Error(), "permission denied") {
		t.Errorf("user nobody connecting to the gRPC socket: %v; want permission denied", err)
	}
	t.Logf("user nobody connecting to the gRPC socket: %v", err)
}

// dialAsNobody runs this test binary (copied where nobody may run it) as
// uid/gid 65534 to connect to the unix socket at path, through
// TestHelperDialUnix; it returns the error that process met.
func dialAsNobody(t *testing.T, path string) error {
	t.Helper()
	return runAsNobody(t, "ROUTING_DIAL_UNIX="+path)
}

var nobodyBin struct {
	once sync.Once
	path string
	err  error
}

func runAsNobody(t *testing.T, env string) error {
	t.Helper()
	nobodyBin.once.Do(func() {
		self, err := os.Executable()
		if err != nil {
			nobodyBin.err = err
			return
		}
		dir, err := os.MkdirTemp("", "routing-nobody")
		if err != nil {
			nobodyBin.err = err
			return
		}
		os.Chmod(dir, 0o755)
		b, err := os.ReadFile(self)
		if err != nil {
			nobodyBin.err = err
			return
		}
		nobodyBin.path = dir + "/routing.test"
		nobodyBin.err = os.WriteFile(nobodyBin.path, b, 0o755)
	})
	if nobodyBin.err != nil {
		t.Fatalf("copy of the test binary for user nobody: %v", nobodyBin.err)
	}
	t.Cleanup(func() { os.RemoveAll(filepath.Dir(nobodyBin.path)) })
	cmd := exec.Command(nobodyBin.path, "-test.run=^TestHelperDialUnix$", "-test.count=1")
	cmd.Env = []string{env}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s", strings.TrimSpace(string(out)))
	}
	if !strings.Contains(string(out), "connected") {
		return fmt.Errorf("the helper did not run: %s", out)
	}
	return nil
}

// TestHelperDialUnix is not a test: runAsNobody runs it in a process of
// user nobody, where it connects to ROUTING_DIAL_UNIX and says so.
func TestHelperDialUnix(t *testing.T) {
	path := os.Getenv("ROUTING_DIAL_UNIX")
	if path == "" {
		t.Skip("helper of TestGRPCUnixOnly")
	}
	c, err := net.Dial("unix", path)
	if err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	c.Close()
	fmt.Println("connected")
}

// TestOneLinePerPeerEvent: each neighbor event makes one log line, the
// speaker's, not GoBGP's too: a neighbor added, its session up, down (the
// router went away), the neighbor removed by a reconfiguration, the
// speaker stopped.
func TestOneLinePerPeerEvent(t *testing.T) {
	port := freePort(t)
	rp := routerPeer{Neighbor: testNeighbor(addrS, 65001, port), families: []Family{IPv4Unicast}}
	r := newTestRouter(t, addrR4, 65000, port, rp)
	cfg := Config{LocalAS: 65001, RouterID: addrS, ListenAddresses: []netip.Addr{addrS}, ListenPort: port,
		Neighbors: []Neighbor{testNeighbor(addrR4, 65000, port, IPv4Unicast)}}
	s, log := newLoggedSpeaker(t, cfg)
	waitEstablished(t, s, addrR4)
	log.await("neighbor up")
	if err := r.s.DeletePeer(context.Background(), &api.DeletePeerRequest{Address: addrS.String()}); err != nil {
		t.Fatal(err)
	}
	log.await("neighbor down")
	cfg.Neighbors = nil
	if err := s.Reconfigure(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"neighbor added", "neighbor up", "neighbor down", "neighbor removed", "speaker stopped"} {
		if got := log.grep("msg=\"" + want + "\""); len(got) != 1 {
			t.Errorf("%d lines %q, want 1:\n%s", len(got), want, strings.Join(got, "\n"))
		}
	}
	for gobgp, ours := range gobgpDuplicates {
		if got := log.grep("msg=\"" + gobgp + "\""); len(got) != 0 {
			t.Errorf("GoBGP's %q logged beside the speaker's %q:\n%s", gobgp, ours, strings.Join(got, "\n"))
		}
	}
}
