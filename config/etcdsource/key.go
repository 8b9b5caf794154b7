package etcdsource

import (
	"net/netip"
	"strings"

	"github.com/map646/map646/config"
	"github.com/map646/map646/translator"
)

// The keys under the configured prefix.
const (
	mappingsDir = "/mappings/"
	nodesDir    = "/nodes/"
)

// MappingKey is the key of the mapping of the IPv4 prefix p under prefix:
// "/map646/mappings/198.51.100.10" for a /32, "/map646/mappings/198.51.100.16/28"
// otherwise. One key per IPv4 prefix, so two mappings of one IPv4 prefix
// cannot exist; its value is the IPv6 side (MappingValue).
func MappingKey(prefix string, p netip.Prefix) string {
	return prefix + mappingsDir + single(p)
}

// MappingValue is the value of m's key: its IPv6 side, "2001:db8:1::10"
// for a /128, "2001:db8:2::/124" otherwise.
func MappingValue(m translator.Mapping) string { return single(m.IPv6) }

func single(p netip.Prefix) string {
	if p.IsSingleIP() {
		return p.Addr().String()
	}
	return p.String()
}

// parseEntry reads the mapping of key (under prefix+mappingsDir) and value,
// checked as a line of a mapping file is. The key must be written as
// MappingKey writes it, so that one IPv4 prefix has one key: "198.51.100.10/32"
// would be a second key for 198.51.100.10. The value may end with
// whitespace (echo ... | etcdctl put adds a newline).
func parseEntry(prefix string, key, value []byte, pseudo netip.Prefix) (translator.Mapping, string) {
	name := string(key[len(prefix)+len(mappingsDir):])
	v6 := strings.TrimSpace(string(value))
	if v6 == "" {
		return translator.Mapping{}, `empty value; accepted: the IPv6 side, e.g. "2001:db8:1::10"`
	}
	m, msg := config.ParseMapping(name, v6, pseudo)
	if msg != "" {
		return m, msg + " (the key names the IPv4 side, the value the IPv6 side)"
	}
	if want := single(m.IPv4); name != want {
		return m, "the key must be written " + prefix + mappingsDir + want + " (one key per IPv4 prefix)"
	}
	return m, ""
}

// keyPrefix returns the IPv4 prefix a key under prefix+mappingsDir names,
// if it is written as MappingKey writes it.
func keyPrefix(prefix, key string) (netip.Prefix, bool) {
	name, ok := strings.CutPrefix(key, prefix+mappingsDir)
	if !ok {
		return netip.Prefix{}, false
	}
	var p netip.Prefix
	if strings.IndexByte(name, '/') >= 0 {
		var err error
		if p, err = netip.ParsePrefix(name); err != nil {
			return p, false
		}
	} else {
		a, err := netip.ParseAddr(name)
		if err != nil {
			return p, false
		}
		p = netip.PrefixFrom(a, a.BitLen())
	}
	return p, p.Addr().Is4() && single(p) == name && p.Masked() == p
}

// recordOf4 is the IPv4 side of an index record.
func recordOf4(p netip.Prefix) (uint32, uint8) {
	a := p.Addr().As4()
	return uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3]), uint8(p.Bits())
}
