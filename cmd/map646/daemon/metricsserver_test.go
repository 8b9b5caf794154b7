package daemon

import (
	"io"
	"log"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestMetricsTimeoutsSet: every timeout of the metrics server is set, and
// the scrape has more time than the request.
func TestMetricsTimeoutsSet(t *testing.T) {
	tm := defaultMetricsTimeouts
	srv := newMetricsServer(http.NotFoundHandler(), tm, nil)
	if srv.ReadHeaderTimeout <= 0 || srv.ReadTimeout <= 0 || srv.WriteTimeout <= 0 || srv.IdleTimeout <= 0 || srv.MaxHeaderBytes <= 0 {
		t.Errorf("metrics server without a bound: %+v", srv)
	}
	if !(tm.readHeader <= tm.read && tm.read < tm.write) {
		t.Errorf("timeouts %+v: want readHeader <= read < write", tm)
	}
}

// TestMetricsServerCloses: clients that would hold a connection for ever
// are closed by the server once their timeout passes: one that sends half
// a header, one that sends a body it never finishes, one that never reads
// the answer, and one that keeps its connection idle after a scrape. The
// server's own record of each connection (ConnState) says when it closed
// it. The timeouts are shortened here; TestRunBounds (cmd/map646) checks
// the real one on the binary.
func TestMetricsServerCloses(t *testing.T) {
	tm := metricsTimeouts{readHeader: 200 * time.Millisecond, read: 300 * time.Millisecond, write: 400 * time.Millisecond, idle: 300 * time.Millisecond}
	big := strings.Repeat("map646_x 1\n", 2<<20) // 22 MB: more than the socket buffers hold
	mux := http.NewServeMux()
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "map646_up 1\n") })
	mux.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, big) })
	srv := newMetricsServer(mux, tm, log.New(io.Discard, "", 0))
	var mu sync.Mutex
	closed := map[string]chan struct{}{} // by the client's address
	closedCh := func(addr string) chan struct{} {
		mu.Lock()
		defer mu.Unlock()
		if closed[addr] == nil {
			closed[addr] = make(chan struct{})
		}
		return closed[addr]
	}
	srv.ConnState = func(c net.Conn, st http.ConnState) {
		if st == http.StateClosed {
			close(closedCh(c.RemoteAddr().String()))
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	for _, tc := range []struct {
		name  string
		send  string
		read  bool          // read the answer
		bound time.Duration // the timeout that must close it
	}{
		{"half a header", "GET /metrics HTTP/1.1\r\nHost: x\r\n", false, tm.readHeader},
		{"body never finished", "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nab", false, tm.read},
		{"answer never read", "GET /big HTTP/1.1\r\nHost: x\r\n\r\n", false, tm.write},
		{"idle after a scrape", "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", true, tm.idle},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			done := closedCh(c.LocalAddr().String())
			start := time.Now()
			if _, err := io.WriteString(c, tc.send); err != nil {
				t.Fatal(err)
			}
			if tc.read {
				buf := make([]byte, 4096)
				if n, err := c.Read(buf); err != nil || !strings.Contains(string(buf[:n]), "map646_up 1") {
					t.Fatalf("scrape: %q, %v", buf[:n], err)
				}
			}
			select {
			case <-done:
				took := time.Since(start)
				t.Logf("the server closed it after %v (timeout %v)", took.Round(time.Millisecond), tc.bound)
				// The server's clock starts as it reads, a moment before
				// this one.
				if took < tc.bound-50*time.Millisecond {
					t.Errorf("closed after %v, before its timeout %v", took, tc.bound)
				}
			case <-time.After(tc.bound + 3*time.Second):
				t.Errorf("the server still holds the connection %v after its timeout %v", 3*time.Second, tc.bound)
			}
		})
	}
}
