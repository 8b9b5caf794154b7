// Package translator implements stateless IP/ICMP translation (SIIT, RFC 7915)
// with an explicit address mapping table (EAMT, RFC 7757) and an RFC 6052
// prefix for IPv4 clients, as in the SIIT-DC model (RFC 7755) that the
// map646 paper first deployed.
//
// The package is pure: it performs no I/O, starts no goroutines and does not
// log. A Translator is immutable once built and safe for concurrent use (the
// one thing it reads that changes is the set of the node's addresses,
// LocalAddrs, which its owner replaces atomically); each
// caller (a data-plane worker, the `map646 translate` command, a test) owns an
// Out that receives the packets one input produces.
//
// Translating a packet does not allocate. Every input yields a Result: the
// packet was forwarded (translated, possibly fragmented or hairpinned), dropped
// for a Reason, or dropped with an ICMP error generated toward its sender. The
// caller counts each Result.
//
// It owns the translation rules (RFC 7915, RFC 7757), the mapping table
// and its lookups (table.go), its changes at run time (delta.go: Apply
// makes a changed copy that shares the table's slots, for a new
// Translator made by Translator.Apply), and the Result of each packet.
// It imports only the standard library and translator/internal/checksum;
// no other package of map646 is imported by it, so that the data plane,
// the command and the tests all share one translator without cycles.
package translator
