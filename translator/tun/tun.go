package tun

import (
	"errors"
	"time"
)

// Packet is one packet read from or written to a device. The packet is
// Buf[Off:Off+Len]; the bytes before Off are headroom that the device never
// touches, so that a translator can write the longer IPv6 header in front
// of an IPv4 payload without moving it.
type Packet struct {
	Buf      []byte
	Off, Len int
	// GSOSize > 0 marks a super-packet: one IP and transport header followed
	// by the payload of several segments of GSOSize payload bytes each (the
	// last may be shorter).
	GSOSize int
	// Partial: the transport checksum field holds only the folded
	// pseudo-header sum, and whoever segments the packet completes it
	// (virtio NEEDS_CSUM, the kernel's CHECKSUM_PARTIAL). A read sets it on
	// super-packets only.
	Partial bool
}

// Bytes returns the packet.
func (p *Packet) Bytes() []byte { return p.Buf[p.Off : p.Off+p.Len] }

// Device is a tun device with one or more independent queues.
type Device interface {
	// Name is the interface name the kernel gave the device.
	Name() string
	// Queues is the number of independent queues; they run in parallel.
	// On one queue, ReadBatch is called by one goroutine at a time, and so
	// is WriteBatch (a reader and a writer may overlap).
	Queues() int
	// ReadBatch waits for at least one packet on queue q, then reads as many
	// as are ready without waiting, up to len(pkts). It fills Len, GSOSize
	// and Partial of pkts[:n] and reads each at its Off, which it keeps.
	// After Close it returns an error wrapping os.ErrClosed.
	ReadBatch(q int, pkts []Packet) (n int, err error)
	// WriteBatch writes every packet on queue q. A packet the kernel refuses
	// does not stop the others: the error counts the failures and wraps the
	// first. Buf outside the packet is not touched.
	WriteBatch(q int, pkts []Packet) error
	// Dropped counts packets the device read and discarded because they
	// could not be returned as a Packet: larger than the buffer (the kernel
	// truncates them silently), or with a virtio header this package does
	// not honour.
	Dropped() uint64
	// SetBusyPoll makes a reader that finds its queue empty keep reading
	// for up to d before it sleeps. A packet that arrives meanwhile is
	// taken without waking a thread, which saves tens of microseconds of
	// latency per packet on an otherwise idle machine, and costs a CPU
	// for each queue that keeps getting packets at intervals shorter than
	// d. 0, the default, sleeps at once. Safe to call at any time.
	SetBusyPoll(d time.Duration)
	// Close closes every queue and wakes blocked readers. It is safe to call
	// twice. The kernel removes the interface with its last queue.
	Close() error
}

// Buffer sizes. The largest packet a tun device hands over is an IPv6
// packet with a full 64 KB payload; Headroom is enough for the IPv6 header
// (+20 bytes) and a Fragment header (+8) in front of an IPv4 packet, with
// room to spare.
const (
	MaxPacket = 40 + 65535
	Headroom  = 64
	BufSize   = Headroom + MaxPacket
)

// NewBatch returns n packets, each with its own buffer of BufSize bytes and
// Off = Headroom: the buffers of one queue, allocated once and reused for
// every read.
func NewBatch(n int) []Packet {
	// One allocation for the whole batch keeps the buffers together.
	mem := make([]byte, n*BufSize)
	pkts := make([]Packet, n)
	for i := range pkts {
		pkts[i] = Packet{Buf: mem[i*BufSize : (i+1)*BufSize : (i+1)*BufSize], Off: Headroom}
	}
	return pkts
}

// Errors that callers tell apart with errors.Is.
var (
	// ErrNameTaken: a link of that name exists already. The device is not
	// attached to it: attaching to a stranger's tun (or failing on a veth)
	// would hide a configuration mistake.
	ErrNameTaken = errors.New("tun: device name taken")
	// ErrNoTun: /dev/net/tun does not exist (no tun support, or a
	// container without the device node).
	ErrNoTun = errors.New("tun: /dev/net/tun missing")
	// ErrNotPermitted: creating or configuring the device needs
	// CAP_NET_ADMIN, and opening /dev/net/tun read-write access to it.
	ErrNotPermitted = errors.New("tun: not permitted (needs CAP_NET_ADMIN and read-write access to /dev/net/tun)")
	// ErrUnsupported: the kernel lacks a feature the device needs
	// (IFF_VNET_HDR, multiqueue, checksum or TCP segmentation offload).
	ErrUnsupported = errors.New("tun: kernel lacks a feature")
)

// Offload names, as OffloadStates and the metrics use them.
const (
	OffloadCsum = "csum"
	OffloadTSO4 = "tso4"
	OffloadTSO6 = "tso6"
	OffloadUSO4 = "uso4"
	OffloadUSO6 = "uso6"
)

// OffloadNames lists every offload the offload device may enable.
var OffloadNames = []string{OffloadCsum, OffloadTSO4, OffloadTSO6, OffloadUSO4, OffloadUSO6}

// OffloadState is one offload of a device: enabled or not.
type OffloadState struct {
	Name    string // one of OffloadNames
	Enabled bool
}

// OffloadFailure is an offload that failed the self-test and was switched
// off, with what failed.
type OffloadFailure struct {
	Offload string
	Err     error
}
