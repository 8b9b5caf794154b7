package daemon

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"os/user"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/vishvananda/netlink"

	"github.com/map646/map646/cmd/map646/control"
	"github.com/map646/map646/config"
	"github.com/map646/map646/config/etcdsource"
	"github.com/map646/map646/health"
	"github.com/map646/map646/routing"
	"github.com/map646/map646/translator"
	"github.com/map646/map646/translator/dataplane"
	"github.com/map646/map646/translator/tun"
)

// Preflight refuses to start, with a message an operator can act on, where
// starting would fail half-way: caps is the process's effective
// capability set (EffectiveCaps), tunDevice the path of the tun clone
// device (/dev/net/tun).
func Preflight(cfg *config.Config, caps CapSet, tunDevice string) error {
	if missing := missingCaps(cfg, caps, currentNetPolicy()); missing != "" {
		return errors.New(missing)
	}
	if _, err := os.Stat(tunDevice); err != nil {
		return fmt.Errorf("map646 run: %s is missing: the kernel has no tun support or the device node is absent (modprobe tun; mknod %s c 10 200): %v",
			tunDevice, tunDevice, err)
	}
	if err := canOpen(tunDevice); err != nil {
		return err
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
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(gcPercent)
	}
	d := &daemon{path: path, cfg: cfg, log: log, version: version}
	return d.run()
}

// gcPercent is the collector's target (GOGC) map646 runs with unless the
// environment sets GOGC. Its heap is mostly large arrays without pointers
// (at a million mappings, 96 MB of table pages, 32 MB of counters and
// 32 MB of the etcd source's records), which a collection does not scan,
// so collecting often costs little, and a translator that only translates
// allocates next to nothing, so it seldom collects at all; Go's default,
// 100, lets the heap grow to twice what is live before it collects, which
// such a node pays in resident memory whenever it builds table pages.
// In two runs of make iaas -million 1000000 (not side by side: the
// load's pace differed), a node following the million's load through its
// watch peaked at 341-357 MB with 25 (written in 59 s) and 284-293 MB with
// 10 (written in 2 min 12 s).
const gcPercent = 10

// daemon is a running map646: its device, data plane, routes and metrics,
// and with them the node's life cycle (lc: the state machine and the
// drain), the BGP speaker, the health monitor and the control socket. One
// goroutine owns it: Run's, which starts it, runs the loop and shuts it
// down.
type daemon struct {
	path    string
	cfg     *config.Config
	log     *slog.Logger
	version string
	// ctx is the root context: the components' contexts derive from it;
	// it ends when Run returns.
	ctx context.Context

	// local holds the node's addresses, followed by FollowLocalAddrs for
	// as long as the daemon runs, and given to every translator built
	// (newTranslator), so that a reload keeps refusing them.
	local *translator.LocalAddrs
	dp    *dataplane.DataPlane
	// fastDP is dp for the local address follower's goroutine, which
	// starts before it (start).
	fastDP  atomic.Pointer[dataplane.DataPlane]
	stopDP  context.CancelFunc
	dpDone  chan error
	routes  *dataplane.Routes
	metrics *http.Server
	// registry is what /metrics serves (nil with metrics off).
	registry *prometheus.Registry
	reloads  *reloadMetrics
	// offloadSelfTest is map646_tun_offload_selftest_failed, which each
	// device creation sets (openDevice), the recovery's too.
	offloadSelfTest *prometheus.GaugeVec

	lc        *lifecycle
	nsLock    *net.UnixListener // this network namespace's map646 (claimNamespace)
	controlLn *net.UnixListener // bound early, served once the node runs
	control   *control.Server
	statusLn  *net.UnixListener // [control] status_socket, as controlLn
	status    *control.Server   // the read-only status socket; nil without one
	requests  requests          // the control socket's commands, for the loop
	bgp       *routing.Speaker  // nil without [bgp]
	hm        *health.Monitor
	stopHM    context.CancelFunc
	hmDone    chan error
	sd        *serviceManager // systemd's notifications (systemd.go)

	// The data plane's recovery (recover.go): the next attempt's timer
	// and how many attempts failed since the device was lost.
	recoverC <-chan time.Time
	openedC  <-chan openedDevice // the device an attempt creates
	provenC  <-chan error        // the proof of a re-created device
	recovery recovery

	// tables is what the mapping commands read outside the loop
	// (mappings.go); compactC brings back the table compacted in the
	// background, compacting says one is being built.
	tables     *tableView
	compactC   <-chan compaction
	compacting bool
	// sinceCompact are the changes applied while it is built, applied to
	// it when it comes back; compactStale says the table was replaced
	// whole meanwhile.
	sinceCompact []translator.MappingChange
	compactStale bool
	// updates brings the changes of a mapping source other than the file
	// (etcd); nil without one.
	updates <-chan MappingUpdate
	// source is the etcd mapping source (etcd.go), nil with the file;
	// stopSource ends its Run, which closes sourceDone. hasTable says
	// that its first table was applied (the node may announce).
	source     *etcdsource.Source
	stopSource context.CancelFunc
	sourceDone chan struct{}
	hasTable   bool
}

