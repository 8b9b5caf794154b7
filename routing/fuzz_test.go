package routing

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/osrg/gobgp/v4/pkg/packet/bgp"
)

// The receive path of the embedded speaker, fuzzed. A panic in GoBGP's
// parser or in its handling of an UPDATE would stop the whole node, and the
// shared upstream router sends the same UPDATE to every node: all of them
// would stop at once. GoBGP's goroutines are its own, so map646 cannot
// recover such a panic; it can only find it first.
//
// FuzzReceive sends each input as the body of an UPDATE over a real
// Established session to a speaker in this process (passive neighbors on
// 127.0.4.1-250), followed by a ROUTE-REFRESH: GoBGP handles a session's
// messages in order, so the UPDATE it sends back in answer proves the
// input went all the way through (parsing, RFC 7606 checks, the
// Adj-RIB-In, the import policy). A reset session (NOTIFICATION) is
// replaced by another neighbor's while it waits out GoBGP's idle hold.
// FuzzParse runs the same bytes, as whole messages, through the functions
// GoBGP's FSM calls on them, a thousand times faster. The seeds are
// GoBGP's own malformed-length corpus (testdata/fuzz, from
// pkg/packet/bgp/testdata/bad-len of GoBGP v4.9.0) and the RFC 7606 cases
// of TestMalformedUpdates.

// fuzzSeeds are UPDATE bodies: valid ones and the RFC 7606 cases.
func fuzzSeeds() [][]byte {
	body := func(withdrawn, attrs, nlri []byte) []byte {
		return update(withdrawn, attrs, nlri)[bgp.BGP_HEADER_LENGTH:]
	}
	c := netip.MustParsePrefix("203.0.113.0/24")
	nh := netip.MustParseAddr("127.0.4.1")
	ok := concat(attrOrigin, attrASPath, attrNextHop(nh))
	mpReach6 := []byte{0x90, 14, 0, 30, 0, 2, 1, 16, 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 64, 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 1}
	return [][]byte{
		body(nil, ok, nlri4(c)),
		body(nlri4(c), nil, nil),
		body(nil, nil, nil), // End-of-RIB
		body(nil, concat(ok, []byte{0xc0, 8, 4, 0xfd, 0xe8, 0, 1}), nlri4(c)),                           // COMMUNITIES
		body(nil, concat(ok, []byte{0xc0, 8, 3, 0xfd, 0xe8, 0}), nlri4(c)),                              // COMMUNITIES of length 3
		body(nil, concat(ok, []byte{0xc0, 32, 12, 0, 0, 0xfd, 0xe8, 0, 0, 0, 1, 0, 0, 0, 2}), nlri4(c)), // LARGE_COMMUNITY
		body(nil, concat(ok, []byte{0xc0, 32, 5, 0, 0, 0xfd, 0xe8, 0}), nlri4(c)),                       // LARGE_COMMUNITY of length 5
		body(nil, concat(ok, []byte{0xc0, 99, 2, 1, 2}), nlri4(c)),                                      // unknown optional transitive
		body(nil, concat(ok, []byte{0x40, 99, 2, 1, 2}), nlri4(c)),                                      // unknown well-known
		body(nil, concat(ok, attrOrigin), nlri4(c)),                                                     // ORIGIN twice
		body(nil, concat(ok, []byte{0xc0, 7, 5, 0, 0, 1, 2, 3}), nlri4(c)),                              // AGGREGATOR of length 5
		body(nil, concat(ok, []byte{0xc0, 17, 6, 2, 1, 0, 0, 0xfd, 0xe8}), nlri4(c)),                    // AS4_PATH
		body(nil, concat(ok, []byte{0x80, 4, 4, 0, 0, 0, 7}), nlri4(c)),                                 // MED
		body(nil, concat(ok, []byte{0x40, 5, 4, 0, 0, 0, 100}), nlri4(c)),                               // LOCAL_PREF from eBGP
		body(nil, concat(ok, []byte{0x80, 9, 4, 1, 2, 3, 4}), nlri4(c)),                                 // ORIGINATOR_ID from eBGP
		body(nil, concat(ok, []byte{0xd0, 2, 0, 6, 2, 1, 0, 0, 0xfd, 0xe8}), nlri4(c)),                  // extended length AS_PATH
		body(nil, concat(attrOrigin, attrASPath, mpReach6), nil),                                        // MP_REACH_NLRI ipv6
		body(nil, concat(attrOrigin, attrASPath, []byte{0x90, 14, 0, 5, 0, 2, 1, 16, 0}), nil),          // MP_REACH cut short
		body(nil, []byte{0x90, 15, 0, 3, 0, 2, 1}, nil),                                                 // MP_UNREACH_NLRI empty
		body(nil, []byte{0x90, 15, 0, 5, 0, 1, 1, 33, 1}, nil),                                          // MP_UNREACH bad prefix
		// The RFC 7606 cases of TestMalformedUpdates.
		body(nil, concat(attrOrigin, []byte{0x40, 2, 60, 2, 1, 0, 0, 0xfd, 0xe8}, attrNextHop(nh)), nlri4(c)),
		body(nil, concat([]byte{0x40, 1, 2, 0, 0}, attrASPath, attrNextHop(nh)), nlri4(c)),
		body(nil, concat([]byte{0x40, 1, 1, 7}, attrASPath, attrNextHop(nh)), nlri4(c)),
		body(nil, concat(attrOrigin, []byte{0x40, 2, 6, 9, 1, 0, 0, 0xfd, 0xe8}, attrNextHop(nh)), nlri4(c)),
		body(nil, concat(attrOrigin, []byte{0x40, 2, 6, 2, 5, 0, 0, 0xfd, 0xe8}, attrNextHop(nh)), nlri4(c)),
		body(nil, concat(attrOrigin, []byte{0x40, 2, 10, 2, 2, 0, 0, 0xfd, 0xe8, 0, 0, 0xfd, 0xe9}, attrNextHop(nh)), nlri4(c)),
		body(nil, concat(attrOrigin, attrASPath), nlri4(c)),
		body(nil, concat([]byte{0xc0, 1, 1, 0}, attrASPath, attrNextHop(nh)), nlri4(c)),
		body(nil, ok, []byte{33, 203, 0, 113, 0, 0}),
		body(nil, ok, []byte{32, 203, 0}),
		func() []byte { b := body(nil, ok, nlri4(c)); b[1] = 200; return b }(), // withdrawn length past the end
	}
}

