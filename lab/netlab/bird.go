package netlab

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/map646/map646/lab/poll"
)

// BIRD 2 (Debian package bird2) as a router in a namespace: the upstream
// and backend routers of the routing lab. Each instance has its own
// configuration file, control socket and PID file in a temporary directory,
// so that any number of them run side by side; birdc talks to one through
// its socket (-s), from the root namespace (the socket is a file).

// Bird is `bird -f` in a namespace.
type Bird struct {
	*Proc
	NS         *NS
	ConfigPath string
	Socket     string // birdc -s Socket
}

// StartBird writes conf to a file, starts BIRD with it in ns (in the
// foreground, stopped by PID at cleanup) and waits (10 s at most) until it
// has started. A line "log stderr all;" is put in front of conf: BIRD's log
// is the Proc's output (it says when BIRD is up, and shows why a session
// failed), printed when t fails.
func StartBird(t TB, ns *NS, conf string) *Bird {
	t.Helper()
	Need(t, "bird", "birdc")
	dir := t.TempDir()
	b := &Bird{NS: ns, ConfigPath: filepath.Join(dir, "bird.conf"), Socket: filepath.Join(dir, "bird.ctl")}
	b.writeConfig(t, conf)
	b.Proc = ns.Start(t, "bird", "-f", "-c", b.ConfigPath, "-s", b.Socket, "-P", filepath.Join(dir, "bird.pid"))
	b.LogOnFailure(t, "BIRD log ("+ns.Role+")")
	b.WaitLine(t, 0, 10*time.Second, func(l string) bool { return strings.Contains(l, "<INFO> Started") })
	return b
}

func (b *Bird) writeConfig(t TB, conf string) {
	t.Helper()
	if err := os.WriteFile(b.ConfigPath, []byte("log stderr all;\n"+conf), 0o644); err != nil {
		t.Fatalf("netlab: %v", err)
	}
}

// Configure replaces BIRD's configuration with conf and applies it
// (birdc configure); a refused configuration fails t with BIRD's answer.
func (b *Bird) Configure(t TB, conf string) {
	t.Helper()
	b.writeConfig(t, conf)
	out := b.Cmd(t, "configure")
	if !strings.Contains(out, "Reconfigured") && !strings.Contains(out, "Reconfiguration in progress") {
		t.Fatalf("netlab: BIRD in %s refused the configuration:\n%s", b.NS.Role, out)
	}
}

// Cmd runs `birdc -s SOCKET ARGS...` and returns its output; a failure fails
// t with the output.
func (b *Bird) Cmd(t TB, args ...string) string {
	t.Helper()
	out, err := b.birdc(args...)
	if err != nil {
		t.Fatalf("netlab: birdc (%s) %s: %v\n%s", b.NS.Role, strings.Join(args, " "), err, out)
	}
	return out
}

func (b *Bird) birdc(args ...string) (string, error) {
	out, err := command(DefaultTimeout, nil, "birdc", append([]string{"-s", b.Socket}, args...)...)
	return string(out), err
}

// BirdProtocol is one protocol as `birdc show protocols all NAME` shows it.
type BirdProtocol struct {
	Name, Proto, State string // State: up, down, start, stop
	Info               string // the last column: BGP's state (Established, Active, ...) or an error
	BGPState           string // "BGP state:" of a BGP protocol (Established, Idle, Connect, ...)
	LastError          string // "Last error:", when BIRD shows one
	Raw                string // BIRD's whole answer
}

// Established tells whether p is a BGP session in state Established.
func (p BirdProtocol) Established() bool { return p.BGPState == "Established" }

// Protocol returns the state of protocol name; an unknown name fails t.
func (b *Bird) Protocol(t TB, name string) BirdProtocol {
	t.Helper()
	p, err := b.protocol(name)
	if err != nil {
		t.Fatalf("netlab: BIRD in %s: %v", b.NS.Role, err)
	}
	return p
}

func (b *Bird) protocol(name string) (BirdProtocol, error) {
	out, err := b.birdc("show", "protocols", "all", name)
	if err != nil {
		return BirdProtocol{}, fmt.Errorf("birdc show protocols all %s: %v\n%s", name, err, out)
	}
	p, ok := ParseBirdProtocol(out, name)
	if !ok {
		return p, fmt.Errorf("no protocol %q in:\n%s", name, out)
	}
	return p, nil
}

