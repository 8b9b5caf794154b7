//go:build ignore

// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
//
// The fast path of map646: a tc classifier attached at the egress of
// map646's tun device. It translates the packets of the common case (RFC
// 7915, as translator.Translate does, byte for byte) inside the kernel and
// puts them back on the same device's ingress, so that the kernel routes,
// filters and forwards them exactly as it does the packets map646 writes to
// the tun device. Every other packet is "punted": left untouched
// (TC_ACT_OK) to go on to the tun device, where map646 translates it.
//
// The program is a pure function of (packet, table, settings): it decides
// everything before it modifies the packet, so that a punted packet is the
// packet that came in. A helper failing after the first modification is an
// internal error: counted, and the half-translated packet dropped.
//
// What is fast-pathed, and every reason to punt: see doc.go.

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "xlat.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct settings);
} settings_map SEC(".maps");

// The mapping table, one hash per direction. The key carries the prefix
// length, so that one hash holds every length and a lookup is one probe per
// length present (settings.lens4, lens6), longest first, as in
// translator.Table. The loader sizes them to the table.
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1);
	__type(key, struct key4);
	__type(value, struct val4);
} table4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1);
	__type(key, struct key6);
	__type(value, struct val6);
} table6 SEC(".maps");

// The node's and the translator's own addresses (translator/local.go): a
// packet translated toward one of them is punted, and the tun path refuses
// it. A few prefixes: a trie is the right tool here.
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, LOCAL_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct lpm4);
	__type(value, __u8);
} local4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, LOCAL_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct lpm6);
	__type(value, __u8);
} local6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, NUM_COUNTERS);
	__type(key, enum counter);
	__type(value, __u64);
} counters SEC(".maps");

// entries counts each mapping's traffic, indexed by its entry; the loader
// sizes it to the table (and DeltaRoom). One array for all CPUs, added to
// atomically: a per-CPU copy would cost 32 bytes per mapping and CPU (a
// gigabyte for a million mappings on 32 CPUs), as in the tun path.
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct entry_count);
} entries SEC(".maps");

#define PROTO_ICMP 1
#define PROTO_TCP 6
#define PROTO_UDP 17
#define PROTO_ICMPV6 58

static __always_inline void count(__u32 i)
{
	__u64 *c = bpf_map_lookup_elem(&counters, &i);
	if (c)
		*c += 1;
}

static __always_inline int punt(__u32 reason)
{
	count(reason);
	return TC_ACT_OK;
}

// fail counts an internal error: a helper failed after the packet was
// modified. It must stay zero.
static __always_inline int fail(void)
{
	count(C_INTERNAL_ERROR);
	return TC_ACT_SHOT;
}

// Big-endian 128-bit addresses as two host-order halves.
struct a128 {
	__u64 hi, lo;
};

static __always_inline struct a128 load128(const __u8 *a)
{
	struct a128 r;
	__builtin_memcpy(&r.hi, a, 8);
	__builtin_memcpy(&r.lo, a + 8, 8);
	r.hi = bpf_be64_to_cpu(r.hi);
	r.lo = bpf_be64_to_cpu(r.lo);
	return r;
}

static __always_inline void store128(__u8 *a, struct a128 r)
{
	__u64 hi = bpf_cpu_to_be64(r.hi), lo = bpf_cpu_to_be64(r.lo);
	__builtin_memcpy(a, &hi, 8);
	__builtin_memcpy(a + 8, &lo, 8);
}

// martian4 and martian6: translator/addr.go.
static __always_inline int martian4(__u32 a)
{
	__u32 b = a >> 24;
	return b == 0 || b == 127 || b >= 224;
}

static __always_inline int nonglobal4(__u32 a)
{
	__u32 b0 = a >> 24, b1 = (a >> 16) & 0xff, b2 = (a >> 8) & 0xff;
	if (b0 == 10)
		return 1;
	if (b0 == 100 && (b1 & 0xc0) == 64)
		return 1;
	if (b0 == 169 && b1 == 254)
		return 1;
	if (b0 == 172 && (b1 & 0xf0) == 16)
		return 1;
	if (b0 == 192 && b1 == 0 && b2 == 0)
		return 1;
	if (b0 == 192 && b1 == 168)
		return 1;
	if (b0 == 198 && (b1 & 0xfe) == 18)
		return 1;
	return martian4(a);
}