// The daemon loop: one goroutine owns the node's state (the lifecycle, the
// configuration, the data plane's recovery) and handles every event that
// changes it, one at a time: signals, the control socket's commands, the
// drain's timers, health and BGP changes, the data plane stopping and its
// recovery, the retry tick and the state_dir check. Slow work that must
// not hold it up (creating a device anew, with its offload self-test, and
// proving it) runs in a goroutine of its own and comes back as an event.

// retryEvery is how often a failed announcement is retried and [node]
// state_dir checked.
const retryEvery = 2 * time.Second

func (d *daemon) run() error {
	// Signals are taken from the start: a SIGTERM while the routes are
	// being installed waits for the start to finish, then stops.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigs)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	d.ctx = ctx
	d.sd = newServiceManager(d.log)

	if err := d.start(); err != nil {
		d.log.Error("cannot start", "err", err)
		if err := d.shutdown(nil); err != nil {
			d.log.Error("cleanup after the failed start", "err", err)
		}
		return err
	}
	d.sd.ready(d.lc.statusLine())
	return d.loop(sigs)
}

// loop handles the events until the daemon stops: it returns nil after a
// SIGTERM or SIGINT with a clean shutdown, else what failed.
func (d *daemon) loop(sigs chan os.Signal) error {
	var hmChanges, bgpChanges <-chan struct{}
	if d.hm != nil {
		hmChanges = d.hm.Changes()
	}
	if d.bgp != nil {
		bgpChanges = d.bgp.Changes()
	}
	retry := time.NewTicker(retryEvery)
	defer retry.Stop()
	watchdog, stopWatchdog := d.sd.watchdogTick()
	defer stopWatchdog()
	ctx := d.ctx
	d.checkStateDir()
	for {
		d.sd.setStatus(d.lc.statusLine())
		select {
		case sig := <-sigs:
			if sig == syscall.SIGHUP {
				d.reloadNotifying()
				continue
			}
			d.log.Info("stopping", "signal", sig.String())
			if err := d.shutdown(sigs); err != nil {
				d.log.Error("stopped with errors", "err", err)
				return err
			}
			d.log.Info("stopped")
			return nil
		case r := <-d.requests:
			switch r.command {
			case "reload":
				r.answer(d.reloadNotifying())
			case "mapping":
				r.answer(d.ApplyMappings(r.changes, true))
			default:
				d.lc.handle(ctx, r)
			}
		case c := <-d.compactC:
			d.compacted(c)
		case u := <-d.updates:
			d.tableApplied(u, d.applyUpdate(u))
		case now := <-d.lc.drainTick():
			d.lc.drainSample(ctx, now)
		case <-d.lc.drainTimer():
			d.lc.drainTimerFired(ctx)
		case <-hmChanges:
			d.lc.reconcile(ctx)
		case <-bgpChanges:
			d.lc.reconcile(ctx)
		case <-watchdog:
			d.sd.watchdog(d.dp.Alive())
		case <-retry.C:
			if d.lc.needsRetry() {
				d.lc.reconcile(ctx)
			}
			d.checkStateDir()
		case <-d.recoverC:
			d.recoverC = nil
			d.recoverDataPlane()
		case o := <-d.openedC:
			d.openedC = nil
			d.deviceOpened(o)
		case err := <-d.provenC:
			d.provenC = nil
			d.dataPlaneProven(err)
		case err := <-d.hmDone:
			d.hmDone = nil
			d.log.Error("the health monitor stopped; the node withdraws and stops", "err", err)
			if err := d.shutdown(nil); err != nil {
				d.log.Error("cleanup", "err", err)
			}
			return fmt.Errorf("the health monitor stopped: %w", err)
		case err := <-d.dpDone:
			d.dpDone = nil // Run has returned
			d.dataPlaneFailed(err)
		}
	}
}