// ParseBirdProtocol reads protocol name from the output of `birdc show
// protocols all NAME`.
func ParseBirdProtocol(out, name string) (BirdProtocol, bool) {
	p := BirdProtocol{Raw: out}
	found := false
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) >= 5 && f[0] == name && !found:
			// Name Proto Table State Since [Info...]; Since is one field
			// ("20:54:18.489") or two when BIRD adds the date.
			found = true
			p.Name, p.Proto, p.State = f[0], f[1], f[3]
			rest := f[5:]
			if len(rest) > 0 && strings.Count(f[4], "-") == 2 && strings.Contains(rest[0], ":") {
				rest = rest[1:]
			}
			p.Info = strings.Join(rest, " ")
		case found && strings.HasPrefix(strings.TrimSpace(line), "BGP state:"):
			p.BGPState = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(line), "BGP state:"))
		case found && strings.HasPrefix(strings.TrimSpace(line), "Last error:"):
			p.LastError = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(line), "Last error:"))
		}
	}
	return p, found
}

// birdPoll is how often a wait asks BIRD (birdc): its state has no event
// to wait on from outside.
const birdPoll = 50 * time.Millisecond

// WaitProtocol waits until protocol name satisfies cond, polling BIRD, and
// returns it; after timeout it fails t with BIRD's last answer.
func (b *Bird) WaitProtocol(t TB, name string, timeout time.Duration, what string, cond func(BirdProtocol) bool) BirdProtocol {
	t.Helper()
	var last BirdProtocol
	var lastErr error
	ok := poll.Until(timeout, birdPoll, func() bool {
		last, lastErr = b.protocol(name)
		return lastErr == nil && cond(last)
	})
	if !ok {
		if lastErr != nil {
			t.Fatalf("netlab: BIRD in %s: protocol %s not %s within %v: %v", b.NS.Role, name, what, timeout, lastErr)
		}
		t.Fatalf("netlab: BIRD in %s: protocol %s not %s within %v; BIRD says:\n%s", b.NS.Role, name, what, timeout, last.Raw)
	}
	return last
}

// WaitEstablished waits until BGP protocol name is Established.
func (b *Bird) WaitEstablished(t TB, name string, timeout time.Duration) BirdProtocol {
	t.Helper()
	return b.WaitProtocol(t, name, timeout, "Established", BirdProtocol.Established)
}

// BirdRoute is what BIRD's table holds for one prefix: every route (path)
// to it, the best one first as BIRD prints them.
type BirdRoute struct {
	Prefix netip.Prefix
	Paths  []BirdPath
	Raw    string // BIRD's answer
}

// Present tells whether BIRD has any route to the prefix.
func (r BirdRoute) Present() bool { return len(r.Paths) > 0 }

// From returns the paths learned from protocol proto.
func (r BirdRoute) From(proto string) []BirdPath {
	var out []BirdPath
	for _, p := range r.Paths {
		if p.Protocol == proto {
			out = append(out, p)
		}
	}
	return out
}

// Best returns the path BIRD marked as best (*), and false if none is.
func (r BirdRoute) Best() (BirdPath, bool) {
	for _, p := range r.Paths {
		if p.Best {
			return p, true
		}
	}
	return BirdPath{}, false
}

// BirdPath is one route of BIRD's table.
type BirdPath struct {
	Type       string // unicast, blackhole, unreachable, ...
	Protocol   string // the protocol that brought it (the BGP session's name)
	Best       bool
	Preference int
	NextHops   []NextHop         // "via ADDR on DEV" lines (several for multipath), or "dev DEV"
	Attrs      map[string]string // "BGP.med" -> "100", "Type" -> "BGP univ", ...
}

// MED returns BGP.med, and false when the route has none.
func (p BirdPath) MED() (uint32, bool) {
	v, ok := p.Attrs["BGP.med"]
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseUint(v, 10, 32)
	return uint32(n), err == nil
}

// Communities returns BGP.community as "ASN:VALUE" strings ("65535:0").
func (p BirdPath) Communities() []string {
	var out []string
	for _, c := range strings.Fields(p.Attrs["BGP.community"]) {
		out = append(out, strings.NewReplacer("(", "", ")", "", ",", ":").Replace(c))
	}
	return out
}

// HasCommunity tells whether BGP.community holds c ("65535:0").
func (p BirdPath) HasCommunity(c string) bool {
	for _, have := range p.Communities() {
		if have == c {
			return true
		}
	}
	return false
}

// NextHop is one next hop of a route: a gateway (invalid for a device
// route) and the device.
type NextHop struct {
	Via netip.Addr
	Dev string
}

func (h NextHop) String() string {
	if !h.Via.IsValid() {
		return "dev " + h.Dev
	}
	return "via " + h.Via.String() + " dev " + h.Dev
}

// Route returns BIRD's routes to exactly prefix (`birdc show route PREFIX
// all`); an absent prefix is a BirdRoute without paths.
func (b *Bird) Route(t TB, prefix string) BirdRoute {
	t.Helper()
	r, err := b.route(prefix)
	if err != nil {
		t.Fatalf("netlab: BIRD in %s: %v", b.NS.Role, err)
	}
	return r
}