func FuzzParse(f *testing.F) {
	for _, b := range fuzzSeeds() {
		f.Add(concat(message(bgp.BGP_MSG_UPDATE, b)))
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		parseAsGoBGP(msg)
	})
}

// parseAsGoBGP does with msg what GoBGP's FSM does with a received message
// (recvMessageWithError, then the UPDATE checks of its established state)
// with the options of map646's sessions: 4-octet AS, no ADD-PATH, no
// extended messages, eBGP, both unicast families, RFC 7606 error handling.
// Like the FSM, it validates an UPDATE only when parsing left nothing to
// handle: ValidateUpdateMsg panics on some messages whose parsing failed
// (a NEXT_HOP without an address, testdata/fuzz/FuzzParse/eb715794b24b4537),
// which GoBGP never hands it.
func parseAsGoBGP(msg []byte) {
	var h bgp.BGPHeader
	if len(msg) < bgp.BGP_HEADER_LENGTH || h.DecodeFromBytes(msg) != nil || int(h.Len) > bgp.BGP_MAX_MESSAGE_LENGTH || int(h.Len) > len(msg) || int(h.Len) < bgp.BGP_HEADER_LENGTH {
		return
	}
	m, err := bgp.ParseBGPBody(&h, msg[bgp.BGP_HEADER_LENGTH:h.Len], &bgp.MarshallingOption{})
	if m == nil {
		return
	}
	handling := bgp.ERROR_HANDLING_NONE
	if err != nil {
		handling = bgp.ERROR_HANDLING_SESSION_RESET
		if me, ok := err.(*bgp.MessageError); ok && h.Type == bgp.BGP_MSG_UPDATE {
			handling = me.ErrorHandling // fsmHandler.handlingError with treat-as-withdraw on
		}
	}
	if u, ok := m.Body.(*bgp.BGPUpdate); ok && handling == bgp.ERROR_HANDLING_NONE {
		rfs := map[bgp.Family]bgp.BGPAddPathMode{bgp.RF_IPv4_UC: bgp.BGP_ADD_PATH_NONE, bgp.RF_IPv6_UC: bgp.BGP_ADD_PATH_NONE}
		bgp.ValidateUpdateMsg(u, rfs, true, false, false)
	}
	if handling != bgp.ERROR_HANDLING_NONE {
		// Reset, or the UPDATE's routes withdrawn or the bad attribute
		// dropped: nothing of it is kept to be printed or serialized.
		// PathAttributePmsiTunnel.Serialize panics on an attribute whose
		// decoding failed (testdata/fuzz/FuzzParse/1b66a4b7ac46a26f).
		return
	}
	if u, ok := m.Body.(*bgp.BGPUpdate); ok {
		for _, a := range u.PathAttributes {
			_ = a.String() // GoBGP logs attributes
		}
	}
	m.Serialize() // GoBGP re-serializes what it keeps (to other peers, BMP, MRT)
}

