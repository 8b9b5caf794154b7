package translator_test

// The proof that the fast path (translator/fastpath) is the same
// translator: every golden conformance input, every hostile packet and the
// fuzz corpora go through its eBPF program with BPF_PROG_TEST_RUN and
// through Translate with the same configuration and table. The program's
// output is Translate's one packet byte for byte, or the input untouched
// (punted to the tun path); a packet of the fast path's classes must be
// taken (fastpathtest.Eligible). The tests are here because the golden
// cases are.
//
// They need root and a kernel with BPF; under CI (labreq) they fail when
// they cannot run.

import (
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/map646/map646/lab/labreq"
	"github.com/map646/map646/translator"
	"github.com/map646/map646/translator/fastpath"
	"github.com/map646/map646/translator/fastpath/fastpathtest"
	"github.com/map646/map646/translator/packettest"
)

// fastPathHarness loads one program per configuration and table and runs
// packets through it.
type fastPathHarness struct {
	runner *fastpathtest.Runner
	mu     sync.Mutex
	loaded map[string]*fastPathUnit
	taken  int // packets the program translated
	punted int
	must   int // packets of the fast path's classes (all taken, or the test failed)
	// tooLarge counts the packets a test run cannot take (larger than
	// about 3.5 KB); the program punts them all under MTUs up to that.
	tooLarge int
}

type fastPathUnit struct {
	tr *translator.Translator
	fp *fastpath.FastPath
}

func newFastPathHarness(t testing.TB) *fastPathHarness {
	t.Helper()
	labreq.Root(t, "load eBPF programs")
	r, err := fastpathtest.NewRunner()
	if err != nil {
		labreq.Unavailable(t, "a tun device in a network namespace for the test runs: %v", err)
	}
	h := &fastPathHarness{runner: r, loaded: map[string]*fastPathUnit{}}
	t.Cleanup(func() {
		r.Close()
		for _, u := range h.loaded {
			u.fp.Close()
		}
	})
	return h
}

// unit returns the Go translator and the loaded program for a
// configuration change and table (nil: the base ones).
func (h *fastPathHarness) unit(t testing.TB, change func(*translator.Config), mappings []translator.Mapping) *fastPathUnit {
	t.Helper()
	tr := newTranslator(t, change, mappings)
	cfg := tr.Config()
	key := fmt.Sprintf("%+v %v %v", cfg, cfg.LocalAddrs.Prefixes(), mappings)
	h.mu.Lock()
	defer h.mu.Unlock()
	if u, ok := h.loaded[key]; ok {
		return &fastPathUnit{tr: tr, fp: u.fp}
	}
	fp, err := fastpath.Load(cfg, tr.Table(), fastpath.LinkEthernet)
	if err != nil {
		t.Fatalf("fastpath.Load: %v", err)
	}
	u := &fastPathUnit{tr: tr, fp: fp}
	h.loaded[key] = u
	return u
}

