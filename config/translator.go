package config

import (
	"net/netip"
	"path/filepath"
	"strings"

	"github.com/map646/map646/translator"
)

// maxPoolPrefix is the longest rfc6791_pool prefix expanded: a /24, 256
// addresses. A shorter prefix is more likely a typo than a wish.
const maxPoolPrefix = 24

// decodeTranslator reads the [translator] section; dir resolves a relative
// mapping_file.
func (c *Config) decodeTranslator(s *section, dir string) {
	t := &c.Translator
	t.LowestIPv6MTU = DefaultLowestIPv6MTU
	t.IPv6MTU = DefaultIPv6MTU
	t.IPv4MTU = DefaultIPv4MTU
	t.ICMPErrors = true
	t.ICMPErrorRate = DefaultICMPErrorRate
	t.ICMPErrorBurst = DefaultICMPErrorBurst
	t.ICMPPMTUErrorRate = DefaultICMPPMTUErrorRate
	t.ICMPPMTUErrorBurst = DefaultICMPPMTUErrorBurst

	s.require("pseudo_prefix", `pseudo_prefix = "64:ff9b::/96"`)
	if v, ok := s.str("pseudo_prefix"); ok {
		if p, msg := parsePseudoPrefix(v); msg != "" {
			s.bad("pseudo_prefix", v, "%s", msg)
		} else {
			t.PseudoPrefix = p
		}
	}
	if s.enum("policy", "datacenter", "siit") == "siit" {
		t.Policy = translator.PolicySIIT
	}
	if s.enum("hairpinning", "intrinsic", "off") == "off" {
		t.Hairpin = translator.HairpinOff
	}

	s.require("ipv4_address", `ipv4_address = "192.0.2.1"`)
	if v, ok := s.str("ipv4_address"); ok {
		if a, msg := parseAddr(v, "IPv4", "192.0.2.1"); msg != "" {
			s.bad("ipv4_address", v, "%s", msg)
		} else {
			t.IPv4Addr = a
		}
	}
	s.require("ipv6_address", `ipv6_address = "2001:db8:64::1"`)
	if v, ok := s.str("ipv6_address"); ok {
		a, msg := parseAddr(v, "IPv6", "2001:db8:64::1")
		if msg == "" && t.PseudoPrefix.Contains(a) {
			msg = ownIPv6InPseudo(t.PseudoPrefix, t.IPv4Addr, a)
		}
		if msg != "" {
			s.bad("ipv6_address", v, "%s", msg)
		} else {
			t.IPv6Addr = a
		}
	}
	if pool, ok := s.stringList("rfc6791_pool"); ok {
		t.RFC6791Pool = parsePool(s, pool)
	}

	// lowest_ipv6_mtu is compared with ipv6_mtu unless that is wrong itself.
	ok6 := s.integer("ipv6_mtu", &t.IPv6MTU, translator.MinIPv6MTU, translator.MaxMTU, "") || !s.has("ipv6_mtu")
	s.integer("ipv4_mtu", &t.IPv4MTU, translator.MinIPv4MTU, translator.MaxMTU, "")
	var lowest int
	if s.integer("lowest_ipv6_mtu", &lowest, translator.MinIPv6MTU, translator.MaxMTU, "") {
		if ok6 && lowest > t.IPv6MTU {
			s.bad("lowest_ipv6_mtu", int64(lowest), "must not exceed ipv6_mtu (%d); accepted: %d to %d",
				t.IPv6MTU, translator.MinIPv6MTU, t.IPv6MTU)
		} else {
			t.LowestIPv6MTU = lowest
		}
	}

	t.DropUDPZeroChecksum = s.enum("udp_zero_checksum", "compute", "drop") == "drop"
	t.ZeroTrafficClass = s.enum("traffic_class", "copy", "zero") == "zero"
	t.GenerateIPv4ID = s.enum("ipv4_identification", "zero", "generate") == "generate"
	s.boolean("icmp_errors", &t.ICMPErrors)
	s.integer("icmp_error_rate", &t.ICMPErrorRate, 1, MaxICMPErrorRate, "errors per second; to send none, set icmp_errors = false")
	s.integer("icmp_error_burst", &t.ICMPErrorBurst, 1, MaxICMPErrorRate, "")
	s.integer("icmp_pmtu_error_rate", &t.ICMPPMTUErrorRate, 1, MaxICMPErrorRate, "errors per second; to send none, set icmp_errors = false")
	s.integer("icmp_pmtu_error_burst", &t.ICMPPMTUErrorBurst, 1, MaxICMPErrorRate, "")
	s.boolean("allow_local_destinations", &t.AllowLocalDestinations)

	if v, ok := s.str("mapping_file"); ok {
		if v == "" {
			s.bad("mapping_file", v, "must name a file; to use none, leave the key out")
		} else if filepath.IsAbs(v) {
			t.MappingFile = v
		} else {
			t.MappingFile = filepath.Join(dir, v)
		}
	}
	t.MaxMappingFileBytes = DefaultMaxMappingFileBytes
	s.integer("max_mapping_file_bytes", &t.MaxMappingFileBytes, 1, MaxMappingFileBytes, "")
	t.MaxMappings = DefaultMaxMappings
	s.integer("max_mappings", &t.MaxMappings, 1, MaxMappings, "")
	s.done()
}

