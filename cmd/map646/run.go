package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/vishvananda/netlink"

	"github.com/map646/map646/config"
	"github.com/map646/map646/translator"
	"github.com/map646/map646/translator/dataplane"
	"github.com/map646/map646/translator/tun"
)

const runUsage = `Usage: map646 run -config FILE

Run the translator. map646 run, as root:
  1. loads and checks FILE as 'map646 check' does (a problem: exit 1);
  2. creates the tun device [tun] name (default map646) with its MTU,
     offloads, queues and txqueuelen, and brings it up;
  3. starts one worker thread per device queue;
  4. serves Prometheus metrics at http://[metrics] listen/metrics
     (default 127.0.0.1:9646; loopback only unless allow_remote = true);
  5. removes routes of protocol 246 left by an earlier map646 (logged), then
     routes every mapped IPv4 prefix (adjacent ones merged) and the pseudo
     prefix into the device: 'ip route show proto 246' lists them, and logs
     "serving".
The kernel routes the translated packets: enable forwarding
(sysctl net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1) for packets
that leave the node; map646 warns at start when it is off.

It refuses to start, with a message saying why, when it is not root, when
/dev/net/tun is missing, or when a network interface of the device's name
exists already (map646 creates its own device and never takes one over).

Signals:
  SIGHUP           reload: re-read and check FILE; if it is valid, remove
                   the routes of the mappings that went, switch the table
                   between two batches (no packet lost or translated half
                   by each), add the routes of the new mappings, apply the
                   ICMP error rate. An invalid FILE is refused, its problems
                   logged, the running configuration kept. [tun], [metrics]
                   and [log] changes need a restart (a warning says so).
  SIGTERM, SIGINT  stop: remove every route map646 added, stop the workers,
                   close the device (the kernel deletes it); exit 0, or 1 if
                   something failed on the way down.

Logs go to stderr through log/slog ([log] format text or json, level);
nothing is logged per packet: packets are counted (metrics below), rare
events are logged at most once per 10 s per worker.

Metrics:
  map646_packets_total{direction,verdict,reason}   every packet read
      (direction 4to6 or 6to4; verdict forward, drop or icmp-error; reason
      as 'map646 translate' names it, or gso-segment-failed)
  map646_bytes_total{direction}, map646_sent_packets_total{direction},
  map646_sent_bytes_total{direction}
  map646_icmp_errors_sent_total, map646_icmp_errors_suppressed_total
      (held back by translator.icmp_error_rate and icmp_error_burst)
  map646_gso_packets_total{path}, map646_gso_segments_total
  map646_write_errors_total, map646_device_dropped_total, map646_batches_total
  map646_mapping_packets_total{entry,direction},
  map646_mapping_bytes_total{entry,direction}
      per mapping (entry: its IPv4 side), for the first [metrics]
      mapping_series mappings (default 1000): every mapping is counted,
      but a million of them as series would overwhelm Prometheus
  map646_mappings, map646_reloads_total{result}, map646_build_info
  and the Go runtime's go_* and process_* metrics.

Exit codes: 0 after SIGTERM or SIGINT, 1 when it cannot start or fails,
2 for a usage error.

Example:
  map646 check -config /etc/map646/map646.toml && map646 run -config /etc/map646/map646.toml
  kill -HUP $(pidof map646)    # after editing the mappings
`

// Preconditions, replaced by tests.
var (
	geteuid   = os.Geteuid
	tunDevice = "/dev/net/tun"
)

// notRoot is the message for a start without root.
const notRoot = "map646 run must run as root (it creates a tun device and routes)"

func runRun(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("run")
	configPath := fs.String("config", "", "the configuration `FILE` (required); SIGHUP re-reads it")
	if code, done := parseFlags(fs, runUsage, args, stdout, stderr); done {
		return code
	}
	if *configPath == "" {
		return usageError(stderr, "run", "-config is required")
	}
	cfg, _, ok := loadConfig(*configPath, stderr)
	if !ok {
		return exitError
	}
	if err := preflight(cfg); err != nil {
		fmt.Fprintln(stderr, err)
		return exitError
	}
	d := &daemon{path: *configPath, cfg: cfg, log: newLogger(cfg.Log, stderr)}
	return d.run()
}

// preflight refuses to start, with a message an operator can act on, where
// starting would fail half-way.
func preflight(cfg *config.Config) error {
	if geteuid() != 0 {
		return errors.New(notRoot)
	}
	if _, err := os.Stat(tunDevice); err != nil {
		return fmt.Errorf("map646 run: %s is missing: the kernel has no tun support or the device node is absent (modprobe tun; mknod %s c 10 200): %v",
			tunDevice, tunDevice, err)
	}
	if l, err := netlink.LinkByName(cfg.Tun.Name); err == nil {
		return nameTaken(cfg.Tun.Name, l.Type())
	}
	return nil
}

func nameTaken(name, kind string) error {
	if kind != "" {
		kind = " (" + kind + ")"
	}
	return fmt.Errorf("map646 run: a network interface named %q exists already%s: map646 creates its own tun device and does not take over an existing interface; choose another tun.name or remove the interface", name, kind)
}

