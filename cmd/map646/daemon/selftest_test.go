package daemon

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/map646/map646/config"
	"github.com/map646/map646/lab/netlab"
	"github.com/map646/map646/translator/dataplane"
	"github.com/map646/map646/translator/tun"
)

// TestOffloadSelfTestFailure: when an offload fails the self-test at start
// (a hook corrupts the UDP-over-IPv6 super-packet it reads back), the
// device map646 opens has it off, and uso4 with it (the kernel takes UDP
// segmentation for both IP versions or neither), the log says so at WARN
// naming the offload and what failed, and map646_tun_offload_enabled
// shows both at 0, the others at 1 (map646_tun_offload_selftest_failed the
// reverse). (That the device still forwards without it is
// TestSelfTestFailureSwitchesOff in package tun.)
func TestOffloadSelfTestFailure(t *testing.T) {
	netlab.RequireRoot(t)
	ns := netlab.NewNS(t, "selftest")
	ns.Sysctl(t, "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1")
	dir := t.TempDir()
	cfg, err := config.Parse([]byte(stuckConfig+"\n[tun]\nname = \"m646o\"\noffload = true\n"), "test.toml", dir)
	if err != nil {
		t.Fatal(err)
	}
	tun.SetSelfTestHook(func(offload string, pkt []byte) {
		if offload == tun.OffloadUSO6 {
			pkt[60] ^= 1
		}
	})
	t.Cleanup(func() { tun.SetSelfTestHook(nil) })
	var logs bytes.Buffer
	var dev tun.Device
	selfTestFailed := newOffloadSelfTestMetric()
	if err := ns.Do(func() (err error) {
		dev, err = openDevice(cfg.Tun, slog.New(slog.NewJSONHandler(&logs, nil)), selfTestFailed)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer dev.Close()

	var warned, uso4 bool
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		t.Logf("log: %s", line)
		if m["level"] == "WARN" && m["msg"] == "offload self-test failed: offload switched off" && m["offload"] == "uso6" &&
			strings.Contains(fmt.Sprint(m["err"]), "came back changed: byte 60 ") {
			warned = true
		} else if m["level"] == "WARN" && m["offload"] == "uso4" && strings.Contains(fmt.Sprint(m["err"]), "switched off with uso6") {
			uso4 = true // the kernel has UDP segmentation for both versions or neither
		} else {
			t.Errorf("unexpected log line %s", line)
		}
	}
	if !warned || !uso4 {
		t.Errorf("WARN lines: uso6 and what failed %v, uso4 switched off with it %v", warned, uso4)
	}

	tr, err := cfg.NewTranslator()
	if err != nil {
		t.Fatal(err)
	}
	dp := dataplane.New(tr, dev, dataplane.Options{ICMPErrorRate: cfg.Translator.ICMPErrorRate, ICMPErrorBurst: cfg.Translator.ICMPErrorBurst})
	defer dp.Close()
	reg := prometheus.NewRegistry()
	reg.MustRegister(dp.Collector(0), selfTestFailed)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]map[string]float64{}
	for _, mf := range mfs {
		got[mf.GetName()] = map[string]float64{}
		for _, m := range mf.GetMetric() {
			if len(m.GetLabel()) == 1 {
				got[mf.GetName()][m.GetLabel()[0].GetValue()] = m.GetGauge().GetValue()
			}
		}
	}
	want := map[string]float64{"csum": 1, "tso4": 1, "tso6": 1, "uso4": 0, "uso6": 0}
	if g := got["map646_tun_offload_enabled"]; fmt.Sprint(g) != fmt.Sprint(want) {
		t.Errorf("map646_tun_offload_enabled %v, want %v", g, want)
	}
	want = map[string]float64{"csum": 0, "tso4": 0, "tso6": 0, "uso4": 1, "uso6": 1}
	if g := got["map646_tun_offload_selftest_failed"]; fmt.Sprint(g) != fmt.Sprint(want) {
		t.Errorf("map646_tun_offload_selftest_failed %v, want %v", g, want)
	}
}
