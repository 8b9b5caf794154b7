// Package failover is the paper's failover experiment (its Figure 4,
// extended) on the two-node lab of lab/topo: an ICMP echo every 100 ms
// from the IPv4 client to the mapped addresses of the IPv6 servers, each
// probe's round-trip time or loss, and which node carried its request and
// its reply, through a timeline of events (ECMP, the pseudo prefix
// withdrawn on one side, drain, undrain, silent death and revival); and
// the flows scenario: a TCP transfer with verified content and a ping
// through the pair while a node dies silently and comes back.
//
// Attribution is exact, not inferred from counters: a sniffer per node, an
// AF_PACKET socket on the node's tun device opened inside the node's
// namespace, recognises each probe by the run's ICMP identifier and a tag
// and sequence number in the payload, which the translator carries
// unchanged into ICMPv6. The IPv4 echo request routed into a node's device
// names the node that carried the request; the IPv6 echo reply routed into
// it names the node that carried the reply.
//
// The program (go run ./lab/failover/cmd, make lab) writes a CSV of every
// probe, a PNG plot and a summary; the tests run a short form.
package failover