// check runs one packet through the program and the translator.
func (h *fastPathHarness) check(t testing.TB, u *fastPathUnit, name string, pkt []byte) {
	t.Helper()
	oc, err := h.runner.Compare(u.fp.Program(), u.tr, pkt)
	if errors.Is(err, fastpathtest.ErrTooLarge) {
		h.mu.Lock()
		h.tooLarge++
		h.mu.Unlock()
		return
	}
	if err != nil {
		t.Errorf("%s: %v", name, err)
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if oc.Taken {
		h.taken++
	} else {
		h.punted++
	}
	if oc.Eligible {
		h.must++
	}
}

// noInternalErrors fails the test when a loaded program counted one.
func (h *fastPathHarness) noInternalErrors(t testing.TB) {
	t.Helper()
	for _, u := range h.loaded {
		c, err := u.fp.Counters()
		if err != nil {
			t.Fatal(err)
		}
		if c["internal-error"] != 0 {
			t.Errorf("%d internal errors", c["internal-error"])
		}
	}
}

func (h *fastPathHarness) report(t testing.TB, what string) {
	t.Logf("%s: %d packets translated by the program, %d punted; %d of the fast path's classes, all translated; %d too large for a test run; %d programs loaded",
		what, h.taken, h.punted, h.must, h.tooLarge, len(h.loaded))
}

func TestFastPathConformance(t *testing.T) {
	h := newFastPathHarness(t)
	for _, cases := range conformanceCases {
		for _, c := range cases {
			h.check(t, h.unit(t, c.config, c.mappings), c.name, c.in)
		}
	}
	h.noInternalErrors(t)
	h.report(t, "golden cases")
	if h.must == 0 || h.taken != h.must {
		t.Errorf("%d packets taken, %d of the fast path's classes: want them equal and not zero", h.taken, h.must)
	}
}

func TestFastPathHostile(t *testing.T) {
	h := newFastPathHarness(t)
	for _, c := range hostileCases() {
		h.check(t, h.unit(t, c.config, nil), c.name, c.in)
	}
	h.noInternalErrors(t)
	h.report(t, "hostile cases")
	if h.taken != 0 {
		t.Errorf("%d hostile packets translated by the program; each is one Translate drops", h.taken)
	}
}

// TestFastPathPrefixes runs TCP, UDP and ICMP echo both ways under a pseudo
// prefix of every RFC 6052 length, and a packet to an address of the prefix
// whose u-octet is not zero (not one RFC 6052 builds: punted, and dropped
// by Translate).
func TestFastPathPrefixes(t *testing.T) {
	h := newFastPathHarness(t)
	for _, p := range []string{"3fff::/32", "3fff:100::/40", "3fff:122::/48", "3fff:122:300::/56", "3fff:122:344::/64", "3fff:122:344::/96", "64:ff9b::/96"} {
		prefix := netip.MustParsePrefix(p)
		u := h.unit(t, func(c *translator.Config) { c.PseudoPrefix = prefix }, nil)
		c6, ok := translator.EmbedIPv4(prefix, client4)
		if !ok {
			t.Fatalf("%v: %v cannot be embedded", prefix, client4)
		}
		in4 := packettest.IPv4{TTL: 64, Src: client4, Dst: server4}
		in6 := packettest.IPv6{Hop: 64, Src: server6, Dst: c6}
		tcp := packettest.TCP{Sport: 40000, Dport: 443, Seq: 1, Flags: packettest.ACK, Window: 512}
		data := []byte("prefix " + p)
		before := h.must
		for _, pkt := range [][]byte{
			packettest.UDP4(in4, 40000, 53, data), packettest.UDP6(in6, 53, 40000, data),
			packettest.TCP4(in4, tcp, data), packettest.TCP6(in6, tcp, data),
			packettest.ICMP4(in4, 8, 0, packettest.Rest16(7, 1), data), packettest.ICMP6(in6, 129, 0, packettest.Rest16(7, 1), data),
		} {
			h.check(t, u, p, pkt)
		}
		if h.must-before != 6 {
			t.Errorf("%v: %d of 6 packets of the fast path's classes", prefix, h.must-before)
		}
		if prefix.Bits() < 96 {
			a := c6.As16()
			a[8] = 1 // the u-octet
			in6.Dst = netip.AddrFrom16(a)
			h.check(t, u, p+" u-octet", packettest.UDP6(in6, 53, 40000, data))
		}
	}
	h.noInternalErrors(t)
	h.report(t, "RFC 6052 prefixes")
	if h.taken != h.must {
		t.Errorf("%d taken, %d of the fast path's classes", h.taken, h.must)
	}
}

// TestFastPathFuzzCorpus runs the committed corpora of the translator's
// fuzz targets: each input as the fuzz target fixes it (fix4, fix6, with
// its selector) and as it is, through the datacenter and the general SIIT
// configurations of FuzzTranslate4 and FuzzTranslate6; the super-packets
// of FuzzTranslateGSO as they are, through the base configuration.
func TestFastPathFuzzCorpus(t *testing.T) {
	h := newFastPathHarness(t)
	dc, siit := h.unit(t, nil, nil), h.unit(t, roundTripConfig, nil)
	n := 0
	for _, target := range []string{"FuzzTranslate4", "FuzzTranslate6", "FuzzTranslateGSO"} {
		files, err := filepath.Glob(filepath.Join("testdata", "fuzz", target, "*"))
		if err != nil || len(files) == 0 {
			t.Fatalf("corpus of %s: %d files, %v", target, len(files), err)
		}
		for _, f := range files {
			args := readCorpusFile(t, f)
			pkt := args[0].([]byte)
			name := target + "/" + filepath.Base(f)
			n++
			if target == "FuzzTranslateGSO" {
				h.check(t, dc, name, pkt)
				continue
			}
			fixed := fix4(pkt, args[1].(uint8))
			if target == "FuzzTranslate6" {
				fixed = fix6(pkt, args[1].(uint8))
			}
			for _, u := range []*fastPathUnit{dc, siit} {
				h.check(t, u, name, pkt)
				h.check(t, u, name+" fixed", fixed)
			}
		}
	}
	h.noInternalErrors(t)
	h.report(t, fmt.Sprintf("%d corpus files", n))
	if h.must == 0 {
		t.Error("no corpus packet of the fast path's classes")
	}
}

// FuzzFastPath runs random packets, fixed as FuzzTranslate4 and
// FuzzTranslate6 fix theirs, through the program and the translator.
func FuzzFastPath(f *testing.F) {
	seed(f, 4)
	seed(f, 6)
	h := newFastPathHarness(f)
	dc, siit := h.unit(f, nil, nil), h.unit(f, roundTripConfig, nil)
	f.Fuzz(func(t *testing.T, pkt []byte, sel uint8) {
		fixed := fix4(pkt, sel)
		if len(pkt) > 0 && pkt[0]>>4 == 6 {
			fixed = fix6(pkt, sel)
		}
		for _, u := range []*fastPathUnit{dc, siit} {
			h.check(t, u, "raw", pkt)
			h.check(t, u, "fixed", fixed)
		}
	})
}

// readCorpusFile parses a "go test fuzz v1" file: one Go literal per line,
// []byte("...") or a numeric conversion such as byte('x') or uint16(5).
func readCorpusFile(t *testing.T, path string) []any {
	t.Helper()
	text, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(text)), "\n")
	if len(lines) < 2 || lines[0] != "go test fuzz v1" {
		t.Fatalf("%s: not a fuzz corpus file", path)
	}
	var args []any
	for _, line := range lines[1:] {
		e, err := parser.ParseExpr(line)
		call, ok := e.(*ast.CallExpr)
		if err != nil || !ok || len(call.Args) != 1 {
			t.Fatalf("%s: %q: %v", path, line, err)
		}
		lit, ok := call.Args[0].(*ast.BasicLit)
		if !ok {
			t.Fatalf("%s: %q: not a literal", path, line)
		}
		typ := strings.TrimPrefix(line[:strings.IndexByte(line, '(')], "[]")
		var v any
		switch {
		case typ == "byte" && lit.Kind == token.STRING:
			s, err := strconv.Unquote(lit.Value)
			if err != nil {
				t.Fatalf("%s: %q: %v", path, line, err)
			}
			v = []byte(s)
		case lit.Kind == token.CHAR:
			r, _, _, err := strconv.UnquoteChar(lit.Value[1:len(lit.Value)-1], '\'')
			if err != nil {
				t.Fatalf("%s: %q: %v", path, line, err)
			}
			v = uint8(r)
		case lit.Kind == token.INT:
			n, err := strconv.ParseUint(lit.Value, 0, 64)
			if err != nil {
				t.Fatalf("%s: %q: %v", path, line, err)
			}
			v = uint8(n)
			if typ == "uint16" {
				v = uint16(n)
			}
		default:
			t.Fatalf("%s: %q: unknown literal", path, line)
		}
		args = append(args, v)
	}
	return args
}
