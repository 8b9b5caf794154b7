package netlab

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/map646/map646/lab/poll"
)

// BuildMap646 builds this module's cmd/map646 into a temporary directory
// of t and returns the binary's path.
func BuildMap646(t TB) string {
	t.Helper()
	gomod, err := command(time.Minute, nil, "go", "env", "GOMOD")
	root := filepath.Dir(strings.TrimSpace(string(gomod)))
	if err != nil || root == "." || root == "/dev" {
		t.Fatalf("netlab: cannot find the map646 module (go env GOMOD: %q, %v): run from inside it", gomod, err)
	}
	bin := filepath.Join(t.TempDir(), "map646")
	out, err := command(5*time.Minute, nil, "go", "build", "-C", root, "-o", bin, "./cmd/map646")
	if err != nil {
		t.Fatalf("netlab: go build ./cmd/map646: %v\n%s", err, out)
	}
	return bin
}

// Mapping is one explicit address mapping (RFC 7757): an address or prefix
// on each side.
type Mapping struct{ IPv4, IPv6 string }

// Config is the configuration of a map646 under test. The zero value of a
// field means map646's default, except where said. [metrics] always
// listens on 127.0.0.1:0 (a free port, read from the log) and [log] is
// always JSON, which StartMap646 reads.
type Config struct {
	PseudoPrefix string // default "64:ff9b::/96"
	IPv4Address  string // default "192.0.2.1"
	IPv6Address  string // default "2001:db8:64::1"
	RFC6791Pool  []string
	Mappings     []Mapping
	MappingFile  string // path, or ""
	// Translator holds more [translator] lines, as TOML ("ipv6_mtu = 1280").
	Translator string

	TunName    string // default "map646"
	Offload    bool   // [tun] offload: this field's zero value is false, the plain device
	Queues     int
	MTU        int
	TxQueueLen int // 0: map646's default (10000)
	BusyPoll   time.Duration

	MappingSeries int    // [metrics] mapping_series; 0: map646's default (1000)
	LogLevel      string // default "info"

	// ControlSocket ([control] socket) and StateDir ([node] state_dir):
	// StartMap646 puts them in a directory of the instance's own when
	// empty, so that instances never share map646's defaults
	// (/run/map646/map646.sock, /var/lib/map646) with each other or with the host.
	ControlSocket string
	StateDir      string

	// Sections is more TOML, written as is after the other sections and
	// before the [[mapping]] entries: [mappings] with [mappings.etcd],
	// [bgp]...
	Sections string
}

// TOML renders the configuration file.
func (c Config) TOML() string {
	def := func(v, d string) string {
		if v == "" {
			return d
		}
		return v
	}
	var b strings.Builder
	fmt.Fprintf(&b, "[translator]\npseudo_prefix = %q\nipv4_address = %q\nipv6_address = %q\n",
		def(c.PseudoPrefix, "64:ff9b::/96"), def(c.IPv4Address, "192.0.2.1"), def(c.IPv6Address, "2001:db8:64::1"))
	if len(c.RFC6791Pool) > 0 {
		q := make([]string, len(c.RFC6791Pool))
		for i, a := range c.RFC6791Pool {
			q[i] = strconv.Quote(a)
		}
		fmt.Fprintf(&b, "rfc6791_pool = [%s]\n", strings.Join(q, ", "))
	}
	if c.MappingFile != "" {
		fmt.Fprintf(&b, "mapping_file = %q\n", c.MappingFile)
	}
	if c.Translator != "" {
		b.WriteString(strings.TrimSpace(c.Translator) + "\n")
	}
	fmt.Fprintf(&b, "\n[tun]\nname = %q\noffload = %v\n", def(c.TunName, "map646"), c.Offload)
	if c.Queues != 0 {
		fmt.Fprintf(&b, "queues = %d\n", c.Queues)
	}
	if c.MTU != 0 {
		fmt.Fprintf(&b, "mtu = %d\n", c.MTU)
	}
	if c.TxQueueLen != 0 {
		fmt.Fprintf(&b, "txqueuelen = %d\n", c.TxQueueLen)
	}
	if c.BusyPoll != 0 {
		fmt.Fprintf(&b, "busy_poll = %q\n", c.BusyPoll)
	}
	b.WriteString("\n[metrics]\nlisten = \"127.0.0.1:0\"\n")
	if c.MappingSeries != 0 {
		fmt.Fprintf(&b, "mapping_series = %d\n", c.MappingSeries)
	}
	fmt.Fprintf(&b, "\n[log]\nformat = \"json\"\nlevel = %q\n", def(c.LogLevel, "info"))
	if c.ControlSocket != "" {
		fmt.Fprintf(&b, "\n[control]\nsocket = %q\n", c.ControlSocket)
	}
	if c.StateDir != "" {
		fmt.Fprintf(&b, "\n[node]\nstate_dir = %q\n", c.StateDir)
	}
	if c.Sections != "" {
		b.WriteString("\n" + strings.TrimSpace(c.Sections) + "\n")
	}
	for _, m := range c.Mappings {
		fmt.Fprintf(&b, "\n[[mapping]]\nipv4 = %q\nipv6 = %q\n", m.IPv4, m.IPv6)
	}
	return b.String()
}