// start brings the daemon up; shutdown undoes whatever part of it was done.
func (d *daemon) start() error {
	start := time.Now()
	cfg := d.cfg
	d.warnForwarding()
	d.warnExposure(cfg)

	// One map646 per network namespace, claimed first: a second one would
	// take the first's routes (protocol 246) for leftovers and remove them.
	var err error
	if d.nsLock, err = claimNamespace(); err != nil {
		return err
	}
	// Then the control socket: a second map646 on the same socket is
	// refused before it touches the device or the routes.
	if d.controlLn, err = control.Listen(cfg.Control.Socket, d.log); err != nil {
		return err
	}
	if cfg.Control.StatusSocket != "" {
		gid, err := statusGroup(cfg.Control.StatusGroup)
		if err != nil {
			return err
		}
		if d.statusLn, err = control.ListenStatus(cfg.Control.StatusSocket, gid, d.log); err != nil {
			return err
		}
	}
	flag := drainFlag{cfg.Node.StateDir}
	drainedAt, drained, err := flag.Load()
	if err != nil {
		return fmt.Errorf("[node] state_dir %s: %w: cannot tell whether an operator drained this node", cfg.Node.StateDir, err)
	}
	d.requests = make(requests)
	fastPathMode := cfg.FastPath.Mode // a reload keeps it (keepRestartOnly)
	d.lc = &lifecycle{
		node: NewNode(d.log, time.Now), hm: allHealthy{}, flag: flag, tm: timingOf(cfg.Node),
		// Called only once d.dp is set: by metrics scrapes and the
		// control socket, both started after dataplane.New.
		packets: func() uint64 { return packetsRead(d.dp.Stats()) },
		traffic: func() control.TrafficStatus {
			t := trafficOf(d.dp.Stats())
			t.FastPath = fastPathStatusOf(fastPathMode, d.dp.FastPathStatus())
			return t
		},
		log: d.log, now: time.Now, version: d.version,
	}
	d.lc.publish()
	if drained {
		d.lc.restoreDrained(drainedAt)
	}

	d.local = translator.NewLocalAddrs()
	// The follower's goroutine tells the data plane, once there is one, so
	// that the fast path refuses the same addresses (fastDP, below).
	localChanged := func() {
		if dp := d.fastDP.Load(); dp != nil {
			dp.LocalAddrsChanged()
		}
	}
	if err := dataplane.FollowLocalAddrs(d.ctx, d.local, d.log.With("component", "dataplane"), localChanged); err != nil {
		// Without them a tenant could reach the node's own services
		// through the translator: refuse to start.
		return err
	}
	tr, err := d.newTranslator(cfg)
	if err != nil {
		return fmt.Errorf("dataplane: %w", err)
	}
	d.offloadSelfTest = newOffloadSelfTestMetric()
	cfg.ReleaseTable() // the data plane's from now on: see reload
	dev, err := openDevice(cfg.Tun, d.log, d.offloadSelfTest)
	if err != nil {
		return err
	}
	offloads := "none"
	if o, ok := dev.(interface{ Offloads() string }); ok {
		offloads = o.Offloads()
	}
	d.dp = dataplane.New(tr, dev, dataplane.Options{
		ICMPErrorRate: cfg.Translator.ICMPErrorRate, ICMPErrorBurst: cfg.Translator.ICMPErrorBurst,
		PMTUErrorRate: cfg.Translator.ICMPPMTUErrorRate, PMTUErrorBurst: cfg.Translator.ICMPPMTUErrorBurst, Logger: d.log})
	d.fastDP.Store(d.dp)
	if err := acceptLocal(dev.Name()); err != nil {
		d.log.Warn("ICMPv4 errors from translator.ipv4_address may be dropped", "err", err)
	}
	if err := d.attachFastPath(); err != nil {
		return err
	}
	if cfg.Tun.BusyPoll > 0 && dev.Queues() >= runtime.NumCPU() {
		// The kernel's half of forwarding (the NICs' softirqs, routing
		// into the device) needs CPU time too.
		d.log.Warn("busy polling on as many queues as there are CPUs: while packets keep coming on every queue, the workers keep every CPU busy; consider [tun] queues below the CPU count",
			"busy_poll", cfg.Tun.BusyPoll, "queues", dev.Queues(), "cpus", runtime.NumCPU())
	}

	d.reloads = newReloadMetrics(start)
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
		d.lc.setSpeaker(bgpSpeaker{d.bgp}, cfg.BGP.RouterID)
		if d.registry != nil {
			d.registry.MustRegister(d.bgp.Collectors()...)
		}
	}
	var sessions health.Sessions // a nil *routing.Speaker must stay a nil interface
	if d.bgp != nil {
		sessions = d.bgp
	}
	if d.hm, err = health.NewMonitor(cfg.Health.Checks, d.dp, sessions, d.log); err != nil {
		return err
	}
	d.lc.setMonitor(healthMonitor{d.hm})
	if cfg.Mappings.Source == config.SourceEtcd {
		d.lc.waitTable(noTableCause)
	}
	hctx, hcancel := context.WithCancel(d.ctx)
	d.stopHM, d.hmDone = hcancel, make(chan error, 1)
	go func() { d.hmDone <- d.hm.Run(hctx) }()
	if err := d.lc.ready(d.ctx, planOf(cfg, d.dp.Translator())); err != nil {
		d.log.Warn("the first announcement failed; it is retried", "err", err)
	}
	d.tables = &tableView{dp: d.dp}
	d.tables.cfg.Store(cfg)
	if err := d.startSource(); err != nil {
		return err
	}
	d.tables.source = d.source
	src, tv := d.source, d.tables
	d.lc.mappings = func() *control.MappingsStatus { return mappingsStatus(src, tv) }
	d.control = control.NewServer(d.controlLn, controlHandler{d.lc, d.requests, d.tables}, d.log.With("component", "control"))
	d.controlLn = nil
	if d.statusLn != nil {
		d.status = control.NewStatusServer(d.statusLn, controlHandler{d.lc, d.requests, d.tables}, d.log.With("component", "control"))
		d.statusLn = nil
	}

	// Not "serving": the node serves once every check has risen, which
	// its "node state" line says (a data-plane check's rise takes
	// seconds); until then it is starting, or drained.
	st, _, _ := d.lc.node.State()
	d.log.Info("started", "state", st.String(), "config", d.path, "device", dev.Name(), "mtu", cfg.Tun.MTU,
		"queues", dev.Queues(), "offloads", offloads, "busy_poll", cfg.Tun.BusyPoll.String(),
		"mappings", d.dp.Translator().Table().Len(), "routes", len(want), "fastpath", fastPathSummary(cfg, d.dp.FastPathStatus()),
		"routes_took", routeTime.Round(time.Millisecond), "metrics", metricsAt,
		"control", cfg.Control.Socket, "source", cfg.Mappings.Source, "bgp", cfg.BGP.Enabled, "checks", len(cfg.Health.Checks),
		"version", d.version, "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// newTranslator builds cfg's translator with the node's addresses.
func (d *daemon) newTranslator(cfg *config.Config) (*translator.Translator, error) {
	cfg.Translator.LocalAddrs = d.local
	return cfg.NewTranslator()
}

// openDevice creates the tun device, turning the tun package's errors into
// the operator's terms, and self-tests the offload device's offloads.
func openDevice(t config.Tun, log *slog.Logger, selfTestFailed *prometheus.GaugeVec) (tun.Device, error) {
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
		selfTestOffloads(dev, log, selfTestFailed)
		return dev, nil
	case errors.Is(err, tun.ErrNameTaken):
		return nil, nameTaken(t.Name, "")
	case errors.Is(err, tun.ErrUnsupported):
		return nil, fmt.Errorf("%w; set offload = false in [tun] for the plain device", err)
	}
	return nil, err
}

