package tun

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/songgao/water"
)

// plainDevice is the safe mode: a tun device with no virtio header, no
// offloads and one queue, created by github.com/songgao/water. The kernel
// segments and checksums everything before it reaches us, which costs
// throughput and removes every offload from the picture when one
// misbehaves.
type plainDevice struct {
	name      string
	q         *fdQueue
	busyPoll  atomic.Int64
	dropped   atomic.Uint64
	closed    atomic.Bool
	closeOnce sync.Once
	closeErr  error
}

// OpenPlain creates the tun device name (IFF_TUN|IFF_NO_PI, one queue),
// sets its MTU and brings it up. It refuses a name that any link already
// has (ErrNameTaken). The device lives in the network namespace of the
// calling OS thread.
func OpenPlain(name string, mtu int) (Device, error) {
	if err := checkArgs(name, mtu); err != nil {
		return nil, err
	}
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
	ifce, err := water.New(water.Config{
		DeviceType:             water.TUN,
		PlatformSpecificParams: water.PlatformSpecificParams{Name: name},
	})
	if err != nil {
		return nil, sysErr("create "+name, err)
	}
	// water wraps the descriptor in an os.File, which sits in the runtime
	// poller; the device is read through a duplicate that does not (see
	// fdQueue). Closing water's file takes the original out of the poller;
	// the duplicate keeps the queue attached.
	fd, err := dupNonblock(ifce)
	ifce.Close()
	if err != nil {
		return nil, sysErr("dup the descriptor of "+name, err)
	}
	closing, err := newClosingFD()
	if err != nil {
		unix.Close(fd)
		return nil, sysErr("eventfd", err)
	}
	d := &plainDevice{name: ifce.Name()}
	d.q = newFDQueue(fd, closing, &d.busyPoll)
	if err := l.up(d.name, mtu, 0); err != nil {
		d.Close()
		return nil, err
	}
	return d, nil
}

// dupNonblock returns a non-blocking duplicate of water's descriptor.
func dupNonblock(ifce *water.Interface) (int, error) {
	sc, ok := ifce.ReadWriteCloser.(syscall.Conn)
	if !ok {
		return -1, fmt.Errorf("water returned a %T, not a file", ifce.ReadWriteCloser)
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return -1, err
	}
	fd, dupErr := -1, error(nil)
	if err := rc.Control(func(orig uintptr) {
		fd, dupErr = unix.FcntlInt(orig, unix.F_DUPFD_CLOEXEC, 0)
	}); err != nil {
		return -1, err
	}
	if dupErr != nil {
		return -1, dupErr
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

func (d *plainDevice) Name() string                { return d.name }
func (d *plainDevice) Queues() int                 { return 1 }
func (d *plainDevice) Dropped() uint64             { return d.dropped.Load() }
func (d *plainDevice) SetBusyPoll(t time.Duration) { d.busyPoll.Store(max(int64(t), 0)) }

func (d *plainDevice) Close() error {
	d.closeOnce.Do(func() {
		d.closed.Store(true)
		if err := closeQueues([]*fdQueue{d.q}, d.q.closing); err != nil {
			d.closeErr = fmt.Errorf("tun: close %s: %w", d.name, err)
		}
	})
	return d.closeErr
}

var errPlainOffload = errors.New("tun: the plain device takes no super-packets or partial checksums (use Segment)")

// ReadBatch reads one packet per read(2), as a plain tun device hands
// them over, but takes whatever else is ready in the same call, so that
// the data plane's per-batch work (counters, heartbeat, the write call) is
// shared by the packets of a burst.
func (d *plainDevice) ReadBatch(q int, pkts []Packet) (int, error) {
	if q != 0 {
		return 0, fmt.Errorf("tun: %s has one queue, not %d", d.name, q+1)
	}
	d.q.mu.RLock()
	defer d.q.mu.RUnlock()
	n := 0
	var since int64 // of busy polling
	for n < len(pkts) {
		if d.closed.Load() {
			return 0, fmt.Errorf("tun: read %s: %w", d.name, os.ErrClosed)
		}
		p := &pkts[n]
		room := p.Buf[p.Off:]
		if len(room) == 0 {
			if n > 0 {
				return n, nil
			}
			return 0, fmt.Errorf("tun: read %s: %w", d.name, errSmallBuffer)
		}
		got, err := unix.Read(d.q.fd, room)
		switch {
		case err == nil:
		case errors.Is(err, unix.EAGAIN):
			if n > 0 {
				return n, nil
			}
			if err := d.q.idle(&since); err != nil {
				return 0, fmt.Errorf("tun: read %s: %w", d.name, err)
			}
			continue
		case errors.Is(err, unix.EINTR):
			continue
		case n > 0:
			return n, nil // the error shows up on the next call
		default:
			return 0, fmt.Errorf("tun: read %s: %w", d.name, err)
		}
		if got <= 0 || got == len(room) && truncated(room) {
			d.dropped.Add(1)
			continue
		}
		p.Len, p.GSOSize, p.Partial = got, 0, false
		n++
	}
	return n, nil
}

func (d *plainDevice) WriteBatch(q int, pkts []Packet) error {
	if q != 0 {
		return fmt.Errorf("tun: %s has one queue, not %d", d.name, q+1)
	}
	d.q.mu.RLock()
	defer d.q.mu.RUnlock()
	failed := 0
	var first error
	for i := range pkts {
		if d.closed.Load() {
			return fmt.Errorf("tun: write %s: %w", d.name, os.ErrClosed)
		}
		p := &pkts[i]
		var err error
		if p.GSOSize > 0 || p.Partial {
			err = errPlainOffload
		} else {
			err = d.write(p.Bytes())
		}
		if err != nil {
			if first == nil {
				first = err
			}
			failed++
		}
	}
	if failed > 0 {
		return fmt.Errorf("tun: write %s: %d of %d packets refused, the first: %w", d.name, failed, len(pkts), first)
	}
	return nil
}

// write writes one packet, waiting for room if the queue's socket buffer is
// full.
func (d *plainDevice) write(b []byte) error {
	for {
		_, err := unix.Write(d.q.fd, b)
		switch {
		case errors.Is(err, unix.EAGAIN):
			if err := d.q.wait(&d.q.wpoll); err != nil {
				return err
			}
		case errors.Is(err, unix.EINTR):
		default:
			return err
		}
	}
}
