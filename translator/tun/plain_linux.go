package tun

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/songgao/water"
)

// plainDevice is the safe mode: a tun device with no virtio header, no
// offloads and one queue, opened by github.com/songgao/water. The kernel
// segments and checksums everything before it reaches us, which costs
// throughput and removes every offload from the picture when one
// misbehaves.
type plainDevice struct {
	name      string
	ifce      *water.Interface
	dropped   atomic.Uint64
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
	// water opens /dev/net/tun non-blocking and wraps it in an os.File, so
	// reads wait in the runtime poller and Close wakes them.
	ifce, err := water.New(water.Config{
		DeviceType:             water.TUN,
		PlatformSpecificParams: water.PlatformSpecificParams{Name: name},
	})
	if err != nil {
		return nil, sysErr("create "+name, err)
	}
	d := &plainDevice{name: ifce.Name(), ifce: ifce}
	if err := l.up(d.name, mtu, 0); err != nil {
		d.Close()
		return nil, err
	}
	return d, nil
}

func (d *plainDevice) Name() string    { return d.name }
func (d *plainDevice) Queues() int     { return 1 }
func (d *plainDevice) Dropped() uint64 { return d.dropped.Load() }

func (d *plainDevice) Close() error {
	d.closeOnce.Do(func() {
		if err := d.ifce.Close(); err != nil {
			d.closeErr = fmt.Errorf("tun: close %s: %w", d.name, err)
		}
	})
	return d.closeErr
}

var errPlainOffload = errors.New("tun: the plain device takes no super-packets or partial checksums (use Segment)")

// ReadBatch reads one packet: a plain tun device has no way to read more in
// one call, and the data plane's batching gains nothing here.
func (d *plainDevice) ReadBatch(q int, pkts []Packet) (int, error) {
	if q != 0 {
		return 0, fmt.Errorf("tun: %s has one queue, not %d", d.name, q+1)
	}
	if len(pkts) == 0 {
		return 0, nil
	}
	p := &pkts[0]
	room := p.Buf[p.Off:]
	for {
		n, err := d.ifce.Read(room)
		if err != nil {
			return 0, fmt.Errorf("tun: read %s: %w", d.name, err)
		}
		if n == len(room) && truncated(room) {
			d.dropped.Add(1)
			continue
		}
		p.Len, p.GSOSize, p.Partial = n, 0, false
		return 1, nil
	}
}

func (d *plainDevice) WriteBatch(q int, pkts []Packet) error {
	if q != 0 {
		return fmt.Errorf("tun: %s has one queue, not %d", d.name, q+1)
	}
	failed := 0
	var first error
	for i := range pkts {
		p := &pkts[i]
		var err error
		if p.GSOSize > 0 || p.Partial {
			err = errPlainOffload
		} else {
			_, err = d.ifce.Write(p.Bytes())
		}
		if err != nil {
			if first == nil {
				first = err
			}
			failed++
			if errors.Is(err, os.ErrClosed) {
				break
			}
		}
	}
	if failed > 0 {
		return fmt.Errorf("tun: write %s: %d of %d packets refused, the first: %w", d.name, failed, len(pkts), first)
	}
	return nil
}
