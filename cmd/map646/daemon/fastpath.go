package daemon

import (
	"fmt"
	"strings"

	"github.com/map646/map646/cmd/map646/control"
	"github.com/map646/map646/config"
	"github.com/map646/map646/translator/dataplane"
)

// attachFastPath attaches the kernel fast path to the data plane's device
// as [fastpath] mode asks, once the device exists (at start, and after a
// recovery re-created it). With "auto" a refusal is a warning and the tun
// path carries every packet; with "required" it is an error.
func (d *daemon) attachFastPath() error {
	mode := d.cfg.FastPath.Mode
	if mode == config.FastPathOff {
		d.dp.DetachFastPath(`[fastpath] mode = "off"`)
		return nil
	}
	err := d.dp.AttachFastPath()
	switch {
	case err == nil:
		return nil
	case mode == config.FastPathRequired:
		return fmt.Errorf(`[fastpath] mode = "required": %w`, err)
	}
	d.log.Warn(`the kernel fast path could not be attached ([fastpath] mode = "auto"); the tun path carries every packet`, "err", err)
	return nil
}

// fastPathSummary is the fast path's state in a word or a few, for the
// "started" log line.
func fastPathSummary(cfg *config.Config, st dataplane.FastPathStatus) string {
	switch {
	case st.Attached && st.Disabled != "":
		return "attached, punting every packet: " + st.Disabled
	case st.Attached:
		return "attached"
	}
	return fmt.Sprintf("%s, not attached", cfg.FastPath.Mode)
}

// fastPathStatusOf turns the data plane's fast path state into its status.
func fastPathStatusOf(mode config.FastPathMode, st dataplane.FastPathStatus) control.FastPathStatus {
	out := control.FastPathStatus{Mode: mode.String(), Attached: st.Attached, Why: st.Why, ProgramID: st.ProgramID,
		Disabled: st.Disabled, Translated: map[string]uint64{}, Punted: map[string]uint64{}}
	for name, v := range st.Counters {
		switch {
		case name == "internal-error":
			out.InternalErrors = v
		case strings.HasPrefix(name, "translated-"):
			out.Translated[strings.TrimPrefix(name, "translated-")] = v
		case strings.HasPrefix(name, "punt-") && v > 0:
			out.Punted[strings.TrimPrefix(name, "punt-")] = v
		}
	}
	return out
}
