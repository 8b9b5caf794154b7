package translator

// Verdict says what became of one input packet.
type Verdict uint8

const (
	// Forward: the packet was translated; Out holds one or more packets
	// (several when the translator fragmented it).
	Forward Verdict = iota
	// Drop: the packet was discarded for Result.Reason; Out is empty.
	Drop
	// ICMPError: the packet was discarded for Result.Reason and Out holds an
	// ICMP error addressed to its sender, built by the translator (RFC 7915
	// §4.4, §5.4). The caller applies the error rate limit before sending it.
	ICMPError
)

func (v Verdict) String() string {
	switch v {
	case Forward:
		return "forward"
	case Drop:
		return "drop"
	case ICMPError:
		return "icmp-error"
	}
	return "unknown"
}

// Reason says why a packet was not translated. Every reason feeds a counter;
// its String is the stable name used in metrics, logs and `map646 translate`.
type Reason uint8

const (
	ReasonNone Reason = iota

	// Malformed input.
	ReasonTruncated         // shorter than its headers or length fields claim
	ReasonBadVersion        // IP version does not match the side it arrived on
	ReasonBadIPv4Checksum   // IPv4 header checksum wrong (RFC 1812 §5.2.2)
	ReasonBadIPv4Header     // IHL < 5, total length < header length
	ReasonBadOptions        // IPv4 options or IPv6 extension header malformed
	ReasonExtHeaderChain    // IPv6 extension-header chain too long
	ReasonJumbogram         // IPv6 payload length 0 (jumbo payload): not translatable
	ReasonFragmentedExtHdr  // extension header after the Fragment header (RFC 7915 §5.1.1)
	ReasonBadEmbeddedPacket // ICMP error whose quoted packet cannot be parsed
	ReasonBadTransport      // TCP data offset or UDP length outside the packet or below the header

	// Addresses.
	ReasonMartianSource      // illegal source address (RFC 7915 §4.1, §5.1)
	ReasonMartianDestination // multicast, broadcast or otherwise illegal destination
	ReasonNoMappingDst       // destination not in the mapping table (datacenter policy) or untranslatable
	ReasonNoMappingSrc       // IPv6 source not in the mapping table (datacenter policy) or untranslatable
	ReasonSpoofedPseudo      // IPv6 source inside the pseudo prefix (datacenter policy)
	ReasonSpoofedMapped      // IPv4 source is one of our own mapped addresses (datacenter policy)
	ReasonNonGlobalWKP       // non-global IPv4 address behind 64:ff9b::/96 (RFC 6052 §3.1)

	// Router duties.
	ReasonTTLExpired  // TTL or hop limit would reach zero
	ReasonTooBig      // does not fit the next-hop MTU and may not be fragmented
	ReasonSourceRoute // unexpired IPv4 source route option (RFC 7915 §4.1)
	ReasonRoutingHdr  // IPv6 routing header with segments left (RFC 7915 §5.1)

	// Protocols.
	ReasonFragmentedICMP      // fragmented ICMP/ICMPv6 (RFC 7915 §1.2)
	ReasonUDPZeroChecksum     // IPv4 UDP with checksum zero, policy "drop"
	ReasonUDPZeroChecksumFrag // fragmented IPv4 UDP with checksum zero (RFC 7915 §4.5)
	ReasonICMPType            // ICMP type or code that RFC 7915 does not translate
	ReasonICMPParamPointer    // parameter problem whose pointer has no counterpart
	ReasonICMPErrorInError    // ICMP error quoting an ICMP error (RFC 7915 §4.3)
	ReasonIGMP                // IGMP is not translated (RFC 7915 §4.2)
	ReasonForeignProtocol     // ICMPv6, AH or an IPv6 extension header number in IPv4, ICMPv4 in IPv6

	// Hostile input, added after the others so that no value changes.
	ReasonBadFragment      // fragment overlapping or cutting short the transport header, not a multiple of 8 with more to come, or reaching past 65535 (RFC 1858, RFC 7112, RFC 8200 §4.5)
	ReasonEmbeddedMismatch // ICMP error sent to one address about a packet from another (the quote is not of the reverse flow)
	ReasonLocalDestination // translated destination is the translator's or the node's own address (local.go)

	numReasons
)

var reasonNames = [numReasons]string{
	ReasonNone:                "",
	ReasonTruncated:           "truncated",
	ReasonBadVersion:          "bad-version",
	ReasonBadIPv4Checksum:     "bad-ipv4-checksum",
	ReasonBadIPv4Header:       "bad-ipv4-header",
	ReasonBadOptions:          "bad-options",
	ReasonExtHeaderChain:      "ext-header-chain",
	ReasonJumbogram:           "jumbogram",
	ReasonFragmentedExtHdr:    "fragmented-ext-header",
	ReasonBadEmbeddedPacket:   "bad-embedded-packet",
	ReasonBadTransport:        "bad-transport-header",
	ReasonMartianSource:       "martian-source",
	ReasonMartianDestination:  "martian-destination",
	ReasonNoMappingDst:        "no-mapping-dst",
	ReasonNoMappingSrc:        "no-mapping-src",
	ReasonSpoofedPseudo:       "spoofed-pseudo-source",
	ReasonSpoofedMapped:       "spoofed-mapped-source",
	ReasonNonGlobalWKP:        "non-global-wkp",
	ReasonTTLExpired:          "ttl-expired",
	ReasonTooBig:              "too-big",
	ReasonSourceRoute:         "source-route",
	ReasonRoutingHdr:          "routing-header",
	ReasonFragmentedICMP:      "fragmented-icmp",
	ReasonUDPZeroChecksum:     "udp-zero-checksum",
	ReasonUDPZeroChecksumFrag: "udp-zero-checksum-fragment",
	ReasonICMPType:            "icmp-untranslatable",
	ReasonICMPParamPointer:    "icmp-param-pointer",
	ReasonICMPErrorInError:    "icmp-error-in-error",
	ReasonIGMP:                "igmp",
	ReasonForeignProtocol:     "foreign-protocol",
	ReasonBadFragment:         "bad-fragment",
	ReasonEmbeddedMismatch:    "icmp-embedded-mismatch",
	ReasonLocalDestination:    "local-destination",
}

func (r Reason) String() string {
	if r < numReasons {
		return reasonNames[r]
	}
	return "unknown"
}

// NumReasons is the number of Reason values, for sizing counter arrays.
const NumReasons = int(numReasons)

// Result is the outcome of translating one packet.
type Result struct {
	Verdict Verdict
	Reason  Reason
	// Entry is the index of the mapping-table entry of the IPv6 server
	// involved (the IPv4 destination or the IPv6 source), or -1. The data
	// plane keeps per-entry counters with it.
	Entry int32
}
