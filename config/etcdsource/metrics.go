package etcdsource

import (
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Register adds the source's metrics to reg:
//
//	map646_etcd_revision             the etcd revision of the table served
//	map646_etcd_current_revision     etcd's revision when last reached
//	map646_etcd_stale_seconds        0 while synced; else seconds since etcd was last reached
//	map646_etcd_table                1 with a table to serve, 0 without (the node must not announce)
//	map646_etcd_from_cache           1 while serving the cached table
//	map646_etcd_mappings             mappings in the table
//	map646_etcd_bad_entries          keys refused (see BadEntries)
//	map646_etcd_deltas_applied_total changes applied from the watch, in batches
//	map646_etcd_snapshots_total      whole tables applied (start, compaction, cache, refusal)
func (s *Source) Register(reg prometheus.Registerer) error {
	gauge := func(name, help string, f func(Status) float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, func() float64 { return f(s.Status()) })
	}
	counter := func(name, help string, f func(Status) float64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, func() float64 { return f(s.Status()) })
	}
	b2f := func(b bool) float64 {
		if b {
			return 1
		}
		return 0
	}
	cs := []prometheus.Collector{
		gauge("map646_etcd_revision", "The etcd revision of the mapping table served.", func(st Status) float64 { return float64(st.Revision) }),
		gauge("map646_etcd_current_revision", "etcd's revision when it was last reached.", func(st Status) float64 { return float64(st.EtcdRevision) }),
		gauge("map646_etcd_stale_seconds", "Seconds since etcd was last reached; 0 while synced.", func(st Status) float64 {
			if st.State == Synced || st.StaleSince.IsZero() {
				return 0
			}
			return time.Since(st.StaleSince).Seconds()
		}),
		gauge("map646_etcd_table", "1 when there is a mapping table to serve, 0 when there is none (the node does not announce).", func(st Status) float64 { return b2f(st.HasTable()) }),
		gauge("map646_etcd_from_cache", "1 while the table served is the cached one, etcd not reached since start-up.", func(st Status) float64 { return b2f(st.State == FromCache) }),
		gauge("map646_etcd_mappings", "Mappings in the table served.", func(st Status) float64 { return float64(st.Mappings) }),
		gauge("map646_etcd_bad_entries", "Keys under the mappings prefix refused (unparsable, invalid, overlapping).", func(st Status) float64 { return float64(st.BadEntries) }),
		counter("map646_etcd_deltas_applied_total", "Mapping changes from the watch applied, in batches; a batch the node refused counts none and brings a whole table.", func(st Status) float64 { return float64(st.Applied) }),
		counter("map646_etcd_snapshots_total", "Whole mapping tables applied (start-up, compacted watch, cache, a refused batch).", func(st Status) float64 { return float64(st.Snapshots) }),
	}
	var errs []error
	for _, c := range cs {
		errs = append(errs, reg.Register(c))
	}
	return errors.Join(errs...)
}