static __always_inline int martian6(struct a128 a)
{
	if ((a.hi >> 56) == 0xff)
		return 1;
	return a.hi == 0 && (a.lo == 0 || a.lo == 1);
}

// map4 is translator.Table.Map4: the IPv6 address of an IPv4 address, or
// 0 when it is not mapped.
static __always_inline int map4(const struct settings *s, __u32 a, struct a128 *v6, __u32 *entry)
{
	for (int i = 0; i < MAX_LENS; i++) {
		if (i >= s->n4)
			break;
		__u32 len = s->lens4[i];
		if (len == 0 || len > 32)
			break;
		__u32 mask = len == 32 ? 0xffffffff : ~(0xffffffffu >> len);
		struct key4 k = {.len = len, .addr = bpf_htonl(a & mask)};
		struct val4 *v = bpf_map_lookup_elem(&table4, &k);
		if (!v)
			continue;
		*v6 = load128(v->v6);
		*entry = v->entry;
		__u64 suf = a & ~mask;
		if (suf) {
			// The IPv4 suffix goes right after the IPv6 prefix, sh bits
			// above the bottom (translator.Table.Map4).
			__u32 sh = 96 - (__u32)v->len6 + len;
			if (sh >= 64) {
				v6->hi |= suf << ((sh - 64) & 63);
			} else {
				if (sh > 0)
					v6->hi |= suf >> ((64 - sh) & 63);
				v6->lo |= suf << (sh & 63);
			}
		}
		return 1;
	}
	return 0;
}

// map6 is translator.Table.Map6.
static __always_inline int map6(const struct settings *s, struct a128 a, __u32 *v4, __u32 *entry)
{
	for (int i = 0; i < MAX_LENS; i++) {
		if (i >= s->n6)
			break;
		__u32 len = s->lens6[i];
		if (len == 0 || len > 128)
			break;
		__u64 mhi, mlo;
		if (len <= 64) {
			mhi = ~0ULL << ((64 - len) & 63);
			mlo = 0;
		} else {
			mhi = ~0ULL;
			mlo = ~0ULL << ((128 - len) & 63);
		}
		struct key6 k = {.len = len};
		struct a128 m = {a.hi & mhi, a.lo & mlo};
		store128(k.addr, m);
		struct val6 *v = bpf_map_lookup_elem(&table6, &k);
		if (!v)
			continue;
		__u32 r = bpf_ntohl(v->v4);
		__u32 len4 = v->len4;
		*entry = v->entry;
		if (len4 < 32) {
			__u32 sh = 96 - len + len4;
			__u64 suf;
			if (sh >= 64)
				suf = a.hi >> ((sh - 64) & 63);
			else if (sh > 0)
				suf = a.lo >> (sh & 63) | a.hi << ((64 - sh) & 63);
			else
				suf = a.lo;
			r |= (__u32)suf & (0xffffffffu >> (len4 & 31));
		}
		*v4 = r;
		return 1;
	}
	return 0;
}

static __always_inline int local4_has(__u32 a)
{
	struct lpm4 k = {.prefixlen = 32, .addr = bpf_htonl(a)};
	return bpf_map_lookup_elem(&local4, &k) != 0;
}

static __always_inline int local6_has(struct a128 a)
{
	struct lpm6 k = {.prefixlen = 128};
	store128(k.addr, a);
	return bpf_map_lookup_elem(&local6, &k) != 0;
}

// The pseudo prefix (RFC 6052 §2.2, translator/addr.go): of length 96, or
// 32 to 64 with the IPv4 address split around bits 64-71, the u-octet,
// which is zero. hi_bits of the IPv4 address end the upper half; the other
// lo_bits start the lower half after the u-octet.
static __always_inline int in_pseudo(const struct settings *s, struct a128 a)
{
	if (s->pseudo_len == 96)
		return a.hi == s->pseudo_hi && (a.lo >> 32) == (s->pseudo_lo >> 32);
	__u64 mask = ~0ULL << ((64 - s->pseudo_len) & 63);
	return ((a.hi ^ s->pseudo_hi) & mask) == 0;
}

