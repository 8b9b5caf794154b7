package main

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/map646/map646/config"
	"github.com/map646/map646/lab/netlab"
)

// unitPath is the packaged systemd unit, relative to this package.
const unitPath = "package/map646.service"

// readUnit returns the unit's settings: key -> the values of its lines, in
// order (comments and section headers left out).
func readUnit(t *testing.T) map[string][]string {
	t.Helper()
	f, err := os.Open(unitPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	u := map[string][]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || line[0] == '[' {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("%s: not key=value: %q", unitPath, line)
		}
		u[k] = append(u[k], v)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return u
}

// TestUnitAgreesWithCode: the unit sets what map646 relies on, and its
// directories and capabilities are the code's defaults and needs.
func TestUnitAgreesWithCode(t *testing.T) {
	u := readUnit(t)
	one := func(k string) string {
		if len(u[k]) != 1 {
			t.Errorf("%s: %d %s= lines, want 1: %q", unitPath, len(u[k]), k, u[k])
			return ""
		}
		return u[k][0]
	}
	for k, want := range map[string]string{
		"Type": "notify", "Restart": "on-failure", "User": "map646", "Group": "map646",
		"NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes",
		"ExecStartPre": "/usr/sbin/map646 check -config /etc/map646/map646.toml",
		"ExecStart":    "/usr/sbin/map646 run -config /etc/map646/map646.toml",
		"ExecReload":   "/usr/sbin/map646 reload",
	} {
		if got := one(k); got != want {
			t.Errorf("%s: %s=%s, want %s", unitPath, k, got, want)
		}
	}
	if one("WatchdogSec") == "" {
		t.Errorf("%s: no WatchdogSec: nothing would watch the data plane", unitPath)
	}
	// The defaults of [control] socket and [node] state_dir are in the
	// directories systemd makes for user map646.
	if dir := "/run/" + one("RuntimeDirectory"); dir != filepath.Dir(config.DefaultControlSocket) {
		t.Errorf("RuntimeDirectory is %s; the default control socket %s is elsewhere", dir, config.DefaultControlSocket)
	}
	if dir := "/var/lib/" + one("StateDirectory"); dir != config.DefaultStateDir {
		t.Errorf("StateDirectory is %s; the default state_dir is %s", dir, config.DefaultStateDir)
	}
	// The capabilities map646 run may need (run -h names them), no more.
	const caps = "CAP_NET_ADMIN CAP_NET_RAW CAP_NET_BIND_SERVICE"
	for _, k := range []string{"AmbientCapabilities", "CapabilityBoundingSet"} {
		if got := one(k); got != caps {
			t.Errorf("%s=%s, want %s", k, got, caps)
		}
	}
	for _, c := range strings.Fields(caps) {
		if !strings.Contains(runUsage, c) {
			t.Errorf("map646 run -h does not explain %s", c)
		}
	}
	// accept_local is written under /proc/sys by the daemon itself.
	if v := u["ProtectKernelTunables"]; len(v) != 0 {
		t.Errorf("ProtectKernelTunables=%s: /proc/sys read-only, map646 cannot set accept_local on its device", v)
	}
	families := " " + one("RestrictAddressFamilies") + " "
	for _, f := range []string{"AF_UNIX", "AF_INET", "AF_INET6", "AF_NETLINK"} {
		if !strings.Contains(families, " "+f+" ") {
			t.Errorf("RestrictAddressFamilies lacks %s", f)
		}
	}
	if one("DeviceAllow") != "/dev/net/tun rw" {
		t.Errorf("DeviceAllow=%s: map646 opens /dev/net/tun read-write", one("DeviceAllow"))
	}
}

// TestUnitVerifies: systemd-analyze verify finds nothing to say about the
// unit. verify checks that each Exec program exists and is executable, so
// it runs on a copy whose /usr/sbin/map646 is the binary built here; and
// with --man=no, since the man pages the unit names come with the Debian
// package. Any output (verify exits 0 on an unknown key or a bad value,
// and only says so) fails the test.
func TestUnitVerifies(t *testing.T) {
	netlab.Need(t, "systemd-analyze")
	bin := buildMap646(t)
	text, err := os.ReadFile(unitPath)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(text), "/usr/sbin/map646 ") {
		t.Fatalf("%s does not run /usr/sbin/map646", unitPath)
	}
	unit := filepath.Join(t.TempDir(), "map646.service")
	if err := os.WriteFile(unit, []byte(strings.ReplaceAll(string(text), "/usr/sbin/map646 ", bin+" ")), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("systemd-analyze", "verify", "--man=no", unit).CombinedOutput()
	if err != nil || len(out) != 0 {
		t.Errorf("systemd-analyze verify --man=no %s: %v\n%s", unit, err, out)
	}
	if out, err := exec.Command("systemd-analyze", "security", "--offline=yes", unit).CombinedOutput(); err == nil {
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		t.Logf("systemd-analyze security --offline=yes: %s", lines[len(lines)-1])
	}
}
