// Package packettest builds IPv4 and IPv6 packets for tests and checks the
// packets a translator emits, without using the translator's own code.
//
// It is test support: only _test.go files import it, and it must never
// import package translator, so that a bug there cannot hide itself by
// agreeing with its own checker.
//
// Builders (UDP4, TCP6, ICMP4, Raw6, ...) write every field as given, with no
// defaults (a zero TTL stays zero), and compute every length and checksum from
// scratch. They panic on misuse (an IPv6 address in an IPv4 header, options
// longer than 40 bytes): a broken test should fail loudly, not build a packet
// nobody asked for. Fields such as IPv4.TotalLen or IPv4.BadChecksum exist to
// build malformed packets on purpose.
//
// Check decodes a packet with gopacket's layers, adds the checks gopacket
// does not make (lengths that must match exactly, extension header chains,
// fragment fields, ICMP error sizes) and verifies every checksum with its own
// RFC 1071 arithmetic. It returns an error naming the first thing that is
// wrong, or a Packet exposing the fields tests assert on. A transport
// checksum that cannot be verified (a fragment, an IPv4 UDP checksum of zero,
// an unknown protocol) is reported by Packet.ChecksumChecked = false with the
// reason in Packet.NotChecked, never silently passed.
//
// The packet quoted by an ICMP error is parsed leniently where the quoting
// router cannot be blamed (truncation, and a transport checksum that may have
// been wrong in the original) and strictly where the translator writes it
// (the quoted IP header and its checksum).
//
// Fragment4, Fragment6 and Reassemble split and rejoin datagrams so that
// fragmentation tests can compare the pieces with the whole. Hex and Format
// read and write golden vectors as spaced hex with a comment per header.
//
// It imports the standard library and gopacket only.
package packettest
