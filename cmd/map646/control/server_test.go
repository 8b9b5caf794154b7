package control

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var t0 = time.Date(2026, 5, 4, 12, 0, 0, 0, time.UTC)

// fakeHandler answers the control commands; drain blocks on release.
type fakeHandler struct {
	mu      sync.Mutex
	calls   []string
	started chan struct{} // a drain has begun
	release chan struct{} // the drain may end
	status  Status
}

func (h *fakeHandler) record(c string) {
	h.mu.Lock()
	h.calls = append(h.calls, c)
	h.mu.Unlock()
}

func (h *fakeHandler) Calls() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.calls...)
}

func (h *fakeHandler) Status() Status { return h.status }

func (h *fakeHandler) Drain(ctx context.Context, force bool, progress func(string)) (string, error) {
	h.record("drain")
	progress("step one")
	h.started <- struct{}{}
	select {
	case <-h.release:
	case <-ctx.Done():
		return "", ctx.Err()
	}
	progress("step two")
	return "drained", nil
}

func (h *fakeHandler) Undrain(context.Context) (string, error) {
	h.record("undrain")
	return "", errors.New("cannot undrain: disk on fire")
}

func (h *fakeHandler) Reload(context.Context) (string, error) {
	h.record("reload")
	return "reloaded", nil
}

func newTestServer(t *testing.T) (*Server, *fakeHandler, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "map646.sock")
	ln, err := Listen(path, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	h := &fakeHandler{started: make(chan struct{}, 1), release: make(chan struct{}),
		status: Status{Version: "test", Node: NodeStatus{State: "serving", Since: t0, Cause: "because", BGP: true},
			Health:    []CheckStatus{{Name: "dp", Kind: "dataplane", Up: true, Since: t0, Checked: 7}},
			Neighbors: []NeighborStatus{{Address: "192.0.2.254", PeerAS: 65000, Role: "router", Families: []string{"ipv4-unicast"}, State: "established", Established: true, Since: t0, Sent: 2, BFD: "up"}},
			Announced: []AnnouncedStatus{{Prefix: "198.51.100.0/28", MED: 10, Communities: []string{"65535:0"}}},
			Traffic:   TrafficStatus{Directions: map[string]DirectionStatus{"4to6": {Packets: 5, Bytes: 500, Forwarded: 4, Dropped: 1}, "6to4": {}}}}}
	s := NewServer(ln, h, slog.New(slog.DiscardHandler))
	t.Cleanup(s.Close)
	return s, h, path
}

// rawCall sends raw bytes and returns the answer lines.
func rawCall(t *testing.T, path, req string) []map[string]any {
	t.Helper()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	c.(*net.UnixConn).CloseWrite()
	var out []map[string]any
	sc := bufio.NewScanner(c)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("answer %q: %v", sc.Text(), err)
		}
		out = append(out, m)
	}
	return out
}

func TestControlSocketMode(t *testing.T) {
	_, _, path := newTestServer(t)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Type() != os.ModeSocket || fi.Mode().Perm() != 0o600 {
		t.Errorf("control socket mode %v, want a socket with 0600", fi.Mode())
	}
}

// TestControlStatusRoundTrip: the status survives the socket and JSON
// unchanged.
func TestControlStatusRoundTrip(t *testing.T) {
	_, h, path := newTestServer(t)
	r, err := Call(path, Request{Command: "status"}, time.Minute, func(string) { t.Error("progress for status") })
	if err != nil || r.OK == nil || !*r.OK || r.Status == nil {
		t.Fatalf("status: %+v, %v", r, err)
	}
	if !reflect.DeepEqual(*r.Status, h.status) {
		t.Errorf("status round trip:\n got %+v\nwant %+v", *r.Status, h.status)
	}
	// Through JSON a second time, as map646 status -json prints it.
	b, err := json.Marshal(r.Status)
	if err != nil {
		t.Fatal(err)
	}
	var s Status
	if err := json.Unmarshal(b, &s); err != nil || !reflect.DeepEqual(s, h.status) {
		t.Errorf("status JSON round trip: %v\n%s", err, b)
	}
}

