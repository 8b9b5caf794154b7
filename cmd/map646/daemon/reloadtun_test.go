package daemon

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/map646/map646/config"
)

// TestKeepRestartOnly: a reload keeps the running [tun] but takes its
// busy_poll, and warns about [tun] only when another key changed.
func TestKeepRestartOnly(t *testing.T) {
	running := config.Config{Tun: config.Tun{Name: "map646", MTU: 1500, Offload: true, TxQueueLen: 10000}}
	for _, tc := range []struct {
		name     string
		change   func(*config.Tun)
		warnsTun bool
	}{
		{"busy_poll only", func(t *config.Tun) { t.BusyPoll = 5 * time.Millisecond }, false},
		{"busy_poll and mtu", func(t *config.Tun) { t.BusyPoll = 5 * time.Millisecond; t.MTU = 9000 }, true},
		{"mtu only", func(t *config.Tun) { t.MTU = 9000 }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logs bytes.Buffer
			d := &daemon{cfg: &running, log: slog.New(slog.NewTextHandler(&logs, nil))}
			next := running
			tc.change(&next.Tun)
			d.keepRestartOnly(&next)
			want := running.Tun
			want.BusyPoll = next.Tun.BusyPoll
			if next.Tun != want {
				t.Errorf("[tun] after reload %+v, want %+v", next.Tun, want)
			}
			warned := strings.Contains(logs.String(), "need a restart") && strings.Contains(logs.String(), "sections=tun")
			if warned != tc.warnsTun {
				t.Errorf("restart warning for [tun]: %v, want %v; log:\n%s", warned, tc.warnsTun, logs.String())
			}
		})
	}
}
