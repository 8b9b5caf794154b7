// Package fastpath is map646's kernel fast path: a tc eBPF program that
// translates the common case inside the kernel, exactly as
// translator.Translate does, and leaves every other packet to the tun path.
//
// The program (xlat.c) is attached at the egress of map646's tun device. A
// packet it translates is put back on the same device's ingress
// (bpf_redirect with BPF_F_INGRESS), so the kernel routes, filters and
// forwards it as it does the packets map646 writes to the device. A packet
// it does not translate is "punted": left untouched to go on to the tun
// device, where map646 translates it, drops it or answers it with an ICMP
// error. The program never drops a packet, but for a helper failing after
// the packet was modified (counted as an internal error, which must stay
// zero).
//
// The fast path takes, in either direction:
//   - TCP, UDP with a non-zero checksum, ICMP echo request and reply;
//   - without IPv4 options, IPv6 extension headers, or fragmentation, and
//     not a GSO super-packet (this first version punts those);
//   - with a TTL or hop limit above 1;
//   - from IPv4: to a mapped destination, from an ordinary source (not
//     martian, not mapped, not non-global behind 64:ff9b::/96); from IPv6:
//     from a mapped source, to an address of the pseudo prefix that is not
//     martian, not mapped (hairpins punt) and not non-global behind the
//     well-known prefix;
//   - not to an address of the node or the translator (local.go);
//   - of a size that fits the next MTU without fragmentation (IPv4 without
//     DF: the lowest IPv6 MTU).
//
// Everything else is punted, and counted per reason: ICMP errors and other
// ICMP types, fragments, zero UDP checksums, hairpins, misses, spoofs, Packet
// Too Big, ... Configurations it does not cover make it punt everything: a
// pseudo prefix other than a /96 (RFC 6052 allows /32 to /64 as well), and
// more than MaxLengths prefix lengths on either side of the table. With
// ipv4_identification = "generate", IPv6 packets that would get a generated
// Identification (89 to 1280 bytes once translated) are punted.
//
// The mapping table lives in two BPF hashes, one per direction, whose key
// holds the prefix length: a lookup probes each length present once,
// longest first, as translator.Table does (no LPM trie).
package fastpath
