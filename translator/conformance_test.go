package translator_test

// Golden tests, one or more per row of the conformance checklist,
// CONFORMANCE.md in this directory. Each case is named after its row id,
// builds its own input with packettest, and every packet the translator
// emits is checked by packettest.Check, an independent parser that
// recomputes every checksum from scratch.

import (
	"net/netip"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/map646/map646/translator"
	"github.com/map646/map646/translator/packettest"
)

// checklistRow matches a row of a checklist table: "| A1 | rule | source |".
var checklistRow = regexp.MustCompile(`(?m)^\| ([A-Z][0-9]+) \|`)

// conformanceRows returns every row id of CONFORMANCE.md, in order.
// TestTranslate fails when a row has no case, so a row cannot be forgotten
// silently, nor a case name a row the checklist does not have.
func conformanceRows(t *testing.T) []string {
	t.Helper()
	text, err := os.ReadFile("CONFORMANCE.md")
	if err != nil {
		t.Fatalf("the checklist: %v", err)
	}
	var rows []string
	for _, m := range checklistRow.FindAllStringSubmatch(string(text), -1) {
		if slices.Contains(rows, m[1]) {
			t.Errorf("CONFORMANCE.md: row %s is listed twice", m[1])
		}
		rows = append(rows, m[1])
	}
	if len(rows) == 0 {
		t.Fatal("CONFORMANCE.md has no rows")
	}
	return rows
}

// Addresses of the base configuration, as in config/example.toml.
var (
	pseudo   = netip.MustParsePrefix("64:ff9b::/96")
	own4     = netip.MustParseAddr("192.0.2.1")
	own6     = netip.MustParseAddr("2001:db8:64::1")
	pool6791 = netip.MustParseAddr("203.0.113.1")

	client4  = netip.MustParseAddr("192.0.2.7")         // an IPv4 client
	client6  = netip.MustParseAddr("64:ff9b::c000:207") // ... as the IPv6 side sees it
	server4  = netip.MustParseAddr("198.51.100.10")     // a server's public IPv4 address
	server6  = netip.MustParseAddr("2001:db8:1::10")    // ... and its IPv6 address
	server4b = netip.MustParseAddr("198.51.100.11")
	server6b = netip.MustParseAddr("2001:db8:1::11")
	router6  = netip.MustParseAddr("2001:db8:ff::1") // a datacenter router, not mapped
)

var baseMappings = []translator.Mapping{
	{IPv4: netip.MustParsePrefix("198.51.100.10/32"), IPv6: netip.MustParsePrefix("2001:db8:1::10/128")},
	{IPv4: netip.MustParsePrefix("198.51.100.11/32"), IPv6: netip.MustParsePrefix("2001:db8:1::11/128")},
	{IPv4: netip.MustParsePrefix("198.51.100.16/28"), IPv6: netip.MustParsePrefix("2001:db8:2::/124")},
}

func baseConfig() translator.Config {
	return translator.Config{
		PseudoPrefix:  pseudo,
		Policy:        translator.PolicyDatacenter,
		Hairpin:       translator.HairpinIntrinsic,
		IPv4Addr:      own4,
		IPv6Addr:      own6,
		RFC6791Pool:   []netip.Addr{pool6791},
		LowestIPv6MTU: 1280,
		IPv6MTU:       1500,
		IPv4MTU:       1500,
		ICMPErrors:    true,
	}
}

// output is one emitted packet: its bytes and the independent parse.
type output struct {
	Raw []byte
	P   *packettest.Packet
}

// conformanceCase is one golden test. name starts with the row id.
type conformanceCase struct {
	name     string
	config   func(*translator.Config) // optional change to the base config
	mappings []translator.Mapping     // nil: baseMappings
	in       []byte                   // the input packet
	verdict  translator.Verdict
	reason   translator.Reason                // asserted for Drop and ICMPError
	check    func(t *testing.T, out []output) // assertions on the outputs; nil only for drops
}

// conformanceCases is filled by the conformance_*_test.go files.
var conformanceCases [][]conformanceCase

func TestTranslate(t *testing.T) {
	covered := map[string]bool{}
	n := 0
	for _, cases := range conformanceCases {
		for _, c := range cases {
			n++
			row, _, _ := strings.Cut(c.name, "-")
			covered[row] = true
			t.Run(c.name, func(t *testing.T) { runCase(t, c) })
		}
	}
	if n == 0 {
		t.Fatal("no conformance cases registered")
	}
	rows := conformanceRows(t)
	for _, row := range rows {
		if !covered[row] {
			t.Errorf("conformance row %s has no test case", row)
		}
	}
	for row := range covered {
		if !slices.Contains(rows, row) {
			t.Errorf("case names unknown conformance row %q", row)
		}
	}
}

func newTranslator(t testing.TB, change func(*translator.Config), mappings []translator.Mapping) *translator.Translator {
	t.Helper()
	cfg := baseConfig()
	if change != nil {
		change(&cfg)
	}
	if mappings == nil {
		mappings = baseMappings
	}
	table, err := translator.NewTable(mappings)
	if err != nil {
		t.Fatalf("NewTable: %v", err)
	}
	tr, err := translator.New(cfg, table)
	if err != nil {
		t.Fatalf("translator.New: %v", err)
	}
	return tr
}

func runCase(t *testing.T, c conformanceCase) {
	t.Helper()
	tr := newTranslator(t, c.config, c.mappings)
	in := slices.Clone(c.in)
	o := translator.NewOut()
	res := tr.Translate(in, o)
	if !slices.Equal(in, c.in) {
		t.Fatal("Translate modified its input")
	}
	if res.Verdict != c.verdict {
		t.Fatalf("verdict %v (reason %q), want %v", res.Verdict, res.Reason, c.verdict)
	}
	if c.verdict != translator.Forward && res.Reason != c.reason {
		t.Fatalf("reason %q, want %q", res.Reason, c.reason)
	}
	if c.verdict == translator.Forward && res.Reason != translator.ReasonNone {
		t.Fatalf("forwarded with reason %q", res.Reason)
	}
	switch {
	case c.verdict == translator.Drop && len(o.Pkts) != 0:
		t.Fatalf("dropped but emitted %d packets", len(o.Pkts))
	case c.verdict != translator.Drop && len(o.Pkts) == 0:
		t.Fatalf("verdict %v but no packet emitted", res.Verdict)
	}
	var outs []output
	for i, b := range o.Pkts {
		p, err := packettest.Check(b)
		if err != nil {
			t.Fatalf("output %d is malformed: %v\n% x", i, err, b)
		}
		outs = append(outs, output{Raw: slices.Clone(b), P: p})
	}
	if c.check == nil && c.verdict != translator.Drop {
		t.Fatal("case has no check for its outputs")
	}
	if c.check != nil {
		c.check(t, outs)
	}
}
