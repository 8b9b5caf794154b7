package dataplane

import (
	"testing"

	"github.com/map646/map646/translator"
	pt "github.com/map646/map646/translator/packettest"
)

// BenchmarkWorker measures a worker's batch of 64 packets (reading is the
// fake's copy into the batch buffers, writing is free) against the bare
// translator on the same packets: the difference is the data plane's cost
// per packet (counters, batching, per-mapping counts).
func BenchmarkWorker(b *testing.B) {
	for _, bc := range []struct {
		name string
		pkt  []byte
	}{
		{"udp100-4to6", pt.UDP4(pt.IPv4{TTL: 64, Src: client4, Dst: server4}, 40000, 53, make([]byte, 72))},
		{"udp100-6to4", pt.UDP6(pt.IPv6{Hop: 64, Src: server6, Dst: client6}, 53, 40000, make([]byte, 52))},
		{"tcp1500-4to6", pt.TCP4(pt.IPv4{TTL: 64, DF: true, Src: client4, Dst: server4}, pt.TCP{Sport: 1, Dport: 2, Flags: pt.ACK}, make([]byte, 1460))},
	} {
		cfg := newConfig(b, "", "")
		d := newDataPlane(b, cfg, newFakeDevice(1, nil, nil))
		w := d.workers[0]
		for i := range w.in {
			w.in[i].Len = copy(w.in[i].Buf[w.in[i].Off:], bc.pkt)
		}
		b.Run(bc.name+"/worker", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(bc.pkt)) * BatchSize)
			for b.Loop() {
				w.batch(w.in)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*BatchSize), "ns/packet")
		})
		b.Run(bc.name+"/translate", func(b *testing.B) {
			tr := d.Translator()
			o := translator.NewOut()
			b.ReportAllocs()
			b.SetBytes(int64(len(bc.pkt)) * BatchSize)
			for b.Loop() {
				for i := range w.in {
					tr.Translate(w.in[i].Bytes(), o)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*BatchSize), "ns/packet")
		})
	}
}
