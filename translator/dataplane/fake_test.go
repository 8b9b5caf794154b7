package dataplane

import (
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/map646/map646/config"
	"github.com/map646/map646/translator/tun"
)

// fakeDevice is a tun.Device in memory. Each queue serves the batches that
// next returns (nil: none left, wait for Close) and hands every write batch
// to written, together with the batch that was read last on that queue:
// the worker writes a batch's outputs before it reads the next one.
type fakeDevice struct {
	queues  int
	next    func(q int) []tun.Packet
	written func(q int, read, wrote []tun.Packet)

	closed    chan struct{}
	closeOnce sync.Once
	last      [][]tun.Packet // per queue, the batch read last
}

func newFakeDevice(queues int, next func(q int) []tun.Packet, written func(q int, read, wrote []tun.Packet)) *fakeDevice {
	return &fakeDevice{queues: queues, next: next, written: written,
		closed: make(chan struct{}), last: make([][]tun.Packet, queues)}
}

func (f *fakeDevice) Name() string    { return "fake0" }
func (f *fakeDevice) Queues() int     { return f.queues }
func (f *fakeDevice) Dropped() uint64 { return 0 }

// SetBusyPoll does nothing: a fake queue never sleeps on the kernel.
func (f *fakeDevice) SetBusyPoll(time.Duration) {}

func (f *fakeDevice) ReadBatch(q int, pkts []tun.Packet) (int, error) {
	select {
	case <-f.closed:
		return 0, fmt.Errorf("fake: read queue %d: %w", q, os.ErrClosed)
	default:
	}
	var batch []tun.Packet
	if f.next != nil {
		batch = f.next(q)
	}
	if batch == nil {
		<-f.closed
		return 0, fmt.Errorf("fake: read queue %d: %w", q, os.ErrClosed)
	}
	n := min(len(batch), len(pkts))
	for i := range n {
		p := &pkts[i]
		p.Len = copy(p.Buf[p.Off:], batch[i].Bytes())
		p.GSOSize, p.Partial = batch[i].GSOSize, batch[i].Partial
	}
	f.last[q] = batch[:n]
	return n, nil
}

func (f *fakeDevice) WriteBatch(q int, pkts []tun.Packet) error {
	if f.written != nil {
		f.written(q, f.last[q], pkts)
	}
	return nil
}

func (f *fakeDevice) Close() error {
	f.closeOnce.Do(func() { close(f.closed) })
	return nil
}

// pkt wraps b as a packet read from a device.
func pkt(b []byte) tun.Packet { return tun.Packet{Buf: b, Len: len(b)} }

// The test configuration: documentation addresses only. Clients are
// 192.0.2.0/24 (pseudo prefix 64:ff9b::/96), servers 2001:db8:1::/64.
const testConfig = `[translator]
pseudo_prefix = "64:ff9b::/96"
ipv4_address = "192.0.2.1"
ipv6_address = "2001:db8:64::1"
ipv6_mtu = 1520
icmp_error_rate = 1000000
icmp_error_burst = 1000000
%s
[[mapping]]
ipv4 = "198.51.100.10"
ipv6 = "2001:db8:1::10"

[[mapping]]
ipv4 = "198.51.100.11"
ipv6 = "2001:db8:1::11"
%s`

// newConfig returns the test configuration with more [translator] keys and
// more mappings (TOML).
func newConfig(t testing.TB, keys, mappings string) *config.Config {
	t.Helper()
	c, err := config.Parse(fmt.Appendf(nil, testConfig, keys, mappings), "test.toml", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// newDataPlane returns a data plane for dev with cfg's translator and ICMP
// error limit, as the daemon builds it; dev is closed if that fails.
func newDataPlane(t testing.TB, cfg *config.Config, dev tun.Device) *DataPlane {
	t.Helper()
	tr, err := cfg.NewTranslator()
	if err != nil {
		dev.Close()
		t.Fatal(err)
	}
	return New(tr, dev, Options{ICMPErrorRate: cfg.Translator.ICMPErrorRate, ICMPErrorBurst: cfg.Translator.ICMPErrorBurst,
		PMTUErrorRate: cfg.Translator.ICMPPMTUErrorRate, PMTUErrorBurst: cfg.Translator.ICMPPMTUErrorBurst})
}

// oneBatch returns a device that serves batch once on one queue, and the
// packets written, copied.
func oneBatch(batch []tun.Packet) (*fakeDevice, func() [][]byte) {
	var served atomic.Bool
	var mu sync.Mutex
	var out [][]byte
	dev := newFakeDevice(1, func(int) []tun.Packet {
		if served.Swap(true) {
			return nil
		}
		return batch
	}, func(_ int, _, w []tun.Packet) {
		mu.Lock()
		defer mu.Unlock()
		for _, p := range w {
			out = append(out, append([]byte(nil), p.Bytes()...))
		}
	})
	return dev, func() [][]byte { mu.Lock(); defer mu.Unlock(); return out }
}
