package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/map646/map646/cmd/map646/control"
	"github.com/map646/map646/lab/netlab"
)

// nogroup is the gid of Debian's nogroup, the status socket's group in
// TestRunControl: not root's.
const nogroup = 65534

// TestRunControl runs a real map646 with a read-only status socket and
// proves, over its sockets and its log:
//   - the log says the node serves when it does: the "started" line comes
//     while the node is starting, and the first line that says serving
//     comes when the status's serving state began (before, a "serving"
//     line came at the start, 3 s before the data-plane check rose);
//   - the status socket is mode 0660, group nogroup; a user of that group
//     gets the status, one outside it is refused by the kernel;
//   - the status socket refuses drain, undrain and reload, and the node
//     stays serving;
//   - a reload that changes restart-only keys applies the rest (a new
//     mapping's route), fails (exit 1) and names the keys, which the
//     answer also carries as a list.
func TestRunControl(t *testing.T) {
	netlab.RequireRoot(t)
	netlab.Need(t, "ip")
	bin := buildMap646(t)
	ns := newNetns(t)
	// translator.ipv4_address local: the data-plane check's probes come
	// from it.
	ip(t, "-n", ns, "addr", "add", "192.0.2.1/32", "dev", "lo")
	// A directory user nobody can enter, for the binary and the status
	// socket (the test's own directories are 0700).
	open, err := os.MkdirTemp("", "m646ctl")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(open) })
	if err := os.Chmod(open, 0o755); err != nil {
		t.Fatal(err)
	}
	nbin := filepath.Join(open, "map646")
	if b, err := os.ReadFile(bin); err != nil || os.WriteFile(nbin, b, 0o755) != nil {
		t.Fatalf("copy the binary: %v", err)
	}
	statusSock := filepath.Join(open, "status.sock")

	dir := t.TempDir()
	conf := filepath.Join(dir, "map646.toml")
	sock := filepath.Join(dir, "map646.sock")
	write := func(mtu, mappings string) {
		t.Helper()
		writeConfig(t, conf, "m646c0", false, mappings)
		b, _ := os.ReadFile(conf)
		text := strings.Replace(string(b), "\n[node]", "status_socket = \""+statusSock+"\"\nstatus_group = \"nogroup\"\n\n[node]", 1)
		text = strings.Replace(text, "queues = 2\n", "queues = 2\nmtu = "+mtu+"\n", 1)
		if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("1500", "")
	p := startMap646(t, bin, ns, conf)
	started, _ := p.wait("started", 0)
	if started["state"] != "starting" {
		t.Errorf("started: state %v, want starting (the data-plane check has not risen yet)", started["state"])
	}

	// The log's first word of serving, against the status's.
	s := waitStatus(t, sock, "serving", func(s control.Status) bool { return s.Node.State == "serving" })
	var said time.Time
	for _, rec := range p.logRecords() {
		if rec["msg"] == "serving" || rec["state"] == "serving" {
			said, _ = time.Parse(time.RFC3339Nano, rec["time"].(string))
			break
		}
	}
	if d := s.Node.Since.Sub(said); said.IsZero() || d > 100*time.Millisecond || d < -100*time.Millisecond {
		t.Errorf("the log first says serving at %v, the node serves since %v (%v apart); log:\n%s",
			said, s.Node.Since, d, strings.Join(p.lines(), "\n"))
	}

	// The sockets' modes and groups.
	for _, c := range []struct {
		path string
		perm os.FileMode
		gid  uint32
	}{{sock, 0o600, 0}, {statusSock, 0o660, nogroup}} {
		fi, err := os.Stat(c.path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != c.perm || fi.Sys().(*syscall.Stat_t).Gid != c.gid {
			t.Errorf("%s: mode %v group %d, want %v group %d", c.path, fi.Mode().Perm(), fi.Sys().(*syscall.Stat_t).Gid, c.perm, c.gid)
		}
	}

	// The status socket as user nobody: in nogroup, then in another group.
	asNobody := func(gid uint32, args ...string) (string, int) {
		cmd := exec.Command(nbin, args...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: gid, Groups: []uint32{}}}
		out, err := cmd.CombinedOutput()
		return string(out), exitCode(err)
	}
	out, code := asNobody(nogroup, "status", "-socket", statusSock)
	if code != statusOK || !regexp.MustCompile(`(?m)^node +map646 +serving `).MatchString(out) {
		t.Errorf("status as nobody in nogroup: exit %d, output:\n%s", code, out)
	}
	out, code = asNobody(1, "status", "-socket", statusSock)
	if code != statusUnknown || !strings.Contains(out, "permission denied on "+statusSock) {
		t.Errorf("status as nobody outside nogroup: exit %d, output:\n%s", code, out)
	}
	out, code = asNobody(nogroup, "status", "-socket", sock)
	if code != statusUnknown || !strings.Contains(out, "permission denied on "+sock) {
		t.Errorf("the control socket as nobody in nogroup: exit %d, output:\n%s", code, out)
	}

	// The status socket changes nothing.
	for _, cmd := range []string{"drain", "undrain", "reload"} {
		code, _, stderr := runCmd(t, cmd, "-socket", statusSock)
		if code != exitError || !strings.Contains(stderr, cmd+" refused: this is map646's read-only status socket") {
			t.Errorf("%s on the status socket: exit %d, stderr %q", cmd, code, stderr)
		}
	}
	if s, _ := ctlStatus(t, sock); s.Node.State != "serving" {
		t.Errorf("after the refused commands: %s (%s), want serving", s.Node.State, s.Node.Cause)
	}

	// A reload with a restart-only change: the new mapping is applied, the
	// MTU is not, and both the exit code and the answer say so.
	write("1400", mappingTOML("198.51.100.40", "2001:db8:1::40"))
	code, stdout, stderr := runCmd(t, "reload", "-socket", sock)
	if code != exitError || stdout != "" || !strings.Contains(stderr, "restart map646 to apply [tun] mtu (a reload leaves them as they run)") ||
		!strings.Contains(stderr, "1 routes added") {
		t.Errorf("reload: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	if r := routes(t, ns); !slices.Contains(r, "198.51.100.40 dev m646c0") {
		t.Errorf("routes after the reload: %q, want 198.51.100.40 among them", r)
	}
	if out := ip(t, "-n", ns, "link", "show", "m646c0"); !strings.Contains(out, "mtu 1500") {
		t.Errorf("the reload changed the device:\n%s", out)
	}
	r, err := control.Call(sock, control.Request{Command: "reload"}, time.Minute, nil)
	if err != nil || *r.OK || !slices.Equal(r.RestartNeeded, []string{"[tun] mtu"}) {
		t.Errorf("reload answer: %+v, %v; want ok false and restart_needed [[tun] mtu]", r, err)
	}
}

// logRecords returns the JSON log records so far.
func (p *proc) logRecords() []map[string]any {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]map[string]any(nil), p.logs...)
}
