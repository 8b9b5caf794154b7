package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/map646/map646/lab/netlab"
)

// Probe is one ICMP echo request of a timeline and what became of it.
type Probe struct {
	Seq      int        // 0, 1, 2, ... in sending order
	Src, Dst netip.Addr // IPv4 client address and mapped server address
	Sent     time.Time
	// RTT is the round-trip time of an answered probe; Lost is set for a
	// probe that had no answer within the timeout (a later answer sets
	// Late, and the probe stays lost: an outage is what a user saw).
	RTT  time.Duration
	Lost bool
	Late bool
	// ReqVia and RepVia name the node whose tun device carried the request
	// (IPv4 echo request routed into it) and the reply (IPv6 echo reply
	// routed into it); "" when no sniffer saw it, "a+b" when both did.
	ReqVia, RepVia string
	// Translated is true when a node wrote the translated request (IPv6
	// echo request) into its device: a lost probe with ReqVia set and
	// Translated false was lost inside the node.
	Translated bool
}

// Path is the probe's carriers as "request/reply": "tokyo/osaka".
func (p Probe) Path() string {
	via := func(s string) string {
		if s == "" {
			return "?"
		}
		return s
	}
	return via(p.ReqVia) + "/" + via(p.RepVia)
}

// The payload of every echo request: magic, the run's tag, the probe's
// sequence number (the ICMP sequence field wraps at 65536; this does not),
// and padding. The translator carries it unchanged, so the sniffers on
// the nodes' devices find it in both families.
const (
	magic       = 0x6d363436 // "m646"
	payloadLen  = 32
	icmpHdrLen  = 8
	probeLenMin = icmpHdrLen + 16
)

// Prober sends an ICMP echo request every Interval from the client's
// namespace, rotating over every (source, destination) pair so that ECMP
// routers spread the probes over the nodes (routers hash ICMP on addresses
// only), and records each probe. Sniffers add which node carried it.
type Prober struct {
	Interval, Timeout time.Duration

	id    uint16 // ICMP identifier of the run
	tag   uint32 // in the payload: tells this run's probes from any other's
	pairs [][2]netip.Addr
	conns map[netip.Addr]*net.IPConn

	mu     sync.Mutex
	probes []Probe
	start  time.Time
	grow   chan struct{} // closed and replaced when a probe is sent or answered
}

// NewProber opens one raw ICMP socket per source address in the client's
// namespace (closed by t's cleanup). Each source must be an address of
// the namespace.
func NewProber(t netlab.TB, client *netlab.NS, srcs, dsts []netip.Addr, interval, timeout time.Duration) *Prober {
	t.Helper()
	if len(srcs) == 0 || len(dsts) == 0 || interval <= 0 || timeout <= 0 {
		t.Fatalf("failover: prober needs sources (%v), destinations (%v), an interval (%v) and a timeout (%v)", srcs, dsts, interval, timeout)
	}
	p := &Prober{Interval: interval, Timeout: timeout, id: uint16(rand.Uint32()), tag: rand.Uint32(),
		conns: map[netip.Addr]*net.IPConn{}, grow: make(chan struct{})}
	// Destinations vary fastest: consecutive probes from one source go to
	// different servers, and every pair recurs every len(pairs) probes.
	for _, s := range srcs {
		for _, d := range dsts {
			p.pairs = append(p.pairs, [2]netip.Addr{s, d})
		}
	}
	for _, s := range srcs {
		if !s.Is4() {
			t.Fatalf("failover: probe source %v is not an IPv4 address", s)
		}
		var conn *net.IPConn
		err := client.Do(func() (err error) {
			conn, err = net.ListenIP("ip4:icmp", &net.IPAddr{IP: s.AsSlice()})
			return err
		})
		if err != nil {
			t.Fatalf("failover: raw ICMP socket on %v in %s: %v", s, client.Role, err)
		}
		p.conns[s] = conn
		t.Cleanup(func() { conn.Close() })
		go p.receive(conn)
	}
	return p
}

// Tag returns what a sniffer needs to recognise this run's probes.
func (p *Prober) Tag() (id uint16, tag uint32) { return p.id, p.tag }

// Run sends probes until stop is closed, then waits one timeout for the
// last answers. It returns the first send error (a probe that could not
// be sent is recorded as lost).
func (p *Prober) Run(stop <-chan struct{}) error {
	p.mu.Lock()
	p.start = time.Now()
	p.mu.Unlock()
	tick := time.NewTicker(p.Interval)
	defer tick.Stop()
	var first error
	for seq := 0; ; seq++ {
		if err := p.send(seq); err != nil && first == nil {
			first = err
		}
		select {
		case <-stop:
			time.Sleep(p.Timeout) // the last probes' answers may still come
			p.finish()
			return first
		case <-tick.C:
		}
	}
}

