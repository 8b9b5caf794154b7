package main

import (
	"encoding/binary"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"golang.org/x/net/ipv6"

	"github.com/map646/map646/lab/netlab"
	"github.com/map646/map646/lab/topo"
)

// A datagram of the lab: what it is, which node a probe was sent into, a
// sequence number, and the IPv4 destination and source it was sent with,
// so that the receiver can tell a mistranslated one from the addresses it
// arrives with.
type datagram struct {
	kind     byte // kindStream, kindProbe, kindMarker
	node     byte
	seq      uint64
	dst, src netip.Addr // IPv4, as sent
}

const (
	kindStream = 1 + iota
	kindProbe
	kindMarker
	datagramLen = 4 + 2 + 8 + 4 + 4
)

var magic = [4]byte{'i', 'a', 'a', 's'}

func (d datagram) encode() []byte {
	b := make([]byte, datagramLen)
	copy(b, magic[:])
	b[4], b[5] = d.kind, d.node
	binary.BigEndian.PutUint64(b[6:], d.seq)
	dst, src := d.dst.As4(), d.src.As4()
	copy(b[14:], dst[:])
	copy(b[18:], src[:])
	return b
}

func decode(b []byte) (datagram, bool) {
	if len(b) != datagramLen || [4]byte(b[:4]) != magic {
		return datagram{}, false
	}
	return datagram{kind: b[4], node: b[5], seq: binary.BigEndian.Uint64(b[6:]),
		dst: netip.AddrFrom4([4]byte(b[14:18])), src: netip.AddrFrom4([4]byte(b[18:22]))}, true
}

// arrival is a probe or marker as received.
type arrival struct {
	datagram
	at time.Time
}

// receiver is the VMs' one socket: it checks every datagram's addresses
// against what was sent (destination vmNet6+dst, source the pseudo prefix
// + src), counts the stream's sequence numbers, and hands probes and
// markers to the controller.
type receiver struct {
	pc     *ipv6.PacketConn
	probes chan arrival

	mu           sync.Mutex
	stream       map[uint64]int // seq -> times received
	mistranslate int
	foreign      int // datagrams that are not the lab's
	lastBad      string
}

func startReceiver(t netlab.TB, ns *netlab.NS) *receiver {
	t.Helper()
	c := ns.ListenPacket(t, "udp6", "[::]:"+strconv.Itoa(probePort))
	r := &receiver{pc: ipv6.NewPacketConn(c), probes: make(chan arrival, 1<<16), stream: map[uint64]int{}}
	if err := r.pc.SetControlMessage(ipv6.FlagDst, true); err != nil {
		t.Fatalf("iaas: receiver: %v", err)
	}
	go r.run()
	return r
}

func (r *receiver) run() {
	b := make([]byte, 2048)
	pseudo := netip.MustParsePrefix(topo.Pseudo)
	for {
		n, cm, from, err := r.pc.ReadFrom(b)
		if err != nil {
			return // closed with the lab
		}
		now := time.Now()
		d, ok := decode(b[:n])
		if !ok || cm == nil {
			r.mu.Lock()
			r.foreign++
			r.mu.Unlock()
			continue
		}
		dst, _ := netip.AddrFromSlice(cm.Dst)
		src, _ := netip.AddrFromSlice(from.(*net.UDPAddr).IP)
		src4 := src.As16()
		wantSrc := pseudo.Addr().As16()
		copy(wantSrc[12:], d.src.AsSlice())
		if dst != sixOf(d.dst) || src4 != wantSrc {
			r.mu.Lock()
			r.mistranslate++
			r.lastBad = "sent " + d.src.String() + " -> " + d.dst.String() + ", arrived " + src.String() + " -> " + dst.String()
			r.mu.Unlock()
			continue
		}
		if d.kind == kindStream {
			r.mu.Lock()
			r.stream[d.seq]++
			r.mu.Unlock()
			continue
		}
		select {
		case r.probes <- arrival{d, now}:
		default: // the controller is not listening: nothing waits for it
		}
	}
}

// counts returns how many of the stream's seqs in [from, to) arrived,
// how many more than once, and the mistranslated datagrams so far.
func (r *receiver) counts(from, to uint64) (got, dup, mistranslated int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for s := from; s < to; s++ {
		switch n := r.stream[s]; {
		case n == 1:
			got++
		case n > 1:
			got++
			dup++
		}
	}
	return got, dup, r.mistranslate
}

// stream is the established traffic: from the IPv4 client, flows to every
// established mapping (two source ports each, so that the upstream's L4
// hash spreads them over the three nodes), one datagram per flow every
// period, numbered in one sequence.
type stream struct {
	conns []*net.UDPConn
	mu    sync.Mutex
	seq   uint64
	stop  chan struct{}
	done  chan struct{}
}

func startStream(t netlab.TB, ns *netlab.NS, period time.Duration) *stream {
	t.Helper()
	s := &stream{stop: make(chan struct{}), done: make(chan struct{})}
	for range 2 {
		for _, a := range established {
			var c net.Conn
			err := ns.Do(func() (err error) {
				c, err = net.DialUDP("udp4", &net.UDPAddr{IP: net.ParseIP(topo.Client4)},
					&net.UDPAddr{IP: a.AsSlice(), Port: probePort})
				return err
			})
			if err != nil {
				t.Fatalf("iaas: stream: %v", err)
			}
			s.conns = append(s.conns, c.(*net.UDPConn))
		}
	}
	go s.run(period)
	return s
}

func (s *stream) run(period time.Duration) {
	defer close(s.done)
	tick := time.NewTicker(period)
	defer tick.Stop()
	src := netip.MustParseAddr(topo.Client4)
	for {
		select {
		case <-s.stop:
			return
		case <-tick.C:
		}
		for _, c := range s.conns {
			s.mu.Lock()
			seq := s.seq
			s.seq++
			s.mu.Unlock()
			dst, _ := netip.AddrFromSlice(c.RemoteAddr().(*net.UDPAddr).IP.To4())
			c.Write(datagram{kind: kindStream, seq: seq, dst: dst, src: src}.encode())
		}
	}
}

// next is the next sequence number the stream will send: phases are
// ranges of it.
func (s *stream) next() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.seq
}

func (s *stream) close() {
	close(s.stop)
	<-s.done
	for _, c := range s.conns {
		c.Close()
	}
}
