package failover

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"testing"
	"time"
)

// FlowResult is the flows scenario's outcome: a TCP transfer from srv10
// to the IPv4 client through the pair while tokyo dies silently and comes
// back, and a ping through the pair meanwhile (Run).
type FlowResult struct {
	Bytes, Want int64
	// Intact: the client received exactly what the server sent (SHA-256).
	Intact          bool
	SentSum, GotSum [32]byte
	// Err is the transfer's error: a reset, a timeout, a short read.
	Err error
	// LongestStall is the longest time the client waited for data.
	LongestStall time.Duration
	Took         time.Duration
	// ReqVia and RepVia are the nodes that carried the connection's SYN
	// and SYN-ACK: the connection was chosen to go through tokyo both
	// ways (Tries connections were opened to find one).
	ReqVia, RepVia string
	Tries          int
	Run            *Run
}

// flowRate is the transfer's pace: 16 KiB every 5 ms (3.2 MB/s), so that a
// stall shows as a gap and the transfer lasts as long as asked.
const (
	flowChunk = 16 << 10
	flowTick  = 5 * time.Millisecond
)

// Flows runs the flows scenario on a lab (with BFD for a short stall).
func (l *Lab) Flows(t *testing.T, o Options, pingInterval time.Duration) FlowResult {
	t.Helper()
	st := stepTB{t}
	res := FlowResult{Want: int64(o.Transfer/flowTick) * flowChunk}
	say := func(format string, args ...any) { fmt.Fprintf(o.Progress, "        "+format+"\n", args...) }

	// The server: for each connection, wait for the client's "go" byte,
	// then send Want bytes of seeded pseudo-random data at the pace.
	srv := l.Servers[0].Listen(t, "tcp", flowTarget6)
	sums := make(chan [32]byte, 1)
	serveErr := make(chan error, 1)
	go func() {
		for {
			c, err := srv.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				var goByte [1]byte
				if _, err := io.ReadFull(c, goByte[:]); err != nil {
					return // a connection the client did not choose
				}
				sum, err := sendPaced(c, res.Want)
				serveErr <- err
				sums <- sum
			}()
		}
	}()

	// A connection through tokyo both ways: the sniffers on the nodes'
	// devices see its SYN (IPv4) and SYN-ACK (IPv6).
	syns := make(chan Segment, 64)
	p := l.Probe(t, pingInterval, syns)
	var conn net.Conn
	for res.Tries = 1; res.Tries <= 32 && conn == nil; res.Tries++ {
		c, err := l.Client.Dial("tcp", "", flowTarget4, 5*time.Second)
		if err != nil {
			t.Fatalf("failover: flows: dial %s: %v", flowTarget4, err)
		}
		port := uint16(c.LocalAddr().(*net.TCPAddr).Port)
		req, rep := carriers(syns, port, time.Second)
		if req == "tokyo" && rep == "tokyo" {
			conn, res.ReqVia, res.RepVia = c, req, rep
			break
		}
		c.Close()
	}
	if conn == nil {
		t.Fatalf("failover: flows: no connection of %d went through tokyo both ways (do the routers hash on ports? fib_multipath_hash_policy=1)", res.Tries-1)
	}
	defer conn.Close()
	say("transfer connection (try %d) carried by tokyo in both directions", res.Tries)

	type readResult struct {
		n     int64
		sum   [32]byte
		stall time.Duration
		err   error
	}
	got := make(chan readResult, 1)
	var start time.Time
	steps := []Step{
		{Name: "transfer", Label: fmt.Sprintf("transfer of %d MB starts (through tokyo)", res.Want>>20), Hold: o.Transfer / 4, MaxLost: 0,
			Do: func(func(string, ...any)) error {
				start = time.Now()
				if _, err := conn.Write([]byte{1}); err != nil {
					return err
				}
				go func() {
					var r readResult
					r.n, r.sum, r.stall, r.err = readTimed(conn, res.Want, o.Transfer+time.Minute)
					got <- r
				}()
				return nil
			}},
		{Name: "tokyo-dies", Label: "tokyo dies silently", Hold: o.Transfer / 4, MaxLost: -1, MaxOutage: 500 * time.Millisecond,
			Do: func(say func(string, ...any)) error {
				tokyo := l.Tokyo
				tokyo.KillSilently(st, true)
				say("waiting until the routers route via osaka only")
				l.WaitRouted(st, 30*time.Second, l.Osaka)
				return nil
			}},
		{Name: "tokyo-back", Label: "tokyo comes back", Hold: 0, MaxLost: -1,
			Do: func(say func(string, ...any)) error {
				l.Tokyo.Revive(st)
				say("waiting until the routers route via both nodes again")
				l.WaitConverged(st, 30*time.Second)
				return nil
			}},
		{Name: "transfer-done", Label: "transfer complete", Hold: time.Second, MaxLost: -1,
			Do: func(say func(string, ...any)) error {
				say("waiting for the transfer to finish")
				r := <-got
				res.Took = time.Since(start)
				res.Bytes, res.GotSum, res.LongestStall, res.Err = r.n, r.sum, r.stall, r.err
				if res.Err == nil {
					select {
					case res.Err = <-serveErr:
						res.SentSum = <-sums
					case <-time.After(10 * time.Second):
						res.Err = errors.New("the server did not finish sending")
					}
				}
				res.Intact = res.Err == nil && res.Bytes == res.Want && res.SentSum == res.GotSum
				return nil
			}},
	}
	run, err := RunTimeline("flows", "Flows: TCP transfer and ping while tokyo dies silently (BFD)", p, l.NodeNames(), steps, o.Progress, o.Abort)
	res.Run = run
	if err != nil && res.Err == nil {
		res.Err = err
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
			case !s.IPv6 && !s.ACK && s.SrcPort == port:
				req = s.Node
			case s.IPv6 && s.ACK && s.DstPort == port:
				rep = s.Node
			}
		case <-deadline:
			return req, rep
		}
	}
	return req, rep
}

