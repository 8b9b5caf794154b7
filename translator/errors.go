package translator

import (
	"encoding/binary"

	"github.com/map646/map646/translator/internal/checksum"
)

// ICMP errors the translator generates itself (RFC 7915 §4.4, §5.4, and
// its duties as a router: RFC 1812, RFC 4443).

// error4 answers the IPv4 packet pkt, which is dropped for r, with an ICMPv4
// error from the translator's own address. It falls back to a plain drop
// when errors are off or the packet must not be answered.
func (t *Translator) error4(pkt []byte, h *hdr4, r Reason, typ, code uint8, rest uint32, o *Out) Result {
	if !t.cfg.ICMPErrors || !answerable4(pkt, h) {
		return drop(r)
	}
	quote := pkt[:min(len(pkt), maxICMPv4Error-ip4MinLen-icmpHdrLen)]
	n := ip4MinLen + icmpHdrLen + len(quote)
	b := o.next(n)
	writeIPv4(b, 0, n, 0, 0, 64, protoICMP, &t.addr4, &h.src)
	msg := b[ip4MinLen:]
	msg[0], msg[1], msg[2], msg[3] = typ, code, 0, 0
	binary.BigEndian.PutUint32(msg[4:], rest)
	copy(msg[icmpHdrLen:], quote)
	binary.BigEndian.PutUint16(msg[2:], checksum.Finish(checksum.Sum(msg, 0)))
	return Result{Verdict: ICMPError, Reason: r, Entry: -1}
}

// answerable4 applies RFC 1812 §4.3.2.7: no error about an ICMP error, a
// fragment other than the first, or a packet whose source is not a unicast
// host.
func answerable4(pkt []byte, h *hdr4) bool {
	if h.off != 0 || martian4(h.src) {
		return false
	}
	if h.proto == protoICMP && (len(pkt) <= h.hlen || icmp4IsError(pkt[h.hlen])) {
		return false
	}
	return true
}

// error6 is error4 for IPv6 (RFC 4443 §2.4).
func (t *Translator) error6(pkt []byte, h *hdr6, r Reason, typ, code uint8, rest uint32, o *Out) Result {
	if !t.cfg.ICMPErrors || !answerable6(pkt, h) {
		return drop(r)
	}
	quote := pkt[:min(len(pkt), maxICMPv6Error-ip6Len-icmpHdrLen)]
	n := ip6Len + icmpHdrLen + len(quote)
	b := o.next(n)
	writeIPv6(b, 0, icmpHdrLen+len(quote), protoICMPv6, 64, &t.addr6, &h.src)
	msg := b[ip6Len:]
	msg[0], msg[1], msg[2], msg[3] = typ, code, 0, 0
	binary.BigEndian.PutUint32(msg[4:], rest)
	copy(msg[icmpHdrLen:], quote)
	binary.BigEndian.PutUint16(msg[2:], checksum.Finish(checksum.Sum(msg, checksum.Pseudo6(&t.addr6, &h.src, protoICMPv6, len(msg)))))
	return Result{Verdict: ICMPError, Reason: r, Entry: -1}
}

func answerable6(pkt []byte, h *hdr6) bool {
	if h.fragOff != 0 || martian6(&h.src) || h.dst[0] == 0xff {
		return false
	}
	// Never about an ICMPv6 error (RFC 4443 §2.4(e)), wherever in the
	// chain it sits: parse6 stops at the first header it does not skip
	// (after a Fragment header, at AH, ...), and an error found further on
	// is an error all the same. A chain that cannot be walked to its end
	// may hide one: not answered either.
	proto, l4, ok := upperLayer6(pkt, h.l4, h.proto)
	if !ok || proto == protoICMPv6 && (len(pkt) <= l4 || icmp6IsError(pkt[l4])) {
		return false
	}
	return true
}
