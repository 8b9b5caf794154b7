package config

import (
	"log/slog"
	"os"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestDaemonDefaults(t *testing.T) {
	c, msg := parse(t, base)
	if msg != "" {
		t.Fatal(msg)
	}
	if want := (Tun{Name: "map646", MTU: 1500, Offload: true, Queues: 0, TxQueueLen: 10000}); c.Tun != want {
		t.Errorf("[tun] defaults %+v, want %+v", c.Tun, want)
	}
	if want := (Metrics{Listen: "127.0.0.1:9646", MappingSeries: 1000}); c.Metrics != want {
		t.Errorf("[metrics] defaults %+v, want %+v", c.Metrics, want)
	}
	if want := (Log{JSON: false, Level: slog.LevelInfo}); c.Log != want {
		t.Errorf("[log] defaults %+v, want %+v", c.Log, want)
	}
	if got, want := c.Tun.QueueCount(), min(runtime.NumCPU(), 64); got != want {
		t.Errorf("QueueCount %d, want one per CPU: %d", got, want)
	}

	// The default MTU is the larger of the translator's two.
	for _, tc := range []struct {
		keys string
		want int
	}{
		{"ipv6_mtu = 9000\n", 9000},
		{"ipv4_mtu = 9000\n", 9000},
		{"ipv4_mtu = 1400\nipv6_mtu = 1420\n", 1420},
		{"ipv4_mtu = 1400\nipv6_mtu = 1300\nlowest_ipv6_mtu = 1280\n", 1400},
	} {
		c, msg := parse(t, base+tc.keys)
		if msg != "" {
			t.Fatal(msg)
		}
		if c.Tun.MTU != tc.want {
			t.Errorf("%q: tun MTU %d, want %d", tc.keys, c.Tun.MTU, tc.want)
		}
	}
}

// TestDaemonEveryKey sets every key of [tun], [metrics] and [log] to
// something other than its default.
func TestDaemonEveryKey(t *testing.T) {
	c, msg := parse(t, base+`
[tun]
name = "siit0"
mtu = 9000
offload = false
queues = 4
txqueuelen = 500
busy_poll = "50us"

[metrics]
listen = "[::]:9100"
allow_remote = true
mapping_series = 0

[log]
format = "json"
level = "debug"
`)
	if msg != "" {
		t.Fatal(msg)
	}
	if want := (Tun{Name: "siit0", MTU: 9000, Offload: false, Queues: 4, TxQueueLen: 500, BusyPoll: 50 * time.Microsecond}); c.Tun != want {
		t.Errorf("[tun] %+v, want %+v", c.Tun, want)
	}
	if c.Tun.QueueCount() != 1 {
		t.Errorf("QueueCount %d with offload = false, want 1", c.Tun.QueueCount())
	}
	c.Tun.Offload = true
	if c.Tun.QueueCount() != 4 {
		t.Errorf("QueueCount %d, want 4", c.Tun.QueueCount())
	}
	if want := (Metrics{Listen: "[::]:9100", AllowRemote: true, MappingSeries: 0}); c.Metrics != want {
		t.Errorf("[metrics] %+v, want %+v", c.Metrics, want)
	}
	if want := (Log{JSON: true, Level: slog.LevelDebug}); c.Log != want {
		t.Errorf("[log] %+v, want %+v", c.Log, want)
	}

	for level, want := range map[string]slog.Level{"debug": slog.LevelDebug, "info": slog.LevelInfo, "warn": slog.LevelWarn, "error": slog.LevelError} {
		c, msg := parse(t, base+"[log]\nlevel = \""+level+"\"\n")
		if msg != "" || c.Log.Level != want {
			t.Errorf("level %q: %v %q", level, c.Log.Level, msg)
		}
	}
	for _, listen := range []string{"", "127.0.0.1:0", "127.0.0.53:9646", "[::1]:9646", "localhost:9646"} {
		c, msg := parse(t, base+"[metrics]\nlisten = \""+listen+"\"\n")
		if msg != "" || c.Metrics.Listen != listen {
			t.Errorf("listen %q refused: %s", listen, msg)
		}
	}
	for _, name := range []string{"a", "map646-tokyo_1", "123456789012345", "tün"} {
		c, msg := parse(t, base+"[tun]\nname = \""+name+"\"\n")
		if msg != "" || c.Tun.Name != name {
			t.Errorf("name %q refused: %s", name, msg)
		}
	}
}

// TestDaemonProblems checks the exact text of each problem of the daemon's
// sections. Their keys start on line 6 (line 5 is the section header).
func TestDaemonProblems(t *testing.T) {
	const nameRule = `must be a Linux interface name: 1 to 15 bytes, no "/", ":", "%" or whitespace, not "." or ".."`
	for _, tc := range []struct {
		name string
		conf string
		want string
	}{
		{"name too long", "[tun]\nname = \"map646-tokyo-one\"\n", `test.toml:6: tun.name = "map646-tokyo-one": ` + nameRule},
		{"name empty", "[tun]\nname = \"\"\n", `test.toml:6: tun.name = "": ` + nameRule},
		{"name slash", "[tun]\nname = \"map/646\"\n", `test.toml:6: tun.name = "map/646": ` + nameRule},
		{"name colon", "[tun]\nname = \"eth0:1\"\n", `test.toml:6: tun.name = "eth0:1": ` + nameRule},
		{"name template", "[tun]\nname = \"tun%d\"\n", `test.toml:6: tun.name = "tun%d": ` + nameRule},
		{"name space", "[tun]\nname = \"map 646\"\n", `test.toml:6: tun.name = "map 646": ` + nameRule},
		{"name tab", "[tun]\nname = \"map\\t646\"\n", `test.toml:6: tun.name = "map\t646": ` + nameRule},
		{"name dot", "[tun]\nname = \".\"\n", `test.toml:6: tun.name = ".": ` + nameRule},
		{"name dotdot", "[tun]\nname = \"..\"\n", `test.toml:6: tun.name = "..": ` + nameRule},
		{"name type", "[tun]\nname = 646\n", `test.toml:6: tun.name = 646: must be a string, not an integer`},
		{"mtu low", "[tun]\nmtu = 1279\n", `test.toml:6: tun.mtu = 1279: must be from 1280 to 65535`},
		{"mtu high", "[tun]\nmtu = 65536\n", `test.toml:6: tun.mtu = 65536: must be from 1280 to 65535`},
		{"offload type", "[tun]\noffload = \"yes\"\n", `test.toml:6: tun.offload = "yes": must be true or false, not a string`},
		{"queues negative", "[tun]\nqueues = -1\n", `test.toml:6: tun.queues = -1: must be from 0 to 64 (0: one per CPU)`},
		{"queues high", "[tun]\nqueues = 65\n", `test.toml:6: tun.queues = 65: must be from 0 to 64 (0: one per CPU)`},
		{"txqueuelen high", "[tun]\ntxqueuelen = 2000000\n", `test.toml:6: tun.txqueuelen = 2000000: must be from 0 to 1048576`},
		{"busy_poll high", "[tun]\nbusy_poll = \"1s\"\n", `test.toml:6: tun.busy_poll = "1s": must be from 0s to 100ms ("0s" turns it off)`},
		{"busy_poll negative", "[tun]\nbusy_poll = \"-1ms\"\n", `test.toml:6: tun.busy_poll = "-1ms": must be from 0s to 100ms ("0s" turns it off)`},
		{"busy_poll number", "[tun]\nbusy_poll = 5\n", `test.toml:6: tun.busy_poll = 5: must be a duration string such as "3s" or "100ms", not an integer ("0s" turns it off)`},
		{"tun unknown key", "[tun]\nmru = 1500\n", `test.toml:6: tun.mru = 1500: unknown key; did you mean mtu?`},
		{"tun unknown key far", "[tun]\nmultiqueue = true\n", `test.toml:6: tun.multiqueue = true: unknown key; accepted: name, mtu, offload, queues, txqueuelen, busy_poll`},

		{"listen remote", "[metrics]\nlisten = \"0.0.0.0:9646\"\n",
			`test.toml:6: metrics.listen = "0.0.0.0:9646": not a loopback address: the metrics would be reachable from the network; set allow_remote = true to allow it`},
		{"listen all", "[metrics]\nlisten = \":9646\"\n",
			`test.toml:6: metrics.listen = ":9646": not a loopback address: the metrics would be reachable from the network; set allow_remote = true to allow it`},
		{"listen remote v6", "[metrics]\nlisten = \"[2001:db8::1]:9646\"\nallow_remote = false\n",
			`test.toml:6: metrics.listen = "[2001:db8::1]:9646": not a loopback address: the metrics would be reachable from the network; set allow_remote = true to allow it`},
		{"listen no port", "[metrics]\nlisten = \"127.0.0.1\"\n",
			`test.toml:6: metrics.listen = "127.0.0.1": not HOST:PORT; accepted: e.g. "127.0.0.1:9646", "[::1]:9646", or "" to disable the metrics`},
		{"listen bad port", "[metrics]\nlisten = \"127.0.0.1:http\"\n",
			`test.toml:6: metrics.listen = "127.0.0.1:http": not HOST:PORT; accepted: e.g. "127.0.0.1:9646", "[::1]:9646", or "" to disable the metrics`},
		{"listen port high", "[metrics]\nlisten = \"127.0.0.1:65536\"\n",
			`test.toml:6: metrics.listen = "127.0.0.1:65536": not HOST:PORT; accepted: e.g. "127.0.0.1:9646", "[::1]:9646", or "" to disable the metrics`},
		{"listen host name", "[metrics]\nlisten = \"metrics.example:9646\"\n",
			`test.toml:6: metrics.listen = "metrics.example:9646": the host must be an IP address or "localhost"; accepted: e.g. "127.0.0.1:9646"`},
		{"listen type", "[metrics]\nlisten = 9646\n", `test.toml:6: metrics.listen = 9646: must be a string, not an integer`},
		{"allow_remote type", "[metrics]\nallow_remote = 1\n", `test.toml:6: metrics.allow_remote = 1: must be true or false, not an integer`},
		{"mapping_series high", "[metrics]\nmapping_series = 100001\n", `test.toml:6: metrics.mapping_series = 100001: must be from 0 to 100000 (0: no per-mapping series)`},
		{"metrics unknown key", "[metrics]\naddress = \"127.0.0.1:9646\"\n", `test.toml:6: metrics.address = "127.0.0.1:9646": unknown key; accepted: allow_remote, listen, mapping_series`},

		{"log format", "[log]\nformat = \"logfmt\"\n", `test.toml:6: log.format = "logfmt": must be one of "text", "json"`},
		{"log level", "[log]\nlevel = \"warning\"\n", `test.toml:6: log.level = "warning": must be one of "info", "debug", "warn", "error"`},
		{"log level case", "[log]\nlevel = \"INFO\"\n", `test.toml:6: log.level = "INFO": must be one of "info", "debug", "warn", "error"`},
		{"log unknown key", "[log]\nfile = \"/var/log/map646\"\n", `test.toml:6: log.file = "/var/log/map646": unknown key; accepted: format, level`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, got := parse(t, base+tc.conf)
			if got != tc.want {
				t.Errorf("config:\n%s\ngot:\n%s\nwant:\n%s", tc.conf, got, tc.want)
			}
		})
	}
}

