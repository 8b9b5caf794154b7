package dataplane

import (
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/map646/map646/translator"
	"github.com/map646/map646/translator/fastpath"
	"github.com/map646/map646/translator/tun"
)

// Collector exports the data plane's counters as Prometheus metrics, read
// at each scrape (nothing on the packet path knows about Prometheus).
// Per-mapping series are exported for the first mappingSeries mappings of
// the table: every mapping is counted, but a million mappings as series
// (four each) would overwhelm Prometheus.
func (d *DataPlane) Collector(mappingSeries int) prometheus.Collector {
	return &collector{d: d, mappingSeries: mappingSeries}
}

type collector struct {
	d             *DataPlane
	mappingSeries int
}

var (
	descPackets = prometheus.NewDesc("map646_packets_total",
		"Packets read from the tun device, by direction (4to6: IPv4 in, 6to4: IPv6 in), verdict and drop reason, and those the kernel fast path translated (forward; map646_fastpath_packets_total). A super-packet translated whole counts once; one split in software counts as its segments.",
		[]string{"direction", "verdict", "reason"}, nil)
	descBytes = prometheus.NewDesc("map646_bytes_total",
		"Bytes read from the tun device, by direction.",
		[]string{"direction"}, nil)
	descSentPackets = prometheus.NewDesc("map646_sent_packets_total",
		"Packets written back to the tun device (translations, fragments, ICMP errors), by direction of the packet they came from.",
		[]string{"direction"}, nil)
	descSentBytes = prometheus.NewDesc("map646_sent_bytes_total",
		"Bytes written back to the tun device, by direction of the packet they came from.",
		[]string{"direction"}, nil)
	descICMPSent = prometheus.NewDesc("map646_icmp_errors_sent_total",
		"ICMP errors the translator generated and sent.", nil, nil)
	descICMPSuppressed = prometheus.NewDesc("map646_icmp_errors_suppressed_total",
		"ICMP errors the translator generated and the rate limits (translator.icmp_error_rate, icmp_error_burst; icmp_pmtu_error_rate, icmp_pmtu_error_burst) held back.", nil, nil)
	descICMPSentByKind = prometheus.NewDesc("map646_icmp_errors_sent_by_kind_total",
		"map646_icmp_errors_sent_total by kind: pmtu (Fragmentation Needed, Packet Too Big), other.", []string{"kind"}, nil)
	descICMPSuppressedByKind = prometheus.NewDesc("map646_icmp_errors_suppressed_by_kind_total",
		"map646_icmp_errors_suppressed_total by kind: pmtu (held back by icmp_pmtu_error_rate, icmp_pmtu_error_burst), other (by icmp_error_rate, icmp_error_burst).", []string{"kind"}, nil)
	descGSO = prometheus.NewDesc("map646_gso_packets_total",
		"Super-packets read: translated whole, or split into segments in software (path).",
		[]string{"path"}, nil)
	descGSOSegments = prometheus.NewDesc("map646_gso_segments_total",
		"Segments made from the super-packets split in software.", nil, nil)
	descWriteErrors = prometheus.NewDesc("map646_write_errors_total",
		"Write batches the tun device refused in part or whole.", nil, nil)
	descBatches = prometheus.NewDesc("map646_batches_total",
		"Batches read from the tun device (packets per batch: map646_packets_total / this).", nil, nil)
	descProbes = prometheus.NewDesc("map646_probe_packets_total",
		"The data plane's own health-check probe datagrams read from the tun device (4to6, TTL 1, answered with Time Exceeded); they are also counted in map646_packets_total.", nil, nil)
	descProbeEchoes = prometheus.NewDesc("map646_fastpath_probe_errors_total",
		"The kernel's ICMPv6 errors about the fast path's check probes (a datagram with TTL 2 every 10 s, which the program translates to hop limit 1) read from the tun device: 6to4 packets, also counted in map646_packets_total (local-destination drops, or forwarded under allow_local_destinations); a drain leaves them out.", nil, nil)
	descDeviceDropped = prometheus.NewDesc("map646_device_dropped_total",
		"Packets the tun device read but could not hand over (too large, unknown offload).", nil, nil)
	descOffload = prometheus.NewDesc("map646_tun_offload_enabled",
		"1 if the tun device has the offload (csum, tso4, tso6, uso4, uso6) on, 0 if not: never enabled, or switched off by the self-test at start.", []string{"offload"}, nil)
	descLocalAddrs = prometheus.NewDesc("map646_local_addresses",
		"Local addresses of the node the translator knows, as prefixes (its addresses, and the local, broadcast and anycast routes of the local routing table), followed as they change (family ipv4, ipv6): no packet is translated toward them, nor toward the translator's own, unless translator.allow_local_destinations.", []string{"family"}, nil)
	descFastPathAttached = prometheus.NewDesc("map646_fastpath_attached",
		"1 if the kernel fast path ([fastpath] mode) is attached at the tun device's egress, 0 if not (off, refused by the kernel, or detached after a failure: map646 status says why).", nil, nil)
	descFastPathPackets = prometheus.NewDesc("map646_fastpath_packets_total",
		"Packets the kernel fast path translated, by direction (a super-packet as its segments); they are also counted in map646_packets_total (forward) and per mapping, not in map646_bytes_total and map646_sent_bytes_total.",
		[]string{"direction"}, nil)
	descFastPathPunts = prometheus.NewDesc("map646_fastpath_punts_total",
		"Packets the kernel fast path left to the tun path, by reason (translator/fastpath doc.go); the tun path then counts them in map646_packets_total.",
		[]string{"reason"}, nil)
	descFastPathInternalErrors = prometheus.NewDesc("map646_fastpath_internal_errors_total",
		"Packets the kernel fast path lost after modifying them (a helper failed): must stay 0.", nil, nil)
	descMappings = prometheus.NewDesc("map646_mappings",
		"Mappings in the table in use.", nil, nil)
	descMappingPackets = prometheus.NewDesc("map646_mapping_packets_total",
		"Packets translated for one mapping (entry: its IPv4 side), toward its server (4to6) or from it (6to4). Exported for the first metrics.mapping_series mappings only.",
		[]string{"entry", "direction"}, nil)
	descMappingBytes = prometheus.NewDesc("map646_mapping_bytes_total",
		"Bytes read for one mapping, as map646_mapping_packets_total.",
		[]string{"entry", "direction"}, nil)
)

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descPackets, descBytes, descSentPackets, descSentBytes,
		descICMPSent, descICMPSuppressed, descICMPSentByKind, descICMPSuppressedByKind, descGSO, descGSOSegments, descWriteErrors, descBatches,
		descProbes, descProbeEchoes, descDeviceDropped, descOffload, descLocalAddrs, descMappings, descMappingPackets, descMappingBytes,
		descFastPathAttached, descFastPathPackets, descFastPathPunts, descFastPathInternalErrors} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	s := c.d.Stats()
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	for dir := range NumDirections {
		ds := dir.String()
		for v := range NumVerdicts {
			verdict := translator.Verdict(v)
			for r := range NumReasons {
				reason := translator.Reason(r)
				if !counted(dir, verdict, reason) && s.Packets[dir][v][r] == 0 {
					continue
				}
				counter(descPackets, s.Packets[dir][v][r], ds, verdict.String(), ReasonName(reason))
			}
		}
		if dir == DirOther {
			continue
		}
		counter(descBytes, s.Bytes[dir], ds)
		counter(descSentPackets, s.SentPackets[dir], ds)
		counter(descSentBytes, s.SentBytes[dir], ds)
	}
	counter(descICMPSent, s.ICMPErrorsSent)
	counter(descICMPSuppressed, s.ICMPErrorsSuppressed)
	counter(descICMPSentByKind, s.PMTUErrorsSent, "pmtu")
	counter(descICMPSentByKind, s.ICMPErrorsSent-s.PMTUErrorsSent, "other")
	counter(descICMPSuppressedByKind, s.PMTUErrorsSuppressed, "pmtu")
	counter(descICMPSuppressedByKind, s.ICMPErrorsSuppressed-s.PMTUErrorsSuppressed, "other")
	counter(descGSO, s.GSOWhole, "whole")
	counter(descGSO, s.GSOSegmented, "segmented")
	counter(descGSOSegments, s.GSOSegments)
	counter(descWriteErrors, s.WriteErrors)
	counter(descBatches, s.Batches)
	counter(descProbes, s.Probes)
	counter(descProbeEchoes, s.ProbeEchoes)
	counter(descDeviceDropped, s.DeviceDropped)
	c.collectOffloads(ch)
	c.collectFastPath(ch)
	var v4, v6 int
	for _, p := range c.d.Translator().Config().LocalAddrs.Prefixes() {
		if p.Addr().Is4() {
			v4++
		} else {
			v6++
		}
	}
	ch <- prometheus.MustNewConstMetric(descLocalAddrs, prometheus.GaugeValue, float64(v4), "ipv4")
	ch <- prometheus.MustNewConstMetric(descLocalAddrs, prometheus.GaugeValue, float64(v6), "ipv6")
	ch <- prometheus.MustNewConstMetric(descMappings, prometheus.GaugeValue, float64(c.d.Translator().Table().Len()))

	if c.mappingSeries <= 0 {
		return
	}
	c.d.Mappings(c.mappingSeries, func(_ int, m translator.Mapping, mc MappingCounts) bool {
		entry := m.IPv4.String()
		if m.IPv4.IsSingleIP() {
			entry = m.IPv4.Addr().String()
		}
		counter(descMappingPackets, mc.Packets4to6, entry, "4to6")
		counter(descMappingPackets, mc.Packets6to4, entry, "6to4")
		counter(descMappingBytes, mc.Bytes4to6, entry, "4to6")
		counter(descMappingBytes, mc.Bytes6to4, entry, "6to4")
		return true
	})
}

