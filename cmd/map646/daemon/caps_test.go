package daemon

import (
	"os"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/map646/map646/config"
	"github.com/map646/map646/health"
)

// TestMissingCaps: each capability is asked for only when the
// configuration needs it, and the refusal names it and the reason.
func TestMissingCaps(t *testing.T) {
	all := CapSet(1<<unix.CAP_NET_ADMIN | 1<<unix.CAP_NET_RAW | 1<<unix.CAP_NET_BIND_SERVICE)
	def := netPolicy{unprivilegedPortStart: 1024}
	icmp := func(c *config.Config) {
		c.Health.Checks = []health.Check{{Name: "dp", Kind: health.DataPlane}, {Name: "gw", Kind: health.ICMPv6}}
	}
	bgp := func(port int) func(*config.Config) {
		return func(c *config.Config) { c.BGP.Enabled, c.BGP.ListenPort = true, port }
	}
	for _, tc := range []struct {
		name   string
		cfg    func(*config.Config)
		have   CapSet
		policy netPolicy
		want   []string // the capabilities named missing, in order
		why    string   // a part of the reason
	}{
		{"root", nil, ^CapSet(0), def, nil, ""},
		{"none needed but NET_ADMIN", nil, 1 << unix.CAP_NET_ADMIN, def, nil, ""},
		{"no NET_ADMIN", nil, 1 << unix.CAP_NET_RAW, def, []string{"CAP_NET_ADMIN"}, "to create the tun device"},
		{"icmp6 check", icmp, 1 << unix.CAP_NET_ADMIN, def, []string{"CAP_NET_RAW"}, `the icmp6 health check "gw"`},
		{"icmp6 check, ping sockets allowed", icmp, 1 << unix.CAP_NET_ADMIN, netPolicy{pingAllowed: true, unprivilegedPortStart: 1024}, nil, ""},
		{"bgp on 179", bgp(179), 1 << unix.CAP_NET_ADMIN, def, []string{"CAP_NET_BIND_SERVICE"}, "bgp.listen_port 179"},
		{"bgp on 179, ports open from 0", bgp(179), 1 << unix.CAP_NET_ADMIN, netPolicy{}, nil, ""},
		{"bgp on 1179", bgp(1179), 1 << unix.CAP_NET_ADMIN, def, nil, ""},
		{"bgp without a listener", bgp(-1), 1 << unix.CAP_NET_ADMIN, def, nil, ""},
		{"metrics on 80", func(c *config.Config) { c.Metrics.Listen = "127.0.0.1:80" }, 1 << unix.CAP_NET_ADMIN, def,
			[]string{"CAP_NET_BIND_SERVICE"}, "[metrics] listen 127.0.0.1:80"},
		{"fast path required", func(c *config.Config) { c.FastPath.Mode = config.FastPathRequired }, 1 << unix.CAP_NET_ADMIN, def,
			[]string{"CAP_BPF"}, `[fastpath] mode = "required"`},
		{"fast path auto: a warning at start, not a refusal", func(c *config.Config) { c.FastPath.Mode = config.FastPathAuto }, 1 << unix.CAP_NET_ADMIN, def, nil, ""},
		{"everything, nothing held", func(c *config.Config) { icmp(c); bgp(179)(c) }, 0, def,
			[]string{"CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_NET_BIND_SERVICE"}, ""},
		{"everything, all held", func(c *config.Config) { icmp(c); bgp(179)(c) }, all, def, nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := &config.Config{}
			cfg.Metrics.Listen = "127.0.0.1:9646"
			if tc.cfg != nil {
				tc.cfg(cfg)
			}
			got := missingCaps(cfg, tc.have, tc.policy)
			var named []string
			for _, line := range strings.Split(got, "\n") {
				if c, ok := strings.CutPrefix(line, "map646 run: missing capability "); ok {
					named = append(named, c[:strings.Index(c, ":")])
				}
			}
			if strings.Join(named, ",") != strings.Join(tc.want, ",") {
				t.Errorf("missing %q, want %q; message:\n%s", named, tc.want, got)
			}
			if !strings.Contains(got, tc.why) {
				t.Errorf("message without %q:\n%s", tc.why, got)
			}
			if len(tc.want) > 0 && !strings.Contains(got, "AmbientCapabilities=") {
				t.Errorf("message does not say how to grant them:\n%s", got)
			}
		})
	}
}

// TestEffectiveCaps: capget reads the set /proc/self/status shows.
func TestEffectiveCaps(t *testing.T) {
	got, err := EffectiveCaps()
	if err != nil {
		t.Fatal(err)
	}
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		if hex, ok := strings.CutPrefix(line, "CapEff:"); ok {
			want, err := strconv.ParseUint(strings.TrimSpace(hex), 16, 64)
			if err != nil {
				t.Fatal(err)
			}
			if uint64(got) != want {
				t.Errorf("EffectiveCaps %#x, /proc/self/status CapEff %#x", uint64(got), want)
			}
			return
		}
	}
	t.Fatal("no CapEff line in /proc/self/status")
}