func (p *Prober) send(seq int) error {
	pair := p.pairs[seq%len(p.pairs)]
	msg := make([]byte, icmpHdrLen+payloadLen)
	msg[0] = 8 // echo request
	binary.BigEndian.PutUint16(msg[4:], p.id)
	binary.BigEndian.PutUint16(msg[6:], uint16(seq))
	binary.BigEndian.PutUint32(msg[8:], magic)
	binary.BigEndian.PutUint32(msg[12:], p.tag)
	binary.BigEndian.PutUint64(msg[16:], uint64(seq))
	binary.BigEndian.PutUint16(msg[2:], checksum(msg))
	p.mu.Lock()
	p.probes = append(p.probes, Probe{Seq: seq, Src: pair[0], Dst: pair[1], Sent: time.Now()})
	p.signal()
	p.mu.Unlock()
	_, err := p.conns[pair[0]].WriteToIP(msg, &net.IPAddr{IP: pair[1].AsSlice()})
	if err != nil {
		return fmt.Errorf("failover: probe %d %v -> %v: %w", seq, pair[0], pair[1], err)
	}
	return nil
}

// receive reads echo replies (Go strips the IPv4 header) until the socket
// is closed.
func (p *Prober) receive(c *net.IPConn) {
	buf := make([]byte, 1500)
	for {
		n, _, err := c.ReadFrom(buf)
		now := time.Now()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		seq, ok := p.parse(buf[:n], 0)
		if !ok {
			continue
		}
		p.mu.Lock()
		if seq < len(p.probes) {
			pr := &p.probes[seq]
			if pr.RTT == 0 && !pr.Late {
				if rtt := now.Sub(pr.Sent); rtt <= p.Timeout {
					pr.RTT = rtt
				} else {
					pr.Late = true
				}
				p.signal()
			}
		}
		p.mu.Unlock()
	}
}

// parse returns the sequence number of one of this run's probes, an ICMP
// message of type want (0: IPv4 echo reply, 8: request; 128 and 129 for
// ICMPv6), or false.
func (p *Prober) parse(msg []byte, want byte) (int, bool) {
	if len(msg) < probeLenMin || msg[0] != want || msg[1] != 0 ||
		binary.BigEndian.Uint16(msg[4:]) != p.id ||
		binary.BigEndian.Uint32(msg[8:]) != magic || binary.BigEndian.Uint32(msg[12:]) != p.tag {
		return 0, false
	}
	seq := binary.BigEndian.Uint64(msg[16:])
	if seq > 1<<31 || uint16(seq) != binary.BigEndian.Uint16(msg[6:]) {
		return 0, false
	}
	return int(seq), true
}

// finish marks unanswered probes lost.
func (p *Prober) finish() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := range p.probes {
		if p.probes[i].RTT == 0 {
			p.probes[i].Lost = true
		}
	}
	p.signal()
}

func (p *Prober) signal() {
	close(p.grow)
	p.grow = make(chan struct{})
}

// Probes returns a copy of the probes so far; probes still within their
// timeout are neither answered nor lost yet.
func (p *Prober) Probes() []Probe {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]Probe, len(p.probes))
	copy(out, p.probes)
	now := time.Now()
	for i := range out {
		if out[i].RTT == 0 && now.Sub(out[i].Sent) > p.Timeout {
			out[i].Lost = true
		}
	}
	return out
}

// Start returns when Run started sending.
func (p *Prober) Start() time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.start
}

// sighted records that node's device carried probe seq: kind is one of
// the sightings of Sniffer.
func (p *Prober) sighted(seq int, node string, kind sighting) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if seq >= len(p.probes) {
		return
	}
	pr := &p.probes[seq]
	add := func(via *string) {
		if *via == "" {
			*via = node
		} else if !slices.Contains(strings.Split(*via, "+"), node) {
			*via += "+" + node // both nodes: a duplicate, or a bug in the lab
		}
	}
	switch kind {
	case sawRequest:
		add(&pr.ReqVia)
	case sawTranslated:
		pr.Translated = true
		add(&pr.ReqVia) // the only sighting of a request the fast path took
	case sawReply, sawReplyTranslated:
		add(&pr.RepVia)
	}
}

// checksum is the Internet checksum (RFC 1071).
func checksum(b []byte) uint16 {
	var s uint32
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
	}
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	return ^uint16(s)
}
