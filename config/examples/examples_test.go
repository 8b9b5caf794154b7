// Package examples_test checks the configurations an operator copies:
// config/examples/minimal.toml (the README shows it) and the two-node
// deployment in config/examples/two-node (two map646 nodes and the router in
// front of them, as BIRD 2 and as FRR 8.4). Each file must pass its own
// program's check, the files must agree with one another, and the BIRD
// deployment must run (deploy_test.go), so that an example cannot rot
// while the code moves on.
package examples_test

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/map646/map646/config"
	"github.com/map646/map646/lab/labreq"
	"github.com/map646/map646/lab/netlab"
	"github.com/map646/map646/routing"
)

// readmeMarker is the line of README.md just before the fenced block that
// must equal minimal.toml.
const readmeMarker = "<!-- config/examples/minimal.toml, checked by config/examples/examples_test.go -->"

// TestREADMEShowsMinimalConfig proves that the minimal configuration the
// README shows is exactly config/examples/minimal.toml, the file
// TestExamplesPassCheck runs `map646 check` on.
func TestREADMEShowsMinimalConfig(t *testing.T) {
	readme := readFile(t, "../../README.md")
	want := readFile(t, "minimal.toml")
	got, err := blockAfter(readme, readmeMarker)
	if err != nil {
		t.Fatalf("README.md: %v", err)
	}
	if got != want {
		t.Errorf("README.md's minimal configuration differs from config/examples/minimal.toml: copy the file into the README's block\nREADME:\n%s\nfile:\n%s", got, want)
	}
}

// blockAfter returns the content of the first fenced code block after the
// line marker.
func blockAfter(text, marker string) (string, error) {
	_, after, ok := strings.Cut(text, marker+"\n")
	if !ok {
		return "", errors.New("no line " + marker)
	}
	fence, body, ok := strings.Cut(after, "\n")
	if !ok || !strings.HasPrefix(fence, "```") {
		return "", errors.New("the line after " + marker + " does not open a fenced code block")
	}
	body, _, ok = strings.Cut(body, "```")
	if !ok {
		return "", errors.New("the code block after " + marker + " is not closed")
	}
	return body, nil
}

func TestREADMEBlockAfter(t *testing.T) {
	for _, c := range []struct{ text, want, err string }{
		{text: "a\nM\n```toml\nx = 1\n```\nb\n", want: "x = 1\n"},
		{text: "M\n```\n```\n", want: ""},
		{text: "a\n```toml\nx = 1\n```\n", err: "no line M"},
		{text: "M\nx = 1\n", err: "does not open"},
		{text: "M\n```toml\nx = 1\n", err: "not closed"},
	} {
		got, err := blockAfter(c.text, "M")
		switch {
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("blockAfter(%q): error %v, want one with %q", c.text, err, c.err)
		case c.err == "" && (err != nil || got != c.want):
			t.Errorf("blockAfter(%q) = %q, %v; want %q", c.text, got, err, c.want)
		}
	}
}

// TestExamplesPassCheck runs the real `map646 check` on every example
// configuration: each must be valid and draw no warning (a warning in an
// example would teach operators to ignore warnings).
func TestExamplesPassCheck(t *testing.T) {
	bin := netlab.BuildMap646(t)
	for _, file := range []string{"minimal.toml", "two-node/tokyo.toml", "two-node/osaka.toml"} {
		t.Run(file, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			cmd := exec.Command(bin, "check", "-config", file)
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if err := cmd.Run(); err != nil {
				t.Fatalf("map646 check -config %s: %v\n%s%s", file, err, stdout.String(), stderr.String())
			}
			if stderr.Len() != 0 {
				t.Errorf("map646 check -config %s warns:\n%s", file, stderr.String())
			}
			if !strings.Contains(stdout.String(), file+": valid") {
				t.Errorf("map646 check -config %s does not say it is valid:\n%s", file, stdout.String())
			}
		})
	}
}

