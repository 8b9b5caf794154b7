package health

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/map646/map646/lab/labreq"
)

// The probes against real servers on ::1 (and, for ICMPv6 failures, in a
// network namespace of the test's own).

func probeCtx(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func wantErr(t *testing.T, err error, part string) {
	t.Helper()
	if err == nil || !strings.Contains(err.Error(), part) {
		t.Fatalf("error %v, want one that says %q", err, part)
	}
}

func listen6(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		labreq.Unavailable(t, "no IPv6 loopback: %v", err)
	}
	return ln
}

// TestProbeTCP: a listener passes even if it never accepts (the kernel's
// backlog completes the handshake, which is what a TCP check promises); a
// closed port fails as refused.
func TestProbeTCP(t *testing.T) {
	ln := listen6(t)
	defer ln.Close()
	at := netip.MustParseAddrPort(ln.Addr().String())
	c := Check{Name: "t", Kind: TCP, AddrPort: at}
	if err := probeTCP(probeCtx(t, time.Second), c); err != nil {
		t.Fatal(err)
	}
	ln.Close()
	wantErr(t, probeTCP(probeCtx(t, time.Second), c), "connection refused")
}

// TestProbeHTTP: 2xx and 3xx pass, 500 fails naming the status, a server
// that does not answer fails at the timeout, and every probe opens a new
// connection (no keep-alive).
func TestProbeHTTP(t *testing.T) {
	ln := listen6(t)
	var conns atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ok":
			w.Write([]byte("fine"))
		case "/moved":
			http.Redirect(w, r, "/elsewhere-that-fails", http.StatusFound)
		case "/hang":
			<-r.Context().Done()
		default:
			http.Error(w, "broken", http.StatusInternalServerError)
		}
	}))
	srv.Listener.Close()
	srv.Listener = ln
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()

	ok := newHTTPProbe(srv.URL + "/ok")
	for range 3 {
		if err := ok(probeCtx(t, time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	if n := conns.Load(); n != 3 {
		t.Errorf("3 probes opened %d connections, want 3 (no keep-alive)", n)
	}
	if err := newHTTPProbe(srv.URL + "/moved")(probeCtx(t, time.Second)); err != nil {
		t.Errorf("a 302: %v (3xx passes, redirects are not followed)", err)
	}
	wantErr(t, newHTTPProbe(srv.URL+"/fail")(probeCtx(t, time.Second)), "GET "+srv.URL+"/fail: status 500 Internal Server Error")
	wantErr(t, newHTTPProbe(srv.URL+"/hang")(probeCtx(t, 100*time.Millisecond)), "context deadline exceeded")
}

// TestProbeBGP: any established neighbor passes; none fails, naming them.
func TestProbeBGP(t *testing.T) {
	a, b := netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("192.0.2.9")
	c := Check{Name: "b", Kind: BGP, Neighbors: []netip.Addr{a, b}}
	if err := probeBGP(fakeSessions{b: true}, c); err != nil {
		t.Error(err)
	}
	wantErr(t, probeBGP(fakeSessions{}, c), "no BGP session established among 2001:db8::1, 192.0.2.9")
}

// TestProbeICMPv6: an echo to ::1 is answered, through a raw socket and
// through a ping socket.
func TestProbeICMPv6(t *testing.T) {
	labreq.Root(t, "open raw ICMPv6 sockets")
	lo := netip.MustParseAddr("::1")
	e := newEcho6(lo)
	e.sock = sockRaw
	for i := range 3 {
		if err := e.probe(probeCtx(t, time.Second)); err != nil {
			t.Fatalf("raw socket, probe %d: %v", i, err)
		}
	}
	// The ping socket needs our group in ping_group_range: set it in a
	// namespace of our own rather than on the host.
	inNetns(t, func() {
		if err := os.WriteFile("/proc/sys/net/ipv4/ping_group_range", []byte("0 0"), 0o644); err != nil {
			t.Fatal(err)
		}
		e := newEcho6(lo)
		e.sock = sockPing
		if err := e.probe(probeCtx(t, time.Second)); err != nil {
			t.Fatalf("ping socket: %v", err)
		}
		// Auto works too (with the ping socket allowed, it is the one used).
		if err := newEcho6(lo).probe(probeCtx(t, time.Second)); err != nil {
			t.Fatalf("auto: %v", err)
		}
	})
}

// TestProbeICMPv6Fails: no route fails at once; a host that does not
// answer fails at the timeout; both say so.
func TestProbeICMPv6Fails(t *testing.T) {
	labreq.Root(t, "open raw ICMPv6 sockets")
	inNetns(t, func() {
		start := time.Now()
		wantErr(t, newEcho6(netip.MustParseAddr("2001:db8::1")).probe(probeCtx(t, time.Second)), "network is unreachable")
		if d := time.Since(start); d > 500*time.Millisecond {
			t.Errorf("an unroutable target took %v: it fails when sent", d)
		}
		if err := os.WriteFile("/proc/sys/net/ipv6/icmp/echo_ignore_all", []byte("1"), 0o644); err != nil {
			t.Fatal(err)
		}
		err := newEcho6(netip.MustParseAddr("::1")).probe(probeCtx(t, 100*time.Millisecond))
		wantErr(t, err, "no echo reply from ::1 (seq 1) within the timeout")
	})
}

// inNetns runs f on this goroutine's thread moved into a fresh, unnamed
// network namespace with lo up; the namespace goes with the thread. Sockets
// f opens live there.
func inNetns(t *testing.T, f func()) {
	t.Helper()
	labreq.Root(t, "create network namespaces")
	runtime.LockOSThread()
	orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		runtime.UnlockOSThread()
		t.Fatal(err)
	}
	defer unix.Close(orig)
	if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		t.Fatalf("unshare network namespace: %v", err)
	}
	defer func() {
		if err := unix.Setns(orig, unix.CLONE_NEWNET); err != nil {
			t.Errorf("back to the original namespace: %v", err) // the thread stays locked and dies with the goroutine
			return
		}
		runtime.UnlockOSThread()
	}()
	lo, err := netlink.LinkByName("lo")
	if err == nil {
		err = netlink.LinkSetUp(lo)
	}
	if err != nil {
		t.Fatalf("lo up: %v", err)
	}
	f()
}

