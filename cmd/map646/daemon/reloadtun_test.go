package daemon

import (
	"bytes"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/map646/map646/config"
)

// TestKeepRestartOnly: a reload keeps the running [tun] but takes its
// busy_poll, and names (returns and logs) the [tun] keys that need a
// restart only when another key changed.
func TestKeepRestartOnly(t *testing.T) {
	running := config.Config{Tun: config.Tun{Name: "map646", MTU: 1500, Offload: true, TxQueueLen: 10000}}
	for _, tc := range []struct {
		name    string
		change  func(*config.Tun)
		restart []string
	}{
		{"busy_poll only", func(t *config.Tun) { t.BusyPoll = 5 * time.Millisecond }, nil},
		{"busy_poll and mtu", func(t *config.Tun) { t.BusyPoll = 5 * time.Millisecond; t.MTU = 9000 }, []string{"[tun] mtu"}},
		{"mtu and name", func(t *config.Tun) { t.MTU = 9000; t.Name = "m0" }, []string{"[tun] name", "[tun] mtu"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logs bytes.Buffer
			d := &daemon{cfg: &running, log: slog.New(slog.NewTextHandler(&logs, nil))}
			next := running
			tc.change(&next.Tun)
			restart := d.keepRestartOnly(&next)
			if !slices.Equal(restart, tc.restart) {
				t.Errorf("restart needed for %q, want %q", restart, tc.restart)
			}
			want := running.Tun
			want.BusyPoll = next.Tun.BusyPoll
			if next.Tun != want {
				t.Errorf("[tun] after reload %+v, want %+v", next.Tun, want)
			}
			warned := strings.Contains(logs.String(), "need a restart are not applied")
			if warned != (tc.restart != nil) || (warned && !strings.Contains(logs.String(), `keys="`+strings.Join(tc.restart, ", ")+`"`)) {
				t.Errorf("restart warning: %v, want one naming %q; log:\n%s", warned, tc.restart, logs.String())
			}
		})
	}
}
