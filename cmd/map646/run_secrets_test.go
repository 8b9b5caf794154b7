package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/map646/map646/lab/netlab"
)

// secretBGP is a [bgp] with one neighbor that has a password; the neighbor
// never answers, which is all the test needs.
const secretBGP = `
[bgp]
local_as = 64512
router_id = "192.0.2.1"
listen_port = -1

[[bgp.neighbor]]
address = "192.0.2.254"
peer_as = 64513
password = "hunter2-secret"
`

// TestCheckSecrets: check never prints a password nor the value of a
// misspelt one, and warns about a file holding a password that others
// may read.
func TestCheckSecrets(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "map646.toml")
	write := func(conf string, mode os.FileMode) {
		t.Helper()
		if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
	}
	valid := fmt.Sprintf(runConfig, "m646x", false, "/tmp/x.sock", "/tmp/x", "") + secretBGP

	write(valid, 0o644)
	code, stdout, stderr := runCmd(t, "check", "-config", path)
	want := "map646: warning: " + path + " holds a BGP password and is readable by its group and all users (mode 0644); make it readable by its owner only: chmod go-rw " + path + "\n"
	if code != exitOK || stderr != want {
		t.Errorf("0644: exit %d, stderr %q, want %q", code, stderr, want)
	}
	if strings.Contains(stdout+stderr, "hunter2") {
		t.Errorf("check shows the password:\n%s%s", stdout, stderr)
	}

	write(valid, 0o600)
	if code, _, stderr := runCmd(t, "check", "-config", path); code != exitOK || stderr != "" {
		t.Errorf("0600: exit %d, stderr %q, want no warning", code, stderr)
	}

	write(strings.Replace(valid, "password =", "pasword =", 1), 0o600)
	code, _, stderr = runCmd(t, "check", "-config", path)
	if code != exitError || !strings.Contains(stderr, ": bgp.neighbor[0].pasword: unknown key; did you mean password?") || strings.Contains(stderr, "hunter2") {
		t.Errorf("misspelt password: exit %d, stderr %q", code, stderr)
	}

	write(strings.Replace(valid, "peer_as = 64513\npassword = \"hunter2-secret\"", "peer_as = 64513, password = hunter2-secret", 1), 0o600)
	code, _, stderr = runCmd(t, "check", "-config", path)
	if code != exitError || !strings.Contains(stderr, ": invalid TOML: expected a top-level item to end with a newline, comment, or EOF, but got <hidden> instead (text of the file hidden: the file holds a secret)") || strings.Contains(stderr, "hunter2") {
		t.Errorf("unquoted password after another key: exit %d, stderr %q", code, stderr)
	}
}

// TestRunSecrets: the daemon warns at start about a password others may
// read, and its "reload refused" log does not show the value of a
// misspelt password.
func TestRunSecrets(t *testing.T) {
	netlab.RequireRoot(t)
	netlab.Need(t, "ip")
	bin := buildMap646(t)
	ns := newNetns(t)
	conf := filepath.Join(t.TempDir(), "map646.toml")
	writeConfig(t, conf, "m646s0", false, secretBGP) // 0644
	p := startMap646(t, bin, ns, conf)
	warn, next := p.wait("the configuration exposes a secret", 0)
	if pr, _ := warn["problem"].(string); !strings.Contains(pr, "holds a BGP password and is readable by its group and all users (mode 0644)") {
		t.Errorf("the warning: %v", warn)
	}
	_, next = p.wait("started", next)

	b, err := os.ReadFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(conf, []byte(strings.Replace(string(b), "password =", "pasword =", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	p.signal(syscall.SIGHUP)
	refused, next := p.wait("reload refused", next)
	if e, _ := refused["err"].(string); !strings.Contains(e, "bgp.neighbor[0].pasword: unknown key; did you mean password?") {
		t.Errorf("the refusal does not name the key: %v", refused)
	}

	// A syntax error on a line whose first key is not the password.
	unquoted := strings.Replace(string(b), "peer_as = 64513\npassword = \"hunter2-secret\"", "peer_as = 64513, password = hunter2-secret", 1)
	if err := os.WriteFile(conf, []byte(unquoted), 0o600); err != nil {
		t.Fatal(err)
	}
	p.signal(syscall.SIGHUP)
	refused, _ = p.wait("reload refused", next)
	if e, _ := refused["err"].(string); !strings.Contains(e, "invalid TOML: expected a top-level item to end with a newline, comment, or EOF, but got <hidden> instead") {
		t.Errorf("the refusal of a syntax error: %v", refused)
	}
	p.signal(syscall.SIGTERM)
	<-p.done
	if log := strings.Join(p.lines(), "\n"); strings.Contains(log, "hunter2") {
		t.Errorf("the log shows the password:\n%s", log)
	}
}