// offloadSelfTester is the offload device's self-test (tun.SelfTest).
type offloadSelfTester interface {
	SelfTest() (failed []tun.OffloadFailure, skipped []string, err error)
}

// selfTestOffloads runs the offload device's self-test before the device
// serves and logs what it found: an offload that failed is off from now on
// (map646_tun_offload_enabled shows it, and map646_tun_offload_selftest_failed
// in failed why), and the node works without it.
func selfTestOffloads(dev tun.Device, log *slog.Logger, failedMetric *prometheus.GaugeVec) {
	for _, name := range tun.OffloadNames {
		failedMetric.WithLabelValues(name).Set(0)
	}
	st, ok := dev.(offloadSelfTester)
	if !ok {
		return
	}
	failed, skipped, err := st.SelfTest()
	for _, f := range failed {
		failedMetric.WithLabelValues(f.Offload).Set(1)
		log.Warn("offload self-test failed: offload switched off", "device", dev.Name(), "offload", f.Offload, "err", f.Err)
	}
	for _, why := range skipped {
		log.Warn("offload self-test not run: the offloads stay on, untested", "device", dev.Name(), "reason", why)
	}
	if err != nil {
		log.Warn("offload self-test not run: the offloads stay on, untested", "device", dev.Name(), "err", err)
	}
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

// metricsTimeouts bound each connection to the metrics server: a client
// that sends its request slowly (slowloris), never reads the answer, or
// keeps a connection open and idle does not hold a goroutine, a file
// descriptor and a scrape's buffers for ever.
type metricsTimeouts struct {
	readHeader time.Duration // from the connection (or the first byte of a request) to the end of its header
	read       time.Duration // to the end of the request, body included (a scrape has none)
	write      time.Duration // from the end of the request header to the end of the answer, the scrape included
	idle       time.Duration // a kept-alive connection waiting for its next request
}

// defaultMetricsTimeouts leave a scrape of a large node (a million
// mappings, mapping_series of them as series) ample time, and close
// anything slower. Prometheus scrapes every 15 s to 1 m: an idle
// connection closed after 30 s costs at most a new connection per scrape.
var defaultMetricsTimeouts = metricsTimeouts{
	readHeader: 5 * time.Second, read: 10 * time.Second, write: 30 * time.Second, idle: 30 * time.Second,
}

// newMetricsServer returns the metrics HTTP server for h with the
// timeouts tm.
func newMetricsServer(h http.Handler, tm metricsTimeouts, errLog *log.Logger) *http.Server {
	return &http.Server{Handler: h, ErrorLog: errLog,
		ReadHeaderTimeout: tm.readHeader, ReadTimeout: tm.read, WriteTimeout: tm.write, IdleTimeout: tm.idle,
		MaxHeaderBytes: 16 << 10} // a scrape's header is a few hundred bytes
}

// serveMetrics serves /metrics on ln until stop.
func (d *daemon) serveMetrics(ln net.Listener) {
	d.registry = prometheus.NewRegistry()
	d.registry.MustRegister(d.collectors()...)

	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(d.registry, promhttp.HandlerOpts{
		ErrorLog: slog.NewLogLogger(d.log.Handler(), slog.LevelError),
		// A collector that fails (GoBGP's, between the speaker's close
		// and the metrics server's at shutdown) costs its own metrics,
		// not the scrape.
		ErrorHandling: promhttp.ContinueOnError,
	}))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		fmt.Fprintln(w, "map646: metrics at /metrics")
	})
	d.metrics = newMetricsServer(mux, defaultMetricsTimeouts, slog.NewLogLogger(d.log.Handler(), slog.LevelWarn))
	go func() {
		if err := d.metrics.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			d.log.Error("metrics server stopped", "err", err)
		}
	}()
}

