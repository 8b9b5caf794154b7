package main

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/map646/map646/cmd/map646/control"
)

// fakeDaemon answers the control commands as a daemon would, for the
// client commands' tests: a fixed status, an undrain that fails.
type fakeDaemon struct{ status control.Status }

func (d fakeDaemon) Status() control.Status { return d.status }

func (fakeDaemon) Drain(_ context.Context, _ bool, progress func(string)) (string, error) {
	progress("step one")
	return "drained", nil
}

func (fakeDaemon) Undrain(context.Context) (string, error) {
	return "", errors.New("cannot undrain: disk on fire")
}

func (fakeDaemon) Reload(context.Context) (string, error) { return "reloaded", nil }

// startFakeDaemon serves a fakeDaemon on a socket in a temporary directory.
func startFakeDaemon(t *testing.T) (fakeDaemon, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "map646.sock")
	ln, err := control.Listen(path, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	d := fakeDaemon{status: control.Status{Version: "test",
		Node:      control.NodeStatus{State: "serving", Since: statusSince, Cause: "because", BGP: true},
		Health:    []control.CheckStatus{{Name: "dp", Kind: "dataplane", Withdraws: "all", Up: true, Since: statusSince, Checked: 7}},
		Neighbors: []control.NeighborStatus{{Address: "192.0.2.254", PeerAS: 65000, Role: "router", Families: []string{"ipv4-unicast"}, State: "established", Established: true, Since: statusSince, Sent: 2, BFD: "up"}},
		Announced: []control.AnnouncedStatus{{Prefix: "198.51.100.0/28", MED: 10, Communities: []string{"65535:0"}}},
		Traffic:   control.TrafficStatus{Directions: map[string]control.DirectionStatus{"4to6": {Packets: 5, Bytes: 500, Forwarded: 4, Dropped: 1}, "6to4": {}}}}}
	s := control.NewServer(ln, d, slog.New(slog.DiscardHandler))
	t.Cleanup(s.Close)
	return d, path
}

// TestStatusCommand: map646 status shows one line per part, as birdc show
// protocols does; -v every detail; -json the daemon's status unchanged.
func TestStatusCommand(t *testing.T) {
	d, path := startFakeDaemon(t)
	code, stdout, stderr := runCmd(t, "status", "-socket", path)
	want := `Name         Type       State        Since                Info
node         map646     serving      2026-05-04 12:00:00  because; 1 prefix announced
dp           check      up           2026-05-04 12:00:00  dataplane; withdraws all
192.0.2.254  bgp        established  2026-05-04 12:00:00  AS65000 router; sent 2, received 0; bfd up
traffic      dataplane  -            -                    4to6 read 5, forwarded 4, dropped 1; 6to4 read 0, forwarded 0, dropped 0
`
	if code != statusOK || stdout != want || stderr != "" {
		t.Errorf("status: exit %d, stderr %q, stdout:\n%s\nwant:\n%s", code, stderr, stdout, want)
	}
	code, stdout, stderr = runCmd(t, "status", "-v", "-socket", path)
	for _, want := range []string{"serving for", "because", "dp", "192.0.2.254", "established", "198.51.100.0/28", "med 10", "65535:0", "read 5 packets 500 bytes"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("status -v lacks %q:\n%s", want, stdout)
		}
	}
	if code != statusOK || stderr != "" {
		t.Errorf("status -v: exit %d, stderr %q", code, stderr)
	}
	code, stdout, _ = runCmd(t, "status", "-json", "-socket", path)
	var s control.Status
	if err := json.Unmarshal([]byte(stdout), &s); err != nil || code != statusOK || !reflect.DeepEqual(s, d.status) {
		t.Errorf("status -json: exit %d, %v\n%s", code, err, stdout)
	}
	if code, _, stderr := runCmd(t, "status", "-json", "-v", "-socket", path); code != statusUnknown || !strings.Contains(stderr, "-json, -v and -cluster are views") {
		t.Errorf("status -json -v: exit %d, stderr %q", code, stderr)
	}
	if code, _, _ := runCmd(t, "status", "-frobnicate"); code != statusUnknown {
		t.Errorf("status with a bad flag: exit %d, want %d (UNKNOWN)", code, statusUnknown)
	}
	if code, _, _ := runCmd(t, "status", "-socket", filepath.Join(t.TempDir(), "none.sock")); code != statusUnknown {
		t.Errorf("status without a daemon: exit %d, want %d (UNKNOWN)", code, statusUnknown)
	}
}