// TestTwoNodeFilesAgree checks that the four files of the two-node
// deployment describe the same network: both nodes serve the same table
// and pseudo prefix, each names the other as its partner at an address the
// other listens on, both peer with the same router, and the router's
// configurations (BIRD and FRR) have a session with every address the
// nodes listen on, in the nodes' AS, from the AS the nodes expect.
func TestTwoNodeFilesAgree(t *testing.T) {
	tokyo := load(t, "two-node/tokyo.toml")
	osaka := load(t, "two-node/osaka.toml")

	if tokyo.Translator.PseudoPrefix != osaka.Translator.PseudoPrefix {
		t.Errorf("pseudo prefixes differ: tokyo %s, osaka %s", tokyo.Translator.PseudoPrefix, osaka.Translator.PseudoPrefix)
	}
	if a, b := mappings(tokyo), mappings(osaka); !slices.Equal(a, b) || len(a) == 0 {
		t.Errorf("the nodes must serve the same, non-empty table: tokyo %v, osaka %v", a, b)
	}
	if tokyo.BGP.LocalAS != osaka.BGP.LocalAS {
		t.Errorf("local_as differs: tokyo %d, osaka %d", tokyo.BGP.LocalAS, osaka.BGP.LocalAS)
	}
	checkPartner(t, "tokyo", tokyo, "osaka", osaka)
	checkPartner(t, "osaka", osaka, "tokyo", tokyo)
	routersT, routerAS := routers(t, "tokyo", tokyo)
	routersO, routerASO := routers(t, "osaka", osaka)
	if !slices.Equal(routersT, routersO) || routerAS != routerASO {
		t.Errorf("the nodes peer with different routers: tokyo %v AS %d, osaka %v AS %d", routersT, routerAS, routersO, routerASO)
	}

	var nodeAddrs []string
	for _, c := range []*config.Config{tokyo, osaka} {
		for _, a := range c.BGP.ListenAddresses {
			nodeAddrs = append(nodeAddrs, a.String())
		}
	}
	slices.Sort(nodeAddrs)
	nodeAS := itoa(tokyo.BGP.LocalAS)

	bird := readFile(t, "two-node/bird.conf")
	birdNeighbors := submatches(bird, `(?m)^\s*neighbor (\S+) as (\d+);`)
	checkRouter(t, "bird.conf", birdNeighbors, nodeAddrs, nodeAS)
	if got := submatches(bird, `(?m)^\s*local as (\d+);`); len(got) != 1 || got[0][0] != itoa(routerAS) {
		t.Errorf("bird.conf: local as %v, the nodes expect AS %d", got, routerAS)
	}
	if got := submatches(bird, `(?m)^router id (\S+);`); len(got) != 1 || !slices.Contains(routersT, got[0][0]) {
		t.Errorf("bird.conf: router id %v is none of the router addresses the nodes peer with (%v)", got, routersT)
	}

	frr := readFile(t, "two-node/frr.conf")
	var frrNeighbors [][]string
	groupAS := map[string]string{}
	for _, m := range submatches(frr, `(?m)^ neighbor (\S+) remote-as (\d+)$`) {
		groupAS[m[0]] = m[1]
	}
	for _, m := range submatches(frr, `(?m)^ neighbor (\S+) peer-group (\S+)$`) {
		frrNeighbors = append(frrNeighbors, []string{m[0], groupAS[m[1]]})
	}
	checkRouter(t, "frr.conf", frrNeighbors, nodeAddrs, nodeAS)
	if got := submatches(frr, `(?m)^router bgp (\d+)$`); len(got) != 1 || got[0][0] != itoa(routerAS) {
		t.Errorf("frr.conf: router bgp %v, the nodes expect AS %d", got, routerAS)
	}
}

// checkRouter compares a router configuration's sessions (address, AS)
// with the nodes' listen addresses and AS.
func checkRouter(t *testing.T, file string, neighbors [][]string, nodeAddrs []string, nodeAS string) {
	t.Helper()
	var addrs []string
	for _, n := range neighbors {
		addrs = append(addrs, n[0])
		if n[1] != nodeAS {
			t.Errorf("%s: neighbor %s in AS %q, the nodes are AS %s", file, n[0], n[1], nodeAS)
		}
	}
	slices.Sort(addrs)
	if !slices.Equal(addrs, nodeAddrs) {
		t.Errorf("%s has sessions with %v, the nodes listen on %v", file, addrs, nodeAddrs)
	}
}

// checkPartner: a names b as its partner, at an address b listens on and
// in b's AS.
func checkPartner(t *testing.T, aName string, a *config.Config, bName string, b *config.Config) {
	t.Helper()
	var partners []routing.Neighbor
	for _, n := range a.BGP.Neighbors {
		if n.Role == routing.Partner {
			partners = append(partners, n)
		}
	}
	if len(partners) != 1 {
		t.Fatalf("%s has %d partners, want 1 (%s)", aName, len(partners), bName)
	}
	p := partners[0]
	if !slices.Contains(b.BGP.ListenAddresses, p.Address) || p.PeerAS != b.BGP.LocalAS {
		t.Errorf("%s's partner is %s AS %d; %s listens on %v in AS %d", aName, p.Address, p.PeerAS, bName, b.BGP.ListenAddresses, b.BGP.LocalAS)
	}
}

