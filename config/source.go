package config

import (
	"fmt"
	"net/netip"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/map646/map646/translator"
)

// Mappings is the [mappings] section: where the mapping table comes from.
type Mappings struct {
	// Source is SourceFile (the default: [[mapping]] entries and the
	// mapping file, read by Parse into Table) or SourceEtcd (the table is
	// read from etcd at run time by config/etcdsource; Table is empty).
	Source string
	// Etcd is [mappings.etcd], set when Source is SourceEtcd.
	Etcd Etcd
}

// Mapping sources.
const (
	SourceFile = "file"
	SourceEtcd = "etcd"
)

// Etcd is the [mappings.etcd] section: the etcd cluster that holds the
// mappings shared by every node, one key per mapping under Prefix.
type Etcd struct {
	// Endpoints are the client URLs of the members: all http:// or all
	// https://, each with a host and a port.
	Endpoints []string
	// Prefix starts every key map646 reads or writes ("/map646"): the
	// mappings are under Prefix+"/mappings/", the nodes' records under
	// Prefix+"/nodes/".
	Prefix string
	// CertFile and KeyFile are the client certificate and its key (PEM),
	// both or neither; CAFile the CA that signed the members' certificates
	// ("": the system's). Resolved against the configuration's directory.
	CertFile, KeyFile, CAFile string
	// DialTimeout bounds a connection attempt to a member; RequestTimeout
	// one request (a page of the start-up read, a write, a probe).
	DialTimeout, RequestTimeout time.Duration
	// LeaseTTL is the lease of the node's record: a node that stops
	// renewing it disappears from `map646 status -cluster` after LeaseTTL.
	LeaseTTL time.Duration
}

// Defaults and limits of [mappings.etcd].
const (
	DefaultEtcdPrefix         = "/map646"
	DefaultEtcdDialTimeout    = 3 * time.Second
	DefaultEtcdRequestTimeout = 5 * time.Second
	DefaultEtcdLeaseTTL       = 10 * time.Second
	maxEtcdTimeout            = 5 * time.Minute
)

// mappingsSection returns the [mappings] table. [[mappings]] is far more
// likely a misspelt [[mapping]] entry than a mistaken source section, and
// is reported as such.
func mappingsSection(root *section) *section {
	if r, ok := root.raw("mappings"); ok {
		if _, isArray := r.([]map[string]any); isArray {
			root.bad("mappings", nil, "[[mappings]] is not a mapping entry; did you mean [[mapping]]? ([mappings] without the double brackets says where the mappings come from)")
			t := &section{d: root.d, name: "mappings", keys: map[string]toml.Primitive{}, broken: true}
			t.line = t.keyLine
			return t
		}
	}
	return root.table("mappings")
}

// decodeMappingSource reads [mappings]; it follows [translator] and the
// [[mapping]] entries, which the etcd source excludes. dir resolves the
// relative certificate paths.
func (c *Config) decodeMappingSource(s *section, entries int, dir string) {
	m := &c.Mappings
	m.Source = s.enum("source", SourceFile, SourceEtcd)
	es := s.table("etcd")
	if m.Source == SourceEtcd {
		if c.Translator.MappingFile != "" {
			s.bad("source", m.Source, "translator.mapping_file is set too; with the etcd source the mappings live in etcd only (import the file with `map646 mapping add` or etcdctl), so remove mapping_file")
		}
		if entries > 0 {
			s.bad("source", m.Source, "the configuration has %d [[mapping]] entries; with the etcd source the mappings live in etcd only, so remove them", entries)
		}
		m.Etcd = decodeEtcd(es, dir)
	} else if s.has("etcd") {
		s.bad("etcd", nil, `[mappings.etcd] is read only with source = "etcd"; set source = "etcd" or remove the section`)
	}
	s.done()
}

