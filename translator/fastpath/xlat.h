// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
//
// What the fast path shares with its Go loader: the maps' keys and values,
// the settings and the counters. bpf2go generates the Go types from these.

#ifndef MAP646_XLAT_H
#define MAP646_XLAT_H

#include <linux/types.h>

// MAX_LENS bounds the prefix lengths present on each side of the table: one
// probe each, unrolled by the verifier. A table with more is not loaded.
#define MAX_LENS 8
#define LOCAL_MAX 65536

struct settings {
	__u64 pseudo_hi; // the pseudo prefix, high half, host order
	__u64 pseudo_lo; // its low half (zero but for a /96)
	__u32 pseudo_len; // 32, 40, 48, 56, 64 or 96
	__u32 ipv6_mtu;
	__u32 ipv4_mtu;
	__u32 lowest_ipv6_mtu;
	__u8 enabled;     // 0: punt everything (a configuration the fast path does not cover)
	__u8 wkp;         // the pseudo prefix is 64:ff9b::/96 (RFC 6052 §3.1)
	__u8 hairpin_off; // hairpin = "off"
	__u8 zero_tc;     // traffic_class = "zero"
	__u8 generate_id; // ipv4_identification = "generate"
	__u8 allow_local; // local destinations allowed
	__u8 n4, n6;      // prefix lengths present, in lens4 and lens6
	__u8 lens4[MAX_LENS]; // longest first
	__u8 lens6[MAX_LENS];
};

struct key4 {
	__u32 len;   // prefix length
	__be32 addr; // the prefix
};

struct val4 {
	__u8 v6[16]; // the IPv6 prefix
	__u32 len6;  // its length
	__u32 entry; // index of the mapping in translator.Table
};

struct key6 {
	__u32 len;
	__u8 addr[16];
};

struct val6 {
	__be32 v4;
	__u32 len4;
	__u32 entry;
};

// entry_count is one mapping's traffic through the program, as the tun
// path counts it per mapping (dataplane.MappingCounts): packets (a GSO
// super-packet as its segments) and bytes, toward the server (4to6) and
// from it (6to4).
struct entry_count {
	__u64 packets4to6, bytes4to6;
	__u64 packets6to4, bytes6to4;
};

struct lpm4 {
	__u32 prefixlen;
	__be32 addr;
};

struct lpm6 {
	__u32 prefixlen;
	__u8 addr[16];
};

// counter indexes the per-CPU counters: packets translated in each
// direction, packets punted per reason, internal errors.
enum counter {
	C_TRANSLATED_4TO6,
	C_TRANSLATED_6TO4,
	C_INTERNAL_ERROR,
	C_PUNT_DISABLED,
	C_PUNT_MALFORMED,
	C_PUNT_OPTIONS,
	C_PUNT_GSO,
	C_PUNT_FRAGMENT,
	C_PUNT_PROTOCOL,
	C_PUNT_ICMP,
	C_PUNT_MARTIAN,
	C_PUNT_NO_MAPPING,
	C_PUNT_MAPPED_SOURCE,
	C_PUNT_HAIRPIN,
	C_PUNT_LOCAL,
	C_PUNT_NON_GLOBAL,
	C_PUNT_TTL,
	C_PUNT_BAD_TRANSPORT,
	C_PUNT_UDP_ZERO_CHECKSUM,
	C_PUNT_CHECKSUM_ZERO,
	C_PUNT_TOO_BIG,
	C_PUNT_GENERATE_ID,
	C_PUNT_HELPER,
	NUM_COUNTERS,
};

#endif