// warnExposure logs a warning when cfg's file holds a password others may
// read.
func (d *daemon) warnExposure(cfg *config.Config) {
	if w := cfg.Exposure(); w != "" {
		d.log.Warn("the configuration exposes a secret", "config", cfg.File, "problem", w)
	}
}

// reload applies the configuration file anew and says how it went. The
// order keeps every packet translated by a table that knows its route: the
// routes of the mappings that go are removed before the table changes,
// those of the new mappings added after; then the speaker's neighbors and
// the checks change, and the announcements follow the new table.
func (d *daemon) reload() (string, error) {
	start := time.Now()
	count := func(result string) { d.reloads.record(result, time.Now()) }
	cfg, err := config.Load(d.path)
	var tr *translator.Translator
	if err == nil {
		tr, err = d.newTranslator(cfg)
	}
	if err != nil {
		count(reloadInvalid)
		d.log.Error("reload refused: the configuration is invalid; the running one is kept",
			"config", d.path, "err", strings.ReplaceAll(strings.TrimSpace(err.Error()), "\n", "; "))
		return "", fmt.Errorf("reload refused: the configuration is invalid; the running one is kept:\n%w", err)
	}
	// With the etcd source the table is etcd's, not the file's (which has
	// none): the reload keeps it and applies the rest of the file around
	// it; so does a reload that changes the source (a restart applies it).
	keepTable := d.source != nil || cfg.Mappings.Source != d.cfg.Mappings.Source
	var errRestart error
	if keys := d.keepRestartOnly(cfg); len(keys) > 0 {
		errRestart = &control.RestartNeeded{Keys: keys}
	}
	d.warnExposure(cfg)
	// A small difference from the running table is applied to it as a
	// delta: the counters stay in place, and the table just loaded is
	// dropped rather than kept beside the running one.
	cur := d.dp.Translator()
	delta, applied := 0, false
	if keepTable {
		tr, applied = tr.WithTable(cur.Table()), true
	} else if changes, ok := translator.Diff(cur.Table(), tr.Table(), maxReloadDelta); ok {
		if t, err := cur.Table().Apply(changes); err == nil {
			tr, delta, applied = tr.WithTable(t), len(changes), true
			d.changedSinceCompact(changes)
		}
	}
	cfg.ReleaseTable()

	// While the data plane is being recovered there are no routes: the
	// recovery installs those of the table in use, the new one.
	var add, del []netip.Prefix
	var errRemove, errAdd error
	if d.routes != nil {
		add, del = d.routes.Diff(dataplane.Prefixes(tr))
		errRemove = d.routes.Remove(del)
	}
	if applied {
		d.dp.Apply(tr, nil)
		// A reload may change settings a delta cannot carry: the fast path
		// is given the new translator whole, as a swap does.
		d.dp.ReloadFastPath(tr)
	} else {
		d.dp.Swap(tr)
		d.compactStale = true
	}
	d.dp.SetICMPLimit(cfg.Translator.ICMPErrorRate, cfg.Translator.ICMPErrorBurst)
	d.dp.SetPMTULimit(cfg.Translator.ICMPPMTUErrorRate, cfg.Translator.ICMPPMTUErrorBurst)
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
	d.tables.cfg.Store(cfg)
	errAnnounce := d.lc.setPlan(ctx, planOf(cfg, tr), timingOf(cfg.Node), drainFlag{cfg.Node.StateDir})
	if errAnnounce != nil {
		errAnnounce = fmt.Errorf("announce (retried): %w", errAnnounce)
	}
	d.compactLater(tr.Table())
	args := []any{"config", d.path, "mappings", tr.Table().Len(), "delta", delta, "as_delta", applied,
		"routes_added", len(add), "routes_removed", len(del), "took", time.Since(start).Round(time.Millisecond)}
	msg := fmt.Sprintf("reloaded %s: %d mappings, %d routes added, %d removed", d.path, tr.Table().Len(), len(add), len(del))
	if err := errors.Join(errRemove, errAdd, errBGP, errHealth, errAnnounce, errRestart); err != nil {
		count(reloadFailed)
		d.log.Error("reloaded, but not every change was applied", append(args, "err", err)...)
		return "", fmt.Errorf("%s, but not every change was applied: %w", msg, err)
	}
	count(reloadOK)
	d.log.Info("reloaded", args...)
	return msg, nil
}

