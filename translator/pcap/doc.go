// Package pcap reads capture files and writes classic libpcap ones, so that
// `map646 translate` can run the translator on recorded traffic.
//
// The reader is github.com/gopacket/gopacket/pcapgo with map646's rules
// around it: classic pcap (either byte order, micro- or nanosecond
// timestamps) and pcapng (interfaces of different link types in one file);
// link types raw IP (101, 228, 229), Ethernet (1, up to two VLAN tags) and
// the Linux cooked captures that `tcpdump -i any` writes (SLL, 113; SLL2,
// 276). It strips the link-layer framing so Record.Data starts with the IP
// header, and skips and counts frames that carry another protocol (ARP,
// LLDP): they are part of any capture of a link and say nothing about
// translation.
//
// It is strict on purpose otherwise: the translator must see whole IP
// packets. It refuses a record that the capture cut short (captured length
// below the original length) and a file cut inside a record or block, and
// names the record (0-based index, counting skipped frames) and the byte
// offset where reading it started in every record error. It does not judge
// the IP packet itself: that is the translator's job.
//
// The writer always produces classic pcap, raw IP records (link type 101)
// with microsecond timestamps.
//
// No cgo: pcapgo is pure Go.
//
// It owns the capture formats only; it imports the standard library and
// gopacket, and nothing of map646 (the command joins it to the translator).
package pcap
