package translator_test

// Destinations on the node itself (issue 13, point 1): a mapped server
// sending to the pseudo-prefix form of the translator's or the node's own
// IPv4 address, or an IPv4 client whose mapped destination is an IPv6
// address of the node, would reach the node's own stack once the kernel
// takes the translated packet back. Rows M1-M3 of CONFORMANCE.md.

import (
	"net/netip"
	"testing"

	"github.com/map646/map646/translator"
	pt "github.com/map646/map646/translator/packettest"
)

func init() { conformanceCases = append(conformanceCases, casesM()) }

var (
	nodeAddr4 = netip.MustParseAddr("192.0.2.10")    // an address of the node, not of the translator
	nodeAddr6 = netip.MustParseAddr("2001:db8:1::1") // the node's address on the servers' link
)

// pseudoOf is the IPv6 form of a under the base pseudo prefix.
func pseudoOf(a netip.Addr) netip.Addr {
	e, ok := translator.EmbedIPv4(pseudo, a)
	if !ok {
		panic("cannot embed " + a.String())
	}
	return e
}

// bgpSYN6 is a server's TCP SYN to port 179 of dst; echo6 its echo request.
func bgpSYN6(dst netip.Addr) []byte {
	return pt.TCP6(pt.IPv6{Hop: 64, Src: server6, Dst: dst}, pt.TCP{Sport: 40000, Dport: 179, Seq: 1, Flags: pt.SYN, Window: 65535}, nil)
}

func echo6(dst netip.Addr) []byte {
	return pt.ICMP6(pt.IPv6{Hop: 64, Src: server6, Dst: dst}, 128, 0, pt.Rest16(1, 1), []byte("ping"))
}

// withNode gives the translator the node's addresses.
func withNode(c *translator.Config) {
	c.LocalAddrs = translator.NewLocalAddrs(hosts(nodeAddr4, nodeAddr6)...)
}

