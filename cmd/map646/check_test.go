package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckExample(t *testing.T) {
	code, stdout, stderr := runCmd(t, "check", "-config", exampleConfig)
	if code != exitOK || stderr != "" {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	if !strings.Contains(stdout, "64:ff9b::/96") {
		t.Errorf("the description does not mention the pseudo prefix 64:ff9b::/96:\n%s", stdout)
	}
}

// Every problem is reported, one per line, each naming the file; the
// problems' wording belongs to package config and is not tested here.
func TestCheckInvalid(t *testing.T) {
	path := filepath.Join(t.TempDir(), "broken.toml")
	broken := `[translator]
pseudo_prefix = "64:ff9b::/97"
ipv4_address = "192.0.2.1"
ipv6_mtu = 1000

[[mapping]]
ipv4 = "198.51.100.10"
ipv6 = "2001:db8:1::10"
`
	if err := os.WriteFile(path, []byte(broken), 0o644); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := runCmd(t, "check", "-config", path)
	if code != exitError || stdout != "" {
		t.Errorf("exit %d, stdout %q", code, stdout)
	}
	head := "map646: config " + path + " is invalid:\n"
	if !strings.HasPrefix(stderr, head) {
		t.Fatalf("stderr does not start with %q:\n%s", head, stderr)
	}
	lines := strings.Split(strings.TrimSuffix(strings.TrimPrefix(stderr, head), "\n"), "\n")
	for _, l := range lines {
		if !strings.HasPrefix(l, path) {
			t.Errorf("problem line does not name the file: %q", l)
		}
	}
	// Three problems: a prefix length RFC 6052 does not allow, a missing
	// ipv6_address, an IPv6 MTU below 1280.
	for _, key := range []string{"pseudo_prefix", "ipv6_address", "ipv6_mtu"} {
		if !strings.Contains(stderr, key) {
			t.Errorf("no problem reported for %s:\n%s", key, stderr)
		}
	}
	if len(lines) < 3 {
		t.Errorf("%d problem lines, want at least 3:\n%s", len(lines), stderr)
	}
}

// A file that cannot be read is not "invalid": the message says what failed.
func TestCheckMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nope.toml")
	code, stdout, stderr := runCmd(t, "check", "-config", path)
	if code != exitError || stdout != "" || !strings.Contains(stderr, path) || strings.Contains(stderr, "invalid") {
		t.Errorf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
}

// A status_group that is no group of this system is a warning (the file
// may be checked elsewhere than where it runs); one that is, nothing.
func TestCheckStatusGroup(t *testing.T) {
	for _, tc := range []struct{ group, warn string }{
		{"m646-no-such-group", `map646: warning: [control] status_group "m646-no-such-group": group: unknown group m646-no-such-group: map646 run refuses to start on this system until the group exists (groupadd --system m646-no-such-group)` + "\n"},
		{"root", ""},
	} {
		path := filepath.Join(t.TempDir(), "m.toml")
		conf := `[translator]
pseudo_prefix = "64:ff9b::/96"
ipv4_address = "192.0.2.1"
ipv6_address = "2001:db8:64::1"

[control]
status_socket = "/run/map646-status.sock"
status_group = "` + tc.group + `"
`
		if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
			t.Fatal(err)
		}
		code, stdout, stderr := runCmd(t, "check", "-config", path)
		if code != exitOK || stderr != tc.warn || !strings.Contains(stdout, "status socket") {
			t.Errorf("group %s: exit %d, stderr %q, want %q; stdout:\n%s", tc.group, code, stderr, tc.warn, stdout)
		}
	}
}
