package daemon

import (
	"github.com/map646/map646/cmd/map646/control"
	"github.com/map646/map646/translator"
	"github.com/map646/map646/translator/dataplane"
)

// trafficOf turns the data plane's counters into a control.TrafficStatus.
func trafficOf(s dataplane.Stats) control.TrafficStatus {
	t := control.TrafficStatus{
		Directions:           map[string]control.DirectionStatus{},
		Other:                s.In(dataplane.DirOther),
		ICMPErrorsSent:       s.ICMPErrorsSent,
		ICMPErrorsSuppressed: s.ICMPErrorsSuppressed,
		WriteErrors:          s.WriteErrors,
		DeviceDropped:        s.DeviceDropped,
		ProbePackets:         s.Probes,
	}
	for _, d := range []dataplane.Direction{dataplane.Dir4to6, dataplane.Dir6to4} {
		t.Directions[d.String()] = control.DirectionStatus{
			Packets:     s.In(d),
			Bytes:       s.Bytes[d],
			Forwarded:   s.Verdicts(d, translator.Forward),
			Dropped:     s.Verdicts(d, translator.Drop),
			ICMPErrors:  s.Verdicts(d, translator.ICMPError),
			SentPackets: s.SentPackets[d],
			SentBytes:   s.SentBytes[d],
		}
	}
	return t
}

// packetsRead is the number of packets the data plane has read, less its
// own health-check probes (and the kernel's answers to the fast path's): the measure of the traffic a drain waits to
// fall. The probes are not traffic, and a dataplane check every 100 ms
// alone is 10 packets/s, the default drain_idle_pps: counted, they would
// keep an idle node waiting for the whole drain_timeout.
//
// A snapshot never holds more probes than packets read (the data plane
// publishes probes after their verdicts and reads them first), but the
// difference may step back by the probes of a batch between two snapshots:
// waitIdle allows for it. The guard keeps a broken promise from wrapping
// around to a count that would end every drain at once.
func packetsRead(s dataplane.Stats) uint64 {
	in := s.In(dataplane.Dir4to6) + s.In(dataplane.Dir6to4) + s.In(dataplane.DirOther)
	own := s.Probes + s.ProbeEchoes
	if own > in {
		return 0
	}
	return in - own
}
