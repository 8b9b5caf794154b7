package health

import (
	"net/netip"
	"time"
)

// Kind is what a check probes.
type Kind uint8

const (
	// DataPlane: the node's own translation path works (device up, workers
	// alive, a probe packet translated end to end through the device).
	DataPlane Kind = iota + 1
	// ICMPv6: an ICMPv6 echo to Check.Addr is answered.
	ICMPv6
	// TCP: a TCP connection to Check.AddrPort is accepted.
	TCP
	// HTTP: a GET of Check.URL answers with a 2xx or 3xx status.
	HTTP
	// BGP: at least one of Check.Neighbors has an established session
	// (fate-sharing: the check fails when every one of them is down).
	BGP
)

func (k Kind) String() string {
	switch k {
	case DataPlane:
		return "dataplane"
	case ICMPv6:
		return "icmp6"
	case TCP:
		return "tcp"
	case HTTP:
		return "http"
	case BGP:
		return "bgp"
	}
	return "unknown"
}

// Side is the part of the node's announcements a failing check withdraws.
type Side uint8

const (
	// Both: every announcement (the default).
	Both Side = iota
	// IPv4Side: the mapped IPv4 prefixes only.
	IPv4Side
	// IPv6Side: the pseudo IPv6 prefix only.
	IPv6Side
)

func (s Side) String() string {
	switch s {
	case Both:
		return "all"
	case IPv4Side:
		return "ipv4"
	case IPv6Side:
		return "ipv6"
	}
	return "unknown"
}

// Check is one configured health check: a [[health.check]] section,
// typed and validated by package config.
type Check struct {
	Name string
	Kind Kind

	// The target, by kind: Addr (ICMPv6), AddrPort (TCP), URL (HTTP, with
	// a literal IPv6 address or a name), Neighbors (BGP). DataPlane has none.
	Addr      netip.Addr
	AddrPort  netip.AddrPort
	URL       string
	Neighbors []netip.Addr

	// Interval between probes; Timeout of one probe (< Interval).
	Interval, Timeout time.Duration
	// Rise consecutive passes make a down check up; Fall consecutive
	// failures make an up check down.
	Rise, Fall int
	// Withdraws is what the node stops announcing while the check is down.
	Withdraws Side
}