// TestControlBadRequests: each bad request gets a clear error and reaches
// no command.
func TestControlBadRequests(t *testing.T) {
	_, h, path := newTestServer(t)
	for _, tc := range []struct{ req, want string }{
		{"hello\n", "request is not a JSON object"},
		{`{"command":"frobnicate"}` + "\n", `unknown command "frobnicate": status, drain, undrain, reload, lookup, mappings, mapping-add, mapping-del or cluster`},
		{`{"command":"reload","force":true}` + "\n", "force applies to drain only"},
		{`{"command":"drain","extra":1}` + "\n", `unknown field "extra"`},
		{`{}` + "\n", `request has no "command"`},
		{`{"command":"drain"} {"command":"drain"}` + "\n", "more than one JSON value"},
		{`{"command":"drain"}`, "incomplete request (no end of line)"},
		{strings.Repeat(" ", MaxRequest) + `{"command":"drain"}` + "\n", "request longer than 4096 bytes"},
	} {
		got := rawCall(t, path, tc.req)
		if len(got) != 1 || got[0]["ok"] != false || !strings.Contains(got[0]["error"].(string), tc.want) {
			t.Errorf("%.40q: answer %v, want an error with %q", tc.req, got, tc.want)
		}
	}
	if calls := h.Calls(); len(calls) != 0 {
		t.Errorf("bad requests reached commands: %q", calls)
	}
	// A client that connects and closes at once changes nothing either, and
	// the server goes on.
	c, _ := net.Dial("unix", path)
	c.Close()
	if r, err := Call(path, Request{Command: "reload"}, time.Minute, nil); err != nil || !*r.OK || r.Message != "reloaded" {
		t.Errorf("reload after the bad requests: %+v, %v", r, err)
	}
	if r, err := Call(path, Request{Command: "undrain"}, time.Minute, nil); err != nil || *r.OK || r.Error != "cannot undrain: disk on fire" {
		t.Errorf("undrain: %+v, %v", r, err)
	}
}

// TestControlDrainStreams: a drain's progress arrives line by line before
// the final answer; a client that goes away midway does not stop it.
func TestControlDrainStreams(t *testing.T) {
	_, h, path := newTestServer(t)
	var progress []string
	done := make(chan struct{})
	var r Reply
	var err error
	go func() {
		r, err = Call(path, Request{Command: "drain", Force: true}, 0, func(p string) { progress = append(progress, p) })
		close(done)
	}()
	<-h.started
	h.release <- struct{}{}
	<-done
	if err != nil || !*r.OK || r.Message != "drained" || !reflect.DeepEqual(progress, []string{"step one", "step two"}) {
		t.Errorf("drain: %+v, %v, progress %q", r, err, progress)
	}

	// A client that disconnects during the drain: the drain finishes.
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte(`{"command":"drain"}` + "\n"))
	<-h.started
	c.Close()
	h.release <- struct{}{} // the handler takes it: the drain was not cancelled
	if calls := h.Calls(); !reflect.DeepEqual(calls, []string{"drain", "drain"}) {
		t.Errorf("calls %q", calls)
	}
}

// TestControlSocketTaken: a second daemon refuses a live socket, removes a
// stale one, and leaves a non-socket file alone.
func TestControlSocketTaken(t *testing.T) {
	s, _, path := newTestServer(t)
	log := slog.New(slog.DiscardHandler)
	if _, err := Listen(path, log); err == nil || !strings.Contains(err.Error(), "another map646 answers on it") {
		t.Errorf("live socket: %v", err)
	}
	// A stale socket: bound, never listened on (what a killed process leaves).
	stale := filepath.Join(t.TempDir(), "stale.sock")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: stale, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	l.SetUnlinkOnClose(false)
	l.Close()
	ln, err := Listen(stale, log)
	if err != nil {
		t.Fatalf("stale socket: %v", err)
	}
	ln.Close()
	file := filepath.Join(t.TempDir(), "file")
	os.WriteFile(file, []byte("x"), 0o644)
	if _, err := Listen(file, log); err == nil || !strings.Contains(err.Error(), "is not a socket") {
		t.Errorf("regular file: %v", err)
	}
	if b, _ := os.ReadFile(file); string(b) != "x" {
		t.Error("the regular file was touched")
	}
	// After Close the socket is gone and a call says nothing runs.
	s.Close()
	s.Close()
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket after Close: %v", err)
	}
	if _, err := Call(path, Request{Command: "status"}, time.Minute, nil); err == nil || !strings.Contains(err.Error(), "no control socket at "+path+": map646 run is not running") {
		t.Errorf("no daemon: %v", err)
	}
	if _, err := Call(stale, Request{Command: "drain"}, 0, nil); err == nil || !strings.Contains(err.Error(), "no control socket at") {
		t.Errorf("no daemon (stale socket removed): %v", err)
	}
}

// TestControlRequestTimeout: a client that says nothing is dropped.
func TestControlRequestTimeout(t *testing.T) {
	defer func(d time.Duration) { requestTimeout = d }(requestTimeout)
	requestTimeout = 50 * time.Millisecond
	_, h, path := newTestServer(t)
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || !strings.Contains(line, `"ok":false`) || !strings.Contains(line, "incomplete request") {
		t.Errorf("silent client: %q, %v", line, err)
	}
	if len(h.Calls()) != 0 {
		t.Error("a silent client reached a command")
	}
}

