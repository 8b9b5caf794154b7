package netlab

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"
)

// Packages names the Debian 12 package that provides each command Need
// knows. A command not listed here is taken to be its own package's name.
var Packages = map[string]string{
	"ip":         "iproute2",
	"nstat":      "iproute2",
	"ss":         "iproute2",
	"ping":       "iputils-ping",
	"tracepath":  "iputils-tracepath",
	"traceroute": "traceroute",
	"iperf3":     "iperf3",
	"ethtool":    "ethtool",
	"nc":         "netcat-openbsd",
	"socat":      "socat",
	"tcpdump":    "tcpdump",
	"sysctl":     "procps",
	"bird":       "bird2",
	"birdc":      "bird2",
	"vtysh":      "frr",
	"prometheus": "prometheus",
	"promtool":   "prometheus",
	"setpriv":    "util-linux",
	"unshare":    "util-linux",

	"systemd-analyze": "systemd",
	"dpkg-deb":        "dpkg",
	"groff":           "groff-base",
	"man":             "man-db",
	"etcd":            "etcd-server",
	"etcdctl":         "etcd-client",
}

var install struct {
	sync.Mutex
	updated bool
}

// Need makes sure every command is installed: the missing ones are
// installed from Debian packages (apt-get update once per process, then
// apt-get install -y --no-install-recommends, non-interactive, waiting up to
// 5 minutes for a dpkg lock held by another install). It fails t with the
// commands, the packages and apt's output if that does not work.
//
// Root's tools live in the sbin directories, which a CI runner's PATH may
// lack: Need adds those missing to the process's PATH first (commands run
// by netlab inherit it).
func Need(t TB, commands ...string) {
	t.Helper()
	install.Lock()
	defer install.Unlock()
	sbinPath()
	var missing, pkgs []string
	seen := map[string]bool{}
	for _, c := range commands {
		if _, err := exec.LookPath(c); err == nil {
			continue
		}
		missing = append(missing, c)
		p := Packages[c]
		if p == "" {
			p = c
		}
		if !seen[p] {
			seen[p] = true
			pkgs = append(pkgs, p)
		}
	}
	if len(missing) == 0 {
		return
	}
	sort.Strings(pkgs)
	t.Logf("netlab: installing %s for %s", strings.Join(pkgs, " "), strings.Join(missing, ", "))
	fail := func(what string, err error, out []byte) {
		t.Fatalf("netlab: the lab needs %s (Debian packages %s) and could not install them: %s: %v\n%s",
			strings.Join(missing, ", "), strings.Join(pkgs, " "), what, err, out)
	}
	if !install.updated {
		if out, err := apt(10*time.Minute, "update"); err != nil {
			fail("apt-get update", err, out)
		}
		install.updated = true
	}
	args := append([]string{"install", "-y", "--no-install-recommends"}, pkgs...)
	if out, err := apt(10*time.Minute, args...); err != nil {
		fail("apt-get "+strings.Join(args, " "), err, out)
	}
	for _, c := range missing {
		if _, err := exec.LookPath(c); err != nil {
			fail("after the install", fmt.Errorf("%s is still not on PATH", c), nil)
		}
	}
}

// apt runs apt-get non-interactively, retrying while another apt holds a
// lock that the lock timeout does not cover (the lists lock of update).
func apt(timeout time.Duration, args ...string) ([]byte, error) {
	deadline := time.Now().Add(timeout)
	full := append([]string{"env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "-q",
		"-o", "DPkg::Lock::Timeout=300"}, args...)
	for {
		out, err := command(time.Until(deadline), nil, full[0], full[1:]...)
		if err == nil || !strings.Contains(string(out), "Could not get lock") || time.Now().After(deadline) {
			return out, err
		}
		time.Sleep(2 * time.Second) // another apt-get holds the lock: no condition to wait on
	}
}

// sbinPath appends the sbin directories missing from PATH.
func sbinPath() {
	path := os.Getenv("PATH")
	have := map[string]bool{}
	for _, d := range filepath.SplitList(path) {
		have[d] = true
	}
	for _, d := range []string{"/usr/local/sbin", "/usr/sbin", "/sbin"} {
		if !have[d] {
			path += string(filepath.ListSeparator) + d
		}
	}
	os.Setenv("PATH", strings.TrimPrefix(path, string(filepath.ListSeparator)))
}