// Map646 is `map646 run` in a namespace.
type Map646 struct {
	*Proc
	NS         *NS
	ConfigPath string
	// Socket and StateDir are the instance's own [control] socket and
	// [node] state_dir (see Config).
	Socket, StateDir string
	Device           string         // the tun device
	MetricsURL       string         // http://127.0.0.1:PORT/metrics, inside NS
	Started          map[string]any // the "started" log record: device, mtu, queues, metrics address...
	logNext          int            // log lines up to here have been waited for
}

// StartMap646 writes c to a file, starts `map646 run` (bin, from
// BuildMap646) in ns, and waits (30 s at most) until it logs "started" and
// its device is up with its routes (protocol 246) installed. map646 is
// stopped with SIGTERM when t ends; if t failed, its log is printed.
func StartMap646(t TB, ns *NS, bin string, c Config) *Map646 {
	t.Helper()
	return startMap646(t, ns, bin, c, nil)
}

// RunAs is how StartMap646As starts map646: as the user UID:GID, under the
// command line Wrap (map646's own follows), which switches to that user.
type RunAs struct {
	UID, GID int
	Wrap     []string
}

// StartMap646As is StartMap646 with map646 run started as another user
// (as). That user owns the instance's directory, which holds the
// configuration file, the control socket, state_dir and a copy of bin: a
// test's temporary directories are root's, mode 0700.
func StartMap646As(t TB, ns *NS, bin string, c Config, as RunAs) *Map646 {
	t.Helper()
	return startMap646(t, ns, bin, c, &as)
}