static __always_inline struct a128 embed(const struct settings *s, __u32 v4)
{
	struct a128 r = {s->pseudo_hi, s->pseudo_lo};
	if (s->pseudo_len == 96) {
		r.lo |= v4;
		return r;
	}
	__u32 hi_bits = (64 - s->pseudo_len) & 63, lo_bits = 32 - hi_bits;
	if (hi_bits)
		r.hi |= (__u64)v4 >> ((32 - hi_bits) & 31);
	if (lo_bits)
		r.lo |= ((__u64)v4 & ((1ULL << (lo_bits & 63)) - 1)) << ((56 - lo_bits) & 63);
	return r;
}

// extract returns the IPv4 address in a, inside the pseudo prefix, or 0
// when its u-octet is not zero: RFC 6052 did not build it.
static __always_inline int extract(const struct settings *s, struct a128 a, __u32 *v4)
{
	if (s->pseudo_len == 96) {
		*v4 = (__u32)a.lo;
		return 1;
	}
	if (a.lo >> 56)
		return 0;
	__u32 hi_bits = (64 - s->pseudo_len) & 63, lo_bits = 32 - hi_bits;
	__u64 hi_part = hi_bits ? (a.hi & ((1ULL << hi_bits) - 1)) << (lo_bits & 63) : 0;
	__u64 lo_part = lo_bits ? (a.lo >> ((56 - lo_bits) & 63)) & ((1ULL << (lo_bits & 63)) - 1) : 0;
	*v4 = (__u32)(hi_part | lo_part);
	return 1;
}

// One's complement arithmetic, as translator/internal/checksum.
static __always_inline __u32 fold(__u64 acc)
{
	acc = (acc >> 32) + (acc & 0xffffffff);
	acc = (acc >> 32) + (acc & 0xffffffff);
	acc = (acc >> 16) + (acc & 0xffff);
	acc = (acc >> 16) + (acc & 0xffff);
	acc = (acc >> 16) + (acc & 0xffff);
	return acc;
}

static __always_inline __u64 sum128(struct a128 a)
{
	return (a.hi >> 48) + ((a.hi >> 32) & 0xffff) + ((a.hi >> 16) & 0xffff) + (a.hi & 0xffff) +
	       (a.lo >> 48) + ((a.lo >> 32) & 0xffff) + ((a.lo >> 16) & 0xffff) + (a.lo & 0xffff);
}

// The transport header, as translator.transportHeader checks it for an
// unfragmented packet; l4len is the number of bytes after the IP header.
// Returns 0 or a punt reason.
static __always_inline __u32 check_l4(struct __sk_buff *skb, __u32 l4off, __u32 l4len, __u8 proto,
				      __u16 *csum, __u8 *typ, __u32 *hl)
{
	__u8 h[20];
	switch (proto) {
	case PROTO_TCP:
		if (l4len < 20 || bpf_skb_load_bytes(skb, l4off, h, 20))
			return C_PUNT_BAD_TRANSPORT;
		if ((h[12] >> 4) < 5 || (__u32)(h[12] >> 4) * 4 > l4len)
			return C_PUNT_BAD_TRANSPORT;
		*csum = (__u16)h[16] << 8 | h[17];
		*hl = (__u32)(h[12] >> 4) * 4;
		return 0;
	case PROTO_UDP:
		if (l4len < 8 || bpf_skb_load_bytes(skb, l4off, h, 8))
			return C_PUNT_BAD_TRANSPORT;
		if (((__u32)h[4] << 8 | h[5]) != l4len)
			return C_PUNT_BAD_TRANSPORT;
		*csum = (__u16)h[6] << 8 | h[7];
		if (*csum == 0)
			return C_PUNT_UDP_ZERO_CHECKSUM;
		*hl = 8;
		return 0;
	default: // ICMP or ICMPv6
		if (l4len < 8 || bpf_skb_load_bytes(skb, l4off, h, 8))
			return C_PUNT_BAD_TRANSPORT;
		*typ = h[0];
		*csum = (__u16)h[2] << 8 | h[3];
		*hl = 8;
		return 0;
	}
}