// keepRestartOnly keeps in cfg what the running process was built around
// (config.RestartNeeded: the rest of [tun] but busy_poll, which a reload
// applies, [metrics], [log], [control], [node] state_dir, [bgp] added or
// removed, [mappings] source and [mappings.etcd]) and returns the keys that changed, which need a restart. The
// speaker's identity and listener are routing.Reconfigure's to refuse.
func (d *daemon) keepRestartOnly(cfg *config.Config) []string {
	changed := config.RestartNeeded(d.cfg, cfg)
	if len(changed) > 0 {
		d.log.Warn("changes that need a restart are not applied", "keys", strings.Join(changed, ", "))
	}
	busyPoll := cfg.Tun.BusyPoll
	cfg.Tun, cfg.Metrics, cfg.Log, cfg.Control = d.cfg.Tun, d.cfg.Metrics, d.cfg.Log, d.cfg.Control
	cfg.Mappings = d.cfg.Mappings
	cfg.Tun.BusyPoll = busyPoll
	cfg.Node.StateDir = d.cfg.Node.StateDir
	cfg.FastPath = d.cfg.FastPath
	if cfg.BGP.Enabled != d.cfg.BGP.Enabled {
		cfg.BGP = d.cfg.BGP
	}
	return changed
}

// shutdown takes the daemon down. This is the one place its order is
// written:
//  1. withdraw every announcement, so routers move the traffic to the other
//     nodes;
//  2. keep translating for [node] linger while they converge (a withdrawal
//     takes milliseconds to reach a router, but a slow one must not lose
//     packets; a second signal on sigs cuts the wait short). Meanwhile the
//     control socket's drain and undrain are still carried out, and a
//     running drain goes on; a reload is refused;
//  3. end a drain still running (its client hears where it stopped; the
//     node restarts drained) and close the control socket; stop the etcd
//     mapping source (its record's lease revoked: the node leaves
//     `status -cluster`; its cache written) and close its client;
//  4. close the speaker (a Cease to every peer), then the health monitor;
//  5. remove the kernel routes, so the kernel sends nothing more into the
//     device while the workers translate what is queued;
//  6. detach the kernel fast path (the routes are gone: nothing more comes
//     to it), stop the data plane, which closes the device (the kernel
//     deletes it with its last queue), and close a device a recovery is
//     creating once it is there (at most its self-test later); stop the
//     metrics server.
//
// Without [bgp], or with nothing announced, there is nothing to withdraw
// and no linger. It undoes whatever part of start was done, and returns
// everything that failed on the way.
func (d *daemon) shutdown(sigs <-chan os.Signal) error {
	if d.sd != nil {
		d.sd.stopping()
	}
	var errs []error
	ctx, cancel := context.WithTimeout(d.ctx, 10*time.Second)
	defer cancel()
	if d.lc != nil && d.bgp != nil { // 1 and 2
		n := len(d.bgp.Announced())
		if err := d.lc.withdrawAll(ctx); err != nil {
			errs = append(errs, fmt.Errorf("withdraw: %w", err))
		}
		if linger := d.cfg.Node.Linger; n > 0 && linger > 0 {
			d.log.Info("withdrawn; translating while routers converge", "prefixes", n, "linger", linger)
			d.linger(linger, sigs)
		}
	}
	if d.lc != nil { // 3
		d.lc.interruptDrain(context.Canceled)
	}
	if d.control != nil {
		d.control.Close()
	} else if d.controlLn != nil {
		d.controlLn.Close()
	}
	if d.status != nil {
		d.status.Close()
	} else if d.statusLn != nil {
		d.statusLn.Close()
	}
	if err := d.closeSource(); err != nil {
		errs = append(errs, err)
	}
	if d.bgp != nil { // 4
		if err := d.bgp.Close(ctx); err != nil {
			errs = append(errs, fmt.Errorf("bgp: %w", err))
		}
	}
	if d.stopHM != nil {
		d.stopHM()
		if d.hmDone != nil {
			<-d.hmDone
		}
	}
	if d.routes != nil { // 5
		n := len(d.routes.Installed())
		start := time.Now()
		if err := d.routes.RemoveAll(); err != nil {
			errs = append(errs, err)
		}
		d.log.Info("routes removed", "count", n-len(d.routes.Installed()), "took", time.Since(start).Round(time.Millisecond))
		d.routes.Close()
	}
	if d.dp != nil { // 6
		d.dp.DetachFastPath("map646 is stopping")
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
	if d.openedC != nil {
		if o := <-d.openedC; o.err == nil {
			o.dev.Close()
		}
	}
	if d.metrics != nil {
		ctx, cancel := context.WithTimeout(d.ctx, 2*time.Second)
		defer cancel()
		if err := d.metrics.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("metrics server: %w", err))
		}
	}
	if d.nsLock != nil { // last: the namespace is another map646's from now on
		d.nsLock.Close()
	}
	return errors.Join(errs...)
}