// counted says whether a series is exported from the start, at zero:
// forwarded packets have no reason, the others one; packets of neither
// version can only be truncated or of a bad version. Other series appear
// when they count something.
func counted(dir Direction, v translator.Verdict, r translator.Reason) bool {
	switch {
	case v == translator.Forward:
		return dir != DirOther && r == translator.ReasonNone
	case r == translator.ReasonNone:
		return false
	case dir == DirOther:
		return v == translator.Drop && (r == translator.ReasonTruncated || r == translator.ReasonBadVersion)
	case r == ReasonSegmentFailed:
		return v == translator.Drop
	}
	return true
}

// collectOffloads reports the device's offloads; a device without any
// (the plain one) has each at 0.
func (c *collector) collectOffloads(ch chan<- prometheus.Metric) {
	on := map[string]bool{}
	if o, ok := c.d.Device().(interface{ OffloadStates() []tun.OffloadState }); ok {
		for _, s := range o.OffloadStates() {
			on[s.Name] = s.Enabled
		}
	}
	for _, name := range tun.OffloadNames {
		v := 0.0
		if on[name] {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(descOffload, prometheus.GaugeValue, v, name)
	}
}

// collectFastPath reports the kernel fast path: attached or not, and its
// counters (all at 0 when it never was).
func (c *collector) collectFastPath(ch chan<- prometheus.Metric) {
	fp := c.d.FastPathStatus()
	attached := 0.0
	if fp.Attached {
		attached = 1
	}
	ch <- prometheus.MustNewConstMetric(descFastPathAttached, prometheus.GaugeValue, attached)
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	counter(descFastPathPackets, fp.Counters["translated-4to6"], "4to6")
	counter(descFastPathPackets, fp.Counters["translated-6to4"], "6to4")
	counter(descFastPathInternalErrors, fp.Counters["internal-error"])
	for _, name := range fastpath.CounterNames() {
		if reason, ok := strings.CutPrefix(name, "punt-"); ok {
			counter(descFastPathPunts, fp.Counters[name], reason)
		}
	}
}