// l2_len is the length of the link-layer header before the IP header: 0 on
// the tun device, ETH_HLEN in a test run (BPF_PROG_TEST_RUN always gives a
// tc program an Ethernet frame). Set by the loader.
const volatile __u32 l2_len = 0;

// set_ethertype writes the EtherType of an Ethernet header, if any, for
// the new protocol (bpf_skb_change_proto does not).
static __always_inline int set_ethertype(struct __sk_buff *skb, __u32 l2, __be16 proto)
{
	if (l2 != ETH_HLEN)
		return 0;
	return bpf_skb_store_bytes(skb, 12, &proto, 2, 0);
}

// segments returns the transport payload of the largest and of the
// smallest segment the kernel will cut from a GSO super-packet whose
// payload of n bytes goes in segments of gso bytes (translator.segmentSpan):
// the rules that depend on a segment's size hold for all when they hold for
// these two. A plain packet is its own one segment.
static __always_inline void segments(__u32 n, __u32 gso, __u32 *largest, __u32 *smallest)
{
	*largest = n;
	*smallest = n;
	if (gso == 0 || n <= gso)
		return;
	*largest = gso;
	__u32 last = n % gso;
	*smallest = last ? last : gso;
}

// count_packets counts a translated packet as the packets it is on the
// wire (a GSO super-packet as its segments), and bytes (its length as it
// came in, as the tun path counts bytes read) for its mapping, entry.
static __always_inline void count_packets(__u32 i, struct __sk_buff *skb, __u32 entry, __u32 bytes)
{
	__u64 n = skb->gso_size && skb->gso_segs > 1 ? skb->gso_segs : 1;
	__u64 *c = bpf_map_lookup_elem(&counters, &i);
	if (c)
		*c += n;
	struct entry_count *e = bpf_map_lookup_elem(&entries, &entry);
	if (!e)
		return; // beyond the array: a mapping added past DeltaRoom
	if (i == C_TRANSLATED_4TO6) {
		__sync_fetch_and_add(&e->packets4to6, n);
		__sync_fetch_and_add(&e->bytes4to6, bytes);
	} else {
		__sync_fetch_and_add(&e->packets6to4, n);
		__sync_fetch_and_add(&e->bytes6to4, bytes);
	}
}