// statusGroup returns the gid of the group that gets the status socket:
// name's, or the process's own group when name is "".
func statusGroup(name string) (int, error) {
	if name == "" {
		return os.Getegid(), nil
	}
	g, err := user.LookupGroup(name)
	if err != nil {
		return 0, fmt.Errorf("[control] status_group %q: %w (create the group, e.g. groupadd --system %s, or name another)", name, err, name)
	}
	return strconv.Atoi(g.Gid)
}

// nsLockName is the abstract unix socket that a running map646 holds in
// its network namespace. Abstract socket names belong to the network
// namespace, and the kernel releases one with its process, however that
// ends: no stale lock file after a kill -9.
const nsLockName = "@map646"

// claimNamespace makes this map646 the only one in its network namespace,
// or says which one runs already. Two would share the namespace's routes of
// protocol 246, each removing the other's as leftovers at its start.
func claimNamespace() (*net.UnixListener, error) {
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: nsLockName, Net: "unix"})
	if errors.Is(err, syscall.EADDRINUSE) {
		return nil, fmt.Errorf("another map646 runs in this network namespace (it holds the abstract socket %s%s): two would remove each other's routes; run each in a namespace of its own", nsLockName, holderOf(nsLockName))
	}
	if err != nil {
		return nil, fmt.Errorf("claim the network namespace (abstract socket %s): %w", nsLockName, err)
	}
	return ln, nil
}