// hosts returns addrs as single-address prefixes.
func hosts(addrs ...netip.Addr) []netip.Prefix {
	var out []netip.Prefix
	for _, a := range addrs {
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out
}

func allowLocal(c *translator.Config) { withNode(c); c.AllowLocalDestinations = true }

func casesM() []conformanceCase {
	var cs []conformanceCase
	drop := func(name string, config func(*translator.Config), mappings []translator.Mapping, in []byte) {
		cs = append(cs, conformanceCase{name: name, config: config, mappings: mappings, in: in,
			verdict: translator.Drop, reason: translator.ReasonLocalDestination})
	}
	forward := func(name string, config func(*translator.Config), mappings []translator.Mapping, in []byte, dst netip.Addr) {
		cs = append(cs, conformanceCase{name: name, config: config, mappings: mappings, in: in, verdict: translator.Forward,
			check: func(t *testing.T, out []output) {
				if len(out) != 1 || out[0].P.Dst != dst {
					t.Fatalf("want one packet to %v, got %d (first to %v)", dst, len(out), out[0].P.Dst)
				}
			}})
	}
	for _, target := range []struct {
		name string
		addr netip.Addr
	}{{"own-ipv4", own4}, {"rfc6791-pool", pool6791}, {"node-ipv4", nodeAddr4}} {
		drop("M1-tcp-179-to-"+target.name, withNode, nil, bgpSYN6(pseudoOf(target.addr)))
		drop("M1-echo-to-"+target.name, withNode, nil, echo6(pseudoOf(target.addr)))
		forward("M3-tcp-179-to-"+target.name+"-allowed", allowLocal, nil, bgpSYN6(pseudoOf(target.addr)), target.addr)
	}
	// Dropped before any rule that would answer: no Time Exceeded, no
	// Destination Unreachable, nothing the sender can learn the node by.
	drop("M1-hop-limit-1-no-error", withNode, nil,
		pt.TCP6(pt.IPv6{Hop: 1, Src: server6, Dst: pseudoOf(nodeAddr4)}, pt.TCP{Sport: 40000, Dport: 179, Flags: pt.SYN}, nil))
	// A server's ICMPv6 error addressed to the node's pseudo-prefix form.
	drop("M1-icmp-error-to-node-ipv4", withNode, nil,
		pt.ICMP6(pt.IPv6{Hop: 64, Src: server6, Dst: pseudoOf(nodeAddr4)}, 1, 4, [4]byte{},
			pt.UDP6(pt.IPv6{Hop: 63, Src: pseudoOf(nodeAddr4), Dst: server6}, 53, 40000, []byte("q"))))

	// A node address that is also a mapped address hairpins (RFC 7757 §4):
	// the packet goes back to the IPv6 side, not to the node. With
	// hairpinning off it would be emitted to the node: dropped.
	mappedNode := func(c *translator.Config) { c.LocalAddrs = translator.NewLocalAddrs(hosts(server4b)...) }
	forward("M1-mapped-node-address-hairpins", mappedNode, nil, bgpSYN6(pseudoOf(server4b)), server6b)
	drop("M1-mapped-node-address-hairpinning-off", func(c *translator.Config) { mappedNode(c); c.Hairpin = translator.HairpinOff },
		nil, bgpSYN6(pseudoOf(server4b)))
	// ... and a hairpinned packet whose IPv6 destination is the node's.
	drop("M2-hairpin-to-node-ipv6", func(c *translator.Config) { c.LocalAddrs = translator.NewLocalAddrs(hosts(server6b)...) },
		nil, bgpSYN6(pseudoOf(server4b)))

	// From the IPv4 side: a mapping whose IPv6 address is the node's or
	// the translator's own.
	toNode := []translator.Mapping{
		{IPv4: netip.MustParsePrefix("198.51.100.10/32"), IPv6: netip.PrefixFrom(nodeAddr6, 128)},
		{IPv4: netip.MustParsePrefix("198.51.100.11/32"), IPv6: netip.PrefixFrom(own6, 128)},
	}
	syn4 := func(dst netip.Addr) []byte {
		return pt.TCP4(pt.IPv4{TTL: 64, Src: client4, Dst: dst}, pt.TCP{Sport: 40000, Dport: 179, Seq: 1, Flags: pt.SYN, Window: 65535}, nil)
	}
	echo4 := pt.ICMP4(pt.IPv4{TTL: 64, Src: client4, Dst: server4}, 8, 0, pt.Rest16(1, 1), []byte("ping"))
	drop("M2-tcp-179-to-node-ipv6", withNode, toNode, syn4(server4))
	drop("M2-echo-to-node-ipv6", withNode, toNode, echo4)
	drop("M2-tcp-179-to-own-ipv6", nil, toNode, syn4(server4b))
	forward("M3-tcp-179-to-node-ipv6-allowed", allowLocal, toNode, syn4(server4), nodeAddr6)
	forward("M3-tcp-179-to-own-ipv6-allowed", allowLocal, toNode, syn4(server4b), own6)

	// From the IPv4 side under the siit policy: a packet to the
	// translator's or the node's IPv4 address would leave through the
	// pseudo prefix and be refused when it came back; refused at once.
	siit := func(c *translator.Config) { withNode(c); c.Policy = translator.PolicySIIT }
	drop("M2-siit-to-own-ipv4", siit, nil, syn4(own4))
	drop("M2-siit-to-node-ipv4", siit, nil, syn4(nodeAddr4))
	forward("M3-siit-to-own-ipv4-allowed", func(c *translator.Config) { siit(c); c.AllowLocalDestinations = true },
		nil, syn4(own4), pseudoOf(own4))
	return cs
}

// TestLocalAddrsSwap: a translator reads the node's addresses on every
// packet, so a change made with Set applies to the next packet, and one
// set serves every translator built with it (as after a reload).
func TestLocalAddrsSwap(t *testing.T) {
	local := translator.NewLocalAddrs()
	a := newTranslator(t, func(c *translator.Config) { c.LocalAddrs = local }, nil)
	b := newTranslator(t, func(c *translator.Config) { c.LocalAddrs = local }, nil)
	pkt := bgpSYN6(pseudoOf(nodeAddr4))
	o := translator.NewOut()
	verdicts := func() (translator.Result, translator.Result) {
		return a.Translate(pkt, o), b.Translate(pkt, o)
	}
	if ra, rb := verdicts(); ra.Verdict != translator.Forward || rb.Verdict != translator.Forward {
		t.Fatalf("before the address is the node's: %v/%q and %v/%q, want forward", ra.Verdict, ra.Reason, rb.Verdict, rb.Reason)
	}
	local.Set(hosts(netip.MustParseAddr("2001:db8::5"), nodeAddr4, netip.MustParseAddr("10.0.0.1")))
	for _, r := range []translator.Result{a.Translate(pkt, o), b.Translate(pkt, o)} {
		if r.Verdict != translator.Drop || r.Reason != translator.ReasonLocalDestination || r.Entry != 0 {
			t.Errorf("after Set: %v/%q entry %d, want drop/local-destination for mapping 0", r.Verdict, r.Reason, r.Entry)
		}
	}
	local.Set(nil)
	if ra, rb := verdicts(); ra.Verdict != translator.Forward || rb.Verdict != translator.Forward {
		t.Errorf("after the address went: %v/%q and %v/%q, want forward", ra.Verdict, ra.Reason, rb.Verdict, rb.Reason)
	}
}

// TestLocalAddrsSet: Set keeps each prefix once, whatever its form.
func TestLocalAddrsSet(t *testing.T) {
	l := translator.NewLocalAddrs(append(hosts(
		netip.MustParseAddr("192.0.2.9"), netip.MustParseAddr("::ffff:192.0.2.9"), netip.MustParseAddr("192.0.2.3"),
		netip.MustParseAddr("fe80::1%eth0"), netip.MustParseAddr("fe80::1"), netip.MustParseAddr("2001:db8::1")),
		netip.Prefix{}, netip.MustParsePrefix("198.51.100.7/24"), netip.MustParsePrefix("::ffff:203.0.113.0/120"),
		netip.MustParsePrefix("2001:db8:5::/48"))...)
	want := []string{"192.0.2.3/32", "192.0.2.9/32", "198.51.100.0/24", "203.0.113.0/24",
		"2001:db8::1/128", "2001:db8:5::/48", "fe80::1/128"}
	got := l.Prefixes()
	if len(got) != len(want) {
		t.Fatalf("Prefixes() = %v, want %v", got, want)
	}
	for i := range want {
		if got[i].String() != want[i] {
			t.Errorf("Prefixes()[%d] = %v, want %v", i, got[i], want[i])
		}
	}
}

// TestLocalPrefix: a packet toward any address of a local prefix (a local
// route on lo, AnyIP) is refused, in both directions; one just outside
// is translated.
func TestLocalPrefix(t *testing.T) {
	in4, out4 := netip.MustParseAddr("203.0.113.77"), netip.MustParseAddr("192.0.2.77")
	local := func(c *translator.Config) {
		c.LocalAddrs = translator.NewLocalAddrs(netip.MustParsePrefix("203.0.113.0/24"),
			netip.PrefixFrom(server6b, 120))
	}
	tr := newTranslator(t, local, []translator.Mapping{
		{IPv4: netip.PrefixFrom(server4, 32), IPv6: netip.PrefixFrom(server6, 128)},
		{IPv4: netip.PrefixFrom(server4b, 32), IPv6: netip.PrefixFrom(server6b, 128)}})
	o := translator.NewOut()
	if res := tr.Translate(bgpSYN6(pseudoOf(in4)), o); res.Verdict != translator.Drop || res.Reason != translator.ReasonLocalDestination {
		t.Errorf("6to4 toward %v in a local /24: %v/%q, want drop/local-destination", in4, res.Verdict, res.Reason)
	}
	if res := tr.Translate(bgpSYN6(pseudoOf(out4)), o); res.Verdict != translator.Forward {
		t.Errorf("6to4 toward %v outside the local /24: %v/%q, want forward", out4, res.Verdict, res.Reason)
	}
	syn4 := pt.TCP4(pt.IPv4{TTL: 64, DF: true, Src: client4, Dst: server4b},
		pt.TCP{Sport: 40000, Dport: 179, Flags: pt.SYN, Window: 65535}, nil)
	if res := tr.Translate(syn4, o); res.Verdict != translator.Drop || res.Reason != translator.ReasonLocalDestination {
		t.Errorf("4to6 toward %v in a local /120: %v/%q, want drop/local-destination", server6b, res.Verdict, res.Reason)
	}
}

// TestLocalDestinationGSO: a super-packet toward the node is not taken
// whole: each segment gets the verdict Translate gives it.
func TestLocalDestinationGSO(t *testing.T) {
	mapNode6 := []translator.Mapping{{IPv4: netip.MustParsePrefix("198.51.100.10/32"), IPv6: netip.PrefixFrom(nodeAddr6, 128)}}
	for _, c := range []struct {
		name     string
		mappings []translator.Mapping
		super    []byte
	}{
		{"6to4", nil, pt.TCP6(pt.IPv6{Hop: 64, Src: server6, Dst: pseudoOf(nodeAddr4)},
			pt.TCP{Sport: 179, Dport: 40000, Flags: pt.ACK, Window: 65535}, make([]byte, 4*1400))},
		{"4to6", mapNode6, pt.TCP4(pt.IPv4{TTL: 64, DF: true, Src: client4, Dst: server4},
			pt.TCP{Sport: 40000, Dport: 179, Flags: pt.ACK, Window: 65535}, make([]byte, 4*1400))},
	} {
		// Without the node's addresses it is taken whole: the check below
		// can fail.
		if _, _, ok := newTranslator(t, nil, c.mappings).TranslateGSO(c.super, 1400, translator.NewOut()); !ok {
			t.Fatalf("%s: the super-packet is not translated whole even to a host that is not the node", c.name)
		}
		if _, _, ok := newTranslator(t, withNode, c.mappings).TranslateGSO(c.super, 1400, translator.NewOut()); ok {
			t.Errorf("%s: a super-packet toward the node was translated whole", c.name)
		}
	}
}

// TestLocalDestinationZeroAllocs: the look-up in the node's addresses
// does not allocate, on the hot paths nor on the drop.
func TestLocalDestinationZeroAllocs(t *testing.T) {
	tr := newTranslator(t, func(c *translator.Config) { dcMTU(c); withNode(c) }, nil)
	o := translator.NewOut()
	paths := append(hotPaths(), hotPath{"local-destination", bgpSYN6(pseudoOf(nodeAddr4)), translator.Drop})
	for _, p := range paths {
		if res := tr.Translate(p.pkt, o); res.Verdict != p.want {
			t.Fatalf("%s: verdict %v (%q), want %v", p.name, res.Verdict, res.Reason, p.want)
		}
		if n := testing.AllocsPerRun(100, func() { tr.Translate(p.pkt, o) }); n != 0 {
			t.Errorf("%s: %v allocations per packet, want 0", p.name, n)
		}
	}
}

// BenchmarkTranslateLocalAddrs is BenchmarkTranslate's hot paths with the
// node's addresses known: 32 of each family (a node with many interfaces),
// so that every packet's look-up bisects a real set.
func BenchmarkTranslateLocalAddrs(b *testing.B) {
	var addrs []netip.Addr
	for i := range 32 {
		addrs = append(addrs, netip.AddrFrom4([4]byte{10, 0, byte(i), 1}),
			netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0xfe, byte(i), 15: 1}))
	}
	tr := newTranslator(b, func(c *translator.Config) { dcMTU(c); c.LocalAddrs = translator.NewLocalAddrs(hosts(addrs...)...) }, nil)
	o := translator.NewOut()
	for _, p := range hotPaths()[:4] {
		b.Run(p.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(p.pkt)))
			for b.Loop() {
				tr.Translate(p.pkt, o)
			}
		})
	}
}