func decodeEtcd(s *section, dir string) Etcd {
	e := Etcd{Prefix: DefaultEtcdPrefix, DialTimeout: DefaultEtcdDialTimeout,
		RequestTimeout: DefaultEtcdRequestTimeout, LeaseTTL: DefaultEtcdLeaseTTL}
	s.require("endpoints", `endpoints = ["https://192.0.2.50:2379", "https://192.0.2.51:2379", "https://192.0.2.52:2379"]`)
	if list, ok := s.stringList("endpoints"); ok {
		e.Endpoints = checkEndpoints(s, list)
	}
	if v, ok := s.str("prefix"); ok {
		if msg := checkEtcdPrefix(v); msg != "" {
			s.bad("prefix", v, "%s", msg)
		} else {
			e.Prefix = v
		}
	}
	file := func(key string) string {
		v, ok := s.str(key)
		switch {
		case !ok:
			return ""
		case v == "":
			s.bad(key, v, "must name a file; to use none, leave the key out")
			return ""
		case filepath.IsAbs(v):
			return v
		}
		return filepath.Join(dir, v)
	}
	e.CertFile, e.KeyFile, e.CAFile = file("cert_file"), file("key_file"), file("ca_file")
	if s.has("cert_file") != s.has("key_file") {
		missing := "key_file"
		if !s.has("cert_file") {
			missing = "cert_file"
		}
		s.require(missing, missing+` = "/etc/map646/etcd-client.pem"`)
	}
	if len(e.Endpoints) > 0 && strings.HasPrefix(e.Endpoints[0], "http://") && (s.has("cert_file") || s.has("ca_file")) {
		s.bad("endpoints", e.Endpoints[0], "is http:// but TLS files are given; accepted: https:// endpoints with cert_file, key_file and ca_file")
	}
	s.duration("dial_timeout", &e.DialTimeout, 10*time.Millisecond, maxEtcdTimeout, "")
	s.duration("request_timeout", &e.RequestTimeout, 10*time.Millisecond, maxEtcdTimeout, "")
	s.duration("lease_ttl", &e.LeaseTTL, 2*time.Second, time.Hour, "whole seconds")
	if e.LeaseTTL%time.Second != 0 {
		s.bad("lease_ttl", e.LeaseTTL.String(), "must be whole seconds (etcd leases count seconds)")
	}
	s.done()
	return e
}

// checkEndpoints keeps the valid endpoints, reporting the others: URLs
// with a scheme, http or https (one for all), a host and a port, and no
// user or password (etcd's password authentication is not supported: a
// client certificate is).
func checkEndpoints(s *section, list []string) []string {
	const accepted = `accepted: "https://HOST:PORT", e.g. "https://192.0.2.50:2379"`
	if len(list) == 0 {
		s.bad("endpoints", []any{}, "is empty; %s", accepted)
		return nil
	}
	var ok []string
	scheme := ""
	for _, v := range list {
		u, err := url.Parse(v)
		switch {
		case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Port() == "":
			s.bad("endpoints", v, "not an etcd client URL; %s", accepted)
		case u.User != nil:
			s.bad("endpoints", u.Redacted(), "has user information; authenticate with cert_file and key_file instead")
		case u.Path != "" && u.Path != "/" || u.RawQuery != "":
			s.bad("endpoints", v, "has a path or a query; %s", accepted)
		case scheme != "" && u.Scheme != scheme:
			s.bad("endpoints", v, "mixes http and https; all endpoints use one scheme")
		default:
			scheme = u.Scheme
			ok = append(ok, u.Scheme+"://"+u.Host)
		}
	}
	return ok
}

// checkEtcdPrefix checks a key prefix: absolute, no trailing slash (the
// package adds "/mappings/"), printable, no whitespace.
func checkEtcdPrefix(v string) string {
	const accepted = `accepted: a path such as "/map646" or "/dc1/map646"`
	switch {
	case !strings.HasPrefix(v, "/") || len(v) < 2:
		return "must start with / and name something; " + accepted
	case strings.HasSuffix(v, "/"):
		return "must not end with /; did you mean " + strconv.Quote(strings.TrimRight(v, "/")) + "?"
	case strings.Contains(v, "//"):
		return "has an empty part (//); " + accepted
	}
	for _, r := range v {
		if r <= ' ' || r == 0x7f {
			return "has whitespace or a control character; " + accepted
		}
	}
	return ""
}

// ParseMapping parses one mapping written as its two sides ("198.51.100.10"
// and "2001:db8:1::10", or prefixes) and checks it on its own, exactly as a
// line of the mapping file is checked: family, host bits, special blocks,
// the pseudo prefix, and an IPv6 suffix long enough for the IPv4 suffix
// (RFC 7757 §3.2). Overlaps with other mappings are the caller's to check.
// The message says what is wrong and what would be accepted.
func ParseMapping(v4, v6 string, pseudo netip.Prefix) (translator.Mapping, string) {
	var m translator.Mapping
	var msg string
	if m.IPv4, msg = parseSide(v4, "IPv4", example4, pseudo); msg != "" {
		return m, "IPv4 " + strconv.Quote(v4) + ": " + msg
	}
	if m.IPv6, msg = parseSide(v6, "IPv6", example6, pseudo); msg != "" {
		return m, "IPv6 " + strconv.Quote(v6) + ": " + msg
	}
	if n := 32 - m.IPv4.Bits(); 128-m.IPv6.Bits() < n {
		return m, fmt.Sprintf("%s has %d suffix bits, more than the %d of %s; use an IPv6 prefix of /%d or shorter (RFC 7757 §3.2)",
			m.IPv4, n, 128-m.IPv6.Bits(), m.IPv6, 128-n)
	}
	return m, ""
}
