package main

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"sync/atomic"
	"time"

	"github.com/map646/map646/lab/netlab"
	"github.com/map646/map646/lab/topo"
)

// FlowResult is the flows scenario's outcome: a TCP transfer from srv10
// to the IPv4 client through the pair while a node dies silently and
// comes back, and a ping through the pair meanwhile (Run).
type FlowResult struct {
	Victim string
	// Sent and Got count the bytes each end saw; Intact: the client got
	// exactly what the server sent (byte count and SHA-256).
	Sent, Got       int64
	Intact          bool
	SentSum, GotSum [32]byte
	// Err is the transfer's error: a reset, a timeout, a short read.
	Err error
	// LongestStall is the longest time the client waited for data.
	LongestStall time.Duration
	Took         time.Duration
	// ReqVia and RepVia are the nodes that carried the connection's SYN
	// and SYN-ACK: the connection was chosen to go through the victim
	// both ways (Tries connections were opened to find one).
	ReqVia, RepVia string
	Tries          int
	Run            *Run
}

// The transfer's pace: 16 KiB every 5 ms (3.2 MB/s), so that a stall shows
// as a gap, and the transfer lasts as long as the scenario.
const (
	flowChunk = 16 << 10
	flowTick  = 5 * time.Millisecond
)

// Flows runs the flows scenario (a failure to set it up ends it through
// a netlab.Stoppable's Fatalf, which netlab.Attempt turns into an error):
// a connection from the client to srv10
// that the victim node carries both ways; the server sends paced
// pseudo-random data until the client half-closes; meanwhile the victim
// dies silently and comes back (the scenario waits until the routers use
// it again before it ends the transfer).
func (l *Lab) Flows(t netlab.TB, o Options, victim *topo.Node, pingInterval time.Duration) FlowResult {
	t.Helper()
	st := netlab.Stoppable{TB: t}
	res := FlowResult{Victim: victim.Name}
	say := func(format string, args ...any) { fmt.Fprintf(o.Progress, "        "+format+"\n", args...) }

	type served struct {
		n   int64
		sum [32]byte
		err error
	}
	// The server: for each connection, wait for the client's "go" byte,
	// then send until the client half-closes.
	srv := l.Servers[0].Listen(t, "tcp", flowTarget6)
	done := make(chan served, 1)
	go func() {
		for {
			c, err := srv.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				var b [1]byte
				if _, err := io.ReadFull(c, b[:]); err != nil {
					return // a connection the client did not choose
				}
				var s served
				s.n, s.sum, s.err = sendUntilClosed(c.(*net.TCPConn))
				done <- s
			}()
		}
	}()

	// A connection through the victim both ways: the sniffers on the
	// nodes' devices see its SYN and SYN-ACK (or their translations).
	syns := make(chan Segment, 64)
	p := l.Probe(t, pingInterval, syns)
	var conn *net.TCPConn
	for res.Tries = 1; res.Tries <= 32; res.Tries++ {
		c, err := l.Client.Dial("tcp", "", flowTarget4, 5*time.Second)
		if err != nil {
			st.Fatalf("failover: flows: dial %s: %v", flowTarget4, err)
		}
		port := uint16(c.LocalAddr().(*net.TCPAddr).Port)
		req, rep := carriers(syns, port, time.Second)
		if req == victim.Name && rep == victim.Name {
			conn, res.ReqVia, res.RepVia = c.(*net.TCPConn), req, rep
			break
		}
		c.Close()
	}
	if conn == nil {
		st.Fatalf("failover: flows: none of 32 connections went through %s both ways (do the routers hash on ports? fib_multipath_hash_policy=1)", victim.Name)
	}
	defer conn.Close()
	say("transfer connection (try %d) carried by %s in both directions", res.Tries, victim.Name)

	type readResult struct {
		n     int64
		sum   [32]byte
		stall time.Duration
		err   error
	}
	got := make(chan readResult, 1)
	var start time.Time
	steps := []Step{
		{Name: "transfer", Label: "transfer starts (through " + victim.Name + ")", Hold: o.Hold, MaxLost: 0,
			Do: func(func(string, ...any)) error {
				start = time.Now()
				if _, err := conn.Write([]byte{1}); err != nil {
					return err
				}
				go func() {
					var r readResult
					r.n, r.sum, r.stall, r.err = readTimed(conn, 10*time.Minute)
					got <- r
				}()
				return nil
			}},
		{Name: victim.Name + "-dies", Label: victim.Name + " dies silently", Hold: o.Hold, MaxLost: -1, MaxOutage: o.maxOutage(),
			Do: func(say func(string, ...any)) error {
				victim.KillSilently(st, Freeze)
				say("waiting until the routers route via %s only", l.Other(victim).Name)
				l.WaitRouted(st, 30*time.Second, l.Other(victim))
				return nil
			}},
		{Name: victim.Name + "-back", Label: victim.Name + " comes back", Hold: o.Hold, MaxLost: -1,
			Do: func(say func(string, ...any)) error {
				took := l.revive(st, victim, say)
				say("routed via %s again %.1f s after the revival", victim.Name, took.Seconds())
				return nil
			}},
		{Name: "transfer-done", Label: "transfer ends", Hold: 0, MaxLost: -1,
			Do: func(say func(string, ...any)) error {
				say("half-closing; waiting for the rest of the data")
				res.Took = time.Since(start)
				if err := conn.CloseWrite(); err != nil {
					res.Err = fmt.Errorf("client: half-close: %w", err)
					return nil
				}
				r := <-got
				res.Got, res.GotSum, res.LongestStall, res.Err = r.n, r.sum, r.stall, r.err
				select {
				case s := <-done:
					res.Sent, res.SentSum = s.n, s.sum
					res.Err = errors.Join(res.Err, s.err)
				case <-time.After(10 * time.Second):
					res.Err = errors.Join(res.Err, errors.New("the server did not finish"))
				}
				res.Intact = res.Err == nil && res.Got == res.Sent && res.SentSum == res.GotSum
				return nil
			}},
	}
	run, err := RunTimeline("flows", "Flows: TCP transfer and a ping every 20 ms while "+victim.Name+" dies silently (BFD)", p, l.NodeNames(), steps, o.Progress, o.Abort)
	res.Run = run
	if err != nil {
		res.Err = errors.Join(res.Err, err)
	}
	return res
}

