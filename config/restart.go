package config

import (
	"net/netip"
	"reflect"
	"slices"
	"strings"
)

// A reload applies the mappings, [translator], [bgp] neighbors and
// attributes, [health], [node] but state_dir, and [tun] busy_poll. What
// the running process was built around needs a restart: the device, the
// metrics listener, the logger, the control sockets, the state directory,
// the speaker itself (added or removed) and the speaker's identity and
// listener, and the mapping source ([mappings] source and [mappings.etcd]).

// restartKey is one key a reload cannot apply: its name as an operator
// writes it and whether it differs between two configurations.
type restartKey struct {
	name    string
	changed func(a, b *Config) bool
}

func differ[T comparable](get func(*Config) T) func(a, b *Config) bool {
	return func(a, b *Config) bool { return get(a) != get(b) }
}

// restartKeys are the keys a reload leaves as they run, section by
// section.
var restartKeys = []restartKey{
	{"[tun] name", differ(func(c *Config) string { return c.Tun.Name })},
	{"[tun] mtu", differ(func(c *Config) int { return c.Tun.MTU })},
	{"[tun] offload", differ(func(c *Config) bool { return c.Tun.Offload })},
	{"[tun] queues", differ(func(c *Config) int { return c.Tun.Queues })},
	{"[tun] txqueuelen", differ(func(c *Config) int { return c.Tun.TxQueueLen })},
	{"[metrics] listen", differ(func(c *Config) string { return c.Metrics.Listen })},
	{"[metrics] allow_remote", differ(func(c *Config) bool { return c.Metrics.AllowRemote })},
	{"[metrics] mapping_series", differ(func(c *Config) int { return c.Metrics.MappingSeries })},
	{"[log] format", differ(func(c *Config) bool { return c.Log.JSON })},
	{"[log] level", differ(func(c *Config) string { return c.Log.Level.String() })},
	{"[bgp] (added or removed)", differ(func(c *Config) bool { return c.BGP.Enabled })},
	// The speaker's identity and listener: routing.Reconfigure refuses
	// them, and with them the whole [bgp] change.
	{"[bgp] local_as", bgpDiffer(func(c *Config) uint32 { return c.BGP.LocalAS })},
	{"[bgp] router_id", bgpDiffer(func(c *Config) string { return c.BGP.RouterID.String() })},
	{"[bgp] listen_port", bgpDiffer(func(c *Config) int { return c.BGP.ListenPort })},
	{"[bgp] listen_addresses", func(a, b *Config) bool {
		return a.BGP.Enabled && b.BGP.Enabled && !sameAddrs(a, b)
	}},
	{"[bgp] grpc_socket", bgpDiffer(func(c *Config) string { return c.BGP.GRPCSocket })},
	{"[node] state_dir", differ(func(c *Config) string { return c.Node.StateDir })},
	// The etcd source runs for the process's life, its table with it.
	{"[mappings] source", differ(func(c *Config) string { return c.Mappings.Source })},
	{"[mappings.etcd]", func(a, b *Config) bool { return !reflect.DeepEqual(a.Mappings.Etcd, b.Mappings.Etcd) }},
	{"[control] socket", differ(func(c *Config) string { return c.Control.Socket })},
	{"[control] status_socket", differ(func(c *Config) string { return c.Control.StatusSocket })},
	{"[control] status_group", differ(func(c *Config) string { return c.Control.StatusGroup })},
}

// bgpDiffer is differ for a key of a speaker that runs before and after.
func bgpDiffer[T comparable](get func(*Config) T) func(a, b *Config) bool {
	d := differ(get)
	return func(a, b *Config) bool { return a.BGP.Enabled && b.BGP.Enabled && d(a, b) }
}

func sameAddrs(a, b *Config) bool {
	x, y := slices.Clone(a.BGP.ListenAddresses), slices.Clone(b.BGP.ListenAddresses)
	slices.SortFunc(x, netip.Addr.Compare)
	slices.SortFunc(y, netip.Addr.Compare)
	return slices.Equal(slices.Compact(x), slices.Compact(y))
}

// RestartNeeded lists the keys that differ between the running
// configuration and a loaded one and that a reload does not apply, as
// "[section] key", in the order of the configuration file. A section
// whose values differ where no key listed here does (a key added to the
// section but not to this list) is named whole, as "[section]": a change
// is never passed over in silence.
func RestartNeeded(running, loaded *Config) []string {
	var out []string
	for _, k := range restartKeys {
		if k.changed(running, loaded) {
			out = append(out, k.name)
		}
	}
	for _, s := range []struct {
		name   string
		a, b   any
		prefix string
	}{
		{"[tun]", withoutBusyPoll(running.Tun), withoutBusyPoll(loaded.Tun), "[tun] "},
		{"[metrics]", running.Metrics, loaded.Metrics, "[metrics] "},
		{"[log]", running.Log, loaded.Log, "[log] "},
		{"[control]", running.Control, loaded.Control, "[control] "},
	} {
		if !reflect.DeepEqual(s.a, s.b) && !slices.ContainsFunc(out, func(k string) bool { return strings.HasPrefix(k, s.prefix) }) {
			out = append(out, s.name)
		}
	}
	return out
}

// withoutBusyPoll is t without the one key of [tun] a reload applies.
func withoutBusyPoll(t Tun) Tun {
	t.BusyPoll = 0
	return t
}