func newLogger(c config.Log, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: c.Level}
	if c.JSON {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// daemon is a running map646: its device, data plane, routes and metrics.
type daemon struct {
	path string
	cfg  *config.Config
	log  *slog.Logger

	dp      *dataplane.DataPlane
	stopDP  context.CancelFunc
	dpDone  chan error
	routes  *dataplane.Routes
	metrics *http.Server
	reloads *prometheus.CounterVec
}

func (d *daemon) run() int {
	// Signals are taken from the start: a SIGTERM while the routes are
	// being installed waits for the start to finish, then stops.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigs)

	if err := d.start(); err != nil {
		d.log.Error("cannot start", "err", err)
		if err := d.stop(); err != nil {
			d.log.Error("cleanup after the failed start", "err", err)
		}
		return exitError
	}
	for {
		select {
		case sig := <-sigs:
			if sig == syscall.SIGHUP {
				d.reload()
				continue
			}
			d.log.Info("stopping", "signal", sig.String())
			if err := d.stop(); err != nil {
				d.log.Error("stopped with errors", "err", err)
				return exitError
			}
			d.log.Info("stopped")
			return exitOK
		case err := <-d.dpDone:
			d.dpDone = nil // Run has returned
			d.log.Error("the data plane stopped", "err", err)
			if err := d.stop(); err != nil {
				d.log.Error("cleanup", "err", err)
			}
			return exitError
		}
	}
}

// start brings the daemon up; stop undoes whatever part of it was done.
func (d *daemon) start() error {
	start := time.Now()
	cfg := d.cfg
	d.warnForwarding()

	dev, err := openDevice(cfg.Tun)
	if err != nil {
		return err
	}
	offloads := "none"
	if o, ok := dev.(interface{ Offloads() string }); ok {
		offloads = o.Offloads()
	}
	if d.dp, err = dataplane.New(cfg, dev, d.log); err != nil {
		dev.Close()
		return err
	}
	if err := acceptLocal(dev.Name()); err != nil {
		d.log.Warn("ICMPv4 errors from translator.ipv4_address may be dropped", "err", err)
	}

	d.reloads = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "map646_reloads_total",
		Help: "Reloads (SIGHUP) by result: ok, invalid (configuration refused, the running one kept), failed (routes not all changed).",
	}, []string{"result"})
	metricsAt := "off"
	if cfg.Metrics.Listen != "" {
		ln, err := net.Listen("tcp", cfg.Metrics.Listen)
		if err != nil {
			return fmt.Errorf("metrics.listen: %w", err)
		}
		d.serveMetrics(ln)
		metricsAt = ln.Addr().String()
	}

	ctx, cancel := context.WithCancel(context.Background())
	d.stopDP, d.dpDone = cancel, make(chan error, 1)
	go func() { d.dpDone <- d.dp.Run(ctx) }()

	if d.routes, err = dataplane.NewRoutes(dev.Name(), d.log); err != nil {
		return err
	}
	if _, err := d.routes.RemoveStale(); err != nil {
		return err
	}
	routeStart := time.Now()
	want := dataplane.Prefixes(d.dp.Translator())
	if err := d.routes.Add(want); err != nil {
		return err
	}
	routeTime := time.Since(routeStart)

	d.log.Info("serving", "config", d.path, "device", dev.Name(), "mtu", cfg.Tun.MTU,
		"queues", dev.Queues(), "offloads", offloads,
		"mappings", d.dp.Translator().Table().Len(), "routes", len(want),
		"routes_took", routeTime.Round(time.Millisecond), "metrics", metricsAt,
		"version", fullVersion(), "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// openDevice creates the tun device, turning the tun package's errors into
// the operator's terms.
func openDevice(t config.Tun) (tun.Device, error) {
	var dev tun.Device
	var err error
	if t.Offload {
		dev, err = tun.OpenOffload(t.Name, t.MTU, t.QueueCount(), t.TxQueueLen)
	} else if dev, err = tun.OpenPlain(t.Name, t.MTU); err == nil && t.TxQueueLen > 0 {
		if l, lerr := netlink.LinkByName(dev.Name()); lerr != nil {
			err = lerr
		} else {
			err = netlink.LinkSetTxQLen(l, t.TxQueueLen)
		}
		if err != nil {
			dev.Close()
			err = fmt.Errorf("set txqueuelen %d on %s: %w", t.TxQueueLen, t.Name, err)
		}
	}
	switch {
	case err == nil:
		return dev, nil
	case errors.Is(err, tun.ErrNameTaken):
		return nil, nameTaken(t.Name, "")
	case errors.Is(err, tun.ErrUnsupported):
		return nil, fmt.Errorf("%w; set offload = false in [tun] for the plain device", err)
	}
	return nil, err
}

// acceptLocal lets the kernel take packets from the device whose source is
// one of the node's own addresses. Without it, when translator.ipv4_address
// is an address of the node (as on a router), every ICMPv4 error map646
// generates is dropped as a martian when it comes out of the device, and no
// counter shows it (found in the lab). The setting is the device's own and
// goes with it.
func acceptLocal(dev string) error {
	return os.WriteFile("/proc/sys/net/ipv4/conf/"+dev+"/accept_local", []byte("1"), 0o644)
}

// warnForwarding warns when the kernel will not forward the translated
// packets to other hosts.
func (d *daemon) warnForwarding() {
	for _, s := range []struct{ file, sysctl string }{
		{"/proc/sys/net/ipv4/ip_forward", "net.ipv4.ip_forward"},
		{"/proc/sys/net/ipv6/conf/all/forwarding", "net.ipv6.conf.all.forwarding"},
	} {
		if b, err := os.ReadFile(s.file); err == nil && strings.TrimSpace(string(b)) == "0" {
			d.log.Warn("forwarding is off: translated packets reach local addresses only", "sysctl", s.sysctl+"=0",
				"fix", "sysctl -w "+s.sysctl+"=1")
		}
	}
}

// serveMetrics serves /metrics on ln until stop.
func (d *daemon) serveMetrics(ln net.Listener) {
	reg := prometheus.NewRegistry()
	for _, r := range []string{"ok", "invalid", "failed"} {
		d.reloads.WithLabelValues(r)
	}
	info := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "map646_build_info",
		Help: "Always 1: the map646 version and the Go version that built it.",
	}, []string{"version", "goversion"})
	info.WithLabelValues(fullVersion(), runtime.Version()).Set(1)
	reg.MustRegister(d.dp.Collector(d.cfg.Metrics.MappingSeries), d.reloads, info,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog: slog.NewLogLogger(d.log.Handler(), slog.LevelError),
	}))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		fmt.Fprintln(w, "map646: metrics at /metrics")
	})
	d.metrics = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: slog.NewLogLogger(d.log.Handler(), slog.LevelWarn)}
	go func() {
		if err := d.metrics.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			d.log.Error("metrics server stopped", "err", err)
		}
	}()
}

