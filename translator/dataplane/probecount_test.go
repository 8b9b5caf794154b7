package dataplane

import (
	"sync/atomic"
	"testing"

	"github.com/map646/map646/translator"
	pt "github.com/map646/map646/translator/packettest"
	"github.com/map646/map646/translator/tun"
)

// TestProbesCountedApart: the data plane's own probe datagrams (TTL 1, the
// secret as payload) are counted in Stats.Probes, with ICMP errors on and
// off, and still in the ordinary counters; packets that only look like
// probes are not: a TTL-1 datagram with another payload of the same
// length, and the secret in a datagram that is forwarded. A drain
// subtracts Probes from the packets read, so a probe counted as traffic
// would keep an idle node "busy", and real traffic counted as a probe
// would let a drain withdraw under load.
func TestProbesCountedApart(t *testing.T) {
	for _, keys := range []string{"", "icmp_errors = false"} {
		t.Run("keys="+keys, func(t *testing.T) {
			var batch []tun.Packet // filled in below, once the secret is known
			var served atomic.Bool
			dev := newFakeDevice(1, func(int) []tun.Packet {
				if served.Swap(true) {
					return nil
				}
				return batch
			}, nil)
			d := newDataPlane(t, newConfig(t, keys, ""), dev)
			secret := d.probe.secret[:]
			other := make([]byte, len(secret))
			copy(other, secret)
			other[0] ^= 1

			const probes = 3
			for range probes {
				batch = append(batch, pkt(pt.UDP4(pt.IPv4{TTL: 1, Src: client4, Dst: server4}, 40000, probePort, secret)))
			}
			batch = append(batch,
				pkt(pt.UDP4(pt.IPv4{TTL: 1, Src: client4, Dst: server4}, 40000, probePort, other)),
				pkt(pt.UDP4(pt.IPv4{TTL: 64, Src: client4, Dst: server4}, 40000, probePort, secret)))
			for _, m := range mixed() {
				batch = append(batch, pkt(m.pkt))
			}
			run(t, d)
			waitBatches(t, d, 1)

			s := d.Stats()
			if s.Probes != probes {
				t.Errorf("Stats.Probes = %d, want %d", s.Probes, probes)
			}
			// Still counted like any packet: every packet read has one
			// verdict, the probes and the look-alike among the TTL-1 ones.
			var in uint64
			for d := range NumDirections {
				in += s.In(d)
			}
			if in != uint64(len(batch)) {
				t.Errorf("%d verdicts for %d packets read", in, len(batch))
			}
			ttl := s.Packets[Dir4to6][translator.ICMPError][translator.ReasonTTLExpired] + s.Packets[Dir4to6][translator.Drop][translator.ReasonTTLExpired]
			if want := uint64(probes + 1 + 1); ttl != want { // the probes, the look-alike, mixed()'s ttl-expired one
				t.Errorf("%d ttl-expired verdicts, want %d", ttl, want)
			}
		})
	}
}

// TestProbesNeverAheadOfPackets: a snapshot taken while a worker counts
// probes never holds more probes than 4to6 packets read (the drain
// subtracts one from the other). The worker publishes probes after their
// verdicts and Stats reads them first; a read between the two would
// otherwise see a probe not yet read.
func TestProbesNeverAheadOfPackets(t *testing.T) {
	const batches = 3000
	var batch []tun.Packet
	var served atomic.Int64
	dev := newFakeDevice(1, func(int) []tun.Packet {
		if served.Add(1) > batches {
			return nil
		}
		return batch
	}, nil)
	d := newDataPlane(t, newConfig(t, "", ""), dev)
	for range 4 {
		batch = append(batch, pkt(pt.UDP4(pt.IPv4{TTL: 1, Src: client4, Dst: server4}, 40000, probePort, d.probe.secret[:])))
	}
	run(t, d)
	snapshots := 0
	for {
		s := d.Stats()
		snapshots++
		if in := s.In(Dir4to6); s.Probes > in {
			t.Fatalf("snapshot %d: %d probes, %d packets read", snapshots, s.Probes, in)
		}
		if s.Batches == batches {
			break
		}
	}
	if s := d.Stats(); s.Probes != 4*batches {
		t.Errorf("%d probes, want %d", s.Probes, 4*batches)
	}
	t.Logf("%d snapshots", snapshots)
}
