package fastpath_test

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/map646/map646/lab/labreq"
	"github.com/map646/map646/translator/fastpath"
	pt "github.com/map646/map646/translator/packettest"
)

// BenchmarkProgram measures the program alone, in the kernel, per packet
// (the test run's own clock around the program, one run per call: the
// program rewrites the packet, so a repeated run would see another one):
// 64-byte UDP and TCP each way, and a punt.
func BenchmarkProgram(b *testing.B) {
	labreq.Root(b, "load eBPF programs")
	cfg := testConfig()
	fp, err := fastpath.Load(cfg, testTable(b), fastpath.LinkEthernet)
	if err != nil {
		b.Fatal(err)
	}
	defer fp.Close()
	in4 := pt.IPv4{TTL: 64, Src: client4, Dst: server4}
	in6 := pt.IPv6{Hop: 64, Src: server6, Dst: client6}
	tcp := pt.TCP{Sport: 40000, Dport: 443, Seq: 1, Flags: pt.ACK, Window: 512}
	const redirect, punt = 7, 0 // TC_ACT_REDIRECT, TC_ACT_OK
	for _, c := range []struct {
		name    string
		pkt     []byte
		verdict uint32
	}{
		{"udp64-4to6", pt.UDP4(in4, 40000, 53, make([]byte, 64-28)), redirect},
		{"udp64-6to4", pt.UDP6(in6, 53, 40000, make([]byte, 64-48)), redirect},
		{"tcp-4to6", pt.TCP4(in4, tcp, make([]byte, 24)), redirect},
		{"tcp-6to4", pt.TCP6(in6, tcp, make([]byte, 4)), redirect},
		{"punt-no-mapping", pt.UDP4(with(in4, func(h *pt.IPv4) { h.Dst = client4 }), 1, 2, make([]byte, 36)), punt},
	} {
		b.Run(c.name, func(b *testing.B) {
			frame := make([]byte, 14+len(c.pkt))
			binary.BigEndian.PutUint16(frame[12:], map[byte]uint16{4: 0x0800, 6: 0x86dd}[c.pkt[0]>>4])
			copy(frame[14:], c.pkt)
			var total time.Duration
			for b.Loop() {
				v, d, err := fp.Program().Benchmark(frame, 1, nil)
				if err != nil || v != c.verdict {
					b.Fatalf("verdict %d, %v; want %d", v, err, c.verdict)
				}
				total += d
			}
			b.ReportMetric(float64(total.Nanoseconds())/float64(b.N), "ns/pkt-in-kernel")
		})
	}
}

func with(h pt.IPv4, f func(*pt.IPv4)) pt.IPv4 { f(&h); return h }