// sendPaced writes n bytes of seeded pseudo-random data, flowChunk every
// flowTick, and returns their SHA-256.
func sendPaced(w io.Writer, n int64) ([32]byte, error) {
	h := sha256.New()
	rng := rand.NewChaCha8([32]byte{'m', '6', '4', '6'})
	buf := make([]byte, flowChunk)
	tick := time.NewTicker(flowTick)
	defer tick.Stop()
	for sent := int64(0); sent < n; sent += int64(len(buf)) {
		rng.Read(buf)
		h.Write(buf)
		if _, err := w.Write(buf); err != nil {
			return [32]byte{}, fmt.Errorf("server: write after %d bytes: %w", sent, err)
		}
		<-tick.C
	}
	return [32]byte(h.Sum(nil)), nil
}

// readTimed reads to EOF, at most limit long, and returns the byte count,
// their SHA-256 and the longest wait between two reads.
func readTimed(c net.Conn, want int64, limit time.Duration) (int64, [32]byte, time.Duration, error) {
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
			if n != want {
				return n, [32]byte(h.Sum(nil)), stall, fmt.Errorf("client: connection closed after %d of %d bytes", n, want)
			}
			return n, [32]byte(h.Sum(nil)), stall, nil
		}
		if err != nil {
			return n, [32]byte(h.Sum(nil)), stall, fmt.Errorf("client: read after %d of %d bytes: %w", n, want, err)
		}
	}
}

// WriteSummary describes the flows scenario's outcome.
func (f FlowResult) WriteSummary(w io.Writer, markdown bool) {
	verdict := "the connection survived: never reset, content intact (SHA-256 of what the server sent)"
	if !f.Intact {
		verdict = fmt.Sprintf("FAILED: %v (received %d of %d bytes, SHA-256 match %v)", f.Err, f.Bytes, f.Want, bytes.Equal(f.SentSum[:], f.GotSum[:]))
	}
	bullet := ""
	if markdown {
		bullet = "- "
	}
	fmt.Fprintf(w, "%sTCP transfer srv10 -> client, %d bytes in %.1f s, through tokyo both ways (found in %d tries): %s\n",
		bullet, f.Want, f.Took.Seconds(), f.Tries, verdict)
	fmt.Fprintf(w, "%slongest stall of the transfer: %s\n", bullet, ms(f.LongestStall))
}