static __always_inline int xlat4(struct __sk_buff *skb, const struct settings *s)
{
	__u8 h[20];
	const __u32 l2 = l2_len;
	if (skb->len < l2 + 20 || bpf_skb_load_bytes(skb, l2, h, 20))
		return punt(C_PUNT_MALFORMED);
	if (h[0] != 0x45)
		return punt((h[0] >> 4) != 4 || (h[0] & 0xf) < 5 ? C_PUNT_MALFORMED : C_PUNT_OPTIONS);
	__u32 tlen = (__u32)h[2] << 8 | h[3];
	if (l2 + tlen != skb->len)
		return punt(C_PUNT_MALFORMED);
	__u64 hs = 0;
	for (int i = 0; i < 20; i += 2)
		hs += (__u32)h[i] << 8 | h[i + 1];
	if (fold(hs) != 0xffff)
		return punt(C_PUNT_MALFORMED);
	const __u32 gso = skb->gso_size;
	__u16 fl = (__u16)h[6] << 8 | h[7];
	if (fl & 0x3fff) // MF or an offset
		return punt(C_PUNT_FRAGMENT);
	__u8 proto = h[9];
	if (proto != PROTO_TCP && proto != PROTO_UDP && proto != PROTO_ICMP)
		return punt(C_PUNT_PROTOCOL);
	__u32 src, dst;
	__builtin_memcpy(&src, h + 12, 4);
	__builtin_memcpy(&dst, h + 16, 4);
	src = bpf_ntohl(src);
	dst = bpf_ntohl(dst);

	// translate4's order of checks, down to the transport header.
	if (martian4(dst))
		return punt(C_PUNT_MARTIAN);
	struct a128 dst6, src6, unused;
	__u32 entry, unused_entry;
	if (!map4(s, dst, &dst6, &entry))
		return punt(C_PUNT_NO_MAPPING);
	if (!s->allow_local && (local6_has(dst6) || (s->hairpin_off && local4_has(dst))))
		return punt(C_PUNT_LOCAL);
	if (martian4(src))
		return punt(C_PUNT_MARTIAN);
	if (map4(s, src, &unused, &unused_entry))
		return punt(C_PUNT_MAPPED_SOURCE);
	if (s->wkp && nonglobal4(src))
		return punt(C_PUNT_NON_GLOBAL);
	src6 = embed(s, src);
	if (h[8] <= 1)
		return punt(C_PUNT_TTL);

	__u32 l4len = tlen - 20;
	__u16 csum = 0;
	__u8 typ = 0;
	__u32 hl = 0;
	__u32 r = check_l4(skb, l2 + 20, l4len, proto, &csum, &typ, &hl);
	if (r)
		return punt(r);
	if (gso && proto == PROTO_ICMP)
		return punt(C_PUNT_GSO);
	__u8 ntyp = 0;
	if (proto == PROTO_ICMP) {
		if (typ == 8)
			ntyp = 128;
		else if (typ == 0)
			ntyp = 129;
		else
			return punt(C_PUNT_ICMP);
	}
	// Every packet, every segment of a super-packet, must become one IPv6
	// packet without a Fragment header (translator.whole6): the largest
	// decides.
	__u32 largest, smallest;
	segments(l4len - hl, gso, &largest, &smallest);
	__u32 size = 40 + hl + largest;
	int df = fl & 0x4000;
	if (!(size <= s->lowest_ipv6_mtu || (df && size <= s->ipv6_mtu)))
		return punt(gso ? C_PUNT_GSO : C_PUNT_TOO_BIG);

	// Every check passed: build the IPv6 header and the checksum update.
	__u8 tc = s->zero_tc ? 0 : h[1];
	__u8 nh = proto == PROTO_ICMP ? PROTO_ICMPV6 : proto;
	struct {
		__u8 b[8];
		__u8 src[16];
		__u8 dst[16];
	} ip6 = {};
	ip6.b[0] = 0x60 | tc >> 4;
	ip6.b[1] = tc << 4;
	ip6.b[4] = l4len >> 8;
	ip6.b[5] = l4len;
	ip6.b[6] = nh;
	ip6.b[7] = h[8] - 1;
	store128(ip6.src, src6);
	store128(ip6.dst, dst6);

	__s64 diff;
	__u32 csum_at;
	__u64 csum_flags;
	if (proto == PROTO_ICMP) {
		// The type changes and ICMPv6 has a pseudo-header (RFC 7915 §4.2).
		struct {
			__u8 t[4];
			__u8 src[16];
			__u8 dst[16];
			__be32 len;
			__be32 nh;
		} to = {.len = bpf_htonl(l4len), .nh = bpf_htonl(PROTO_ICMPV6)};
		__u8 from[4] = {typ};
		to.t[0] = ntyp;
		__builtin_memcpy(to.src, ip6.src, 16);
		__builtin_memcpy(to.dst, ip6.dst, 16);
		diff = bpf_csum_diff((__be32 *)from, 4, (__be32 *)&to, sizeof(to), 0);
		csum_at = l2 + 40 + 2;
		csum_flags = 0;
	} else {
		diff = bpf_csum_diff((__be32 *)(h + 12), 8, (__be32 *)ip6.src, 32, 0);
		csum_at = l2 + 40 + (proto == PROTO_TCP ? 16 : 6);
		csum_flags = BPF_F_PSEUDO_HDR | (proto == PROTO_UDP ? BPF_F_MARK_MANGLED_0 : 0);
	}
	if (diff < 0)
		return punt(C_PUNT_HELPER);

	if (bpf_skb_change_proto(skb, bpf_htons(ETH_P_IPV6), 0))
		return punt(C_PUNT_HELPER);
	// From here on the packet is modified.
	if (set_ethertype(skb, l2, bpf_htons(ETH_P_IPV6)))
		return fail();
	if (bpf_skb_store_bytes(skb, l2, &ip6, sizeof(ip6), 0))
		return fail();
	if (proto == PROTO_ICMP && bpf_skb_store_bytes(skb, l2 + 40, &ntyp, 1, 0))
		return fail();
	if (bpf_l4_csum_replace(skb, csum_at, 0, diff, csum_flags))
		return fail();
	count_packets(C_TRANSLATED_4TO6, skb, entry, tlen);
	return bpf_redirect(skb->ifindex, BPF_F_INGRESS);
}

