package config

import (
	"slices"
	"strings"
	"testing"
)

// TestFastPathMode: [fastpath] mode is off by default, takes off, auto and
// required, refuses anything else with the choices, is described, and a
// change of it needs a restart.
func TestFastPathMode(t *testing.T) {
	for _, tc := range []struct {
		conf string
		want FastPathMode
		line string
	}{
		{"", FastPathOff, "fast path            off: the tun path carries every packet"},
		{"[fastpath]\nmode = \"off\"\n", FastPathOff, "fast path            off"},
		{"[fastpath]\nmode = \"auto\"\n", FastPathAuto, "fast path            auto: attached at the tun device's egress if the kernel allows it"},
		{"[fastpath]\nmode = \"required\"\n", FastPathRequired, "fast path            required: attached at the tun device's egress, or map646 run refuses to start"},
	} {
		c, msg := parse(t, base+tc.conf)
		if msg != "" {
			t.Fatalf("%q: %s", tc.conf, msg)
		}
		if c.FastPath.Mode != tc.want {
			t.Errorf("%q: mode %v, want %v", tc.conf, c.FastPath.Mode, tc.want)
		}
		var b strings.Builder
		c.Describe(&b)
		if !strings.Contains(b.String(), tc.line) {
			t.Errorf("%q: the description has no line %q:\n%s", tc.conf, tc.line, b.String())
		}
	}
	for conf, want := range map[string]string{
		"[fastpath]\nmode = \"on\"\n":  `fastpath.mode = "on": must be one of "off", "auto", "required"`,
		"[fastpath]\nmode = true\n":    `fastpath.mode = true: must be one of`,
		"[fastpath]\nmod = \"auto\"\n": `mod`,
		"fastpath = \"auto\"\n[tun]\n": `fastpath`,
	} {
		_, msg := parse(t, base+conf)
		if !strings.Contains(msg, want) {
			t.Errorf("%q: %q, want a problem with %q", conf, msg, want)
		}
	}
	running, _ := parse(t, base)
	loaded, _ := parse(t, base+"[fastpath]\nmode = \"auto\"\n")
	if got := RestartNeeded(running, loaded); !slices.Equal(got, []string{"[fastpath] mode"}) {
		t.Errorf("RestartNeeded = %q, want [fastpath] mode", got)
	}
}