// TestMonitorRealProbes: the monitor with real TCP probes: up while the
// listener accepts, down after Fall refusals once it is gone.
func TestMonitorRealProbes(t *testing.T) {
	ln := listen6(t)
	at := netip.MustParseAddrPort(ln.Addr().String())
	m, err := NewMonitor([]Check{{Name: "web", Kind: TCP, AddrPort: at, Interval: 200 * time.Millisecond,
		Timeout: 100 * time.Millisecond, Rise: 2, Fall: 2, Withdraws: IPv4Side}}, nil, nil, nil) // a timeout long enough that the failure is the refusal, even on a loaded machine
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- m.Run(ctx) }()
	defer func() { cancel(); <-done }()
	waitFor := func(up bool) {
		t.Helper()
		timeout := time.After(5 * time.Second)
		for m.Status()[0].Up != up {
			select {
			case <-m.Changes():
			case <-timeout:
				t.Fatalf("not up=%v after 5 s: %+v", up, m.Status()[0])
			}
		}
	}
	waitFor(true)
	if v4, v6 := m.Healthy(); !v4 || !v6 {
		t.Fatalf("Healthy %v %v with the check up", v4, v6)
	}
	ln.Close()
	waitFor(false)
	if v4, v6 := m.Healthy(); v4 || !v6 {
		t.Fatalf("Healthy %v %v: want the IPv4 side withdrawn only", v4, v6)
	}
	s := m.Status()[0]
	if !strings.Contains(s.LastError, "connection refused") || s.Target != at.String() || s.Kind != "tcp" {
		t.Fatalf("status %+v", s)
	}
}

// TestHTTPPasswordNotShown: a URL with a password (basic auth) is used as
// given, but shown with the password as xxxxx: in Target (status, logs)
// and in the probe's errors, whether the server answers badly or not at
// all.
func TestHTTPPasswordNotShown(t *testing.T) {
	ln := listen6(t)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != "probe" || p != "hunter2" {
			http.Error(w, "who are you", http.StatusUnauthorized)
			return
		}
		http.Error(w, "broken", http.StatusInternalServerError)
	}))
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	defer srv.Close()
	withPassword := strings.Replace(srv.URL, "http://", "http://probe:hunter2@", 1)
	shown := strings.Replace(srv.URL, "http://", "http://probe:xxxxx@", 1)

	if got := (Check{Kind: HTTP, URL: withPassword + "/health"}).Target(); got != shown+"/health" {
		t.Errorf("Target() = %q, want %q", got, shown+"/health")
	}
	// The password reaches the server (500, not 401) and not the message.
	wantErr(t, newHTTPProbe(withPassword+"/health")(probeCtx(t, time.Second)), "GET "+shown+"/health: status 500 Internal Server Error")
	srv.Close()
	err := newHTTPProbe(withPassword + "/health")(probeCtx(t, time.Second))
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("a probe of a closed server: %v; want an error without the password", err)
	}
}
