package tun

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// offloadDevice is a multiqueue tun device with virtio-net headers and
// checksum and segmentation offloads: the kernel hands over and accepts
// 64 KB super-packets.
type offloadDevice struct {
	name      string
	queues    []*queue
	closing   int // eventfd: see fdQueue
	mtu       int
	enabled   atomic.Int64 // the TUN_F_* flags set with TUNSETOFFLOAD
	busyPoll  atomic.Int64
	dropped   atomic.Uint64
	closed    atomic.Bool
	closeOnce sync.Once
	closeErr  error
}

// queue is one queue of the device with the state of its calls, kept here
// so that a call allocates nothing. Separate states let one goroutine read
// while another writes.
type queue struct {
	*fdQueue
	r, w batchState
}

// batchState is the state of one ReadBatch or WriteBatch call.
type batchState struct {
	hdr [VirtioNetHdrLen]byte
	iov [2]unix.Iovec // the virtio header, then the packet
}

// OpenOffload creates the tun device name (IFF_TUN|IFF_NO_PI|IFF_VNET_HDR|
// IFF_MULTI_QUEUE) with queues queues, enables checksum and TCP
// segmentation offload (and UDP segmentation where the kernel has it), sets
// the MTU and, if txqueuelen > 0, the transmit queue length, and brings the
// link up. It refuses a name that any link already has (ErrNameTaken).
//
// The device lives in the network namespace of the calling OS thread.
func OpenOffload(name string, mtu, queues, txqueuelen int) (Device, error) {
	if err := checkArgs(name, mtu); err != nil {
		return nil, err
	}
	if queues < 1 || queues > maxQueues {
		return nil, fmt.Errorf("tun: %d queues, want 1..%d", queues, maxQueues)
	}
	// Every step below must happen in one network namespace.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	l, err := openLink()
	if err != nil {
		return nil, err
	}
	defer l.close()
	if err := l.checkFree(name); err != nil {
		return nil, err
	}
	closing, err := newClosingFD()
	if err != nil {
		return nil, sysErr("eventfd", err)
	}
	d := &offloadDevice{name: name, mtu: mtu, closing: closing}
	fail := func(err error) (Device, error) {
		d.Close() // the kernel removes the device with its last queue
		return nil, err
	}
	for i := range queues {
		q, err := d.openQueue(i)
		if err != nil {
			return fail(err)
		}
		d.queues = append(d.queues, q)
	}
	if err := l.up(d.name, mtu, txqueuelen); err != nil {
		return fail(err)
	}
	return d, nil
}

func (d *offloadDevice) openQueue(i int) (*queue, error) {
	// Non-blocking: a reader that finds the queue empty waits in ppoll,
	// where Close can wake it (fdQueue).
	fd, err := unix.Open(tunPath, unix.O_RDWR|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, sysErr("open "+tunPath, err)
	}
	ok := false
	defer func() {
		if !ok {
			unix.Close(fd)
		}
	}()
	ifr, err := unix.NewIfreq(d.name)
	if err != nil {
		return nil, err
	}
	flags := uint16(unix.IFF_TUN | unix.IFF_NO_PI | unix.IFF_VNET_HDR | unix.IFF_MULTI_QUEUE)
	if i == 0 {
		// IFF_TUN_EXCL makes the kernel refuse an existing device, closing
		// the window between checkFree and here.
		flags |= unix.IFF_TUN_EXCL
	}
	ifr.SetUint16(flags)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		switch {
		case i == 0 && errors.Is(err, unix.EBUSY):
			return nil, nameTaken(d.name)
		case errors.Is(err, unix.EINVAL):
			return nil, fmt.Errorf("%w: TUNSETIFF %s with IFF_VNET_HDR|IFF_MULTI_QUEUE: %w", ErrUnsupported, d.name, err)
		}
		return nil, sysErr("create "+d.name, err)
	}
	if i == 0 {
		d.name = ifr.Name()
		// The header's byte order: little-endian as in virtio 1.x. On a
		// little-endian host this is what the kernel does anyway.
		if err := unix.IoctlSetPointerInt(fd, unix.TUNSETVNETLE, 1); err != nil {
			return nil, fmt.Errorf("%w: TUNSETVNETLE on %s: %w", ErrUnsupported, d.name, err)
		}
		if err := d.setOffload(fd); err != nil {
			return nil, err
		}
	}
	ok = true
	q := &queue{fdQueue: newFDQueue(fd, d.closing, &d.busyPoll)}
	for _, st := range []*batchState{&q.r, &q.w} {
		st.iov[0].Base = &st.hdr[0]
		st.iov[0].SetLen(VirtioNetHdrLen)
	}
	return q, nil
}

// setOffload enables the offloads, which belong to the device, not the
// queue. TUN_F_CSUM is what the others build on: without it the kernel
// completes every checksum itself before the packet reaches us. UDP
// segmentation (Linux 6.2) is optional; an older kernel answers EINVAL.
func (d *offloadDevice) setOffload(fd int) error {
	const tcp = unix.TUN_F_CSUM | unix.TUN_F_TSO4 | unix.TUN_F_TSO6
	const udp = unix.TUN_F_USO4 | unix.TUN_F_USO6
	err := unix.IoctlSetInt(fd, unix.TUNSETOFFLOAD, tcp|udp)
	if err == nil {
		d.enabled.Store(tcp | udp)
		return nil
	}
	if !errors.Is(err, unix.EINVAL) {
		return sysErr("TUNSETOFFLOAD on "+d.name, err)
	}
	if err := unix.IoctlSetInt(fd, unix.TUNSETOFFLOAD, tcp); err != nil {
		return fmt.Errorf("%w: checksum and TCP segmentation offload (TUNSETOFFLOAD) on %s: %w; use offload = false", ErrUnsupported, d.name, err)
	}
	d.enabled.Store(tcp)
	return nil
}

