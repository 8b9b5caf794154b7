package config

import (
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"time"
)

// Tun is the [tun] section: the device `map646 run` creates.
type Tun struct {
	// Name is the interface name, a valid Linux one (see validLinkName).
	Name string
	// MTU of the device: the largest packet the kernel routes into it.
	MTU int
	// Offload selects the multiqueue device with checksum and segmentation
	// offloads (translator/tun OpenOffload); false the plain one-queue
	// device (OpenPlain).
	Offload bool
	// Queues as written: 0 stands for one per CPU. QueueCount resolves it.
	Queues int
	// TxQueueLen is the device's transmit queue length.
	TxQueueLen int
	// BusyPoll is how long a worker that found its queue empty keeps
	// reading before it sleeps (tun.Device.SetBusyPoll); 0 sleeps at once.
	BusyPoll time.Duration
}

// Metrics is the [metrics] section: the Prometheus endpoint.
type Metrics struct {
	// Listen is the host:port of the HTTP server serving /metrics; ""
	// disables it. Loopback only unless AllowRemote.
	Listen      string
	AllowRemote bool
	// MappingSeries is how many mappings, the first of the table, get
	// per-mapping series; 0 exports none.
	MappingSeries int
}

// Log is the [log] section.
type Log struct {
	// JSON selects slog's JSON handler; false its text handler.
	JSON  bool
	Level slog.Level
}

// Defaults and limits of [tun], [metrics] and [log].
const (
	DefaultTunName       = "map646"
	DefaultTxQueueLen    = 10000
	MaxQueues            = 64
	MaxTxQueueLen        = 1 << 20
	MaxBusyPoll          = 100 * time.Millisecond
	DefaultMetricsListen = "127.0.0.1:9646"
	DefaultMappingSeries = 1000
	MaxMappingSeries     = 100000
)

// QueueCount is the number of device queues to open: Queues, or one per
// CPU (at most MaxQueues) when it is 0; always 1 for the plain device.
func (t Tun) QueueCount() int {
	switch {
	case !t.Offload:
		return 1
	case t.Queues > 0:
		return t.Queues
	}
	return min(runtime.NumCPU(), MaxQueues)
}

// decodeTun reads [tun]; it follows [translator], whose MTUs give the
// default MTU.
func (c *Config) decodeTun(s *section) {
	t := &c.Tun
	t.Name = DefaultTunName
	t.MTU = max(c.Translator.IPv4MTU, c.Translator.IPv6MTU)
	t.Offload = true
	t.TxQueueLen = DefaultTxQueueLen

	if v, ok := s.str("name"); ok {
		if msg := checkLinkName(v); msg != "" {
			s.bad("name", v, "%s", msg)
		} else {
			t.Name = v
		}
	}
	s.integer("mtu", &t.MTU, 1280, 65535, "")
	s.boolean("offload", &t.Offload)
	s.integer("queues", &t.Queues, 0, MaxQueues, "0: one per CPU")
	s.integer("txqueuelen", &t.TxQueueLen, 0, MaxTxQueueLen, "")
	s.duration("busy_poll", &t.BusyPoll, 0, MaxBusyPoll, `"0s" turns it off`)
	s.done()
}

// checkLinkName applies the kernel's rules for interface names
// (dev_valid_name), and refuses "%", which would make the kernel pick the
// name from a template.
func checkLinkName(v string) string {
	const rule = `must be a Linux interface name: 1 to 15 bytes, no "/", ":", "%" or whitespace, not "." or ".."`
	if v == "" || len(v) > 15 || v == "." || v == ".." || strings.ContainsAny(v, "/:%") {
		return rule
	}
	for _, r := range v {
		if r == ' ' || r == '\t' || r == '\n' || r == '\r' || r == '\v' || r == '\f' {
			return rule
		}
	}
	return ""
}

// decodeMetrics reads [metrics].
func (c *Config) decodeMetrics(s *section) {
	m := &c.Metrics
	m.Listen = DefaultMetricsListen
	m.MappingSeries = DefaultMappingSeries
	// allow_remote first: the address is judged with it.
	s.boolean("allow_remote", &m.AllowRemote)
	if v, ok := s.str("listen"); ok {
		if msg := checkListen(v, m.AllowRemote); msg != "" {
			s.bad("listen", v, "%s", msg)
		} else {
			m.Listen = v
		}
	}
	s.integer("mapping_series", &m.MappingSeries, 0, MaxMappingSeries, "0: no per-mapping series")
	s.done()
}

// checkListen checks a listen address: "" (disabled) or HOST:PORT with an
// IP address or "localhost" as the host, on loopback unless remote.
func checkListen(v string, remote bool) string {
	if v == "" {
		return ""
	}
	host, port, err := net.SplitHostPort(v)
	if err != nil || !validPort(port) {
		return `not HOST:PORT; accepted: e.g. "127.0.0.1:9646", "[::1]:9646", or "" to disable the metrics`
	}
	loopback := host == "localhost"
	if !loopback {
		if host == "" {
			host = "0.0.0.0" // all addresses
		}
		a, err := netip.ParseAddr(host)
		if err != nil || a.Zone() != "" {
			return `the host must be an IP address or "localhost"; accepted: e.g. "127.0.0.1:9646"`
		}
		loopback = a.IsLoopback()
	}
	if !loopback && !remote {
		return "not a loopback address: the metrics would be reachable from the network; set allow_remote = true to allow it"
	}
	return ""
}

func validPort(p string) bool {
	if p == "" || len(p) > 5 {
		return false
	}
	n := 0
	for _, c := range p {
		if c < '0' || c > '9' {
			return false
		}
		n = n*10 + int(c-'0')
	}
	return n <= 65535
}

// decodeLog reads [log].
func (c *Config) decodeLog(s *section) {
	l := &c.Log
	l.JSON = s.enum("format", "text", "json") == "json"
	switch s.enum("level", "info", "debug", "warn", "error") {
	case "debug":
		l.Level = slog.LevelDebug
	case "warn":
		l.Level = slog.LevelWarn
	case "error":
		l.Level = slog.LevelError
	default:
		l.Level = slog.LevelInfo
	}
	s.done()
}
