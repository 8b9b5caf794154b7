package daemon

import (
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/map646/map646/config"
	"github.com/map646/map646/health"
)

// map646 run does not need root, only the capabilities of what it does. As
// user map646 under systemd (AmbientCapabilities=) or setpriv it needs:
//
//   - CAP_NET_ADMIN, always: it creates the tun device (TUNSETIFF), sets
//     its offloads, queues and txqueuelen, routes the mapped prefixes
//     (netlink), and sets net.ipv4.conf.DEVICE.accept_local. The kernel
//     lets a holder of CAP_NET_ADMIN write the sysctls of its network
//     namespace as root could (net_ctl_permissions), whatever its uid.
//   - CAP_NET_RAW, for an icmp6 health check, unless the process's group
//     is in net.ipv4.ping_group_range (then an unprivileged ping socket
//     does).
//   - CAP_NET_BIND_SERVICE, for a listening port under
//     net.ipv4.ip_unprivileged_port_start (1024 by default): bgp.listen_port
//     (179 by default) or the port of [metrics] listen.
//   - CAP_BPF, for the kernel fast path ([fastpath] mode): to load its
//     program and maps (attaching it takes CAP_NET_ADMIN). Required with
//     mode = "required"; with "auto", its lack leaves the tun path alone,
//     with a warning.
//
// Everything else must be the user's: reading the configuration, the
// control socket's directory, [node] state_dir.

// CapSet is a set of Linux capabilities: bit N is capability N (unix.CAP_*).
type CapSet uint64

// Has reports whether the set holds capability c.
func (s CapSet) Has(c int) bool { return s&(1<<uint(c)) != 0 }

// EffectiveCaps returns this process's effective capabilities (those of
// the calling thread; Go's threads share them: nothing in map646 changes
// them).
func EffectiveCaps() (CapSet, error) {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData // version 3: two 32-bit halves
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return 0, fmt.Errorf("read the process's capabilities (capget): %w", err)
	}
	return CapSet(uint64(data[1].Effective)<<32 | uint64(data[0].Effective)), nil
}

// capNames are the capabilities map646 may need, by number.
var capNames = map[int]string{
	unix.CAP_NET_ADMIN:        "CAP_NET_ADMIN",
	unix.CAP_NET_RAW:          "CAP_NET_RAW",
	unix.CAP_NET_BIND_SERVICE: "CAP_NET_BIND_SERVICE",
	unix.CAP_BPF:              "CAP_BPF",
}

// capNeed is a capability the configuration needs, and why.
type capNeed struct {
	cap int
	why string
}

// netPolicy is what the network namespace's sysctls allow an unprivileged
// process.
type netPolicy struct {
	// pingAllowed: the process's group is in net.ipv4.ping_group_range,
	// so an icmp6 check can use a ping socket.
	pingAllowed bool
	// unprivilegedPortStart: net.ipv4.ip_unprivileged_port_start, the
	// first port anyone may listen on.
	unprivilegedPortStart int
}

// capsNeeded lists the capabilities cfg needs in a namespace with policy p.
func capsNeeded(cfg *config.Config, p netPolicy) []capNeed {
	needs := []capNeed{{unix.CAP_NET_ADMIN, "to create the tun device and route the mapped prefixes into it"}}
	for _, c := range cfg.Health.Checks {
		if c.Kind == health.ICMPv6 && !p.pingAllowed {
			needs = append(needs, capNeed{unix.CAP_NET_RAW, fmt.Sprintf(
				"for the icmp6 health check %q: a raw ICMPv6 socket (or put map646's group in net.ipv4.ping_group_range, for a ping socket)", c.Name)})
			break
		}
	}
	if cfg.FastPath.Mode == config.FastPathRequired {
		needs = append(needs, capNeed{unix.CAP_BPF, `for [fastpath] mode = "required": to load the fast path's eBPF program`})
	}
	var low []string
	if cfg.BGP.Enabled && cfg.BGP.ListenPort > 0 && cfg.BGP.ListenPort < p.unprivilegedPortStart {
		low = append(low, fmt.Sprintf("bgp.listen_port %d", cfg.BGP.ListenPort))
	}
	if port := listenPort(cfg.Metrics.Listen); port > 0 && port < p.unprivilegedPortStart {
		low = append(low, fmt.Sprintf("[metrics] listen %s", cfg.Metrics.Listen))
	}
	if len(low) > 0 {
		needs = append(needs, capNeed{unix.CAP_NET_BIND_SERVICE, fmt.Sprintf(
			"to listen on a port under %d (net.ipv4.ip_unprivileged_port_start): %s", p.unprivilegedPortStart, strings.Join(low, ", "))})
	}
	return needs
}

// listenPort is the port of a host:port, or 0.
func listenPort(hostPort string) int {
	_, port, err := net.SplitHostPort(hostPort)
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(port)
	return n
}

// missingCaps says which of the capabilities cfg needs have lacks, one line
// each, or "".
func missingCaps(cfg *config.Config, have CapSet, p netPolicy) string {
	var lines []string
	for _, n := range capsNeeded(cfg, p) {
		if !have.Has(n.cap) {
			lines = append(lines, fmt.Sprintf("map646 run: missing capability %s: needed %s", capNames[n.cap], n.why))
		}
	}
	if len(lines) == 0 {
		return ""
	}
	return strings.Join(lines, "\n") + "\n" +
		"  run it as root, or grant them: systemd AmbientCapabilities=CAP_NET_ADMIN CAP_NET_RAW CAP_NET_BIND_SERVICE (the packaged unit does), or setpriv --inh-caps=+net_admin,+net_raw,+net_bind_service --ambient-caps=+net_admin,+net_raw,+net_bind_service"
}

// currentNetPolicy reads the sysctls of netPolicy in this process's network
// namespace; what cannot be read is taken at the kernel's default.
func currentNetPolicy() netPolicy {
	p := netPolicy{unprivilegedPortStart: 1024}
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_unprivileged_port_start"); err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			p.unprivilegedPortStart = n
		}
	}
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ping_group_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			lo, err1 := strconv.Atoi(f[0])
			hi, err2 := strconv.Atoi(f[1])
			if err1 == nil && err2 == nil {
				groups, _ := os.Getgroups()
				p.pingAllowed = slices.ContainsFunc(append(groups, os.Getegid()), func(g int) bool { return lo <= g && g <= hi })
			}
		}
	}
	return p
}

// canOpen checks that this process may open the tun clone device
// read-write, as creating the device does first: a node that is not root
// needs the file's permission too (udev makes it 0666 on most systems).
// Opening it creates nothing: a device appears only with TUNSETIFF.
func canOpen(tunDevice string) error {
	f, err := os.OpenFile(tunDevice, os.O_RDWR, 0)
	if err == nil {
		return f.Close()
	}
	mode := ""
	if fi, serr := os.Stat(tunDevice); serr == nil {
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			mode = fmt.Sprintf(" (mode %04o, owner uid %d gid %d)", fi.Mode().Perm(), st.Uid, st.Gid)
		}
	}
	return fmt.Errorf("map646 run: cannot open %s%s as uid %d: %w: the user map646 runs as must be able to read and write it (most systems make it 0666: udev's default rule)",
		tunDevice, mode, os.Geteuid(), err)
}
