package translator

// Buffer sizes. An input is at most one IP packet of 65535 bytes (IPv4
// total length, IPv6 header plus payload length); fragmenting it to the
// smallest IPv6 MTU adds 48 bytes per fragment.
const (
	maxInput      = 40 + 65535
	maxFragments  = 65535/(MinIPv6MTU-48) + 2
	outBufferSize = maxInput + maxFragments*48 + 1280
)

// Out receives the packets that translating one input produces: one
// translated packet, its fragments, a hairpinned packet, or a generated ICMP
// error. Each caller owns one Out and reuses it for every packet; the slices
// in Pkts are valid until the next call that uses the Out.
type Out struct {
	// Pkts are the IP packets to send, in order. Each starts with its IP
	// header; the version nibble tells IPv4 from IPv6.
	Pkts [][]byte

	buf  []byte // backing store of Pkts
	used int
	hp   *Out // holds the intermediate IPv4 packet of a hairpinned one
}

// NewOut returns an Out with buffers for the largest input.
func NewOut() *Out {
	return &Out{
		Pkts: make([][]byte, 0, maxFragments+1),
		buf:  make([]byte, outBufferSize),
		hp: &Out{
			Pkts: make([][]byte, 0, 1),
			buf:  make([]byte, maxInput+icmpHdrLen),
		},
	}
}

func (o *Out) reset() {
	o.Pkts = o.Pkts[:0]
	o.used = 0
}

// next returns room for a packet of n bytes and records it in Pkts.
// Callers never ask for more than the buffer holds: the sizes above bound
// every path.
func (o *Out) next(n int) []byte {
	b := o.buf[o.used : o.used+n : o.used+n]
	o.used += n
	o.Pkts = append(o.Pkts, b)
	return b
}
