// Package pcap reads and writes classic libpcap capture files, so that
// `map646 translate` can run the translator on recorded traffic.
//
// The reader is strict on purpose: the translator must see whole IP packets
// and nothing else. It refuses a record that the capture cut short (captured
// length below the original length), names the record (0-based index and
// byte offset) in every record error, and strips the link-layer framing it
// understands (raw IP, and Ethernet with up to two VLAN tags) so Record.Data
// starts with the IP header. It does not judge the IP packet itself: that is
// the translator's job.
//
// pcapng is not read; `editcap -F pcap` converts it. The writer always
// produces raw IP records (link type 101) with microsecond timestamps.
//
// The package uses only the standard library and no cgo.
package pcap