// holderOf names the process that holds the abstract unix socket name, as
// " by pid N", when this process can tell (its /proc/net/unix inode in
// another process's descriptors); "" otherwise.
func holderOf(name string) string {
	b, err := os.ReadFile("/proc/net/unix")
	if err != nil {
		return ""
	}
	var inode string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) == 8 && f[7] == name && f[3] == "00010000" { // __SO_ACCEPTCON: the listener
			inode = f[6]
			break
		}
	}
	if inode == "" {
		return ""
	}
	procs, _ := os.ReadDir("/proc")
	for _, p := range procs {
		fds, err := os.ReadDir("/proc/" + p.Name() + "/fd")
		if err != nil {
			continue
		}
		for _, fd := range fds {
			if l, err := os.Readlink("/proc/" + p.Name() + "/fd/" + fd.Name()); err == nil && l == "socket:["+inode+"]" {
				return " by pid " + p.Name()
			}
		}
	}
	return ""
}

// linger waits for d (shutdown's step 2) or a signal on sigs (nil: none),
// still serving the control socket's drain and undrain and a running
// drain's timers; nothing else changes the node while it stops.
func (d *daemon) linger(wait time.Duration, sigs <-chan os.Signal) {
	done := time.After(wait)
	for {
		select {
		case <-done:
			return
		case sig := <-sigs: // nil sigs: never
			d.log.Warn("linger cut short", "signal", sig.String())
			return
		case r := <-d.requests:
			if r.command == "reload" || r.command == "mapping" {
				r.answer("", errStopping)
			} else {
				d.lc.handle(d.ctx, r)
			}
		case now := <-d.lc.drainTick():
			d.lc.drainSample(d.ctx, now)
		case <-d.lc.drainTimer():
			d.lc.drainTimerFired(d.ctx)
		}
	}
}
