package daemon

import (
	"net/netip"
	"runtime"
	"runtime/debug"
	"sync/atomic"
	"testing"
	"time"

	"github.com/map646/map646/config/etcdsource"
	"github.com/map646/map646/translator"
)

// BenchmarkBulkBatch applies a bulk batch from the etcd source, 100,000
// additions to a table of 900,000 (the last batch of a node following a
// million through its watch), as the feed does, and reports the Go heap
// in use at its peak (sampled every 5 ms, each sample a ReadMemStats that
// stops the world: s/batch is a little slower than without it) above the
// heap before the batch:
//
//	go test -run '^$' -bench BulkBatch -benchtime 3x ./cmd/map646/daemon/
//
// The deltas are made before the batch and dropped by the feed once
// converted, so the peak counts them only until a collection frees them.
// GOGC is 10, as map646 runs.
func BenchmarkBulkBatch(b *testing.B) {
	defer debug.SetGCPercent(debug.SetGCPercent(10))
	mp := func(i int) translator.Mapping {
		a := uint32(100<<24|80<<16) + uint32(i)
		return translator.Mapping{IPv4: netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(a >> 24), byte(a >> 16), byte(a >> 8), byte(a)}), 32),
			IPv6: netip.PrefixFrom(netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, 0x65, 12: byte(a >> 24), 13: byte(a >> 16), 14: byte(a >> 8), 15: byte(a)}), 128)}
	}
	const base, batch = 900_000, 100_000
	deltas := func(from int) []etcdsource.Delta {
		ds := make([]etcdsource.Delta, batch)
		for i := range ds {
			m := mp(from + i)
			ds[i] = etcdsource.Delta{Op: etcdsource.Put, Key: "/map646/mappings/" + m.IPv4.Addr().String(), Mapping: m, Revision: int64(from + i)}
		}
		return ds
	}
	var peaks, took float64
	for b.Loop() {
		b.StopTimer()
		d, _ := newUpdateDaemon(b)
		d.cfg.Translator.MaxMappings = base + batch
		for n := 0; n < base; n += batch {
			if err := feedDeltas(d, deltas(n)); err != nil {
				b.Fatal(err)
			}
		}
		ds := deltas(base)
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		before := ms.HeapInuse
		var peak atomic.Uint64
		stop, done := make(chan struct{}), make(chan struct{})
		go func() {
			defer close(done)
			var ms runtime.MemStats
			for {
				select {
				case <-stop:
					return
				case <-time.After(5 * time.Millisecond):
				}
				runtime.ReadMemStats(&ms)
				peak.Store(max(peak.Load(), ms.HeapInuse))
			}
		}()
		b.StartTimer()
		start := time.Now()
		err := feedDeltas(d, ds)
		took += time.Since(start).Seconds()
		b.StopTimer()
		close(stop)
		<-done
		if err != nil {
			b.Fatal(err)
		}
		if got := d.dp.Translator().Table().Len(); got != base+batch+2 { // the config's 2 and the load
			b.Fatalf("%d mappings, want %d", got, base+batch+2)
		}
		peaks += float64(peak.Load()-min(peak.Load(), before)) / (1 << 20)
		b.StartTimer()
	}
	b.ReportMetric(peaks/float64(b.N), "peak-heap-MB-over-table")
	b.ReportMetric(took/float64(b.N), "s/batch")
}

// feedDeltas is etcdFeed.ApplyDeltas without the loop: the changes made,
// then applied, ds no longer referred to.
func feedDeltas(d *daemon, ds []etcdsource.Delta) error {
	changes := make([]translator.MappingChange, len(ds))
	for i, d := range ds {
		changes[i] = translator.MappingChange{Op: translator.Add, Mapping: d.Mapping}
	}
	_, err := d.ApplyMappings(changes, false)
	return err
}