// reload applies the configuration file anew. The order keeps every
// packet translated by a table that knows its route: the routes of the
// mappings that go are removed before the table changes, those of the new
// mappings added after.
func (d *daemon) reload() {
	start := time.Now()
	count := func(result string) { d.reloads.WithLabelValues(result).Inc() }
	cfg, err := config.Load(d.path)
	var tr *translator.Translator
	if err == nil {
		tr, err = cfg.NewTranslator()
	}
	if err != nil {
		count("invalid")
		d.log.Error("reload refused: the configuration is invalid; the running one is kept",
			"config", d.path, "err", strings.ReplaceAll(strings.TrimSpace(err.Error()), "\n", "; "))
		return
	}
	d.keepRestartOnly(cfg)

	add, del := d.routes.Diff(dataplane.Prefixes(tr))
	errRemove := d.routes.Remove(del)
	d.dp.Swap(tr)
	d.dp.SetICMPLimit(cfg.Translator.ICMPErrorRate, cfg.Translator.ICMPErrorBurst)
	errAdd := d.routes.Add(add)
	d.cfg = cfg
	args := []any{"config", d.path, "mappings", tr.Table().Len(),
		"routes_added", len(add), "routes_removed", len(del), "took", time.Since(start).Round(time.Millisecond)}
	if err := errors.Join(errRemove, errAdd); err != nil {
		count("failed")
		d.log.Error("reloaded, but not every route changed", append(args, "err", err)...)
		return
	}
	count("ok")
	d.log.Info("reloaded", args...)
}

// keepRestartOnly keeps the running [tun], [metrics] and [log] in cfg,
// warning about the changes that need a restart.
func (d *daemon) keepRestartOnly(cfg *config.Config) {
	var changed []string
	if cfg.Tun != d.cfg.Tun {
		changed = append(changed, "tun")
	}
	if cfg.Metrics != d.cfg.Metrics {
		changed = append(changed, "metrics")
	}
	if cfg.Log != d.cfg.Log {
		changed = append(changed, "log")
	}
	if len(changed) > 0 {
		d.log.Warn("changes to these sections need a restart; they are not applied", "sections", strings.Join(changed, ", "))
	}
	cfg.Tun, cfg.Metrics, cfg.Log = d.cfg.Tun, d.cfg.Metrics, d.cfg.Log
}

// stop takes the daemon down, in this order: remove the routes, so the
// kernel sends nothing more into the device while the workers translate
// what is queued; stop the data plane, which closes the device (the kernel
// deletes it with its last queue); stop the metrics server. It returns
// everything that failed on the way.
func (d *daemon) stop() error {
	var errs []error
	if d.routes != nil {
		n := len(d.routes.Installed())
		start := time.Now()
		if err := d.routes.RemoveAll(); err != nil {
			errs = append(errs, err)
		}
		d.log.Info("routes removed", "count", n-len(d.routes.Installed()), "took", time.Since(start).Round(time.Millisecond))
		d.routes.Close()
	}
	if d.dp != nil {
		if d.stopDP != nil {
			d.stopDP()
		}
		if d.dpDone != nil {
			if err := <-d.dpDone; err != nil {
				errs = append(errs, err)
			}
		} else if err := d.dp.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	if d.metrics != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if err := d.metrics.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("metrics server: %w", err))
		}
	}
	return errors.Join(errs...)
}