// TryRoute is Route without a TB: for a goroutine that watches BIRD while
// the test does something else.
func (b *Bird) TryRoute(prefix string) (BirdRoute, error) { return b.route(prefix) }

func (b *Bird) route(prefix string) (BirdRoute, error) {
	pfx, err := netip.ParsePrefix(prefix)
	if err != nil {
		return BirdRoute{}, fmt.Errorf("route %q: not a prefix: %v", prefix, err)
	}
	out, err := b.birdc("show", "route", pfx.String(), "all")
	if err != nil && !strings.Contains(out, "Network not found") {
		return BirdRoute{}, fmt.Errorf("birdc show route %s all: %v\n%s", pfx, err, out)
	}
	return ParseBirdRoute(out, pfx), nil
}

// ParseBirdRoute reads the routes to prefix from the output of `birdc show
// route PREFIX all`.
func ParseBirdRoute(out string, prefix netip.Prefix) BirdRoute {
	r := BirdRoute{Prefix: prefix, Raw: out}
	in := false // inside the routes of prefix
	var cur *BirdPath
	for _, line := range strings.Split(out, "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		if !strings.HasPrefix(line, "\t") {
			// A route line: "PREFIX TYPE [PROTO TIME] * (PREF) ...", or
			// the same without PREFIX (indented by spaces) for the next
			// path to the same prefix; or a header ("Table master4:").
			f := strings.Fields(line)
			if !strings.HasPrefix(line, " ") {
				p, err := netip.ParsePrefix(f[0])
				in = err == nil && p == prefix
				f = f[1:]
			}
			cur = nil
			if !in || len(f) < 2 || !strings.HasPrefix(f[1], "[") {
				continue
			}
			r.Paths = append(r.Paths, parsePathLine(f))
			cur = &r.Paths[len(r.Paths)-1]
			continue
		}
		if cur == nil {
			continue
		}
		l := strings.TrimSpace(line)
		f := strings.Fields(l)
		switch {
		case f[0] == "via" && len(f) >= 2:
			h := NextHop{}
			h.Via, _ = netip.ParseAddr(f[1])
			if len(f) >= 4 && f[2] == "on" {
				h.Dev = f[3]
			}
			cur.NextHops = append(cur.NextHops, h)
		case f[0] == "dev" && len(f) >= 2:
			cur.NextHops = append(cur.NextHops, NextHop{Dev: f[1]})
		default:
			if k, v, ok := strings.Cut(l, ":"); ok {
				cur.Attrs[strings.TrimSpace(k)] = strings.TrimSpace(v)
			}
		}
	}
	return r
}

// parsePathLine reads "TYPE [PROTO TIME...] [*] (PREF) ..." (the prefix
// already taken off).
func parsePathLine(f []string) BirdPath {
	p := BirdPath{Type: f[0], Attrs: map[string]string{}}
	p.Protocol = strings.TrimPrefix(f[1], "[")
	for _, w := range f[2:] {
		switch {
		case w == "*":
			p.Best = true
		case strings.HasPrefix(w, "(") && strings.HasSuffix(w, ")"):
			if n, err := strconv.Atoi(strings.Trim(w, "()")); err == nil && p.Preference == 0 {
				p.Preference = n
			}
		}
	}
	return p
}

// WaitRoute waits until BIRD's routes to prefix satisfy cond (what says
// what is waited for, in the failure message), polling BIRD, and returns
// them; after timeout it fails t with BIRD's last answer.
func (b *Bird) WaitRoute(t TB, prefix string, timeout time.Duration, what string, cond func(BirdRoute) bool) BirdRoute {
	t.Helper()
	var last BirdRoute
	var lastErr error
	ok := poll.Until(timeout, birdPoll, func() bool {
		last, lastErr = b.route(prefix)
		return lastErr == nil && cond(last)
	})
	if !ok {
		if lastErr != nil {
			t.Fatalf("netlab: BIRD in %s: route %s: %s not met within %v: %v", b.NS.Role, prefix, what, timeout, lastErr)
		}
		t.Fatalf("netlab: BIRD in %s: route %s: %s not met within %v; BIRD says:\n%s", b.NS.Role, prefix, what, timeout, last.Raw)
	}
	return last
}

// WaitRouteAbsent waits until BIRD has no route to prefix.
func (b *Bird) WaitRouteAbsent(t TB, prefix string, timeout time.Duration) {
	t.Helper()
	b.WaitRoute(t, prefix, timeout, "absent", func(r BirdRoute) bool { return !r.Present() })
}

// ipNet converts a prefix for the netlink package.
func ipNet(p netip.Prefix) *net.IPNet {
	p = p.Masked()
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}
