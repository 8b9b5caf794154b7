package config

import (
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/map646/map646/translator"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// base is the smallest valid configuration; cases append keys to its
// [translator] section from line 5 on.
const base = `[translator]
pseudo_prefix = "64:ff9b::/96"
ipv4_address = "192.0.2.1"
ipv6_address = "2001:db8:64::1"
`

// parse parses conf as test.toml in a temporary directory that also holds
// the given files (name, content, name, content...). It returns the error
// text with the directory replaced by DIR.
func parse(t *testing.T, conf string, files ...string) (*Config, string) {
	t.Helper()
	dir := t.TempDir()
	for i := 0; i+1 < len(files); i += 2 {
		if err := os.WriteFile(filepath.Join(dir, files[i]), []byte(files[i+1]), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	c, err := Parse([]byte(conf), "test.toml", dir)
	if err == nil {
		if c == nil {
			t.Fatal("Parse returned neither a Config nor an error")
		}
		return c, ""
	}
	if c != nil {
		t.Errorf("Parse returned a Config with the error %v", err)
	}
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v is a %T, not a *config.Error", err, err)
	}
	return nil, strings.ReplaceAll(err.Error(), dir, "DIR")
}

func TestExample(t *testing.T) {
	c, err := Load("example.toml")
	if err != nil {
		t.Fatalf("example.toml is invalid:\n%v", err)
	}
	tr := c.Translator
	if tr.PseudoPrefix != netip.MustParsePrefix("64:ff9b::/96") ||
		tr.IPv4Addr != netip.MustParseAddr("192.0.2.1") ||
		tr.IPv6Addr != netip.MustParseAddr("2001:db8:64::1") ||
		!slices.Equal(tr.RFC6791Pool, []netip.Addr{netip.MustParseAddr("203.0.113.1")}) {
		t.Errorf("example.toml: addresses %+v", tr)
	}
	want := []translator.Mapping{
		{IPv4: netip.MustParsePrefix("198.51.100.10/32"), IPv6: netip.MustParsePrefix("2001:db8:1::10/128")},
		{IPv4: netip.MustParsePrefix("198.51.100.11/32"), IPv6: netip.MustParsePrefix("2001:db8:1::11/128")},
		{IPv4: netip.MustParsePrefix("198.51.100.16/28"), IPv6: netip.MustParsePrefix("2001:db8:2::/124")},
	}
	if got := mappings(c); !slices.Equal(got, want) {
		t.Errorf("example.toml: mappings %v, want %v", got, want)
	}
	// The example sets every optional key to its default: it must equal a
	// configuration that leaves them out (the mappings and pool aside).
	d, msg := parse(t, base)
	if msg != "" {
		t.Fatal(msg)
	}
	d.Translator.RFC6791Pool = tr.RFC6791Pool
	if !equalTranslator(tr, d.Translator) {
		t.Errorf("example.toml does not show the defaults:\n got %+v\nwant %+v", tr, d.Translator)
	}
	if _, err := c.NewTranslator(); err != nil {
		t.Errorf("NewTranslator: %v", err)
	}
}

// TestExampleShowsEveryKey: example.toml shows every key [translator]
// accepts (optional ones may be commented out), so the documentation cannot
// fall behind the code. The list of keys is the one unknown keys are told.
func TestExampleShowsEveryKey(t *testing.T) {
	_, msg := parse(t, base+"zzz = 1\n")
	_, list, ok := strings.Cut(msg, "; accepted: ")
	if !ok {
		t.Fatalf("no list of accepted keys in %q", msg)
	}
	example, err := os.ReadFile("example.toml")
	if err != nil {
		t.Fatal(err)
	}
	keys := strings.Split(list, ", ")
	if len(keys) < 16 {
		t.Fatalf("only %d keys in %q", len(keys), list)
	}
	for _, k := range keys {
		if !regexp.MustCompile(`(?m)^(# )?` + regexp.QuoteMeta(k) + ` = `).Match(example) {
			t.Errorf("example.toml does not show %s", k)
		}
	}
}

func equalTranslator(a, b Translator) bool {
	return reflect.DeepEqual(a, b)
}

func mappings(c *Config) []translator.Mapping {
	var ms []translator.Mapping
	for i := range c.Table().Len() {
		ms = append(ms, c.Table().Mapping(i))
	}
	return ms
}

func TestDefaults(t *testing.T) {
	c, msg := parse(t, base)
	if msg != "" {
		t.Fatal(msg)
	}
	want := Translator{
		Config: translator.Config{
			PseudoPrefix:  netip.MustParsePrefix("64:ff9b::/96"),
			Policy:        translator.PolicyDatacenter,
			Hairpin:       translator.HairpinIntrinsic,
			IPv4Addr:      netip.MustParseAddr("192.0.2.1"),
			IPv6Addr:      netip.MustParseAddr("2001:db8:64::1"),
			LowestIPv6MTU: 1280,
			IPv6MTU:       1500,
			IPv4MTU:       1500,
			ICMPErrors:    true,
		},
		ICMPErrorRate:       100,
		ICMPErrorBurst:      50,
		ICMPPMTUErrorRate:   1000,
		ICMPPMTUErrorBurst:  100,
		MaxMappingFileBytes: 128 << 20,
		MaxMappings:         1 << 20,
	}
	if !equalTranslator(c.Translator, want) {
		t.Errorf("defaults:\n got %+v\nwant %+v", c.Translator, want)
	}
	if c.Table().Len() != 0 {
		t.Errorf("%d mappings, want none", c.Table().Len())
	}
}

// TestEveryKey sets every key to something other than its default and
// checks that each lands in its own field.
func TestEveryKey(t *testing.T) {
	c, msg := parse(t, `[translator]
pseudo_prefix = "2001:db8:100::/40"
policy = "siit"
hairpinning = "off"
ipv4_address = "192.0.2.2"
ipv6_address = "2001:db8:64::2"
rfc6791_pool = ["203.0.113.8/30", "203.0.113.1"]
lowest_ipv6_mtu = 1300
ipv6_mtu = 9000
ipv4_mtu = 1400
udp_zero_checksum = "drop"
traffic_class = "zero"
ipv4_identification = "generate"
icmp_errors = false
icmp_error_rate = 7
icmp_error_burst = 3
icmp_pmtu_error_rate = 11
icmp_pmtu_error_burst = 5
allow_local_destinations = true
mapping_file = "m.txt"
max_mapping_file_bytes = 1000
max_mappings = 2
`, "m.txt", "198.51.100.1 2001:db8:1::1\n")
	if msg != "" {
		t.Fatal(msg)
	}
	want := Translator{
		Config: translator.Config{
			PseudoPrefix: netip.MustParsePrefix("2001:db8:100::/40"),
			Policy:       translator.PolicySIIT,
			Hairpin:      translator.HairpinOff,
			IPv4Addr:     netip.MustParseAddr("192.0.2.2"),
			IPv6Addr:     netip.MustParseAddr("2001:db8:64::2"),
			RFC6791Pool: []netip.Addr{
				netip.MustParseAddr("203.0.113.8"), netip.MustParseAddr("203.0.113.9"),
				netip.MustParseAddr("203.0.113.10"), netip.MustParseAddr("203.0.113.11"),
				netip.MustParseAddr("203.0.113.1"),
			},
			LowestIPv6MTU:          1300,
			IPv6MTU:                9000,
			IPv4MTU:                1400,
			DropUDPZeroChecksum:    true,
			ZeroTrafficClass:       true,
			GenerateIPv4ID:         true,
			ICMPErrors:             false,
			AllowLocalDestinations: true,
		},
		ICMPErrorRate:       7,
		ICMPErrorBurst:      3,
		ICMPPMTUErrorRate:   11,
		ICMPPMTUErrorBurst:  5,
		MaxMappingFileBytes: 1000,
		MaxMappings:         2,
	}
	got := c.Translator
	if !strings.HasSuffix(got.MappingFile, string(filepath.Separator)+"m.txt") || !filepath.IsAbs(got.MappingFile) {
		t.Errorf("MappingFile %q, want the temporary directory's m.txt", got.MappingFile)
	}
	got.MappingFile = ""
	if !equalTranslator(got, want) {
		t.Errorf("\n got %+v\nwant %+v", got, want)
	}
	tr, err := c.NewTranslator()
	if err != nil {
		t.Fatal(err)
	}
	if tr.Table() != c.Table() || tr.Table().Len() != 1 {
		t.Errorf("the translator does not share the Config's table of 1 mapping")
	}
	if tc := tr.Config(); tc.Policy != want.Policy || tc.IPv6MTU != want.IPv6MTU || !slices.Equal(tc.RFC6791Pool, want.RFC6791Pool) {
		t.Errorf("translator config %+v", tc)
	}
}

// TestOwnIPv6InPseudoPrefix: general SIIT set-ups often give the translator
// the RFC 6052 form of its own IPv4 address as its IPv6 address; that one
// address inside the pseudo prefix is accepted, under either policy and any
// prefix length.
func TestOwnIPv6InPseudoPrefix(t *testing.T) {
	for _, tc := range []struct{ prefix, own4, own6, policy string }{
		{"64:ff9b::/96", "192.0.2.1", "64:ff9b::c000:201", "datacenter"},
		{"64:ff9b::/96", "192.0.2.1", "64:ff9b::c000:201", "siit"},
		{"2001:db8:122:344::/96", "10.0.0.1", "2001:db8:122:344::a00:1", "siit"},  // a private address: not the well-known prefix
		{"2001:db8:122::/48", "192.0.2.33", "2001:db8:122:c000:2:2100::", "siit"}, // split around the u-octet (RFC 6052 §2.2)
	} {
		conf := fmt.Sprintf("[translator]\npseudo_prefix = %q\nipv4_address = %q\nipv6_address = %q\npolicy = %q\n",
			tc.prefix, tc.own4, tc.own6, tc.policy)
		c, msg := parse(t, conf)
		if msg != "" {
			t.Errorf("%s: %s", conf, msg)
			continue
		}
		if c.Translator.IPv6Addr != netip.MustParseAddr(tc.own6) {
			t.Errorf("%s: ipv6_address read as %v", conf, c.Translator.IPv6Addr)
		}
	}
}

// TestMappings: accepted forms, from both sources, in order, with their
// locations.
func TestMappings(t *testing.T) {
	c, err := Load("testdata/union.toml")
	if err != nil {
		t.Fatal(err)
	}
	want := []struct{ ipv4, ipv6, source string }{
		{"198.51.100.10/32", "2001:db8:1::10/128", "testdata/union.toml:7: mapping[0]"},
		{"198.51.100.11/32", "2001:db8:1::11/128", "testdata/mappings.txt:3"},
		{"198.51.100.12/32", "2001:db8:1::12/128", "testdata/mappings.txt:4"},
		{"198.51.100.32/27", "2001:db8:3::/96", "testdata/mappings.txt:5"},
		{"198.51.100.64/32", "2001:db8:4::/64", "testdata/mappings.txt:6"}, // RFC 7757 allows an address to a prefix
	}
	got := mappings(c)
	if len(got) != len(want) {
		t.Fatalf("%d mappings, want %d: %v", len(got), len(want), got)
	}
	for i, w := range want {
		m := translator.Mapping{IPv4: netip.MustParsePrefix(w.ipv4), IPv6: netip.MustParsePrefix(w.ipv6)}
		if got[i] != m || c.MappingSource(i) != w.source {
			t.Errorf("mapping %d: %v from %s, want %v from %s", i, got[i], c.MappingSource(i), m, w.source)
		}
	}

	// An inline array of tables is TOML too; its entries have no lines.
	c, msg := parse(t, `mapping = [{ipv4 = "198.51.100.1", ipv6 = "2001:db8:1::1"}]
`+base)
	if msg != "" || c.Table().Len() != 1 || c.MappingSource(0) != "test.toml: mapping[0]" {
		t.Errorf("inline array: %s", msg)
	}
}

// TestProblems checks the exact text of each problem, alone in an
// otherwise valid configuration.
func TestProblems(t *testing.T) {
	const m = "\n[[mapping]]\n" // mapping[0]: its ipv4 on line 7, ipv6 on line 8
	for _, tc := range []struct {
		name  string
		conf  string
		files []string
		want  string
	}{
		// Required keys.
		{"empty", "", nil, `test.toml: translator.pseudo_prefix: missing; this key is required, e.g. pseudo_prefix = "64:ff9b::/96"
test.toml: translator.ipv4_address: missing; this key is required, e.g. ipv4_address = "192.0.2.1"
test.toml: translator.ipv6_address: missing; this key is required, e.g. ipv6_address = "2001:db8:64::1"`},
		{"missing keys", "# map646\n[translator]\npolicy = \"siit\"\n", nil, `test.toml:2: translator.pseudo_prefix: missing; this key is required, e.g. pseudo_prefix = "64:ff9b::/96"
test.toml:2: translator.ipv4_address: missing; this key is required, e.g. ipv4_address = "192.0.2.1"
test.toml:2: translator.ipv6_address: missing; this key is required, e.g. ipv6_address = "2001:db8:64::1"`},

		// The pseudo prefix.
		{"pseudo length", strings.Replace(base, "::/96", "::/72", 1), nil,
			`test.toml:2: translator.pseudo_prefix = "64:ff9b::/72": RFC 6052 allows the lengths /32, /40, /48, /56, /64 and /96`},
		{"pseudo u-octet", strings.Replace(base, "64:ff9b::/96", "64:ff9b:0:0:100::/96", 1), nil,
			`test.toml:2: translator.pseudo_prefix = "64:ff9b:0:0:100::/96": bits 64-71 (the u-octet) must be zero (RFC 6052 §2.2)`},
		{"pseudo host bits", strings.Replace(base, "64:ff9b::/96", "64:ff9b::1/96", 1), nil,
			`test.toml:2: translator.pseudo_prefix = "64:ff9b::1/96": has host bits set; did you mean 64:ff9b::/96?`},
		{"pseudo IPv4-mapped", strings.Replace(base, "64:ff9b::/96", "::ffff:0:0/96", 1), nil,
			`test.toml:2: translator.pseudo_prefix = "::ffff:0:0/96": lies in ::ffff:0.0.0.0/96 (IPv4-mapped); accepted: unicast addresses only`},
		{"pseudo multicast", strings.Replace(base, "64:ff9b::/96", "ff0e::/96", 1), nil,
			`test.toml:2: translator.pseudo_prefix = "ff0e::/96": lies in ff00::/8 (multicast); accepted: unicast addresses only`},
		{"pseudo IPv4", strings.Replace(base, "64:ff9b::/96", "192.0.2.0/24", 1), nil,
			`test.toml:2: translator.pseudo_prefix = "192.0.2.0/24": not an IPv6 prefix; accepted: an RFC 6052 prefix such as 64:ff9b::/96`},
		{"pseudo address", strings.Replace(base, "64:ff9b::/96", "64:ff9b::", 1), nil,
			`test.toml:2: translator.pseudo_prefix = "64:ff9b::": not an IPv6 prefix; accepted: an RFC 6052 prefix such as 64:ff9b::/96`},

		// Own addresses.
		{"ipv4_address not unicast", strings.Replace(base, "192.0.2.1", "255.255.255.255", 1), nil,
			`test.toml:3: translator.ipv4_address = "255.255.255.255": lies in 255.255.255.255/32 (limited broadcast); accepted: unicast addresses only`},
		{"ipv4_address prefix", strings.Replace(base, "192.0.2.1", "192.0.2.1/24", 1), nil,
			`test.toml:3: translator.ipv4_address = "192.0.2.1/24": not an IPv4 address; accepted: a unicast IPv4 address such as 192.0.2.1`},
		// Inside the pseudo prefix only the RFC 6052 form of ipv4_address
		// is accepted (TestOwnIPv6InPseudoPrefix).
		{"ipv6_address in pseudo prefix", strings.Replace(base, "2001:db8:64::1", "64:ff9b::c000:202", 1), nil,
			`test.toml:4: translator.ipv6_address = "64:ff9b::c000:202": lies in the pseudo prefix 64:ff9b::/96, which stands for IPv4 addresses; accepted: an IPv6 unicast address outside it, or 64:ff9b::c000:201, the RFC 6052 form of ipv4_address`},
		{"ipv6_address in pseudo prefix, siit", strings.Replace(base, "2001:db8:64::1", "64:ff9b::1", 1) + "policy = \"siit\"\n", nil,
			`test.toml:4: translator.ipv6_address = "64:ff9b::1": lies in the pseudo prefix 64:ff9b::/96, which stands for IPv4 addresses; accepted: an IPv6 unicast address outside it, or 64:ff9b::c000:201, the RFC 6052 form of ipv4_address`},
		// 64:ff9b::/96 may not carry a private address (RFC 6052 §3.1): no
		// form of it to offer.
		{"ipv6_address in pseudo prefix, private ipv4_address", strings.NewReplacer("192.0.2.1", "10.0.0.1", "2001:db8:64::1", "64:ff9b::a00:1").Replace(base), nil,
			`test.toml:4: translator.ipv6_address = "64:ff9b::a00:1": lies in the pseudo prefix 64:ff9b::/96, which stands for IPv4 addresses; accepted: an IPv6 unicast address outside it`},
		{"ipv6_address in pseudo prefix, bad ipv4_address", strings.NewReplacer("192.0.2.1", "127.0.0.1", "2001:db8:64::1", "64:ff9b::7f00:1").Replace(base), nil,
			`test.toml:3: translator.ipv4_address = "127.0.0.1": lies in 127.0.0.0/8 (loopback); accepted: unicast addresses only
test.toml:4: translator.ipv6_address = "64:ff9b::7f00:1": lies in the pseudo prefix 64:ff9b::/96, which stands for IPv4 addresses; accepted: an IPv6 unicast address outside it`},
		{"ipv6_address link-local", strings.Replace(base, "2001:db8:64::1", "fe80::1", 1), nil,
			`test.toml:4: translator.ipv6_address = "fe80::1": lies in fe80::/10 (link-local); accepted: unicast addresses only`},
		{"ipv6_address IPv4", strings.Replace(base, "2001:db8:64::1", "192.0.2.1", 1), nil,
			`test.toml:4: translator.ipv6_address = "192.0.2.1": not an IPv6 address; accepted: a unicast IPv6 address such as 2001:db8:64::1`},

		// Unknown keys and sections, wrong types, bad values.
		{"unknown key, typo", base + "pseudo_prefx = \"64:ff9b::/96\"\n", nil,
			`test.toml:5: translator.pseudo_prefx = "64:ff9b::/96": unknown key; did you mean pseudo_prefix?`},
		{"unknown key, case", base + "IPv4_MTU = 1400\n", nil,
			`test.toml:5: translator.IPv4_MTU = 1400: unknown key; did you mean ipv4_mtu?`},
		{"unknown key", base + "nat = true\n", nil,
			`test.toml:5: translator.nat = true: unknown key; accepted: pseudo_prefix, policy, hairpinning, ipv4_address, ipv6_address, rfc6791_pool, ipv6_mtu, ipv4_mtu, lowest_ipv6_mtu, udp_zero_checksum, traffic_class, ipv4_identification, icmp_errors, icmp_error_rate, icmp_error_burst, icmp_pmtu_error_rate, icmp_pmtu_error_burst, allow_local_destinations, mapping_file, max_mapping_file_bytes, max_mappings`},
		{"unknown section", base + "\n[routing]\nasn = 64512\n", nil,
			`test.toml:6: routing: unknown section; accepted: translator, mapping, mappings, tun, metrics, log, fastpath, bgp, health, node, control`},
		{"misspelt section bgp", base + "\n[bpg]\nlocal_as = 64512\n", nil,
			`test.toml:6: bpg: unknown section; did you mean bgp?`},
		{"misspelt section", base + "[[mappings]]\nipv4 = \"198.51.100.1\"\n", nil,
			`test.toml:5: mappings: [[mappings]] is not a mapping entry; did you mean [[mapping]]? ([mappings] without the double brackets says where the mappings come from)`},
		{"key outside a section", "policy = \"siit\"\n" + base, nil,
			`test.toml:1: policy = "siit": unknown section; accepted: translator, mapping, mappings, tun, metrics, log, fastpath, bgp, health, node, control`},
		{"section not a table", "translator = 1\n", nil,
			`test.toml:1: translator = 1: must be a table ([translator]), not an integer`},
		{"mapping not an array", base + "[mapping]\nipv4 = \"198.51.100.1\"\n", nil,
			`test.toml:5: mapping = {ipv4 = "198.51.100.1"}: must be an array of tables ([[mapping]]), not a table`},
		{"string for an integer", base + "ipv6_mtu = \"1500\"\n", nil,
			`test.toml:5: translator.ipv6_mtu = "1500": must be an integer from 1280 to 65535, not a string`},
		{"integer for a string", base + "mapping_file = 1\n", nil,
			`test.toml:5: translator.mapping_file = 1: must be a string, not an integer`},
		{"integer for an enum", base + "policy = 1\n", nil,
			`test.toml:5: translator.policy = 1: must be one of "datacenter", "siit"`},
		{"string for a boolean", base + "icmp_errors = \"yes\"\n", nil,
			`test.toml:5: translator.icmp_errors = "yes": must be true or false, not a string`},
		{"string for an array", base + "rfc6791_pool = \"203.0.113.1\"\n", nil,
			`test.toml:5: translator.rfc6791_pool = "203.0.113.1": must be an array of strings, not a string`},
		{"bad policy", base + "policy = \"nat64\"\n", nil,
			`test.toml:5: translator.policy = "nat64": must be one of "datacenter", "siit"`},
		{"bad hairpinning", base + "hairpinning = \"on\"\n", nil,
			`test.toml:5: translator.hairpinning = "on": must be one of "intrinsic", "off"`},
		{"bad udp_zero_checksum", base + "udp_zero_checksum = \"ignore\"\n", nil,
			`test.toml:5: translator.udp_zero_checksum = "ignore": must be one of "compute", "drop"`},
		{"bad traffic_class", base + "traffic_class = \"Copy\"\n", nil,
			`test.toml:5: translator.traffic_class = "Copy": must be one of "copy", "zero"`},
		{"bad ipv4_identification", base + "ipv4_identification = \"random\"\n", nil,
			`test.toml:5: translator.ipv4_identification = "random": must be one of "zero", "generate"`},
		{"syntax", base + "policy = siit\n", nil,
			`test.toml:5: invalid TOML: expected value but found "siit" instead`},
		{"duplicate key", base + "ipv4_address = \"192.0.2.2\"\n", nil,
			`test.toml:5: invalid TOML: Key 'translator.ipv4_address' has already been defined.`},

		// Numbers.
		{"ipv6_mtu low", base + "ipv6_mtu = 1279\n", nil,
			`test.toml:5: translator.ipv6_mtu = 1279: must be from 1280 to 65535`},
		{"ipv6_mtu high", base + "ipv6_mtu = 65536\n", nil,
			`test.toml:5: translator.ipv6_mtu = 65536: must be from 1280 to 65535`},
		{"ipv4_mtu low", base + "ipv4_mtu = 576\n", nil,
			`test.toml:5: translator.ipv4_mtu = 576: must be from 1260 to 65535`},
		{"lowest above default ipv6_mtu", base + "lowest_ipv6_mtu = 1501\n", nil,
			`test.toml:5: translator.lowest_ipv6_mtu = 1501: must not exceed ipv6_mtu (1500); accepted: 1280 to 1500`},
		{"lowest above ipv6_mtu", base + "lowest_ipv6_mtu = 1400\nipv6_mtu = 1300\n", nil,
			`test.toml:5: translator.lowest_ipv6_mtu = 1400: must not exceed ipv6_mtu (1300); accepted: 1280 to 1300`},
		{"lowest too low", base + "lowest_ipv6_mtu = 1200\n", nil,
			`test.toml:5: translator.lowest_ipv6_mtu = 1200: must be from 1280 to 65535`},
		{"icmp_error_rate zero", base + "icmp_error_rate = 0\n", nil,
			`test.toml:5: translator.icmp_error_rate = 0: must be from 1 to 1000000 (errors per second; to send none, set icmp_errors = false)`},
		{"icmp_error_burst zero", base + "icmp_error_burst = 0\n", nil,
			`test.toml:5: translator.icmp_error_burst = 0: must be from 1 to 1000000`},
		{"icmp_pmtu_error_rate zero", base + "icmp_pmtu_error_rate = 0\n", nil,
			`test.toml:5: translator.icmp_pmtu_error_rate = 0: must be from 1 to 1000000 (errors per second; to send none, set icmp_errors = false)`},
		{"icmp_pmtu_error_burst too large", base + "icmp_pmtu_error_burst = 1000001\n", nil,
			`test.toml:5: translator.icmp_pmtu_error_burst = 1000001: must be from 1 to 1000000`},
		{"allow_local_destinations not a boolean", base + "allow_local_destinations = \"yes\"\n", nil,
			`test.toml:5: translator.allow_local_destinations = "yes": must be true or false, not a string`},

		// The RFC 6791 pool.
		{"pool too large", base + "rfc6791_pool = [\"203.0.112.0/23\"]\n", nil,
			`test.toml:5: translator.rfc6791_pool = "203.0.112.0/23": too large; accepted: prefixes up to a /24 (256 addresses)`},
		{"pool not unicast", base + "rfc6791_pool = [\"203.0.113.1\", \"0.0.0.0\"]\n", nil,
			`test.toml:5: translator.rfc6791_pool = "0.0.0.0": lies in 0.0.0.0/8 (this network); accepted: unicast addresses only`},
		{"pool twice", base + "rfc6791_pool = [\"203.0.113.2\", \"203.0.113.0/30\"]\n", nil,
			`test.toml:5: translator.rfc6791_pool = "203.0.113.0/30": 203.0.113.2 is listed twice`},
		{"pool not IPv4", base + "rfc6791_pool = [\"2001:db8::1\"]\n", nil,
			`test.toml:5: translator.rfc6791_pool = "2001:db8::1": is not IPv4; accepted: an IPv4 address or prefix, e.g. 203.0.113.1 or 203.0.113.0/28`},
		{"pool element type", base + "rfc6791_pool = [\"203.0.113.1\", 2]\n", nil,
			`test.toml:5: translator.rfc6791_pool = ["203.0.113.1", 2]: must be an array of strings; element 1 is an integer`},

		// Mapped IPv4 addresses that are not unicast.
		{"mapped this network", base + m + "ipv4 = \"0.0.0.1\"\nipv6 = \"2001:db8:1::1\"\n", nil,
			`test.toml:7: mapping[0].ipv4 = "0.0.0.1": lies in 0.0.0.0/8 (this network); accepted: unicast addresses only`},
		{"mapped loopback", base + m + "ipv4 = \"127.0.0.1\"\nipv6 = \"2001:db8:1::1\"\n", nil,
			`test.toml:7: mapping[0].ipv4 = "127.0.0.1": lies in 127.0.0.0/8 (loopback); accepted: unicast addresses only`},
		{"mapped link-local", base + m + "ipv4 = \"169.254.0.0/24\"\nipv6 = \"2001:db8:1::/120\"\n", nil,
			`test.toml:7: mapping[0].ipv4 = "169.254.0.0/24": lies in 169.254.0.0/16 (link-local); accepted: unicast addresses only`},
		{"mapped multicast", base + m + "ipv4 = \"224.0.0.251\"\nipv6 = \"2001:db8:1::1\"\n", nil,
			`test.toml:7: mapping[0].ipv4 = "224.0.0.251": lies in 224.0.0.0/4 (multicast); accepted: unicast addresses only`},
		{"mapped reserved", base + m + "ipv4 = \"240.0.0.1\"\nipv6 = \"2001:db8:1::1\"\n", nil,
			`test.toml:7: mapping[0].ipv4 = "240.0.0.1": lies in 240.0.0.0/4 (reserved); accepted: unicast addresses only`},
		{"mapped broadcast", base + m + "ipv4 = \"255.255.255.255\"\nipv6 = \"2001:db8:1::1\"\n", nil,
			`test.toml:7: mapping[0].ipv4 = "255.255.255.255": lies in 255.255.255.255/32 (limited broadcast); accepted: unicast addresses only`},
		{"mapped prefix overlapping multicast", base + m + "ipv4 = \"192.0.0.0/2\"\nipv6 = \"2001:db8::/66\"\n", nil,
			`test.toml:7: mapping[0].ipv4 = "192.0.0.0/2": overlaps 224.0.0.0/4 (multicast); accepted: unicast addresses only`},
		{"mapped IPv6 on the IPv4 side", base + m + "ipv4 = \"2001:db8:1::1\"\nipv6 = \"2001:db8:1::1\"\n", nil,
			`test.toml:7: mapping[0].ipv4 = "2001:db8:1::1": is not IPv4; accepted: an IPv4 address or prefix, e.g. 198.51.100.10 or 198.51.100.16/28`},
		// Jool's order (IPv6 first) gets one problem that says so, not two.
		{"mapped sides swapped", base + m + "ipv4 = \"2001:db8:1::10\"\nipv6 = \"198.51.100.10\"\n", nil,
			`test.toml:7: mapping[0].ipv4 = "2001:db8:1::10": ipv4 and ipv6 are swapped: this is an IPv6 value and ipv6 holds the IPv4 one (198.51.100.10); write ipv4 = "198.51.100.10", ipv6 = "2001:db8:1::10"`},
		{"mapped IPv4 host bits", base + m + "ipv4 = \"198.51.100.17/28\"\nipv6 = \"2001:db8:2::/124\"\n", nil,
			`test.toml:7: mapping[0].ipv4 = "198.51.100.17/28": has host bits set; did you mean 198.51.100.16/28?`},
		{"mapped garbage", base + m + "ipv4 = \"198.51.100\"\nipv6 = \"2001:db8:1::1\"\n", nil,
			`test.toml:7: mapping[0].ipv4 = "198.51.100": not an IPv4 address or prefix; accepted: e.g. 198.51.100.10 or 198.51.100.16/28`},

		// Mapped IPv6 addresses.
		{"mapped in pseudo prefix", base + m + "ipv4 = \"198.51.100.1\"\nipv6 = \"64:ff9b::1\"\n", nil,
			`test.toml:8: mapping[0].ipv6 = "64:ff9b::1": overlaps the pseudo prefix 64:ff9b::/96 (translator.pseudo_prefix); accepted: IPv6 addresses outside it`},
		{"mapped around pseudo prefix", base + m + "ipv4 = \"198.51.100.1\"\nipv6 = \"64:ff9b::/64\"\n", nil,
			`test.toml:8: mapping[0].ipv6 = "64:ff9b::/64": overlaps the pseudo prefix 64:ff9b::/96 (translator.pseudo_prefix); accepted: IPv6 addresses outside it`},
		// A prefix that contains the pseudo prefix and starts below it: the
		// problem is still reported where it was written, not left to
		// translator.New, which knows no file or line.
		{"mapped containing pseudo prefix", base + m + "ipv4 = \"198.51.100.1\"\nipv6 = \"64::/16\"\n", nil,
			`test.toml:8: mapping[0].ipv6 = "64::/16": overlaps the pseudo prefix 64:ff9b::/96 (translator.pseudo_prefix); accepted: IPv6 addresses outside it`},
		{"mapping file containing pseudo prefix", base + "mapping_file = \"m.txt\"\n", []string{"m.txt", "198.51.100.1 2001:db8:1::1\n198.51.100.2 64::/16\n"},
			`DIR/m.txt:2: 64::/16: overlaps the pseudo prefix 64:ff9b::/96 (translator.pseudo_prefix); accepted: IPv6 addresses outside it`},
		{"mapped IPv6 multicast", base + m + "ipv4 = \"198.51.100.1\"\nipv6 = \"ff02::1\"\n", nil,
			`test.toml:8: mapping[0].ipv6 = "ff02::1": lies in ff00::/8 (multicast); accepted: unicast addresses only`},
		{"mapped IPv6 link-local", base + m + "ipv4 = \"198.51.100.1\"\nipv6 = \"fe80::1\"\n", nil,
			`test.toml:8: mapping[0].ipv6 = "fe80::1": lies in fe80::/10 (link-local); accepted: unicast addresses only`},
		{"mapped IPv6 loopback", base + m + "ipv4 = \"198.51.100.1\"\nipv6 = \"::1\"\n", nil,
			`test.toml:8: mapping[0].ipv6 = "::1": lies in ::1/128 (loopback); accepted: unicast addresses only`},
		{"mapped IPv6 unspecified", base + m + "ipv4 = \"198.51.100.1\"\nipv6 = \"::\"\n", nil,
			`test.toml:8: mapping[0].ipv6 = "::": lies in ::/128 (unspecified); accepted: unicast addresses only`},
		{"mapped IPv6 all", base + m + "ipv4 = \"198.51.100.1\"\nipv6 = \"::/0\"\n", nil,
			`test.toml:8: mapping[0].ipv6 = "::/0": overlaps ::/128 (unspecified); accepted: unicast addresses only`},
		{"mapped IPv4-mapped", base + m + "ipv4 = \"198.51.100.1\"\nipv6 = \"::ffff:198.51.100.1\"\n", nil,
			`test.toml:8: mapping[0].ipv6 = "::ffff:198.51.100.1": lies in ::ffff:0.0.0.0/96 (IPv4-mapped); accepted: unicast addresses only`},
		{"mapped zone", base + m + "ipv4 = \"198.51.100.1\"\nipv6 = \"2001:db8::1%eth0\"\n", nil,
			`test.toml:8: mapping[0].ipv6 = "2001:db8::1%eth0": not an IPv6 address or prefix; accepted: e.g. 2001:db8:1::10 or 2001:db8:2::/124`},
		{"mapped suffix too short", base + m + "ipv4 = \"198.51.100.16/28\"\nipv6 = \"2001:db8:2::1\"\n", nil,
			`test.toml:6: mapping[0] = {ipv4 = "198.51.100.16/28", ipv6 = "2001:db8:2::1"}: 198.51.100.16/28 has 4 suffix bits, more than the 0 of 2001:db8:2::1/128; use an IPv6 prefix of /124 or shorter (RFC 7757 §3.2)`},
		{"mapped key missing", base + m + "ipv4 = \"198.51.100.1\"\n", nil,
			`test.toml:6: mapping[0].ipv6: missing; this key is required, e.g. ipv6 = "2001:db8:1::10"`},
		{"mapped key unknown", base + m + "ipv4 = \"198.51.100.1\"\nipv6 = \"2001:db8:1::1\"\nport = 80\n", nil,
			`test.toml:9: mapping[0].port = 80: unknown key; accepted: ipv4, ipv6`},
		{"mapped wrong type", base + m + "ipv4 = \"198.51.100.1\"\nipv6 = 1\n", nil,
			`test.toml:8: mapping[0].ipv6 = 1: must be a string, not an integer`},

		// Conflicts between mappings, inline and in the file.
		{"duplicate", base + m + "ipv4 = \"198.51.100.1\"\nipv6 = \"2001:db8:1::1\"\n" + m + "ipv4 = \"198.51.100.1\"\nipv6 = \"2001:db8:1::1\"\n", nil,
			`test.toml:10: mapping[1] = {ipv4 = "198.51.100.1", ipv6 = "2001:db8:1::1"}: duplicates mapping[0] (line 6)`},
		{"same IPv4", base + m + "ipv4 = \"198.51.100.1\"\nipv6 = \"2001:db8:1::1\"\n" + m + "ipv4 = \"198.51.100.1\"\nipv6 = \"2001:db8:1::2\"\n", nil,
			`test.toml:11: mapping[1].ipv4 = "198.51.100.1": already mapped by mapping[0].ipv4 (line 7); an address may be mapped only once`},
		{"overlapping IPv6", base + m + "ipv4 = \"198.51.100.1\"\nipv6 = \"2001:db8:1::/64\"\n" + m + "ipv4 = \"198.51.100.2\"\nipv6 = \"2001:db8:1::2\"\n", nil,
			`test.toml:12: mapping[1].ipv6 = "2001:db8:1::2": overlaps 2001:db8:1::/64 of mapping[0].ipv6 (line 8); mapped prefixes must not overlap`},
		{"file against inline", base + "mapping_file = \"m.txt\"\n" + m + "ipv4 = \"198.51.100.16/28\"\nipv6 = \"2001:db8:2::/124\"\n",
			[]string{"m.txt", "# comment\n198.51.100.20 2001:db8:3::20\n198.51.100.40 2001:db8:3::20\n"},
			`DIR/m.txt:2: 198.51.100.20: overlaps 198.51.100.16/28 of mapping[0].ipv4 (test.toml:8); mapped prefixes must not overlap
DIR/m.txt:3: 2001:db8:3::20: already mapped by line 2; an address may be mapped only once`},

		// The mapping file.
		{"mapping file missing", base + "mapping_file = \"m.txt\"\n", nil,
			`test.toml:5: translator.mapping_file = "m.txt": cannot read DIR/m.txt: no such file or directory (a relative path is looked up in the configuration file's directory)`},
		{"mapping file empty name", base + "mapping_file = \"\"\n", nil,
			`test.toml:5: translator.mapping_file = "": must name a file; to use none, leave the key out`},
		{"mapping file lines", base + "mapping_file = \"m.txt\"\n", []string{"m.txt", `198.51.100.1
198.51.100.2 2001:db8:1::2 2001:db8:1::3
198.51.100.3 2001:db8:1::3 # fine
	 
198.51.100.300 64:ff9b::1
198.51.100.5/33 2001:db8:1::5/129
198.51.100.6 2001:db8:1::6`},
			`DIR/m.txt:1: 198.51.100.1: expected two fields "IPV4[/LEN] IPV6[/LEN]", e.g. "198.51.100.10 2001:db8:1::10"
DIR/m.txt:2: 198.51.100.2 2001:db8:1::2 2001:db8:1::3: expected two fields "IPV4[/LEN] IPV6[/LEN]", e.g. "198.51.100.10 2001:db8:1::10"
DIR/m.txt:5: 198.51.100.300: not an IPv4 address or prefix; accepted: e.g. 198.51.100.10 or 198.51.100.16/28
DIR/m.txt:5: 64:ff9b::1: overlaps the pseudo prefix 64:ff9b::/96 (translator.pseudo_prefix); accepted: IPv6 addresses outside it
DIR/m.txt:6: 198.51.100.5/33: not an IPv4 address or prefix; accepted: e.g. 198.51.100.10 or 198.51.100.16/28
DIR/m.txt:6: 2001:db8:1::5/129: not an IPv6 address or prefix; accepted: e.g. 2001:db8:1::10 or 2001:db8:2::/124`},

		{"mapping file in Jool's order", base + "mapping_file = \"m.txt\"\n", []string{"m.txt", "198.51.100.1 2001:db8:1::1\n2001:db8:2::/124  198.51.100.16/28 # jool eamt add order\n"},
			`DIR/m.txt:2: 2001:db8:2::/124  198.51.100.16/28: the fields are swapped: a line is "IPV4[/LEN] IPV6[/LEN]", IPv4 first (Jool's EAMT order, IPv6 first, is the other way round); write "198.51.100.16/28 2001:db8:2::/124"`},

		// [[mapping]] lines are given only when the headers can be found
		// for certain: here a multi-line string holds a fake one.
		{"fooled header scan", base + m + "ipv4 = \"127.0.0.1\"\nipv6 = \"2001:db8:1::1\"\nnote = '''\n[[mapping]]\n'''\n", nil,
			`test.toml: mapping[0].ipv4 = "127.0.0.1": lies in 127.0.0.0/8 (loopback); accepted: unicast addresses only
test.toml: mapping[0].note = "[[mapping]]\n": unknown key; accepted: ipv4, ipv6`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, got := parse(t, tc.conf, tc.files...)
			if got != tc.want {
				t.Errorf("config:\n%s\ngot:\n%s\nwant:\n%s", tc.conf, got, tc.want)
			}
		})
	}
}

// TestSeveralProblems: a configuration with many mistakes gets all of them
// reported, in file order. The expected text is in testdata/broken.golden
// (go test -update rewrites it).
func TestSeveralProblems(t *testing.T) {
	_, err := Load("testdata/broken.toml")
	if err == nil {
		t.Fatal("testdata/broken.toml loaded without error")
	}
	got := err.Error() + "\n"
	const golden = "testdata/broken.golden"
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err2 := os.ReadFile(golden)
	if err2 != nil {
		t.Fatal(err2)
	}
	if got != string(want) {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
	// One line per mistake written in the files, and one more: the
	// misspelt ipv6_adress leaves ipv6_address missing.
	if n := len(err.(*Error).Problems); n != 19 {
		t.Errorf("%d problems, want 19", n)
	}
}

// TestTooManyProblems: a mapping file full of errors is reported in part.
func TestTooManyProblems(t *testing.T) {
	var b strings.Builder
	for range 150 {
		b.WriteString("198.51.100.1\n")
	}
	_, msg := parse(t, base+"mapping_file = \"m.txt\"\n", "m.txt", b.String())
	lines := strings.Split(msg, "\n")
	if len(lines) != maxProblems+1 || lines[len(lines)-1] != "... and 50 more problems" {
		t.Errorf("%d lines, the last %q", len(lines), lines[len(lines)-1])
	}
}

func TestProblemString(t *testing.T) {
	for _, tc := range []struct {
		p    Problem
		want string
	}{
		{Problem{"a.toml", 3, "translator.policy", `"x"`, "bad"}, `a.toml:3: translator.policy = "x": bad`},
		{Problem{"a.toml", 0, "mapping[2].ipv4", `"x"`, "bad"}, `a.toml: mapping[2].ipv4 = "x": bad`},
		{Problem{"a.toml", 3, "translator.ipv4_address", "", "missing"}, `a.toml:3: translator.ipv4_address: missing`},
		{Problem{"m.txt", 17, "", "198.51.100.1", "bad"}, `m.txt:17: 198.51.100.1: bad`},
		{Problem{"a.toml", 1, "", "", "invalid TOML"}, `a.toml:1: invalid TOML`},
	} {
		if got := tc.p.String(); got != tc.want {
			t.Errorf("got %q, want %q", got, tc.want)
		}
	}
}

func TestDescribe(t *testing.T) {
	c, err := Load("testdata/union.toml")
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	c.Describe(&b)
	want := `testdata/union.toml: valid

translator
  policy               datacenter (RFC 7755 SIIT-DC: IPv4 clients reach mapped addresses only)
  pseudo prefix        64:ff9b::/96 (IPv4 clients appear as 64:ff9b::a.b.c.d)
  own addresses        192.0.2.1, 2001:db8:64::1 (sources of the ICMP errors the translator sends)
  RFC 6791 pool        empty: ICMPv6 errors from untranslatable sources come from 192.0.2.1
  MTUs                 IPv6 1500, IPv4 1500; IPv4 packets without DF are fragmented to 1280
  hairpinning          intrinsic
  UDP zero checksum    compute
  traffic class        copy
  IPv4 identification  zero
  ICMP errors          on, at most 100 per second per node, bursts of 50; path MTU signals apart: 1000 per second, bursts of 100
  local destinations   refused (no packet is translated toward the translator's or the node's own addresses)
  mapping file         testdata/mappings.txt

map646 run
  tun device           map646, MTU 1500, txqueuelen 10000
  offload              on: checksum and segmentation offload, one queue per CPU
  metrics              http://127.0.0.1:9646/metrics, per-mapping series for the first 1000 mappings
  log                  text, level info
  fast path            off: the tun path carries every packet
  state directory      /var/lib/map646 (the drained flag survives restarts there)
  drain                withdraw when tun traffic is at or under 10 packets/s, or after 30s; then translate on for 2s
  control socket       /run/map646/map646.sock (mode 0600: status, drain, undrain, reload)

bgp: off (no [bgp] section: nothing is announced)

health: 1 check
  dataplane            dataplane every 1s, timeout 500ms, up after 3, down after 3; withdraws all

mappings: 5 (3 single addresses, 2 prefix pairs), 36 IPv4 addresses covered
  198.51.100.10        <-> 2001:db8:1::10                 testdata/union.toml:7: mapping[0]
  198.51.100.11        <-> 2001:db8:1::11                 testdata/mappings.txt:3
  198.51.100.12        <-> 2001:db8:1::12                 testdata/mappings.txt:4
  198.51.100.32/27     <-> 2001:db8:3::/96                testdata/mappings.txt:5
  198.51.100.64        <-> 2001:db8:4::/64                testdata/mappings.txt:6
`
	if b.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", b.String(), want)
	}

	// Only the first ten mappings are listed.
	var m strings.Builder
	for i := range 12 {
		fmt.Fprintf(&m, "198.51.100.%d 2001:db8:1::%d\n", i+1, i+1)
	}
	c, msg := parse(t, base+`rfc6791_pool = ["203.0.113.0/24"]`+"\nmapping_file = \"m.txt\"\n", "m.txt", m.String())
	if msg != "" {
		t.Fatal(msg)
	}
	b.Reset()
	c.Describe(&b)
	for _, s := range []string{
		"  RFC 6791 pool        203.0.113.0, 203.0.113.1, 203.0.113.2, 203.0.113.3, ... (256 addresses)\n",
		"mappings: 12 (12 single addresses, 0 prefix pairs), 12 IPv4 addresses covered\n",
		"  198.51.100.10        <-> 2001:db8:1::10",
		"  ... and 2 more\n",
	} {
		if !strings.Contains(b.String(), s) {
			t.Errorf("missing %q in:\n%s", s, b.String())
		}
	}
	if strings.Contains(b.String(), "198.51.100.11 ") {
		t.Errorf("the 11th mapping is listed:\n%s", b.String())
	}
}

// TestNearest: the suggestion for a typo, a swap of two letters counting
// as one edit.
func TestNearest(t *testing.T) {
	names := []string{"translator", "mapping", "tun", "metrics", "log", "bgp", "health", "node", "control"}
	for _, tc := range []struct{ typo, want string }{
		{"bpg", "bgp"}, // one swap; two substitutions from "log"
		{"halth", "health"},
		{"Metrics", "metrics"},
		{"nodes", "node"},
		{"routing", ""},
	} {
		if got := nearest(tc.typo, names); got != tc.want {
			t.Errorf("nearest(%q) = %q, want %q", tc.typo, got, tc.want)
		}
	}
	for _, tc := range []struct {
		a, b string
		want int
	}{
		{"", "", 0}, {"abc", "", 3}, {"", "abc", 3}, {"abc", "abc", 0},
		{"ab", "ba", 1}, {"abcd", "acbd", 1}, {"kitten", "sitting", 3}, {"ca", "abc", 3},
	} {
		if got := editDistance(tc.a, tc.b); got != tc.want {
			t.Errorf("editDistance(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
	}
}
