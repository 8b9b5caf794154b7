package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/vishvananda/netlink"

	"github.com/map646/map646/cmd/map646/control"
	"github.com/map646/map646/config"
	"github.com/map646/map646/health"
	"github.com/map646/map646/routing"
	"github.com/map646/map646/translator"
	"github.com/map646/map646/translator/dataplane"
	"github.com/map646/map646/translator/tun"
)

// Preflight refuses to start, with a message an operator can act on, where
// starting would fail half-way: euid is the process's effective user id,
// tunDevice the path of the tun clone device (/dev/net/tun).
func Preflight(cfg *config.Config, euid int, tunDevice string) error {
	if euid != 0 {
		return errors.New("map646 run must run as root (it creates a tun device and routes)")
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

// Run runs the daemon with the configuration cfg read from path until a
// SIGTERM or SIGINT stops it (nil) or it fails (an error, logged already).
// version is the build's, for the status, the metrics and the log.
func Run(path string, cfg *config.Config, log *slog.Logger, version string) error {
	d := &daemon{path: path, cfg: cfg, log: log, version: version}
	return d.run()
}

// daemon is a running map646: its device, data plane, routes and metrics,
// and with them the node's life cycle (lc: the state machine and the
// drain), the BGP speaker, the health monitor and the control socket. One
// goroutine owns it: Run's, which starts it, runs the loop (loop.go) and
// shuts it down.
type daemon struct {
	path    string
	cfg     *config.Config
	log     *slog.Logger
	version string
	// ctx is the root context: the components' contexts derive from it;
	// it ends when Run returns.
	ctx context.Context

	dp      *dataplane.DataPlane
	stopDP  context.CancelFunc
	dpDone  chan error
	routes  *dataplane.Routes
	metrics *http.Server
	reloads *prometheus.CounterVec

	lc        *lifecycle
	controlLn *net.UnixListener // bound early, served once the node runs
	control   *control.Server
	requests  requests         // the control socket's commands, for the loop
	bgp       *routing.Speaker // nil without [bgp]
	hm        *health.Monitor
	stopHM    context.CancelFunc
	hmDone    chan error

	// The data plane's recovery (recover.go): the next attempt's timer
	// and how many attempts failed since the device was lost.
	recoverC <-chan time.Time
	provenC  <-chan error // the proof of a re-created device
	recovery recovery
}

// start brings the daemon up; shutdown undoes whatever part of it was done.
func (d *daemon) start() error {
	start := time.Now()
	cfg := d.cfg
	d.warnForwarding()

	// The control socket is bound first: a second map646 on the same
	// socket is refused before it touches the device or the routes.
	var err error
	if d.controlLn, err = control.Listen(cfg.Control.Socket, d.log); err != nil {
		return err
	}
	flag := drainFlag{cfg.Node.StateDir}
	drainedAt, drained, err := flag.Load()
	if err != nil {
		return fmt.Errorf("[node] state_dir %s: %w: cannot tell whether an operator drained this node", cfg.Node.StateDir, err)
	}
	d.requests = make(requests)
	d.lc = &lifecycle{
		node: NewNode(d.log, time.Now), hm: allHealthy{}, flag: flag, tm: timingOf(cfg.Node),
		// Called only once d.dp is set: by metrics scrapes and the
		// control socket, both started after dataplane.New.
		packets: func() uint64 { return packetsRead(d.dp.Stats()) },
		traffic: func() control.TrafficStatus { return trafficOf(d.dp.Stats()) },
		log:     d.log, now: time.Now, version: d.version,
	}
	d.lc.publish()
	if drained {
		d.lc.restoreDrained(drainedAt)
	}

	tr, err := cfg.NewTranslator()
	if err != nil {
		return fmt.Errorf("dataplane: %w", err)
	}
	dev, err := openDevice(cfg.Tun)
	if err != nil {
		return err
	}
	offloads := "none"
	if o, ok := dev.(interface{ Offloads() string }); ok {
		offloads = o.Offloads()
	}
	d.dp = dataplane.New(tr, dev, dataplane.Options{
		ICMPErrorRate: cfg.Translator.ICMPErrorRate, ICMPErrorBurst: cfg.Translator.ICMPErrorBurst, Logger: d.log})
	if err := acceptLocal(dev.Name()); err != nil {
		d.log.Warn("ICMPv4 errors from translator.ipv4_address may be dropped", "err", err)
	}
	if cfg.Tun.BusyPoll > 0 && dev.Queues() >= runtime.NumCPU() {
		// The kernel's half of forwarding (the NICs' softirqs, routing
		// into the device) needs CPU time too.
		d.log.Warn("busy polling on as many queues as there are CPUs: while packets keep coming on every queue, the workers keep every CPU busy; consider [tun] queues below the CPU count",
			"busy_poll", cfg.Tun.BusyPoll, "queues", dev.Queues(), "cpus", runtime.NumCPU())
	}

	d.reloads = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "map646_reloads_total",
		Help: "Reloads (SIGHUP or map646 reload) by result: ok, invalid (configuration refused, the running one kept), failed (not every change applied).",
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

	d.runDataPlane()
	routeStart := time.Now()
	want := dataplane.Prefixes(d.dp.Translator())
	if err := d.installRoutes(dev.Name(), want); err != nil {
		return err
	}
	routeTime := time.Since(routeStart)

	// The speaker starts once the data plane translates and its routes
	// are in: nothing may attract traffic before the node can carry it.
	if cfg.BGP.Enabled {
		if d.bgp, err = routing.New(cfg.BGP.Config, d.log); err != nil {
			return err
		}
		d.lc.setSpeaker(bgpSpeaker{d.bgp})
	}
	var sessions health.Sessions // a nil *routing.Speaker must stay a nil interface
	if d.bgp != nil {
		sessions = d.bgp
	}
	if d.hm, err = health.NewMonitor(cfg.Health.Checks, d.dp, sessions, d.log); err != nil {
		return err
	}
	d.lc.setMonitor(healthMonitor{d.hm})
	hctx, hcancel := context.WithCancel(d.ctx)
	d.stopHM, d.hmDone = hcancel, make(chan error, 1)
	go func() { d.hmDone <- d.hm.Run(hctx) }()
	if err := d.lc.ready(d.ctx, planOf(cfg, d.dp.Translator())); err != nil {
		d.log.Warn("the first announcement failed; it is retried", "err", err)
	}
	d.control = control.NewServer(d.controlLn, controlHandler{d.lc, d.requests}, d.log.With("component", "control"))
	d.controlLn = nil

	d.log.Info("serving", "config", d.path, "device", dev.Name(), "mtu", cfg.Tun.MTU,
		"queues", dev.Queues(), "offloads", offloads, "busy_poll", cfg.Tun.BusyPoll.String(),
		"mappings", d.dp.Translator().Table().Len(), "routes", len(want),
		"routes_took", routeTime.Round(time.Millisecond), "metrics", metricsAt,
		"control", cfg.Control.Socket, "bgp", cfg.BGP.Enabled, "checks", len(cfg.Health.Checks),
		"version", d.version, "took", time.Since(start).Round(time.Millisecond))
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
		dev.SetBusyPoll(t.BusyPoll)
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

// checkStateDir checks that a drain could be recorded ([node] state_dir
// writable) and puts the answer in the status.
func (d *daemon) checkStateDir() {
	d.lc.setStateDir(drainFlag{d.cfg.Node.StateDir}.Writable())
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
	info.WithLabelValues(d.version, runtime.Version()).Set(1)
	reg.MustRegister(d.dp.Collector(d.cfg.Metrics.MappingSeries), d.reloads, info, nodeCollector{d.lc},
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

// reload applies the configuration file anew and says how it went. The
// order keeps every packet translated by a table that knows its route: the
// routes of the mappings that go are removed before the table changes,
// those of the new mappings added after; then the speaker's neighbors and
// the checks change, and the announcements follow the new table.
func (d *daemon) reload() (string, error) {
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
		return "", fmt.Errorf("reload refused: the configuration is invalid; the running one is kept:\n%w", err)
	}
	d.keepRestartOnly(cfg)

	// While the data plane is being recovered there are no routes: the
	// recovery installs those of the table in use, the new one.
	var add, del []netip.Prefix
	var errRemove, errAdd error
	if d.routes != nil {
		add, del = d.routes.Diff(dataplane.Prefixes(tr))
		errRemove = d.routes.Remove(del)
	}
	d.dp.Swap(tr)
	d.dp.SetICMPLimit(cfg.Translator.ICMPErrorRate, cfg.Translator.ICMPErrorBurst)
	if cfg.Tun.BusyPoll != d.cfg.Tun.BusyPoll {
		// A device re-created later gets it from d.cfg (recover.go).
		d.dp.Device().SetBusyPoll(cfg.Tun.BusyPoll)
		d.log.Info("busy_poll changed", "from", d.cfg.Tun.BusyPoll.String(), "to", cfg.Tun.BusyPoll.String())
	}
	if d.routes != nil {
		errAdd = d.routes.Add(add)
	}

	ctx := d.ctx
	var errBGP, errHealth error
	if d.bgp != nil {
		if errBGP = d.bgp.Reconfigure(ctx, cfg.BGP.Config); errBGP != nil {
			// The running neighbors stay, and so do the attributes that go
			// with them.
			cfg.BGP = d.cfg.BGP
			errBGP = fmt.Errorf("[bgp] not applied, the running one is kept: %w", errBGP)
		}
	}
	if errHealth = d.hm.Update(cfg.Health.Checks); errHealth != nil {
		cfg.Health = d.cfg.Health
		errHealth = fmt.Errorf("[health] not applied, the running checks are kept: %w", errHealth)
	}
	d.cfg = cfg
	errAnnounce := d.lc.setPlan(ctx, planOf(cfg, tr), timingOf(cfg.Node), drainFlag{cfg.Node.StateDir})
	if errAnnounce != nil {
		errAnnounce = fmt.Errorf("announce (retried): %w", errAnnounce)
	}
	args := []any{"config", d.path, "mappings", tr.Table().Len(),
		"routes_added", len(add), "routes_removed", len(del), "took", time.Since(start).Round(time.Millisecond)}
	msg := fmt.Sprintf("reloaded %s: %d mappings, %d routes added, %d removed", d.path, tr.Table().Len(), len(add), len(del))
	if err := errors.Join(errRemove, errAdd, errBGP, errHealth, errAnnounce); err != nil {
		count("failed")
		d.log.Error("reloaded, but not every change was applied", append(args, "err", err)...)
		return "", fmt.Errorf("%s, but not every change was applied: %w", msg, err)
	}
	count("ok")
	d.log.Info("reloaded", args...)
	return msg, nil
}

// keepRestartOnly keeps the running [tun] (but busy_poll, which a reload
// applies), [metrics], [log], [control] and [node] state_dir in cfg,
// warning about the changes that need a restart.
func (d *daemon) keepRestartOnly(cfg *config.Config) {
	var changed []string
	busyPoll := cfg.Tun.BusyPoll
	cfg.Tun.BusyPoll = d.cfg.Tun.BusyPoll
	if cfg.Tun != d.cfg.Tun {
		changed = append(changed, "tun")
	}
	if cfg.Metrics != d.cfg.Metrics {
		changed = append(changed, "metrics")
	}
	if cfg.Log != d.cfg.Log {
		changed = append(changed, "log")
	}
	if cfg.Control != d.cfg.Control {
		changed = append(changed, "control")
	}
	if cfg.Node.StateDir != d.cfg.Node.StateDir {
		changed = append(changed, "node.state_dir")
	}
	if cfg.BGP.Enabled != d.cfg.BGP.Enabled {
		changed = append(changed, "bgp (added or removed)")
	}
	if len(changed) > 0 {
		d.log.Warn("changes to these sections need a restart; they are not applied", "sections", strings.Join(changed, ", "))
	}
	cfg.Tun, cfg.Metrics, cfg.Log, cfg.Control = d.cfg.Tun, d.cfg.Metrics, d.cfg.Log, d.cfg.Control
	cfg.Tun.BusyPoll = busyPoll
	cfg.Node.StateDir = d.cfg.Node.StateDir
	if cfg.BGP.Enabled != d.cfg.BGP.Enabled {
		cfg.BGP = d.cfg.BGP
	}
}
