package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"gopkg.in/yaml.v3"

	"github.com/map646/map646/config/examples/monitoring"
	"github.com/map646/map646/lab/netlab"
	"github.com/map646/map646/lab/topo"
)

// The monitoring of the lab: a real Prometheus (Debian's) in the
// upstream's namespace scrapes both nodes every second, on their sw4
// addresses, and evaluates the shipped alerting rules
// (config/examples/monitoring/map646.rules.yml) every second. When tokyo
// dies silently its scrapes fail (its ports are down), up goes to 0 and
// the rule Map646Down goes pending, then fires after its "for":
// the experiment keeps tokyo dead until it fires and reports when.

// Where Prometheus listens (the upstream's sw4 address) and the port of
// each node's metrics on its own sw4 address.
const (
	promListen  = topo.Upstream4 + ":9090"
	metricsPort = "9646"
	// deadAlert is the rule that fires for a silently dead node.
	deadAlert = "Map646Down"
)

// alertFor is deadAlert's "for" in the shipped rules.
func alertFor() (time.Duration, error) {
	var rf struct {
		Groups []struct {
			Rules []struct {
				Alert string
				For   string
			}
		}
	}
	if err := yaml.Unmarshal(monitoring.Rules, &rf); err != nil {
		return 0, fmt.Errorf("map646.rules.yml: %w", err)
	}
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			if r.Alert == deadAlert {
				d, err := model.ParseDuration(r.For)
				return time.Duration(d), err
			}
		}
	}
	return 0, fmt.Errorf("map646.rules.yml: no alert %s", deadAlert)
}

// metricsListen is a node's [metrics] listen address in the lab with
// Prometheus: its sw4 address, where the upstream reaches it.
func metricsListen(n *topo.Node) string { return n.Addr4 + ":" + metricsPort }

// prometheus is the running Prometheus.
type prometheus struct {
	ns     *netlab.NS
	proc   *netlab.Proc
	client *http.Client
}

// startPrometheus starts Prometheus in ns with a generated configuration
// (scrape every node's metricsListen every second, the shipped rules,
// evaluated every second, storage in a temporary directory) and waits
// until it is ready. It is stopped by PID when t ends (netlab.Proc).
func startPrometheus(t netlab.TB, ns *netlab.NS, nodes []*topo.Node) *prometheus {
	t.Helper()
	netlab.Need(t, "prometheus")
	dir := t.TempDir()
	rules := filepath.Join(dir, "map646.rules.yml")
	if err := os.WriteFile(rules, monitoring.Rules, 0o644); err != nil {
		t.Fatalf("prometheus: %v", err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "global:\n  scrape_interval: 1s\n  scrape_timeout: 500ms\n  evaluation_interval: 1s\n")
	fmt.Fprintf(&b, "rule_files:\n  - %q\n", rules)
	fmt.Fprintf(&b, "scrape_configs:\n  - job_name: map646\n    static_configs:\n")
	for _, n := range nodes {
		fmt.Fprintf(&b, "      - targets: [%q]\n        labels: {node: %q}\n", metricsListen(n), n.Name)
	}
	cfg := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfg, []byte(b.String()), 0o644); err != nil {
		t.Fatalf("prometheus: %v", err)
	}
	p := &prometheus{ns: ns}
	p.client = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			var c net.Conn
			err := ns.Do(func() (err error) { c, err = (&net.Dialer{}).DialContext(ctx, network, addr); return err })
			return c, err
		},
	}}
	p.proc = ns.Start(t, "prometheus", "--config.file="+cfg, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+promListen, "--log.level=warn")
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := p.get("/-/ready")
		if err == nil {
			return p
		}
		select {
		case <-p.proc.Done():
			t.Fatalf("prometheus exited: %v\n%s", p.proc.Err(), p.proc.Output())
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus not ready after 30 s: %v\n%s", err, p.proc.Output())
		}
	}
}

// get returns the body of Prometheus's answer to GET path.
func (p *prometheus) get(path string) ([]byte, error) {
	resp, err := p.client.Get("http://" + promListen + path)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("GET %s: %s: %s", path, resp.Status, body)
	}
	return body, err
}

// promAlert is one alert of /api/v1/alerts.
type promAlert struct {
	Labels   map[string]string `json:"labels"`
	State    string            `json:"state"` // pending or firing
	ActiveAt time.Time         `json:"activeAt"`
}

// alerts returns the active alerts (pending and firing).
func (p *prometheus) alerts() ([]promAlert, error) {
	body, err := p.get("/api/v1/alerts")
	if err != nil {
		return nil, err
	}
	var r struct {
		Status string
		Data   struct{ Alerts []promAlert }
	}
	if err := json.Unmarshal(body, &r); err != nil || r.Status != "success" {
		return nil, fmt.Errorf("/api/v1/alerts: %q: %v", body, err)
	}
	return r.Data.Alerts, nil
}

// AlertResult is when Prometheus noticed a silent death: the alert's
// pending since (activeAt: the first evaluation that saw up == 0) and when
// the experiment, polling every 100 ms, first saw it firing, both counted
// from the death.
type AlertResult struct {
	Alert, Node     string
	For             time.Duration // the rule's
	Pending, Firing time.Duration
}

// waitAlert polls Prometheus until the deadAlert of node fires, at most
// its "for" and 30 s (a failed scrape, an evaluation, a loaded machine)
// after died; it fails if the alert is active for another node.
func (p *prometheus) waitAlert(node string, died time.Time) (AlertResult, error) {
	res := AlertResult{Alert: deadAlert, Node: node}
	var err error
	if res.For, err = alertFor(); err != nil {
		return res, err
	}
	alertWait := res.For + 30*time.Second
	var last []promAlert
	for time.Since(died) < alertWait {
		as, err := p.alerts()
		if err != nil {
			return res, err
		}
		last = as
		for _, a := range as {
			if a.Labels["alertname"] != deadAlert {
				continue
			}
			if a.Labels["node"] != node {
				return res, fmt.Errorf("%s for %s, which is alive: %+v", deadAlert, a.Labels["node"], a)
			}
			if a.State == "firing" {
				res.Pending, res.Firing = a.ActiveAt.Sub(died), time.Since(died)
				return res, nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return res, fmt.Errorf("%s for %s not firing %v after its death; active alerts: %+v", deadAlert, node, alertWait, last)
}

func (r AlertResult) String() string {
	return fmt.Sprintf("Prometheus: alert %s for %s pending %.1f s after its silent death, firing %.1f s after (the rule's for: %v; scrape and evaluation every 1 s)",
		r.Alert, r.Node, r.Pending.Seconds(), r.Firing.Seconds(), r.For)
}