func FuzzReceive(f *testing.F) {
	for _, b := range fuzzSeeds() {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		if len(body) > bgp.BGP_MAX_MESSAGE_LENGTH-bgp.BGP_HEADER_LENGTH {
			body = body[:bgp.BGP_MAX_MESSAGE_LENGTH-bgp.BGP_HEADER_LENGTH]
		}
		fuzzTarget(t).deliver(t, message(bgp.BGP_MSG_UPDATE, body))
	})
}

// fuzzSpeaker is the speaker every input of one fuzzing process goes to.
type fuzzSpeaker struct {
	s     *Speaker
	port  int
	mu    sync.Mutex
	peers []*fuzzPeer
	next  int
}

type fuzzPeer struct {
	addr    netip.Addr
	conn    net.Conn
	updates chan struct{} // one per UPDATE received
	closed  chan struct{}
	retry   time.Time // when a reset peer may connect again
}

// fuzzPeers neighbors: most mutated inputs reset their session, which GoBGP
// then refuses for 5 s, so the inputs go round many sessions.
const fuzzPeers = 250

var (
	fuzzOnce sync.Once
	fuzzSrv  *fuzzSpeaker
	fuzzErr  error
)

func fuzzTarget(t *testing.T) *fuzzSpeaker {
	fuzzOnce.Do(func() {
		port := freePort(t)
		fs := &fuzzSpeaker{port: port}
		var neighbors []Neighbor
		for i := range fuzzPeers {
			a := netip.AddrFrom4([4]byte{127, 0, 4, byte(1 + i)})
			n := testNeighbor(a, 65000, port, IPv4Unicast, IPv6Unicast)
			n.Passive, n.HoldTime, n.KeepaliveTime = true, 240*time.Second, 80*time.Second
			n.NextHopIPv6 = nh6
			neighbors = append(neighbors, n)
			fs.peers = append(fs.peers, &fuzzPeer{addr: a})
		}
		// A logger that discards: GoBGP warns about every malformed input.
		fs.s, fuzzErr = New(Config{LocalAS: 65001, RouterID: addrS, ListenAddresses: []netip.Addr{addrS}, ListenPort: port, Neighbors: neighbors}, nil)
		if fuzzErr != nil {
			return
		}
		// Something to send back for each ROUTE-REFRESH.
		fuzzErr = fs.s.Announce(context.Background(), []Announcement{{Prefix: pfx4}})
		fuzzSrv = fs
	})
	if fuzzErr != nil {
		t.Fatal(fuzzErr)
	}
	return fuzzSrv
}

