package config

import (
	"net/netip"
	"strings"
)

// special is an address block that may not be mapped or used as one of the
// translator's own addresses: nothing routed comes from or goes to it.
type special struct {
	prefix netip.Prefix
	name   string
}

var (
	// Not unicast, or not routed (RFC 1122 §3.2.1.3, RFC 3927, RFC 5771, RFC 1112).
	special4 = []special{
		{netip.MustParsePrefix("0.0.0.0/8"), "this network"},
		{netip.MustParsePrefix("127.0.0.0/8"), "loopback"},
		{netip.MustParsePrefix("169.254.0.0/16"), "link-local"},
		{netip.MustParsePrefix("224.0.0.0/4"), "multicast"},
		{netip.MustParsePrefix("255.255.255.255/32"), "limited broadcast"},
		{netip.MustParsePrefix("240.0.0.0/4"), "reserved"},
	}
	// Not unicast, or not routed (RFC 4291 §2.5.2, §2.5.3, §2.5.5.2, §2.5.6, §2.7).
	special6 = []special{
		{netip.MustParsePrefix("::/128"), "unspecified"},
		{netip.MustParsePrefix("::1/128"), "loopback"},
		{netip.MustParsePrefix("::ffff:0:0/96"), "IPv4-mapped"},
		{netip.MustParsePrefix("fe80::/10"), "link-local"},
		{netip.MustParsePrefix("ff00::/8"), "multicast"},
	}
)

// checkSpecial returns a message if p overlaps one of the special blocks.
func checkSpecial(p netip.Prefix) string {
	list := special6
	if p.Addr().Is4() {
		list = special4
	}
	for _, s := range list {
		if !p.Overlaps(s.prefix) {
			continue
		}
		where := "lies in "
		if p.Bits() < s.prefix.Bits() {
			where = "overlaps "
		}
		return where + s.prefix.String() + " (" + s.name + "); accepted: unicast addresses only"
	}
	return ""
}

// parsePrefix parses an address ("198.51.100.10": a /32 or /128) or a prefix
// ("198.51.100.16/28") of the family of want ("IPv4" or "IPv6"). It returns
// a message saying what is wrong and what would be accepted.
func parsePrefix(s, want, example string) (netip.Prefix, string) {
	var p netip.Prefix
	if strings.IndexByte(s, '/') >= 0 {
		var err error
		if p, err = netip.ParsePrefix(s); err != nil {
			return p, "not an " + want + " address or prefix; accepted: e.g. " + example
		}
	} else {
		a, err := netip.ParseAddr(s)
		if err != nil || a.Zone() != "" {
			return p, "not an " + want + " address or prefix; accepted: e.g. " + example
		}
		p = netip.PrefixFrom(a, a.BitLen())
	}
	if (want == "IPv4") != p.Addr().Is4() {
		return p, "is not " + want + "; accepted: an " + want + " address or prefix, e.g. " + example
	}
	if p.Masked() != p {
		return p, "has host bits set; did you mean " + p.Masked().String() + "?"
	}
	return p, checkSpecial(p)
}

// parseAddr parses one of the translator's own addresses.
func parseAddr(s, want, example string) (netip.Addr, string) {
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" || (want == "IPv4") != a.Is4() {
		return a, "not an " + want + " address; accepted: a unicast " + want + " address such as " + example
	}
	return a, checkSpecial(netip.PrefixFrom(a, a.BitLen()))
}