// routers returns the sorted addresses of c's router neighbors and their
// one AS.
func routers(t *testing.T, name string, c *config.Config) ([]string, uint32) {
	t.Helper()
	var addrs []string
	ases := map[uint32]bool{}
	var as uint32
	for _, n := range c.BGP.Neighbors {
		if n.Role == routing.Router {
			addrs = append(addrs, n.Address.String())
			ases[n.PeerAS], as = true, n.PeerAS
		}
	}
	if len(addrs) == 0 || len(ases) != 1 {
		t.Fatalf("%s: want router neighbors in one AS, have %v in %d ASes", name, addrs, len(ases))
	}
	slices.Sort(addrs)
	return addrs, as
}

func mappings(c *config.Config) []string {
	tab := c.Table()
	var out []string
	for i := range tab.Len() {
		m := tab.Mapping(i)
		out = append(out, m.IPv4.String()+" "+m.IPv6.String())
	}
	return out
}

func load(t *testing.T, file string) *config.Config {
	t.Helper()
	c, err := config.Load(file)
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return c
}

// submatches returns the submatches of every match of expr in s.
func submatches(s, expr string) [][]string {
	var out [][]string
	for _, m := range regexp.MustCompile(expr).FindAllStringSubmatch(s, -1) {
		out = append(out, m[1:])
	}
	return out
}

func itoa(n uint32) string { return strconv.FormatUint(uint64(n), 10) }

// TestBirdAcceptsBirdConf parses bird.conf with BIRD itself (bird -p), and
// a broken copy to prove the check can fail.
func TestBirdAcceptsBirdConf(t *testing.T) {
	bird := tool(t, "bird")
	rejects(t, "two-node/bird.conf", "merge paths on limit 16;", "merge paths on limit sixteen;",
		func(file string) *exec.Cmd { return exec.Command(bird, "-p", "-c", file) })
}

// TestFRRAcceptsFRRConf checks frr.conf with FRR's own parser: vtysh
// --dryrun reads the file with the commands of every FRR daemon and exits
// non-zero on one it does not know, without a running FRR. (bgpd --dryrun
// exits 0 whatever it reads.)
func TestFRRAcceptsFRRConf(t *testing.T) {
	vtysh := tool(t, "vtysh")
	rejects(t, "two-node/frr.conf", "maximum-paths 16", "maximum-paths sixteen",
		func(file string) *exec.Cmd { return exec.Command(vtysh, "--dryrun", "-f", file) })
}

// rejects runs check on file, which must pass, and on a copy with old
// replaced by bad, which must fail.
func rejects(t *testing.T, file, old, bad string, check func(file string) *exec.Cmd) {
	t.Helper()
	abs, err := filepath.Abs(file)
	if err != nil {
		t.Fatal(err)
	}
	if out, err := check(abs).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(check(abs).Args, " "), err, out)
	}
	text := readFile(t, file)
	if !strings.Contains(text, old) {
		t.Fatalf("%s no longer holds %q, which the test breaks to prove the check can fail", file, old)
	}
	broken := filepath.Join(t.TempDir(), filepath.Base(file))
	if err := os.WriteFile(broken, []byte(strings.Replace(text, old, bad, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := check(broken).CombinedOutput(); err == nil {
		t.Errorf("%s accepts a copy with %q: the check proves nothing\n%s", strings.Join(check(broken).Args, " "), bad, out)
	}
}

// tool returns the path of a router's command, installing its Debian
// package as root when it is missing (netlab.Need). Without root it ends
// the test through labreq: a skip, or a failure under CI.
func tool(t *testing.T, name string) string {
	t.Helper()
	for _, p := range []string{name, "/usr/sbin/" + name, "/usr/bin/" + name, "/sbin/" + name} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	if os.Geteuid() != 0 {
		labreq.Unavailable(t, "%s is not installed (Debian package %s) and only root can install it", name, netlab.Packages[name])
	}
	netlab.Need(t, name)
	path, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s installed but not found: %v", name, err)
	}
	return path
}

func readFile(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