// deliver sends msg and a ROUTE-REFRESH over an Established session and
// waits for the answer to the refresh or for the session's reset.
func (fs *fuzzSpeaker) deliver(t *testing.T, msg []byte) {
	p := fs.session(t)
	rr, _ := bgp.NewBGPRouteRefreshMessage(bgp.AFI_IP, 0, bgp.SAFI_UNICAST).Serialize()
	drain(p.updates)
	if _, err := p.conn.Write(append(append([]byte(nil), msg...), rr...)); err != nil {
		fs.reset(p)
		return
	}
	select {
	case <-p.updates: // handled, session kept
		t.Logf("%s: handled, session kept", p.addr)
	case <-p.closed: // NOTIFICATION and close
		t.Logf("%s: session reset", p.addr)
		fs.reset(p)
	case <-time.After(10 * time.Second):
		t.Fatalf("the speaker neither answered a ROUTE-REFRESH nor closed the session within 10s after %x", msg)
	}
	if !fs.s.Established(p.addr) && !isClosed(p.closed) {
		// GoBGP took the session down without closing our end yet.
		fs.reset(p)
	}
}

func (fs *fuzzSpeaker) reset(p *fuzzPeer) {
	p.conn.Close()
	p.conn = nil
	p.retry = time.Now().Add(6 * time.Second) // GoBGP's idle hold is 5 s
}

// session returns the next peer with an Established session, connecting
// one if needed.
func (fs *fuzzSpeaker) session(t *testing.T) *fuzzPeer {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		for range len(fs.peers) {
			if time.Now().After(deadline) {
				break
			}
			p := fs.peers[fs.next]
			fs.next = (fs.next + 1) % len(fs.peers)
			if p.conn != nil && !isClosed(p.closed) {
				return p
			}
			if p.conn != nil {
				fs.reset(p)
			}
			if time.Now().Before(p.retry) {
				continue
			}
			if err := fs.connect(p); err != nil {
				p.retry = time.Now().Add(time.Second)
				continue
			}
			return p
		}
		time.Sleep(100 * time.Millisecond)
	}
	var states []string
	for _, n := range fs.s.Neighbors() {
		states = append(states, fmt.Sprintf("%s %s (%s)", n.Address, n.State, n.LastError))
	}
	t.Fatalf("no session with the speaker could be established in 30s: %v", states)
	return nil
}

// connect opens a session from p and waits for the speaker's first
// UPDATE (our announcement), so that it is not taken for an answer.
func (fs *fuzzSpeaker) connect(p *fuzzPeer) error {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: p.addr.AsSlice()}, Timeout: 2 * time.Second}
	conn, err := d.Dial("tcp", netip.AddrPortFrom(addrS, uint16(fs.port)).String())
	if err != nil {
		return err
	}
	caps := bgp.NewOptionParameterCapability([]bgp.ParameterCapabilityInterface{
		bgp.NewCapMultiProtocol(bgp.RF_IPv4_UC), bgp.NewCapMultiProtocol(bgp.RF_IPv6_UC),
		bgp.NewCapFourOctetASNumber(65000), bgp.NewCapRouteRefresh(),
	})
	open, _ := bgp.NewBGPOpenMessage(65000, 240, p.addr, []bgp.OptionParameterInterface{caps})
	b, _ := open.Serialize()
	ka, _ := bgp.NewBGPKeepAliveMessage().Serialize()
	conn.Write(append(b, ka...))
	p.conn, p.updates, p.closed = conn, make(chan struct{}, 16), make(chan struct{})
	go readFuzzPeer(conn, p.updates, p.closed)
	select {
	case <-p.updates:
		return nil
	case <-p.closed:
	case <-time.After(5 * time.Second):
	}
	conn.Close()
	p.conn = nil
	return fmt.Errorf("no session from %s", p.addr)
}

func readFuzzPeer(conn net.Conn, updates, closed chan struct{}) {
	defer close(closed)
	var hdr [bgp.BGP_HEADER_LENGTH]byte
	for {
		if _, err := io.ReadFull(conn, hdr[:]); err != nil {
			return
		}
		n := int(binary.BigEndian.Uint16(hdr[16:18]))
		if n < bgp.BGP_HEADER_LENGTH {
			return
		}
		if _, err := io.CopyN(io.Discard, conn, int64(n-bgp.BGP_HEADER_LENGTH)); err != nil {
			return
		}
		if hdr[18] == bgp.BGP_MSG_UPDATE {
			select {
			case updates <- struct{}{}:
			default:
			}
		}
	}
}

func drain(c chan struct{}) {
	for {
		select {
		case <-c:
		default:
			return
		}
	}
}

func isClosed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}
