package daemon

import (
	"encoding/json"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/promql/parser"
	"gopkg.in/yaml.v3"

	"github.com/map646/map646/config"
	"github.com/map646/map646/lab/netlab"
	"github.com/map646/map646/routing"
)

// monitoringDir holds the monitoring kit: the alerting rules, their
// promtool tests and the Grafana dashboard.
const monitoringDir = "../../../config/examples/monitoring"

// synthetic are the series Prometheus makes itself: the scrape's up and
// the alerts' ALERTS.
var synthetic = []string{"up", "ALERTS"}

// exportedNames returns the name of every metric /metrics serves: the
// collectors the daemon registers (collectors) and the BGP speaker's
// (GoBGP's own), as each describes itself. A histogram's series add
// _bucket, _sum and _count to its name.
func exportedNames(t *testing.T) map[string]bool {
	t.Helper()
	cfg, err := config.Parse([]byte(stuckConfig), "test.toml", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	d := &daemon{cfg: cfg, version: "test", lc: &lifecycle{}, reloads: newReloadMetrics(time.Now()),
		offloadSelfTest: newOffloadSelfTestMetric()}
	s, err := routing.New(routing.Config{LocalAS: 65001, RouterID: netip.MustParseAddr("192.0.2.1"), ListenPort: -1}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(t.Context())
	cs := append(d.collectors(), s.Collectors()...)
	// As the daemon registers them: no two collectors may export the same
	// name (MustRegister panics).
	prometheus.NewRegistry().MustRegister(cs...)

	fqName := regexp.MustCompile(`fqName: "([^"]+)"`)
	names := map[string]bool{}
	for _, c := range cs {
		ch := make(chan *prometheus.Desc)
		go func() { c.Describe(ch); close(ch) }()
		for desc := range ch {
			m := fqName.FindStringSubmatch(desc.String())
			if m == nil {
				t.Fatalf("no name in %s", desc)
			}
			names[m[1]] = true
		}
	}
	for _, n := range []string{"map646_packets_total", "map646_node_state", "map646_reloads_total", "bgp_peer_state", "go_goroutines", "process_cpu_seconds_total"} {
		if !names[n] {
			t.Fatalf("the daemon's collectors do not describe %s: %v", n, names)
		}
	}
	return names
}

// exprsOfRules returns every alert's expression, by alert name.
func exprsOfRules(t *testing.T, file string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var rf struct {
		Groups []struct {
			Rules []struct {
				Alert, Record, Expr string
			}
		}
	}
	if err := yaml.Unmarshal(b, &rf); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	out := map[string]string{}
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			out["alert "+r.Alert+r.Record] = r.Expr
		}
	}
	return out
}

// exprsOfDashboard returns every query of a Grafana dashboard: the panels'
// targets (expr), the annotations' and the variables' queries
// (label_values(METRIC, LABEL) is reduced to METRIC), by where they are.
func exprsOfDashboard(t *testing.T, file string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var dash any
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	labelValues := regexp.MustCompile(`^label_values\((.+),\s*[a-zA-Z_][a-zA-Z0-9_]*\)$`)
	out := map[string]string{}
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				p := path + "." + k
				if s, ok := x.(string); ok && (k == "expr" || k == "definition" || k == "query" && strings.Contains(path, "templating")) {
					if m := labelValues.FindStringSubmatch(s); m != nil {
						s = m[1]
					}
					if s != "prometheus" { // a datasource variable's plugin type
						out[p] = s
					}
					continue
				}
				walk(p, x)
			}
		case []any:
			for i, x := range v {
				if m, ok := x.(map[string]any); ok && m["title"] != nil {
					walk(path+"["+m["title"].(string)+"]", x)
				} else {
					walk(path+"["+strconv.Itoa(i)+"]", x)
				}
			}
		}
	}
	walk("", dash)
	return out
}

// grafanaVars are Grafana's interval variables, which PromQL does not
// know: each becomes a duration before the query is parsed.
var grafanaVars = regexp.MustCompile(`\$__(rate_interval|interval|range)`)

// metricNames parses expr (PromQL) and returns the metric names it selects.
func metricNames(expr string) ([]string, error) {
	e, err := parser.ParseExpr(grafanaVars.ReplaceAllString(expr, "5m"))
	if err != nil {
		return nil, err
	}
	var names []string
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok {
			name := vs.Name
			for _, m := range vs.LabelMatchers {
				if m.Name == "__name__" {
					name = m.Value
				}
			}
			names = append(names, name)
		}
		return nil
	})
	return names, nil
}

