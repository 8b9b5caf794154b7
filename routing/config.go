package routing

import (
	"net/netip"
	"time"
)

// Config is the speaker's configuration: the [bgp] section of map646's
// configuration, typed and validated by package config.
type Config struct {
	// LocalAS is the node's AS number (4-byte ASNs allowed).
	LocalAS uint32
	// RouterID is the BGP identifier, an IPv4 address.
	RouterID netip.Addr
	// ListenAddresses and ListenPort are where the speaker accepts
	// sessions. ListenPort -1 means no listener: the speaker only connects
	// out (neighbors must not be passive then).
	ListenAddresses []netip.Addr
	ListenPort      int
	// GRPCSocket is the path of a unix socket on which GoBGP's gRPC API is
	// served for the gobgp CLI (v4); "" disables it. Never a network
	// address: the API has no authentication.
	GRPCSocket string
	// Neighbors, in the order written.
	Neighbors []Neighbor
}

// Family is an address family the speaker exchanges with a neighbor.
type Family uint8

const (
	IPv4Unicast Family = iota + 1 // AFI 1, SAFI 1: the mapped IPv4 prefixes
	IPv6Unicast                   // AFI 2, SAFI 1: the pseudo IPv6 prefix
)

func (f Family) String() string {
	switch f {
	case IPv4Unicast:
		return "ipv4-unicast"
	case IPv6Unicast:
		return "ipv6-unicast"
	}
	return "unknown"
}

// Role says what a neighbor is to the node.
type Role uint8

const (
	// Router is an upstream (IPv4 side) or backend (IPv6 side) router: it
	// receives the announcements of the families it carries.
	Router Role = iota
	// Partner is another map646 node serving the same table. It receives
	// every announcement, and the routes it sends (kept out of the RIB, like
	// every received route) tell this node which prefixes the partner
	// announces, so that a drain can refuse to withdraw the last node.
	Partner
)

// Neighbor is one BGP neighbor.
type Neighbor struct {
	Address     netip.Addr
	PeerAS      uint32
	Description string
	Role        Role
	// Port is the neighbor's BGP port; 0 means 179. (Tests and labs that
	// run several speakers on one host need other ports.)
	Port uint16
	// Families carried on the session; IPv4 prefixes are announced to the
	// neighbors with IPv4Unicast, IPv6 prefixes to those with IPv6Unicast.
	Families []Family
	// Password enables TCP-MD5 (RFC 2385) when not "".
	Password string
	// HoldTime and KeepaliveTime as proposed in OPEN; ConnectRetry between
	// connection attempts.
	HoldTime, KeepaliveTime, ConnectRetry time.Duration
	// Passive: never connect, only accept.
	Passive bool
	// MultihopTTL > 0 allows an eBGP neighbor that many hops away; 0 is a
	// directly connected neighbor.
	MultihopTTL uint8
	// TTLSecurity is GTSM (RFC 5082): the session's packets are sent with
	// TTL 255 and the kernel drops those that arrive with less (IP_MINTTL,
	// IPV6_MINHOPCOUNT), so that nobody more than one hop away can reach
	// the session, spoofed source or not. Directly connected neighbors
	// only: it cannot be combined with MultihopTTL.
	TTLSecurity bool
	// MaxPrefixes bounds what the neighbor may send, per family: one more
	// prefix in its Adj-RIB-In and the session is closed with a Cease
	// "Maximum Number of Prefixes Reached" (RFC 4486), then tried again
	// after PrefixLimitRestart. 0 means no limit.
	MaxPrefixes uint32
	// BFD, when Enabled, runs single-hop BFD (RFC 5880/5881) with the
	// neighbor and takes the session down when BFD declares it down.
	BFD BFD
	// NextHopIPv4 and NextHopIPv6 are the next hops announced with the
	// prefixes of each family; invalid (the zero Addr) means the session's
	// own local address. NextHopIPv6 is required when IPv6Unicast is carried
	// over a session between IPv4 addresses (there is no local IPv6 address
	// to use), and NextHopIPv4 when IPv4Unicast is carried over IPv6.
	NextHopIPv4, NextHopIPv6 netip.Addr
}

// BFD parameters of a neighbor.
type BFD struct {
	Enabled bool
	// Interval is the desired transmit and required receive interval.
	Interval time.Duration
	// Multiplier: the session is declared down after Multiplier intervals
	// without a packet.
	Multiplier int
}

// Announcement is one prefix the node wants announced, with its attributes.
// IPv4 prefixes go to the neighbors carrying IPv4Unicast, IPv6 prefixes to
// those carrying IPv6Unicast, partners get all.
type Announcement struct {
	Prefix netip.Prefix
	MED    uint32
	// Communities are standard communities (RFC 1997), ASN<<16 | value;
	// GracefulShutdown (65535:0, RFC 8326) marks a draining node.
	Communities []uint32
}

// GracefulShutdown is the GRACEFUL_SHUTDOWN well-known community (RFC 8326).
const GracefulShutdown uint32 = 0xFFFF0000