// carriers waits up to timeout for the SYN from client port port and the
// SYN-ACK to it, and returns the nodes that carried them ("" if unseen).
func carriers(syns <-chan Segment, port uint16, timeout time.Duration) (req, rep string) {
	deadline := time.After(timeout)
	for req == "" || rep == "" {
		select {
		case s := <-syns:
			switch {
			// The SYN routed into the device (IPv4) or its translation
			// (IPv6; all the device's tap sees when the fast path takes
			// it: sniff.go), and likewise the SYN-ACK.
			case !s.ACK && s.SrcPort == port:
				req = s.Node
			case s.ACK && s.DstPort == port:
				rep = s.Node
			}
		case <-deadline:
			return req, rep
		}
	}
	return req, rep
}

// sendUntilClosed writes seeded pseudo-random data, flowChunk every
// flowTick, until the peer half-closes (its EOF), then closes; it returns
// the byte count and their SHA-256.
func sendUntilClosed(c *net.TCPConn) (int64, [32]byte, error) {
	var stop atomic.Bool
	go func() {
		var b [1]byte
		c.Read(b[:]) // EOF (half-close) or an error: either way, stop
		stop.Store(true)
	}()
	h := sha256.New()
	rng := rand.NewChaCha8([32]byte{'m', '6', '4', '6'})
	buf := make([]byte, flowChunk)
	tick := time.NewTicker(flowTick)
	defer tick.Stop()
	var sent int64
	for !stop.Load() {
		rng.Read(buf)
		if _, err := c.Write(buf); err != nil {
			return sent, [32]byte(h.Sum(nil)), fmt.Errorf("server: write after %d bytes: %w", sent, err)
		}
		h.Write(buf)
		sent += int64(len(buf))
		<-tick.C
	}
	return sent, [32]byte(h.Sum(nil)), c.CloseWrite()
}

// readTimed reads to EOF, at most limit long, and returns the byte count,
// their SHA-256 and the longest wait between two reads.
func readTimed(c net.Conn, limit time.Duration) (int64, [32]byte, time.Duration, error) {
	h := sha256.New()
	c.SetReadDeadline(time.Now().Add(limit))
	buf := make([]byte, 64<<10)
	var n int64
	var stall time.Duration
	last := time.Now()
	for {
		k, err := c.Read(buf)
		now := time.Now()
		if k > 0 {
			stall = max(stall, now.Sub(last))
			last = now
			n += int64(k)
			h.Write(buf[:k])
		}
		if errors.Is(err, io.EOF) {
			return n, [32]byte(h.Sum(nil)), stall, nil
		}
		if err != nil {
			return n, [32]byte(h.Sum(nil)), stall, fmt.Errorf("client: read after %d bytes: %w", n, err)
		}
	}
}

// WriteSummary describes the flows scenario's outcome.
func (f FlowResult) WriteSummary(w io.Writer, markdown bool) {
	verdict := "the connection survived: never reset, content intact (byte count and SHA-256 of what the server sent)"
	if !f.Intact {
		verdict = fmt.Sprintf("FAILED: %v (server sent %d bytes, client received %d, SHA-256 equal %v)", f.Err, f.Sent, f.Got, f.SentSum == f.GotSum)
	}
	bullet := ""
	if markdown {
		bullet = "- "
	}
	fmt.Fprintf(w, "%sTCP transfer srv10 -> client4 through %s both ways (found in %d tries), %.1f MB in %.1f s: %s\n",
		bullet, f.Victim, f.Tries, float64(f.Got)/1e6, f.Took.Seconds(), verdict)
	fmt.Fprintf(w, "%slongest stall of the transfer (longest wait between two reads of the client): %s\n", bullet, ms(f.LongestStall))
}
