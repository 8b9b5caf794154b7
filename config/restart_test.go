package config

import (
	"reflect"
	"slices"
	"strings"
	"testing"
)

// TestRestartNeeded: a reload's restart-only changes are named key by
// key, in file order; what a reload applies is not named.
func TestRestartNeeded(t *testing.T) {
	running, msg := parse(t, bgpBase+neighbor0)
	if msg != "" {
		t.Fatal(msg)
	}
	for _, tc := range []struct {
		name, conf string
		want       []string
	}{
		{"nothing changed", bgpBase + neighbor0, nil},
		{"reloadable only", bgpBase + "med = 50\n" + neighbor0 + "hold_time = \"30s\"\n" +
			"[tun]\nbusy_poll = \"50us\"\n[node]\nlinger = \"1s\"\n" +
			"[[mapping]]\nipv4 = \"198.51.100.10\"\nipv6 = \"2001:db8:1::10\"\n", nil},
		{"tun, metrics, log", bgpBase + neighbor0 + "[tun]\nmtu = 1400\nbusy_poll = \"50us\"\n[metrics]\nlisten = \"127.0.0.1:9999\"\n[log]\nlevel = \"debug\"\n",
			[]string{"[tun] mtu", "[metrics] listen", "[log] level"}},
		{"control and state_dir", bgpBase + neighbor0 + "[node]\nstate_dir = \"/srv/map646\"\n[control]\nsocket = \"/run/x.sock\"\nstatus_socket = \"/run/s.sock\"\n",
			[]string{"[node] state_dir", "[control] socket", "[control] status_socket"}},
		{"bgp removed", base, []string{"[bgp] (added or removed)"}},
		{"mapping source", bgpBase + neighbor0 + "[mappings]\nsource = \"etcd\"\n[mappings.etcd]\nendpoints = [\"https://192.0.2.50:2379\"]\n",
			[]string{"[mappings] source", "[mappings.etcd]"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			loaded, msg := parse(t, tc.conf)
			if msg != "" {
				t.Fatal(msg)
			}
			if got := RestartNeeded(running, loaded); !slices.Equal(got, tc.want) {
				t.Errorf("RestartNeeded = %q, want %q", got, tc.want)
			}
		})
	}
	// The speaker's identity and listener.
	loaded, msg := parse(t, base+`[bgp]
local_as = 64999
router_id = "192.0.2.3"
listen_port = 1179
`+neighbor0)
	if msg != "" {
		t.Fatal(msg)
	}
	if got, want := RestartNeeded(running, loaded), []string{"[bgp] local_as", "[bgp] router_id", "[bgp] listen_port"}; !slices.Equal(got, want) {
		t.Errorf("speaker identity: RestartNeeded = %q, want %q", got, want)
	}
}

// TestRestartNeededEveryField: every field of the restart-only sections
// but [tun] busy_poll is named by a key of its own when it changes; a
// field added to one of them without a key in restartKeys fails here
// (RestartNeeded would name only its section).
func TestRestartNeededEveryField(t *testing.T) {
	running, msg := parse(t, base)
	if msg != "" {
		t.Fatal(msg)
	}
	for _, sec := range []struct {
		name  string
		field func(*Config) reflect.Value
	}{
		{"[tun]", func(c *Config) reflect.Value { return reflect.ValueOf(&c.Tun).Elem() }},
		{"[metrics]", func(c *Config) reflect.Value { return reflect.ValueOf(&c.Metrics).Elem() }},
		{"[log]", func(c *Config) reflect.Value { return reflect.ValueOf(&c.Log).Elem() }},
		{"[control]", func(c *Config) reflect.Value { return reflect.ValueOf(&c.Control).Elem() }},
	} {
		typ := sec.field(running).Type()
		for i := range typ.NumField() {
			f := typ.Field(i)
			if sec.name == "[tun]" && f.Name == "BusyPoll" {
				continue // a reload applies it
			}
			loaded := *running
			v := sec.field(&loaded).Field(i)
			switch v.Kind() {
			case reflect.String:
				v.SetString(v.String() + "x")
			case reflect.Bool:
				v.SetBool(!v.Bool())
			case reflect.Int, reflect.Int64:
				v.SetInt(v.Int() + 4)
			default:
				t.Fatalf("%s %s: a field of kind %s; teach this test to change it", sec.name, f.Name, v.Kind())
			}
			got := RestartNeeded(running, &loaded)
			if len(got) != 1 || !strings.HasPrefix(got[0], sec.name+" ") {
				t.Errorf("%s field %s changed: RestartNeeded = %q, want one key of %s", sec.name, f.Name, got, sec.name)
			}
		}
	}
}