func startMap646(t TB, ns *NS, bin string, c Config, as *RunAs) *Map646 {
	t.Helper()
	m := &Map646{NS: ns, ConfigPath: filepath.Join(t.TempDir(), "map646.toml")}
	// A short directory of its own: a unix socket path has at most 107
	// bytes, which a test's TempDir can exceed.
	dir, err := os.MkdirTemp("", "m646s")
	if err != nil {
		t.Fatalf("netlab: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	m.Socket, m.StateDir = filepath.Join(dir, "control.sock"), filepath.Join(dir, "state")
	args := []string{bin, "run", "-config", m.ConfigPath}
	if as != nil {
		m.ConfigPath = filepath.Join(dir, "map646.toml")
		args = append(append([]string(nil), as.Wrap...), giveTo(t, dir, bin, *as), "run", "-config", m.ConfigPath)
	}
	m.writeConfig(t, c)
	m.Proc = ns.Start(t, args...)
	m.LogOnFailure(t, "map646 log ("+ns.Role+")")
	rec, _ := m.WaitLog(t, 30*time.Second, "started")
	m.Started = rec
	m.Device, _ = rec["device"].(string)
	addr, _ := rec["metrics"].(string)
	if m.Device == "" || addr == "" {
		t.Fatalf("netlab: map646 logged started without device or metrics address: %v", rec)
	}
	m.MetricsURL = "http://" + addr + "/metrics"
	link := ns.IP(t, "link", "show", "dev", m.Device)
	if !strings.Contains(link, ",UP") {
		t.Fatalf("netlab: map646 started, but its device is not up:\n%s", link)
	}
	if r := m.Routes(t); len(r) == 0 {
		t.Fatalf("netlab: map646 started, but no route of protocol 246 in %s", ns.Role)
	}
	return m
}

// giveTo makes dir the user's and copies bin into it; it returns the
// copy's path.
func giveTo(t TB, dir, bin string, as RunAs) string {
	t.Helper()
	b, err := os.ReadFile(bin)
	if err != nil {
		t.Fatalf("netlab: %v", err)
	}
	own := filepath.Join(dir, filepath.Base(bin))
	if err := os.WriteFile(own, b, 0o755); err != nil {
		t.Fatalf("netlab: %v", err)
	}
	if err := os.Chown(dir, as.UID, as.GID); err != nil {
		t.Fatalf("netlab: %v", err)
	}
	return own
}

func (m *Map646) writeConfig(t TB, c Config) {
	t.Helper()
	if c.ControlSocket == "" {
		c.ControlSocket = m.Socket
	}
	if c.StateDir == "" {
		c.StateDir = m.StateDir
	}
	if err := os.WriteFile(m.ConfigPath, []byte(c.TOML()), 0o644); err != nil {
		t.Fatalf("netlab: %v", err)
	}
}

// WaitLog waits for the next JSON log record, after those already waited
// for, whose msg starts with one of msgs, and returns it and its msg.
func (m *Map646) WaitLog(t TB, timeout time.Duration, msgs ...string) (map[string]any, string) {
	t.Helper()
	var rec map[string]any
	var msg string
	_, next, err := m.waitLine(m.logNext, timeout, func(line string) bool {
		rec = nil
		if json.Unmarshal([]byte(line), &rec) != nil {
			return false
		}
		msg, _ = rec["msg"].(string)
		for _, want := range msgs {
			if strings.HasPrefix(msg, want) {
				return true
			}
		}
		return false
	})
	if err != nil {
		t.Fatalf("netlab: map646: waiting for %q: %v", msgs, err)
	}
	m.logNext = next
	return rec, msg
}

// Reload writes c as the configuration, sends SIGHUP and waits for the
// "reloaded" record, which it returns. A refused or failed reload fails t.
func (m *Map646) Reload(t TB, c Config) map[string]any {
	t.Helper()
	return m.ReloadWithin(t, c, 30*time.Second)
}

// ReloadWithin is Reload waiting up to d for the record: a reload that
// replaces a million kernel routes takes longer than 30 s.
func (m *Map646) ReloadWithin(t TB, c Config, d time.Duration) map[string]any {
	t.Helper()
	m.writeConfig(t, c)
	if err := m.Signal(syscall.SIGHUP); err != nil {
		t.Fatalf("netlab: map646: SIGHUP: %v", err)
	}
	rec, msg := m.WaitLog(t, d, "reloaded", "reload refused")
	if msg != "reloaded" || rec["level"] != "INFO" {
		t.Fatalf("netlab: map646 reload: %v", rec)
	}
	return rec
}

// Terminate sends SIGTERM and waits for map646 to exit: it must exit 0
// within 10 s, and leave no route of protocol 246 and no device behind.
func (m *Map646) Terminate(t TB) {
	t.Helper()
	if err := m.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("netlab: map646: SIGTERM: %v", err)
	}
	if err := m.Wait(10 * time.Second); err != nil {
		t.Fatalf("netlab: map646 after SIGTERM: %v", err)
	}
	if r := m.Routes(t); len(r) != 0 {
		t.Errorf("netlab: routes left after map646 stopped: %q", r)
	}
	if out, err := m.NS.Exec(DefaultTimeout, "ip", "link", "show", "dev", m.Device); err == nil {
		t.Errorf("netlab: device left after map646 stopped:\n%s", out)
	}
}

// Routes returns the routes of protocol 246 in map646's namespace, IPv4
// then IPv6, as `ip route` prints them.
func (m *Map646) Routes(t TB) []string {
	t.Helper()
	var routes []string
	for _, family := range []string{"-4", "-6"} {
		for _, line := range strings.Split(m.NS.IP(t, family, "route", "show", "proto", "246"), "\n") {
			if line = strings.TrimSpace(line); line != "" {
				routes = append(routes, line)
			}
		}
	}
	return routes
}

// Metrics are scraped Prometheus series: `name{label="value",...}` (labels
// in the order the exposition format prints them: sorted) -> value.
type Metrics map[string]float64

// Get returns the series name with labels given as pairs (key, value).
func (m Metrics) Get(name string, labels ...string) float64 {
	return m[SeriesKey(name, labels...)]
}

// Sum adds up every series of the metric name.
func (m Metrics) Sum(name string) float64 {
	var s float64
	for k, v := range m {
		if k == name || strings.HasPrefix(k, name+"{") {
			s += v
		}
	}
	return s
}

// Sub returns m - old, series by series (those of m).
func (m Metrics) Sub(old Metrics) Metrics {
	d := Metrics{}
	for k, v := range m {
		d[k] = v - old[k]
	}
	return d
}

// SeriesKey formats a series name with labels (key, value pairs) as the
// keys of Metrics are.
func SeriesKey(name string, labels ...string) string {
	if len(labels) == 0 {
		return name
	}
	type kv struct{ k, v string }
	var l []kv
	for i := 0; i+1 < len(labels); i += 2 {
		l = append(l, kv{labels[i], labels[i+1]})
	}
	sort.Slice(l, func(i, j int) bool { return l[i].k < l[j].k })
	parts := make([]string, len(l))
	for i, p := range l {
		parts[i] = p.k + "=" + strconv.Quote(p.v)
	}
	return name + "{" + strings.Join(parts, ",") + "}"
}

var seriesLine = regexp.MustCompile(`^(\S+) (\S+)$`)

// Metrics scrapes map646's metrics.
func (m *Map646) Metrics(t TB) Metrics {
	t.Helper()
	got, err := m.scrape()
	if err != nil {
		t.Fatalf("netlab: map646 metrics: %v", err)
	}
	return got
}

// SettledMetrics scrapes map646's metrics until two scrapes 20 ms apart
// count the same batches, and returns the first: a worker publishes a
// batch's counters one by one (the batch count last), so a single scrape
// can hold part of a batch, and the packet a test has just seen answered
// can still be uncounted. Take exact "before" snapshots with it.
func (m *Map646) SettledMetrics(t TB) Metrics {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	prev := m.Metrics(t)
	for {
		time.Sleep(20 * time.Millisecond)
		cur := m.Metrics(t)
		if cur.Get("map646_batches_total") == prev.Get("map646_batches_total") || time.Now().After(deadline) {
			return prev
		}
		prev = cur
	}
}

// MetricsSince returns what map646's metrics grew by since before, once
// done accepts the growth, or as it stands after 5 s (the caller's checks
// then say what is missing). A worker publishes its counters after it has
// written its batch, so the packets a test has just seen arrive can be
// missing from a scrape taken at once.
func (m *Map646) MetricsSince(t TB, before Metrics, done func(Metrics) bool) Metrics {
	t.Helper()
	var d Metrics
	poll.Until(5*time.Second, 10*time.Millisecond, func() bool { d = m.Metrics(t).Sub(before); return done(d) })
	return d
}

func (m *Map646) scrape() (Metrics, error) {
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			var c net.Conn
			err := m.NS.Do(func() (err error) { c, err = (&net.Dialer{}).DialContext(ctx, network, addr); return err })
			return c, err
		},
	}}
	resp, err := client.Get(m.MetricsURL)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s", m.MetricsURL, resp.Status)
	}
	out := Metrics{}
	for _, l := range strings.Split(string(body), "\n") {
		if f := seriesLine.FindStringSubmatch(l); f != nil {
			if v, err := strconv.ParseFloat(f[2], 64); err == nil {
				out[f[1]] = v
			}
		}
	}
	return out, nil
}