func (d *offloadDevice) Name() string    { return d.name }
func (d *offloadDevice) Queues() int     { return len(d.queues) }
func (d *offloadDevice) Dropped() uint64 { return d.dropped.Load() }

// Offloads names the offloads enabled, for the startup log: "csum tso4
// tso6" plus "uso4 uso6" where UDP segmentation is available, less those
// SelfTest switched off ("none" when it switched off csum).
func (d *offloadDevice) Offloads() string { return offloadString(int(d.enabled.Load())) }

func (d *offloadDevice) SetBusyPoll(t time.Duration) { d.busyPoll.Store(max(int64(t), 0)) }

func (d *offloadDevice) Close() error {
	d.closeOnce.Do(func() {
		d.closed.Store(true)
		qs := make([]*fdQueue, len(d.queues))
		for i, q := range d.queues {
			qs[i] = q.fdQueue
		}
		if err := closeQueues(qs, d.closing); err != nil {
			d.closeErr = fmt.Errorf("tun: close %s: %w", d.name, err)
		}
	})
	return d.closeErr
}

func (d *offloadDevice) ReadBatch(qi int, pkts []Packet) (int, error) {
	if len(pkts) == 0 {
		return 0, nil
	}
	q := d.queues[qi]
	q.mu.RLock()
	defer q.mu.RUnlock()
	n, err := d.read(q, pkts)
	q.r.iov[1] = unix.Iovec{} // do not keep the caller's buffers alive
	if n > 0 {
		return n, nil // an error after the first packet shows up on the next call
	}
	return 0, fmt.Errorf("tun: read %s queue %d: %w", d.name, qi, err)
}

// read reads packets until pkts is full or, once it has one, none is ready.
func (d *offloadDevice) read(q *queue, pkts []Packet) (n int, err error) {
	var since int64 // of busy polling
	for n < len(pkts) {
		if d.closed.Load() {
			return n, os.ErrClosed
		}
		p := &pkts[n]
		if len(p.Buf) <= p.Off {
			return n, errSmallBuffer
		}
		ok, e := d.tryRead(q, p)
		switch e {
		case 0:
			if ok {
				n++
			}
		case unix.EAGAIN:
			if n > 0 {
				return n, nil
			}
			if err := q.idle(&since); err != nil {
				return n, err
			}
		case unix.EINTR:
		default:
			return n, e
		}
	}
	return n, nil
}

// tryRead reads one packet into p, without waiting: ok when p holds it;
// not ok with errno 0 when the packet read was dropped (counted in
// Dropped); EAGAIN when the queue is empty. The caller holds q.mu.
func (d *offloadDevice) tryRead(q *queue, p *Packet) (ok bool, e unix.Errno) {
	room := p.Buf[p.Off:]
	q.r.iov[1].Base = &room[0]
	q.r.iov[1].SetLen(len(room))
	got, _, e := unix.Syscall(unix.SYS_READV, uintptr(q.fd), uintptr(unsafe.Pointer(&q.r.iov[0])), 2)
	if e != 0 {
		return false, e
	}
	size := int(got) - VirtioNetHdrLen
	var h VirtioNetHdr
	if size <= 0 || size > len(room) || size == len(room) && truncated(room) || h.Decode(q.r.hdr[:]) != nil {
		d.dropped.Add(1)
		return false, 0
	}
	gso, partial, err := fromVirtio(&h, room[:size])
	if err != nil {
		d.dropped.Add(1)
		return false, 0
	}
	p.Len, p.GSOSize, p.Partial = size, gso, partial
	return true, 0
}

func (d *offloadDevice) WriteBatch(qi int, pkts []Packet) error {
	if len(pkts) == 0 {
		return nil
	}
	q := d.queues[qi]
	q.mu.RLock()
	defer q.mu.RUnlock()
	failed, first, err := d.write(q, pkts)
	q.w.iov[1] = unix.Iovec{}
	if err != nil {
		return fmt.Errorf("tun: write %s queue %d: %w", d.name, qi, err)
	}
	if failed > 0 {
		return fmt.Errorf("tun: write %s queue %d: %d of %d packets refused, the first: %w", d.name, qi, failed, len(pkts), first)
	}
	return nil
}

// write writes every packet, one writev each: the virtio header from
// q.w.hdr and the packet from its buffer, so the buffer's headroom is never
// written to. A packet the kernel refuses is counted in failed, the first
// refusal kept in first; err ends the call (the device is closing).
func (d *offloadDevice) write(q *queue, pkts []Packet) (failed int, first, err error) {
	refuse := func(err error) {
		if failed == 0 {
			first = err
		}
		failed++
	}
	for i := range pkts {
		if d.closed.Load() {
			return failed, first, os.ErrClosed
		}
		p := &pkts[i]
		h, err := HeaderFor(p)
		if err == nil && p.Len == 0 {
			err = errBadIP
		}
		if err != nil {
			refuse(err)
			continue
		}
		h.Encode(q.w.hdr[:])
		b := p.Bytes() // bounds-checked: the kernel must not read past the packet
		q.w.iov[1].Base = &b[0]
		q.w.iov[1].SetLen(len(b))
	retry:
		_, _, e := unix.Syscall(unix.SYS_WRITEV, uintptr(q.fd), uintptr(unsafe.Pointer(&q.w.iov[0])), 2)
		switch e {
		case 0:
		case unix.EAGAIN:
			// The queue's socket buffer is full (TUNSETSNDBUF); wait
			// for room rather than drop.
			if err := q.wait(&q.wpoll); err != nil {
				return failed, first, err
			}
			goto retry
		case unix.EINTR:
			goto retry
		default:
			refuse(e)
		}
	}
	return failed, first, nil
}