// ownIPv6InPseudo checks an ipv6_address a inside the pseudo prefix: every
// address there stands for an IPv4 address, so the one that stands for
// ipv4_address is the translator itself, as general SIIT set-ups often
// number it; any other would be taken for an IPv4 host.
func ownIPv6InPseudo(pseudo netip.Prefix, own4, a netip.Addr) string {
	msg := "lies in the pseudo prefix " + pseudo.String() + ", which stands for IPv4 addresses; accepted: an IPv6 unicast address outside it"
	e, ok := translator.EmbedIPv4(pseudo, own4)
	switch {
	case ok && e == a:
		return ""
	case ok:
		msg += ", or " + e.String() + ", the RFC 6052 form of ipv4_address"
	}
	return msg
}

// parsePseudoPrefix checks an RFC 6052 prefix (§2.2).
func parsePseudoPrefix(v string) (netip.Prefix, string) {
	p, err := netip.ParsePrefix(v)
	if err != nil || !p.Addr().Is6() || p.Addr().Zone() != "" {
		return p, "not an IPv6 prefix; accepted: an RFC 6052 prefix such as 64:ff9b::/96"
	}
	if p.Masked() != p {
		return p, "has host bits set; did you mean " + p.Masked().String() + "?"
	}
	switch p.Bits() {
	case 32, 40, 48, 56, 64, 96:
	default:
		return p, "RFC 6052 allows the lengths /32, /40, /48, /56, /64 and /96"
	}
	if p.Addr().As16()[8] != 0 {
		return p, "bits 64-71 (the u-octet) must be zero (RFC 6052 §2.2)"
	}
	return p, checkSpecial(p)
}

// parsePool reads rfc6791_pool: addresses and prefixes up to a /24, expanded.
func parsePool(s *section, entries []string) []netip.Addr {
	var pool []netip.Addr
	seen := map[netip.Addr]bool{}
	for _, e := range entries {
		p, msg := parsePrefix(e, "IPv4", "203.0.113.1 or 203.0.113.0/28")
		if msg == "" && strings.IndexByte(e, '/') >= 0 && p.Bits() < maxPoolPrefix {
			msg = "too large; accepted: prefixes up to a /24 (256 addresses)"
		}
		if msg != "" {
			s.bad("rfc6791_pool", e, "%s", msg)
			continue
		}
		for a := p.Addr(); p.Contains(a); a = a.Next() {
			if seen[a] {
				s.bad("rfc6791_pool", e, "%s is listed twice", a)
				break
			}
			seen[a] = true
			pool = append(pool, a)
		}
	}
	return pool
}
