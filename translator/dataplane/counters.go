package dataplane

import (
	"sync/atomic"

	"github.com/map646/map646/translator"
)

// Direction is the direction of an input packet, by its IP version.
type Direction uint8

const (
	Dir4to6  Direction = iota // IPv4 in: a client's packet toward a server
	Dir6to4                   // IPv6 in: a server's packet (or a hairpinned one)
	DirOther                  // neither version nibble: dropped as bad-version or truncated
	NumDirections
)

func (d Direction) String() string {
	switch d {
	case Dir4to6:
		return "4to6"
	case Dir6to4:
		return "6to4"
	}
	return "other"
}

func direction(pkt []byte) Direction {
	if len(pkt) == 0 {
		return DirOther
	}
	switch pkt[0] >> 4 {
	case 4:
		return Dir4to6
	case 6:
		return Dir6to4
	}
	return DirOther
}

// NumVerdicts is the number of translator.Verdict values.
const NumVerdicts = 3

// Reasons counted: the translator's, then the data plane's own.
const (
	// ReasonSegmentFailed: a super-packet the translator declined could
	// not be split into segments (malformed, or too many segments).
	ReasonSegmentFailed = translator.Reason(translator.NumReasons)
	NumReasons          = translator.NumReasons + 1
)

// ReasonName is the metrics name of a reason, the translator's own names
// and "gso-segment-failed".
func ReasonName(r translator.Reason) string {
	if r == ReasonSegmentFailed {
		return "gso-segment-failed"
	}
	return r.String()
}

// Indexes into a worker's counter block.
const (
	cVerdicts    = 0 // [NumDirections][NumVerdicts][NumReasons]
	cBytesIn     = cVerdicts + int(NumDirections)*NumVerdicts*NumReasons
	cSentPackets = cBytesIn + int(NumDirections)
	cSentBytes   = cSentPackets + int(NumDirections)
	cScalars     = cSentBytes + int(NumDirections)
)

const (
	cICMPSent = cScalars + iota
	cICMPSuppressed
	cPMTUSent
	cPMTUSuppressed
	cGSOWhole
	cGSOSegmented
	cGSOSegments
	cWriteErrors
	cBatches
	cProbes
	cProbeEchoes
	numCounters
)

func verdictIndex(d Direction, v translator.Verdict, r translator.Reason) int {
	return cVerdicts + (int(d)*NumVerdicts+int(v))*NumReasons + int(r)
}

// published is a worker's counter block as others see it: written by the
// worker with atomic adds, read by anyone with atomic loads. The padding
// keeps it off the cache lines of its neighbours (128 bytes: the adjacent
// line prefetcher works on pairs).
type published struct {
	_ [128]byte
	v [numCounters]uint64
	// cur says which table the worker uses: idle (between batches), busy
	// (loading the table) or the table's epoch. Swap waits on it.
	cur atomic.Uint64
	_   [128]byte
}

const (
	idle = 0
	busy = ^uint64(0)
)

// pending is a worker's counts of the current batch: plain fields, owned by
// the worker, added to its published block at the end of the batch.
type pending struct {
	v       [numCounters]uint64
	touched []uint16 // indexes of v that are not zero
}

func newPending() pending {
	return pending{touched: make([]uint16, 0, numCounters)}
}

func (p *pending) add(i int, n uint64) {
	if p.v[i] == 0 {
		p.touched = append(p.touched, uint16(i))
	}
	p.v[i] += n
}

// publish adds the pending counts to pub and clears them.
func (p *pending) publish(pub *published) {
	for _, i := range p.touched {
		atomic.AddUint64(&pub.v[i], p.v[i])
		p.v[i] = 0
	}
	p.touched = p.touched[:0]
}

// Stats is a snapshot of the data plane's counters, summed over workers.
type Stats struct {
	// Packets counts the verdicts, by direction of the input, verdict and
	// reason (ReasonNone for forwarded packets).
	Packets [NumDirections][NumVerdicts][NumReasons]uint64
	// Bytes counts the bytes read, by direction.
	Bytes [NumDirections]uint64
	// SentPackets and SentBytes count what was written back to the device
	// (translations, fragments, ICMP errors), by direction of the input.
	SentPackets, SentBytes [NumDirections]uint64
	// ICMPErrorsSent and ICMPErrorsSuppressed split the icmp-error verdicts:
	// sent, or held back by the rate limit.
	ICMPErrorsSent, ICMPErrorsSuppressed uint64
	// PMTUErrorsSent and PMTUErrorsSuppressed are the part of them that
	// are path MTU signals (reason too-big: Fragmentation Needed, Packet
	// Too Big), limited in a bucket of their own.
	PMTUErrorsSent, PMTUErrorsSuppressed uint64
	// GSOWhole counts super-packets translated whole; GSOSegmented those
	// split in software, into GSOSegments segments.
	GSOWhole, GSOSegmented, GSOSegments uint64
	// WriteErrors counts write batches the device refused in part or whole.
	WriteErrors uint64
	// Batches counts the batches read, each one published after every
	// other counter of its batch: a snapshot that counts n batches holds
	// all of their counts.
	Batches uint64
	// Probes counts the data plane's own probe datagrams (Probe) read from
	// the device: 4to6 packets that are also counted in Packets, as any
	// packet is (and their ICMP errors in ICMPErrorsSent and SentPackets).
	// Subtract them from the packets read to get the node's real traffic:
	// a probe every 100 ms is 10 packets/s on an idle node.
	Probes uint64
	// ProbeEchoes counts the kernel's ICMPv6 errors about the fast path's
	// check probes (checkFastPath) read from the device: 6to4 packets,
	// also counted in Packets (dropped as local-destination, or forwarded
	// to the node under allow_local_destinations). Like Probes, they are
	// not the node's traffic; published and read in the same order.
	ProbeEchoes uint64
	// DeviceDropped counts packets the device read but could not return
	// (see tun.Device.Dropped).
	DeviceDropped uint64
	// FastPath counts the packets the kernel fast path translated, by
	// direction (AttachFastPath). They are also in Packets (forwarded,
	// reason none) and SentPackets, and per mapping (Mappings), not in
	// Bytes and SentBytes.
	FastPath [NumDirections]uint64
}