// TestStatusSocket: the read-only socket is mode 0660 with the group it
// was given, answers status as the control socket does, and refuses
// drain, undrain and reload with an error naming the control socket,
// without reaching the handler.
func TestStatusSocket(t *testing.T) {
	_, h, _ := newTestServer(t)
	path := filepath.Join(t.TempDir(), "status.sock")
	gid := os.Getegid()
	if os.Geteuid() == 0 {
		gid = 65534 // another group than the process's: proves the chown
	}
	ln, err := ListenStatus(path, gid, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	s := NewStatusServer(ln, h, slog.New(slog.DiscardHandler))
	t.Cleanup(s.Close)

	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Type() != os.ModeSocket || fi.Mode().Perm() != 0o660 {
		t.Errorf("status socket mode %v, want a socket with 0660", fi.Mode())
	}
	if got := int(fi.Sys().(*syscall.Stat_t).Gid); got != gid {
		t.Errorf("status socket group %d, want %d", got, gid)
	}

	r, err := Call(path, Request{Command: "status"}, time.Minute, nil)
	if err != nil || !*r.OK || r.Status == nil || !reflect.DeepEqual(*r.Status, h.status) {
		t.Fatalf("status on the status socket: %+v, %v", r, err)
	}
	// cluster reads and changes nothing: answered (this handler has no
	// etcd source to ask), not refused.
	if r, err := Call(path, Request{Command: "cluster"}, time.Minute, nil); err != nil || *r.OK || r.Error != "cluster: this map646 does not serve it" {
		t.Errorf("cluster on the status socket: %+v, %v", r, err)
	}
	for _, req := range []Request{{Command: "drain"}, {Command: "drain", Force: true}, {Command: "undrain"}, {Command: "reload"}, {Command: "mapping-add"}, {Command: "mapping-del"}} {
		r, err := Call(path, req, time.Minute, func(p string) { t.Errorf("%s: progress %q", req.Command, p) })
		want := req.Command + " refused: this is map646's read-only status socket ([control] status_socket), which answers status, lookup, mappings and cluster only; " +
			req.Command + " is taken on the control socket ([control] socket, the daemon user's)"
		if err != nil || *r.OK || r.Error != want || r.Status != nil {
			t.Errorf("%+v on the status socket: %+v, %v; want the error %q", req, r, err, want)
		}
	}
	if calls := h.Calls(); len(calls) != 0 {
		t.Errorf("the status socket reached commands: %q", calls)
	}
}

// TestReloadRestartNeeded: a reload that left keys to a restart answers
// ok false, its message, and the keys as a list.
func TestReloadRestartNeeded(t *testing.T) {
	path := filepath.Join(t.TempDir(), "map646.sock")
	ln, err := Listen(path, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	s := NewServer(ln, restartHandler{&fakeHandler{}}, slog.New(slog.DiscardHandler))
	t.Cleanup(s.Close)
	got := rawCall(t, path, `{"command":"reload"}`+"\n")
	want := []map[string]any{{"ok": false,
		"error":          "reloaded x, but not every change was applied: restart map646 to apply [tun] mtu, [metrics] listen (a reload leaves them as they run)",
		"restart_needed": []any{"[tun] mtu", "[metrics] listen"}}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("reload answer %v\nwant %v", got, want)
	}
}

// restartHandler's reload applies all but two restart-only keys.
type restartHandler struct{ *fakeHandler }

func (restartHandler) Reload(context.Context) (string, error) {
	return "", fmt.Errorf("reloaded x, but not every change was applied: %w",
		errors.Join(&RestartNeeded{Keys: []string{"[tun] mtu", "[metrics] listen"}}))
}

// TestListenMakesItsDirectory: the socket's directory is made when missing
// (the default /run/map646, outside systemd); a missing grandparent is an
// error naming the path.
func TestListenMakesItsDirectory(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "run", "map646.sock")
	ln, err := Listen(path, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
	if fi, err := os.Stat(filepath.Dir(path)); err != nil || !fi.IsDir() {
		t.Errorf("the socket's directory: %v, %v", fi, err)
	}
	far := filepath.Join(dir, "no", "such", "map646.sock")
	if _, err := Listen(far, slog.New(slog.DiscardHandler)); err == nil || !strings.HasPrefix(err.Error(), "control socket "+far+": create its directory: ") {
		t.Errorf("a missing grandparent: %v", err)
	}
}
