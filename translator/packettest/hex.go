package packettest

import (
	"encoding/hex"
	"fmt"
	"strings"
)

// Hex parses a golden vector written as hex bytes, in the style of
// Tailscale's net/packet tests: whitespace and commas separate tokens, a
// token is "0x45" or any even run of hex digits ("4500"), and "//" or "#"
// starts a comment to the end of the line. It panics on anything else, so a
// typo in a vector fails the test that uses it.
func Hex(s string) []byte {
	var out []byte
	for i, line := range strings.Split(s, "\n") {
		if j := strings.Index(line, "//"); j >= 0 {
			line = line[:j]
		}
		if j := strings.IndexByte(line, '#'); j >= 0 {
			line = line[:j]
		}
		for _, tok := range strings.FieldsFunc(line, func(r rune) bool {
			return r == ',' || r == ' ' || r == '\t' || r == '\r'
		}) {
			tok = strings.TrimPrefix(strings.TrimPrefix(tok, "0x"), "0X")
			b, err := hex.DecodeString(tok)
			if err != nil || len(tok) == 0 {
				panic(fmt.Sprintf("packettest: Hex: line %d: bad token %q", i+1, tok))
			}
			out = append(out, b...)
		}
	}
	return out
}

// Format writes pkt in the form Hex reads, with a comment naming each header
// as Check found it, so that -update flags can write golden files a person
// can review. A packet Check rejects is written with the error as its first
// comment.
func Format(pkt []byte) string {
	var b strings.Builder
	p, err := Check(pkt)
	secs := []section{{"packet", len(pkt)}}
	if err != nil {
		fmt.Fprintf(&b, "// rejected by Check: %v\n", err)
	} else {
		secs = sections(p, "")
	}
	at := 0
	for _, s := range secs {
		fmt.Fprintf(&b, "// %s\n", s.name)
		for i := 0; i < s.n; i += 16 {
			row := pkt[at+i : at+min(i+16, s.n)]
			for j, c := range row {
				if j > 0 {
					b.WriteByte(' ')
				}
				fmt.Fprintf(&b, "%02x", c)
			}
			b.WriteByte('\n')
		}
		at += s.n
	}
	return b.String()
}

type section struct {
	name string
	n    int
}

// sections lists the parts of p.Raw in order; they add up to len(p.Raw).
func sections(p *Packet, prefix string) []section {
	var s []section
	if p.Version == 4 {
		s = append(s, section{prefix + "IPv4 header", 20})
		if len(p.Options) > 0 {
			s = append(s, section{prefix + "IPv4 options", len(p.Options)})
		}
	} else {
		s = append(s, section{prefix + "IPv6 header", 40})
		for _, e := range p.Ext {
			s = append(s, section{prefix + extName(e.Proto), e.Len})
		}
	}
	if n := len(p.L4) - len(p.Payload); n > 0 {
		s = append(s, section{prefix + protoName(p.Proto) + " header", n})
	}
	switch {
	case p.Quote != nil:
		s = append(s, sections(p.Quote, prefix+"quoted ")...)
		if n := len(p.Payload) - len(p.Quote.Raw) - len(p.Extension); n > 0 {
			s = append(s, section{prefix + "padding", n})
		}
		if len(p.Extension) > 0 {
			s = append(s, section{prefix + "RFC 4884 extension", len(p.Extension)})
		}
	case len(p.Payload) > 0:
		s = append(s, section{prefix + "payload", len(p.Payload)})
	}
	covered := 0
	for _, x := range s {
		covered += x.n
	}
	if covered < len(p.Raw) { // a quote cut inside a header
		s = append(s, section{prefix + "rest", len(p.Raw) - covered})
	}
	return s
}

func extName(proto uint8) string {
	switch proto {
	case ProtoHopByHop:
		return "Hop-by-Hop Options header"
	case ProtoRouting:
		return "Routing header"
	case ProtoFragment:
		return "Fragment header"
	case ProtoDestOpts:
		return "Destination Options header"
	case ProtoAH:
		return "Authentication Header"
	}
	return fmt.Sprintf("extension header %d", proto)
}

func protoName(proto uint8) string {
	switch proto {
	case ProtoTCP:
		return "TCP"
	case ProtoUDP:
		return "UDP"
	case ProtoICMP:
		return "ICMPv4"
	case ProtoICMPv6:
		return "ICMPv6"
	}
	return fmt.Sprintf("protocol %d", proto)
}
