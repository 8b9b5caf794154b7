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
//   - without IPv4 options, IPv6 extension headers, or fragmentation;
//   - TCP and UDP GSO super-packets too, when Translate would turn each of
//     their segments into one packet with the same header, as the tun path
//     decides (translator.TranslateGSO): every segment fits the next MTU
//     and, from IPv6, every one is larger than 1260 bytes once translated
//     (so that each gets DF and the Identification zero; the kernel then
//     numbers the segments it cuts, the one difference, as on the tun path);
//   - with a TTL or hop limit above 1;
//   - under any pseudo prefix length of RFC 6052 (/32 to /96);
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
// ICMP types, fragments, zero UDP checksums, hairpins, misses, spoofs,
// packets that Translate would fragment or answer with Packet Too Big, the
// other GSO super-packets (the kernel segments them after the program, before
// the tun device). With ipv4_identification = "generate", IPv6 packets that would
// get a generated Identification (89 to 1280 bytes once translated) are
// punted; so is an ICMPv6 echo whose ICMPv4 checksum would be a zero (0x0000
// or 0xffff), where Translate and the kernel's helper may pick different
// forms. Every pseudo prefix length of RFC 6052 is supported; a table with
// more than MaxLengths prefix lengths on either side makes the program punt
// everything (Disabled says so).
//
// The mapping table lives in two BPF hashes, one per direction, whose key
// holds the prefix length: a lookup probes each length present once,
// longest first, as translator.Table does (no LPM trie, and no map of maps:
// one hash holds every length). At a million /32-/128 mappings the kernel
// charges 96.9 MB for the IPv4 hash and 104.9 MB for the IPv6 one
// (TestMemoryMillion): 48 bytes of element header and a bucket array on top
// of the 32 bytes of key and value of each entry; and 32 MB for the
// per-mapping counters (233.8 MB in all). The node's and the translator's
// own addresses live in two small LPM tries; the settings in a one-element
// array; the counters in a per-CPU array (Counters); each mapping's packets
// and bytes each way in an array indexed by its entry (EntryCounts), added
// to atomically: as the tun path's, one copy for all CPUs, since a per-CPU
// one would cost 32 bytes per mapping and CPU.
//
// A reload loads a new program for the new table and replaces the old one
// at the link (link.Update: no packet sees no program). A table delta
// changes the hashes in place instead (ApplyDelta): they are sized to the
// table and DeltaRoom more entries, and ErrNoRoom asks for a new program.
//
// The proof that the program is the same translator is the differential
// test in translator/fastpath_test.go: every golden case, hostile case and
// fuzz corpus input goes through the program with BPF_PROG_TEST_RUN
// (package fastpathtest) and through Translate, and FuzzFastPath does the
// same with random packets. The test run gives a tc program an Ethernet
// frame, so those tests load it with LinkEthernet (the same code, reading
// the IP header 14 bytes on); TestAttachedTun attaches it as map646 will,
// LinkTun at a tun device's egress, and runs UDP and TCP through it, and
// TestAttachedGSO checks GSO super-packets, which a test run cannot make,
// segment by segment against Translate.
//
// Counters count packets as they are on the wire: a translated GSO
// super-packet as its segments, a punted one as one.
//
// One TCP stream through the fast path moves what kernel IPv6 forwarding
// moves, not what kernel IPv4 forwarding moves (lab/bench: 0.69x and 0.68x
// of IPv4, 1.03x and 1.00x of IPv6), and the program is not the reason
// (lab/bench/results-fastpath/single-stream.md). In that lab the sender's
// CPU also runs the router's forwarding, its software segmentation and
// checksums, and the server's TCP receive. The gap between the two kernels
// follows the segment size, not the IP version: kernel IPv4 with IPv6's
// MSS (1428 bytes of payload) falls to kernel IPv6's rate, and kernel IPv6
// with IPv4's (links at MTU 1520) rises to kernel IPv4's. A translated
// connection takes the IPv6 side's MSS in both directions, since no IPv6
// packet of 1500 bytes holds 1448 bytes of TCP payload. The tc program, the
// redirect to the tun's ingress and the second route lookup cost nothing
// that shows: an IPv4-to-IPv4 program that rewrites one address, attached
// the same way, forwards at kernel IPv4's rate.
package fastpath