// In returns the packets of direction d that got a verdict.
func (s *Stats) In(d Direction) uint64 {
	var n uint64
	for v := range NumVerdicts {
		for r := range NumReasons {
			n += s.Packets[d][v][r]
		}
	}
	return n
}

// Verdicts returns the packets of direction d that got verdict v.
func (s *Stats) Verdicts(d Direction, v translator.Verdict) uint64 {
	var n uint64
	for r := range NumReasons {
		n += s.Packets[d][v][r]
	}
	return n
}

// add adds a published block to s.
func (s *Stats) add(pub *published) {
	load := func(i int) uint64 { return atomic.LoadUint64(&pub.v[i]) }
	// The worker publishes a batch's verdicts, then its probes, then the
	// batch itself (batch); read in the reverse order, a snapshot never
	// holds more probes than packets read, and one that counts n batches
	// holds all of their counts.
	s.Batches += load(cBatches)
	s.Probes += load(cProbes)
	s.ProbeEchoes += load(cProbeEchoes)
	for d := range NumDirections {
		for v := range NumVerdicts {
			for r := range NumReasons {
				s.Packets[d][v][r] += load(verdictIndex(d, translator.Verdict(v), translator.Reason(r)))
			}
		}
		s.Bytes[d] += load(cBytesIn + int(d))
		s.SentPackets[d] += load(cSentPackets + int(d))
		s.SentBytes[d] += load(cSentBytes + int(d))
	}
	// A batch publishes the totals before their path MTU part (result
	// counts them in that order, and publish keeps it); read in the
	// reverse order, the part never exceeds the total.
	s.PMTUErrorsSent += load(cPMTUSent)
	s.PMTUErrorsSuppressed += load(cPMTUSuppressed)
	s.ICMPErrorsSent += load(cICMPSent)
	s.ICMPErrorsSuppressed += load(cICMPSuppressed)
	s.GSOWhole += load(cGSOWhole)
	s.GSOSegmented += load(cGSOSegmented)
	s.GSOSegments += load(cGSOSegments)
	s.WriteErrors += load(cWriteErrors)
}

// Per-mapping counters: four per mapping, in this order.
const (
	ePackets4to6 = iota
	eBytes4to6
	ePackets6to4
	eBytes6to4
	entryWords
)

// MappingCounts are the counters of one mapping: what was translated
// toward its server (4to6) and from it (6to4).
type MappingCounts struct {
	Packets4to6, Bytes4to6 uint64
	Packets6to4, Bytes6to4 uint64
}

// entryPending adds up a batch's per-mapping counts before they go to the
// shared array: a busy mapping gets one atomic add per batch, not one per
// packet, so workers hitting the same server do not fight over its cache
// line. A small open-addressing table keyed by mapping and direction.
type entryPending struct {
	slots [entrySlots]entrySlot
	used  []uint16
}

const (
	entrySlots = 256
	entryFlush = entrySlots / 2 // flush when half full: short probes
)

type entrySlot struct {
	key            uint32 // entry*2 + direction, +1; 0 is empty
	packets, bytes uint64
}

func newEntryPending() *entryPending {
	return &entryPending{used: make([]uint16, 0, entrySlots)}
}

// add counts one packet of n bytes for entry in direction d (Dir4to6 or
// Dir6to4). It reports whether the table is full enough to flush.
func (e *entryPending) add(entry int32, d Direction, n int) bool {
	key := (uint32(entry)<<1 | uint32(d&1)) + 1
	i := (key * 0x9e3779b1) >> 24 // Fibonacci hashing to 8 bits
	for {
		s := &e.slots[i]
		switch s.key {
		case key:
			s.packets++
			s.bytes += uint64(n)
			return false
		case 0:
			s.key, s.packets, s.bytes = key, 1, uint64(n)
			e.used = append(e.used, uint16(i))
			return len(e.used) >= entryFlush
		}
		i = (i + 1) % entrySlots
	}
}

// flush adds the pending counts to c and clears them.
func (e *entryPending) flush(c *counters) {
	for _, i := range e.used {
		s := &e.slots[i]
		k := s.key - 1
		if w := c.of(int(k >> 1)); w != nil {
			at := int(k&1) * 2 // ePackets4to6 or ePackets6to4
			atomic.AddUint64(&w[at], s.packets)
			atomic.AddUint64(&w[at+1], s.bytes)
		}
		*s = entrySlot{}
	}
	e.used = e.used[:0]
}