// TestMonitoringNamesExported: every query of the dashboard and every
// alerting rule parses as PromQL and names only metrics the daemon
// exports (with GoBGP's), or Prometheus's own up and ALERTS; renaming a
// metric in the code without the kit fails here. Every alert the issue
// asks for is there.
func TestMonitoringNamesExported(t *testing.T) {
	names := exportedNames(t)
	known := func(n string) bool {
		if names[n] || slices.Contains(synthetic, n) {
			return true
		}
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if base, ok := strings.CutSuffix(n, suffix); ok && names[base] {
				return true
			}
		}
		return false
	}
	rules := exprsOfRules(t, filepath.Join(monitoringDir, "map646.rules.yml"))
	dash := exprsOfDashboard(t, filepath.Join(monitoringDir, "grafana-dashboard.json"))
	if len(rules) < 6 || len(dash) < 20 {
		t.Fatalf("found %d alerting rules and %d dashboard queries: the files are not what this test reads", len(rules), len(dash))
	}
	for _, a := range []string{"Map646Down", "Map646NodeNotServing", "Map646BGPSessionDown", "Map646DropsRising",
		"Map646ICMPErrorsSuppressed", "Map646ReloadFailed", "Map646OffloadSelfTestFailed"} {
		if rules["alert "+a] == "" {
			t.Errorf("no alert %s in map646.rules.yml", a)
		}
	}
	used := map[string]bool{}
	for file, exprs := range map[string]map[string]string{"map646.rules.yml": rules, "grafana-dashboard.json": dash} {
		for where, expr := range exprs {
			ns, err := metricNames(expr)
			if err != nil {
				t.Errorf("%s %s: %q: %v", file, where, expr, err)
				continue
			}
			if len(ns) == 0 {
				t.Errorf("%s %s: %q selects no metric", file, where, expr)
			}
			for _, n := range ns {
				used[n] = true
				if !known(n) {
					t.Errorf("%s %s: %s is not a metric map646 exports (query %q)", file, where, n, expr)
				}
			}
		}
	}
	t.Logf("%d metric names exported, %d used by the kit", len(names), len(used))
}

// TestMetricNamesChecked: the check above fails on a name the daemon does
// not export, and parses what it must.
func TestMetricNamesChecked(t *testing.T) {
	names := exportedNames(t)
	got, err := metricNames(`sum by (instance) (rate(map646_packets_renamed_total{verdict="drop"}[$__rate_interval])) / on (instance) map646_mappings and {__name__="map646_announced_prefixes"}`)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"map646_packets_renamed_total", "map646_mappings", "map646_announced_prefixes"}; !slices.Equal(got, want) {
		t.Fatalf("metricNames = %q, want %q", got, want)
	}
	if names[got[0]] || !names[got[1]] || !names[got[2]] {
		t.Errorf("exported: %s %v, %s %v, %s %v", got[0], names[got[0]], got[1], names[got[1]], got[2], names[got[2]])
	}
}

// needPromtool makes sure promtool (Debian package prometheus) is
// installed, installing it as root; a machine where it cannot be is a lab
// that cannot run (skipped here, a failure under CI).
func needPromtool(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("promtool"); err != nil {
		netlab.RequireRoot(t)
		netlab.Need(t, "promtool")
	}
}

// TestAlertRules: promtool accepts the rules (check rules) and every
// alert fires where it should and nowhere else (test rules: each alert is
// evaluated where it must be silent and where it must fire).
func TestAlertRules(t *testing.T) {
	needPromtool(t)
	for _, args := range [][]string{
		{"check", "rules", "map646.rules.yml"},
		{"test", "rules", "map646.rules.test.yml"},
	} {
		cmd := exec.Command("promtool", args...)
		cmd.Dir = monitoringDir
		out, err := cmd.CombinedOutput()
		t.Logf("promtool %s:\n%s", strings.Join(args, " "), out)
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	// Every alert is exercised by the tests.
	b, err := os.ReadFile(filepath.Join(monitoringDir, "map646.rules.test.yml"))
	if err != nil {
		t.Fatal(err)
	}
	for where := range exprsOfRules(t, filepath.Join(monitoringDir, "map646.rules.yml")) {
		name := strings.TrimPrefix(where, "alert ")
		if !strings.Contains(string(b), "alertname: "+name+"\n") {
			t.Errorf("map646.rules.test.yml does not test %s", name)
		}
	}
}
