package config

import (
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestMappingSourceDefault(t *testing.T) {
	c, msg := parse(t, base)
	if msg != "" {
		t.Fatal(msg)
	}
	if c.Mappings.Source != SourceFile || !reflect.DeepEqual(c.Mappings.Etcd, Etcd{}) {
		t.Errorf("[mappings] %+v, want the file source", c.Mappings)
	}
}

func TestMappingSourceEtcd(t *testing.T) {
	c, msg := parse(t, base+`
[mappings]
source = "etcd"
[mappings.etcd]
endpoints = ["https://192.0.2.50:2379", "https://[2001:db8::50]:2379/"]
prefix = "/dc1/map646"
cert_file = "etcd-client.pem"
key_file = "/etc/map646/etcd-client-key.pem"
ca_file = "etcd-ca.pem"
dial_timeout = "2s"
request_timeout = "3s"
lease_ttl = "15s"
`)
	if msg != "" {
		t.Fatal(msg)
	}
	e := c.Mappings.Etcd
	dir := e.CertFile[:strings.LastIndexByte(e.CertFile, '/')]
	want := Etcd{Endpoints: []string{"https://192.0.2.50:2379", "https://[2001:db8::50]:2379"}, Prefix: "/dc1/map646",
		CertFile: dir + "/etcd-client.pem", KeyFile: "/etc/map646/etcd-client-key.pem", CAFile: dir + "/etcd-ca.pem",
		DialTimeout: 2 * time.Second, RequestTimeout: 3 * time.Second, LeaseTTL: 15 * time.Second}
	if c.Mappings.Source != SourceEtcd || !reflect.DeepEqual(e, want) {
		t.Errorf("[mappings] %+v\nwant %+v", c.Mappings, want)
	}

	c, msg = parse(t, base+"\n[mappings]\nsource = \"etcd\"\n[mappings.etcd]\nendpoints = [\"http://192.0.2.50:2379\"]\n")
	if msg != "" {
		t.Fatal(msg)
	}
	if want := (Etcd{Endpoints: []string{"http://192.0.2.50:2379"}, Prefix: DefaultEtcdPrefix, DialTimeout: DefaultEtcdDialTimeout,
		RequestTimeout: DefaultEtcdRequestTimeout, LeaseTTL: DefaultEtcdLeaseTTL}); !reflect.DeepEqual(c.Mappings.Etcd, want) {
		t.Errorf("defaults %+v, want %+v", c.Mappings.Etcd, want)
	}
}

// TestMappingSourceProblems: [mappings] starts on line 6.
func TestMappingSourceProblems(t *testing.T) {
	const etcd = "\n[mappings]\nsource = \"etcd\"\n[mappings.etcd]\n"
	for _, tc := range []struct {
		name, conf, want string
	}{
		{"source unknown", "\n[mappings]\nsource = \"consul\"\n",
			`test.toml:7: mappings.source = "consul": must be one of "file", "etcd"`},
		{"etcd section with the file source", "\n[mappings]\n[mappings.etcd]\nendpoints = [\"https://192.0.2.50:2379\"]\n",
			`test.toml:7: mappings.etcd: [mappings.etcd] is read only with source = "etcd"; set source = "etcd" or remove the section`},
		{"endpoints missing", etcd,
			`test.toml:8: mappings.etcd.endpoints: missing; this key is required, e.g. endpoints = ["https://192.0.2.50:2379", "https://192.0.2.51:2379", "https://192.0.2.52:2379"]`},
		{"endpoint without port", etcd + "endpoints = [\"https://192.0.2.50\"]\n",
			`test.toml:9: mappings.etcd.endpoints = "https://192.0.2.50": not an etcd client URL; accepted: "https://HOST:PORT", e.g. "https://192.0.2.50:2379"`},
		{"endpoint with a password", etcd + "endpoints = [\"https://root:s3cret@192.0.2.50:2379\"]\n",
			`test.toml:9: mappings.etcd.endpoints: has user information; authenticate with cert_file and key_file instead`},
		{"mixed schemes", etcd + "endpoints = [\"https://192.0.2.50:2379\", \"http://192.0.2.51:2379\"]\n",
			`test.toml:9: mappings.etcd.endpoints = "http://192.0.2.51:2379": mixes http and https; all endpoints use one scheme`},
		{"prefix trailing slash", etcd + "endpoints = [\"https://192.0.2.50:2379\"]\nprefix = \"/map646/\"\n",
			`test.toml:10: mappings.etcd.prefix = "/map646/": must not end with /; did you mean "/map646"?`},
		{"cert without key", etcd + "endpoints = [\"https://192.0.2.50:2379\"]\ncert_file = \"c.pem\"\n",
			`test.toml:8: mappings.etcd.key_file: missing; this key is required, e.g. key_file = "/etc/map646/etcd-client.pem"`},
		{"tls with http", etcd + "endpoints = [\"http://192.0.2.50:2379\"]\nca_file = \"ca.pem\"\n",
			`test.toml:9: mappings.etcd.endpoints = "http://192.0.2.50:2379": is http:// but TLS files are given; accepted: https:// endpoints with cert_file, key_file and ca_file`},
		{"lease not whole seconds", etcd + "endpoints = [\"https://192.0.2.50:2379\"]\nlease_ttl = \"2500ms\"\n",
			`test.toml:10: mappings.etcd.lease_ttl = "2.5s": must be whole seconds (etcd leases count seconds)`},
		{"mapping file with etcd", "mapping_file = \"m.txt\"\n" + etcd + "endpoints = [\"https://192.0.2.50:2379\"]\n",
			"test.toml:8: mappings.source = \"etcd\": translator.mapping_file is set too; with the etcd source the mappings live in etcd only (import the file with `map646 mapping add` or etcdctl), so remove mapping_file"},
		{"unknown key", etcd + "endpoints = [\"https://192.0.2.50:2379\"]\nendpoint = \"x\"\n",
			`test.toml:10: mappings.etcd.endpoint = "x": unknown key; did you mean endpoints?`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, got := parse(t, base+tc.conf, "m.txt", "198.51.100.10 2001:db8:1::10\n")
			if got != tc.want {
				t.Errorf("config:\n%s\ngot:\n%s\nwant:\n%s", tc.conf, got, tc.want)
			}
		})
	}
}