static __always_inline int xlat6(struct __sk_buff *skb, const struct settings *s)
{
	__u8 h[40];
	const __u32 l2 = l2_len;
	if (skb->len < l2 + 40 || bpf_skb_load_bytes(skb, l2, h, 40))
		return punt(C_PUNT_MALFORMED);
	if ((h[0] >> 4) != 6)
		return punt(C_PUNT_MALFORMED);
	__u32 plen = (__u32)h[4] << 8 | h[5];
	if (l2 + 40 + plen != skb->len)
		return punt(C_PUNT_MALFORMED);
	const __u32 gso = skb->gso_size;
	__u8 proto = h[6];
	if (proto != PROTO_TCP && proto != PROTO_UDP && proto != PROTO_ICMPV6)
		return punt(C_PUNT_PROTOCOL); // extension headers and everything else
	struct a128 src6 = load128(h + 8), dst6 = load128(h + 24);

	// translate6's order of checks.
	if (martian6(src6) || (dst6.hi >> 56) == 0xff)
		return punt(C_PUNT_MARTIAN);
	__u32 src, dst, entry, unused_entry;
	if (!map6(s, src6, &src, &entry))
		return punt(C_PUNT_NO_MAPPING);
	if (!in_pseudo(s, dst6) || !extract(s, dst6, &dst))
		return punt(C_PUNT_NO_MAPPING);
	if (martian4(dst))
		return punt(C_PUNT_MARTIAN);
	if (s->wkp && nonglobal4(dst))
		return punt(C_PUNT_NON_GLOBAL);
	struct a128 unused;
	if (map4(s, dst, &unused, &unused_entry))
		return punt(C_PUNT_HAIRPIN);
	if (!s->allow_local && local4_has(dst))
		return punt(C_PUNT_LOCAL);
	if (h[7] <= 1)
		return punt(C_PUNT_TTL);

	__u32 l4len = plen;
	__u16 csum = 0;
	__u8 typ = 0;
	__u32 hl = 0;
	__u32 r = check_l4(skb, l2 + 40, l4len, proto, &csum, &typ, &hl);
	if (r)
		return punt(r);
	if (gso && proto == PROTO_ICMPV6)
		return punt(C_PUNT_GSO);
	__u8 ntyp = 0;
	if (proto == PROTO_ICMPV6) {
		if (typ == 128)
			ntyp = 8;
		else if (typ == 129)
			ntyp = 0;
		else
			return punt(C_PUNT_ICMP);
		// translate6 takes the pseudo-header out and the type change in;
		// where the result is a zero (0x0000 or 0xffff) it and the
		// kernel's helper may pick different ones: left to the tun path.
		__u64 old = ((__u64)typ << 8) + sum128(src6) + sum128(dst6) + PROTO_ICMPV6 + l4len;
		__u64 x = (__u64)(__u16)~csum + (__u16)~fold(old) + fold((__u64)ntyp << 8);
		__u32 f = fold(x);
		if (f == 0 || f == 0xffff)
			return punt(C_PUNT_CHECKSUM_ZERO);
	}
	__u32 tlen = 20 + l4len;
	__u32 largest, smallest;
	segments(l4len - hl, gso, &largest, &smallest);
	if (20 + hl + largest > s->ipv4_mtu)
		return punt(gso ? C_PUNT_GSO : C_PUNT_TOO_BIG);
	if (gso) {
		// The IPv4 header is copied into every segment: each must be one
		// Translate gives DF and the Identification zero (translator.atomic4;
		// the kernel then numbers the segments 0, 1, 2, ..., the one
		// difference, as on the tun path: translator.gso6).
		__u32 small = 20 + hl + smallest;
		if (small <= 1260 || (s->generate_id && small <= 1280))
			return punt(C_PUNT_GSO);
	} else if (s->generate_id && tlen > 88 && tlen <= 1280) {
		return punt(C_PUNT_GENERATE_ID);
	}

	__u8 tos = s->zero_tc ? 0 : (__u8)(h[0] << 4 | h[1] >> 4);
	__u8 p4 = proto == PROTO_ICMPV6 ? PROTO_ICMP : proto;
	__u8 ip4[20] = {0x45, tos, tlen >> 8, tlen, 0, 0, tlen > 1260 ? 0x40 : 0, 0, h[7] - 1, p4};
	__be32 src_be = bpf_htonl(src), dst_be = bpf_htonl(dst);
	__builtin_memcpy(ip4 + 12, &src_be, 4);
	__builtin_memcpy(ip4 + 16, &dst_be, 4);
	__u64 hs = 0;
	for (int i = 0; i < 20; i += 2)
		hs += (__u32)ip4[i] << 8 | ip4[i + 1];
	__u16 hc = ~fold(hs);
	ip4[10] = hc >> 8;
	ip4[11] = hc;

	__s64 diff;
	__u32 csum_at;
	__u64 csum_flags;
	if (proto == PROTO_ICMPV6) {
		struct {
			__u8 t[4];
			__u8 src[16];
			__u8 dst[16];
			__be32 len;
			__be32 nh;
		} from = {.len = bpf_htonl(l4len), .nh = bpf_htonl(PROTO_ICMPV6)};
		__u8 to[4] = {ntyp};
		from.t[0] = typ;
		__builtin_memcpy(from.src, h + 8, 16);
		__builtin_memcpy(from.dst, h + 24, 16);
		diff = bpf_csum_diff((__be32 *)&from, sizeof(from), (__be32 *)to, 4, 0);
		csum_at = l2 + 20 + 2;
		csum_flags = 0;
	} else {
		diff = bpf_csum_diff((__be32 *)(h + 8), 32, (__be32 *)(ip4 + 12), 8, 0);
		csum_at = l2 + 20 + (proto == PROTO_TCP ? 16 : 6);
		csum_flags = BPF_F_PSEUDO_HDR | (proto == PROTO_UDP ? BPF_F_MARK_MANGLED_0 : 0);
	}
	if (diff < 0)
		return punt(C_PUNT_HELPER);

	if (bpf_skb_change_proto(skb, bpf_htons(ETH_P_IP), 0))
		return punt(C_PUNT_HELPER);
	// From here on the packet is modified.
	if (set_ethertype(skb, l2, bpf_htons(ETH_P_IP)))
		return fail();
	if (bpf_skb_store_bytes(skb, l2, ip4, 20, 0))
		return fail();
	if (proto == PROTO_ICMPV6 && bpf_skb_store_bytes(skb, l2 + 20, &ntyp, 1, 0))
		return fail();
	if (bpf_l4_csum_replace(skb, csum_at, 0, diff, csum_flags))
		return fail();
	count_packets(C_TRANSLATED_6TO4, skb, entry, 40 + plen);
	return bpf_redirect(skb->ifindex, BPF_F_INGRESS);
}

SEC("tc")
int map646_fastpath(struct __sk_buff *skb)
{
	__u32 zero = 0;
	const struct settings *s = bpf_map_lookup_elem(&settings_map, &zero);
	if (!s || !s->enabled)
		return punt(C_PUNT_DISABLED);
	if (skb->protocol == bpf_htons(ETH_P_IP))
		return xlat4(skb, s);
	if (skb->protocol == bpf_htons(ETH_P_IPV6))
		return xlat6(skb, s);
	return punt(C_PUNT_MALFORMED);
}