// TestStatusExit: map646 status exits as a monitoring plugin does, by the
// node's state, its neighbors and its state_dir.
func TestStatusExit(t *testing.T) {
	up := control.NeighborStatus{State: "established", Established: true}
	down := control.NeighborStatus{State: "active"}
	for _, tc := range []struct {
		name string
		s    control.Status
		want int
	}{
		{"serving", control.Status{Node: control.NodeStatus{State: "serving", StateDir: "ok"}, Neighbors: []control.NeighborStatus{up, up}}, statusOK},
		{"serving without bgp", control.Status{Node: control.NodeStatus{State: "serving", StateDir: "ok"}}, statusOK},
		{"serving, a neighbor down", control.Status{Node: control.NodeStatus{State: "serving", StateDir: "ok"}, Neighbors: []control.NeighborStatus{up, down}}, statusWarning},
		{"serving, state_dir full", control.Status{Node: control.NodeStatus{State: "serving", StateDir: "not writable: no space left on device"}}, statusWarning},
		{"serving, etcd synced", control.Status{Node: control.NodeStatus{State: "serving", StateDir: "ok"}, Mappings: &control.MappingsStatus{Source: "etcd", State: "synced"}}, statusOK},
		{"serving, etcd stale", control.Status{Node: control.NodeStatus{State: "serving", StateDir: "ok"}, Mappings: &control.MappingsStatus{Source: "etcd", State: "stale"}}, statusWarning},
		{"serving from the cache", control.Status{Node: control.NodeStatus{State: "serving", StateDir: "ok"}, Mappings: &control.MappingsStatus{Source: "etcd", State: "from cache"}}, statusWarning},
		{"starting", control.Status{Node: control.NodeStatus{State: "starting", StateDir: "ok"}}, statusWarning},
		{"draining", control.Status{Node: control.NodeStatus{State: "draining", StateDir: "ok"}}, statusWarning},
		{"drained", control.Status{Node: control.NodeStatus{State: "drained", StateDir: "ok"}, Neighbors: []control.NeighborStatus{up}}, statusWarning},
		{"failed", control.Status{Node: control.NodeStatus{State: "failed", StateDir: "ok"}, Neighbors: []control.NeighborStatus{up}}, statusCritical},
		{"failed, a neighbor down", control.Status{Node: control.NodeStatus{State: "failed", StateDir: "ok"}, Neighbors: []control.NeighborStatus{down}}, statusCritical},
	} {
		if got := statusExit(tc.s); got != tc.want {
			t.Errorf("%s: exit %d, want %d", tc.name, got, tc.want)
		}
	}
}

// TestControlCommands: drain prints its progress then its message;
// a refusal goes to stderr with exit 1; without a daemon each command
// says so.
func TestControlCommands(t *testing.T) {
	_, path := startFakeDaemon(t)
	code, stdout, stderr := runCmd(t, "drain", "-socket", path)
	if code != exitOK || stdout != "step one\ndrained\n" || stderr != "" {
		t.Errorf("drain command: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	code, _, stderr = runCmd(t, "undrain", "-socket", path)
	if code != exitError || stderr != "map646 undrain: cannot undrain: disk on fire\n" {
		t.Errorf("undrain command: exit %d, stderr %q", code, stderr)
	}
	gone := filepath.Join(t.TempDir(), "none.sock")
	for _, cmd := range []string{"status", "drain", "undrain", "reload"} {
		code, _, stderr := runCmd(t, cmd, "-socket", gone)
		want := exitError
		if cmd == "status" {
			want = statusUnknown
		}
		if code != want || !strings.HasPrefix(stderr, "map646 "+cmd+": no control socket at "+gone+": map646 run is not running") {
			t.Errorf("%s without a daemon: exit %d, stderr %q", cmd, code, stderr)
		}
	}
}

var statusSince = time.Date(2026, 5, 4, 12, 0, 0, 0, time.UTC)
