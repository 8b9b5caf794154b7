package lab

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/map646/map646/lab/netlab"
	"github.com/map646/map646/lab/topo"
)

// nobody is the unprivileged user of TestNonRoot (uid and gid 65534, as on
// Debian).
const nobody = 65534

// unprivileged is the command line (the program and its arguments follow)
// that runs a program as nobody with the capabilities caps (setpriv's
// names: net_admin) and no other: ambient, so that they survive the exec
// into a non-root uid, as systemd's AmbientCapabilities= gives them. It
// first gives /dev/net/tun mode 0666, as udev does on most systems (this
// machine's is 0600), in a mount namespace of its own: a tmpfs on /dev/net
// holding a new node of the tun device; the host's /dev is untouched.
// Every step execs the next: the program keeps the PID.
func unprivileged(caps ...string) []string {
	list := "+" + strings.Join(caps, ",+")
	return []string{"unshare", "--mount", "--propagation", "private", "sh", "-c",
		`mount -t tmpfs -o mode=0755 tmpfs /dev/net && mknod -m 0666 /dev/net/tun c 10 200 && exec "$@"`, "sh",
		"setpriv", "--reuid=" + strconv.Itoa(nobody), "--regid=" + strconv.Itoa(nobody), "--clear-groups",
		"--inh-caps=" + list, "--ambient-caps=" + list, "--"}
}

// TestNonRoot: map646 run as nobody with CAP_NET_ADMIN, CAP_NET_RAW and
// CAP_NET_BIND_SERVICE only (the packaged unit's), on the first lab's
// topology (offload device, two queues), passes its ping, TCP, UDP, path
// MTU (ICMP errors translated and generated) and traceroute tests, sets
// accept_local on its device, answers root's status and its own user's
// reload on its control socket, and stops cleanly. With CAP_NET_RAW alone
// it refuses to start, naming CAP_NET_ADMIN.
func TestNonRoot(t *testing.T) {
	netlab.RequireRoot(t)
	if testing.Short() {
		t.Skip("skipped in -short mode: the namespace lab takes about 10 s")
	}
	netlab.Need(t, "ip", "nstat", "ethtool", "ping", "traceroute", "iperf3", "setpriv", "unshare")
	bin := netlab.BuildMap646(t)
	as := netlab.RunAs{UID: nobody, GID: nobody, Wrap: unprivileged("net_admin", "net_raw", "net_bind_service")}
	l := newLabWith(t, bin, true, 2, 0, func(t netlab.TB, ns *netlab.NS, bin string, c netlab.Config) *netlab.Map646 {
		return netlab.StartMap646As(t, ns, bin, c, as)
	})

	// It is nobody, with exactly the three capabilities.
	status, err := os.ReadFile("/proc/" + strconv.Itoa(l.m.PID()) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	fields := map[string]string{}
	for _, line := range strings.Split(string(status), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok {
			fields[k] = strings.Join(strings.Fields(v), " ")
		}
	}
	for k, want := range map[string]string{
		"Uid": "65534 65534 65534 65534", "Gid": "65534 65534 65534 65534", "Groups": "",
		"CapEff": "0000000000003400", // bits 10, 12, 13: NET_BIND_SERVICE, NET_ADMIN, NET_RAW
	} {
		if fields[k] != want {
			t.Errorf("map646's /proc/PID/status: %s %q, want %q", k, fields[k], want)
		}
	}
	// The per-device sysctl is a CAP_NET_ADMIN holder's to write.
	if got := strings.TrimSpace(l.xlat.Run(t, "cat", "/proc/sys/net/ipv4/conf/"+l.m.Device+"/accept_local")); got != "1" {
		t.Errorf("accept_local on %s: %q, want 1", l.m.Device, got)
	}
	if out := l.m.Output(); strings.Contains(out, "may be dropped") || strings.Contains(out, "permission denied") || strings.Contains(out, "not permitted") {
		t.Errorf("map646 met a permission problem:\n%s", out)
	}

	// The control socket is nobody's, mode 0600: root's client and one
	// of the same user (the unit's ExecReload runs as User=map646) reach
	// it.
	// Any answer counts (exit 0 to 2: the node may still be starting);
	// 3 is no answer.
	if out, err := l.xlat.Exec(30*time.Second, bin, "status", "-socket", l.m.Socket); !topo.StatusAnswered(err) {
		t.Errorf("map646 status as root: %v\n%s", err, out)
	}
	reload := append([]string{"setpriv", "--reuid=" + strconv.Itoa(nobody), "--regid=" + strconv.Itoa(nobody), "--clear-groups", "--"},
		filepath.Join(filepath.Dir(l.m.ConfigPath), "map646"), "reload", "-socket", l.m.Socket)
	if out, err := l.xlat.Exec(30*time.Second, reload...); err != nil || !strings.Contains(out, "reloaded") {
		t.Errorf("map646 reload as nobody: %v\n%s", err, out)
	}

	t.Run("Ping", l.testPing)
	t.Run("TCP", l.testTCP)
	t.Run("TCPFromIPv6", l.testTCPFromIPv6)
	t.Run("UDP", l.testUDP)
	t.Run("PathMTU", l.testPathMTU)
	t.Run("Traceroute", l.testTraceroute)
	t.Run("Terminate", func(t *testing.T) { l.m.Terminate(t) })

	// Refused before it touches anything: the configuration and a copy of
	// the binary in a directory nobody can read.
	t.Run("WithoutNetAdmin", func(t *testing.T) {
		dir, err := os.MkdirTemp("", "m646nr")
		if err != nil {
			t.Fatal(err)
		}
		defer os.RemoveAll(dir)
		b, err := os.ReadFile(bin)
		if err == nil {
			err = os.WriteFile(dir+"/map646", b, 0o755)
		}
		if err == nil {
			err = os.WriteFile(dir+"/map646.toml", []byte(l.cfg.TOML()), 0o644)
		}
		if err == nil {
			err = os.Chmod(dir, 0o755)
		}
		if err != nil {
			t.Fatal(err)
		}
		out, err := l.xlat.Exec(30*time.Second, append(unprivileged("net_raw"), dir+"/map646", "run", "-config", dir+"/map646.toml")...)
		want := "map646 run: missing capability CAP_NET_ADMIN: needed to create the tun device and route the mapped prefixes into it\n"
		if err == nil || !strings.HasPrefix(out, want) {
			t.Errorf("with CAP_NET_RAW only: %v, output:\n%s\nwant it to start with %q", err, out, want)
		}
	})
}