// A top-level key comes before the first section.
func TestDaemonSectionNotATable(t *testing.T) {
	_, got := parse(t, "tun = \"map646\"\n"+base)
	if want := `test.toml:1: tun = "map646": must be a table ([tun]), not a string`; got != want {
		t.Errorf("got %s\nwant %s", got, want)
	}
}

// TestExampleDaemonSections: example.toml shows every key of [tun],
// [metrics] and [log], set to its default.
func TestExampleDaemonSections(t *testing.T) {
	c, err := Load("example.toml")
	if err != nil {
		t.Fatal(err)
	}
	d, msg := parse(t, base)
	if msg != "" {
		t.Fatal(msg)
	}
	if c.Tun != d.Tun || c.Metrics != d.Metrics || c.Log != d.Log {
		t.Errorf("example.toml does not show the defaults:\n got %+v %+v %+v\nwant %+v %+v %+v",
			c.Tun, c.Metrics, c.Log, d.Tun, d.Metrics, d.Log)
	}
	example, err := os.ReadFile("example.toml")
	if err != nil {
		t.Fatal(err)
	}
	for _, section := range []string{"tun", "metrics", "log"} {
		if !regexp.MustCompile(`(?m)^\[` + section + `\]$`).Match(example) {
			t.Errorf("example.toml has no [%s] section", section)
		}
		_, msg := parse(t, base+"["+section+"]\nzzz = 1\n")
		_, list, ok := strings.Cut(msg, "; accepted: ")
		if !ok {
			t.Fatalf("no list of accepted keys in %q", msg)
		}
		for _, k := range strings.Split(list, ", ") {
			if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(k) + ` = `).Match(example) {
				t.Errorf("example.toml does not show %s.%s", section, k)
			}
		}
	}
}