// TestExampleShowsEtcdKeys: example.toml shows every key of [mappings] and
// [mappings.etcd] (commented out: the example uses the file source).
func TestExampleShowsEtcdKeys(t *testing.T) {
	example, err := os.ReadFile("example.toml")
	if err != nil {
		t.Fatal(err)
	}
	for _, conf := range []string{
		"\n[mappings]\nzzz = 1\n",
		"\n[mappings]\nsource = \"etcd\"\n[mappings.etcd]\nendpoints = [\"http://192.0.2.50:2379\"]\nzzz = 1\n",
	} {
		_, msg := parse(t, base+conf)
		_, list, ok := strings.Cut(msg, "; accepted: ")
		if !ok {
			t.Fatalf("no list of accepted keys in %q", msg)
		}
		for _, k := range strings.Split(list, ", ") {
			if k == "etcd" {
				k = "[mappings.etcd]"
				if !strings.Contains(string(example), "# "+k+"\n") {
					t.Errorf("example.toml does not show %s", k)
				}
				continue
			}
			if !regexp.MustCompile(`(?m)^# ` + regexp.QuoteMeta(k) + ` = `).Match(example) {
				t.Errorf("example.toml does not show %s", k)
			}
		}
	}
	// And the commented section is valid once uncommented.
	c, msg := parse(t, base+"\n[mappings]\nsource = \"etcd\"\n[mappings.etcd]\nendpoints = [\"https://192.0.2.50:2379\"]\n"+
		"prefix = \"/map646\"\ndial_timeout = \"3s\"\nrequest_timeout = \"5s\"\nlease_ttl = \"10s\"\n")
	if msg != "" || c.Mappings.Etcd.DialTimeout != DefaultEtcdDialTimeout || c.Mappings.Etcd.LeaseTTL != DefaultEtcdLeaseTTL {
		t.Errorf("the example's etcd values: %s", msg)
	}
}
