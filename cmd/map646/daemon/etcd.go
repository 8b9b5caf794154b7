package daemon

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/map646/map646/cmd/map646/control"
	"github.com/map646/map646/config"
	"github.com/map646/map646/config/etcdsource"
	"github.com/map646/map646/translator"
)

// The etcd mapping source ([mappings] source = "etcd", config/etcdsource)
// in the daemon: the source runs in its own goroutine and hands each
// change to the loop as a MappingUpdate (etcdFeed), which applies it as
// any change of the table is applied (ApplyMappings, applyTable) and
// writes nothing: etcd is the durable copy. The node announces nothing
// until the first table (etcd's, or the one cached in state_dir) is
// applied; losing etcd afterwards withdraws nothing (the source only says
// since when it is stale).

// etcdFeed is the source's Applier: it hands each change to the daemon
// loop and waits until the loop has applied it (the source then counts
// the revision as served: WaitRevision), or until ctx ends (the daemon
// stops: the loop no longer reads).
type etcdFeed struct {
	ctx     context.Context
	updates chan<- MappingUpdate
}

// ApplySnapshot hands the whole table over as the source built it,
// without origins: a mapping's is its key (tableView.sourceOrigin).
func (f etcdFeed) ApplySnapshot(s etcdsource.Snapshot) {
	table := s.Table
	if table == nil {
		table, _ = translator.NewTable(nil) // an empty table, not a delta
	}
	f.send(MappingUpdate{Table: table})
}

// ApplyDeltas hands a batch of changes over, applied as one delta
// (ApplyMappings: on the table's overlay, or, for a bulk batch, a table
// built anew), and returns the loop's refusal, if any. Nothing refers to
// ds once its changes are made: the collector may free the deltas while
// the loop applies the changes.
func (f etcdFeed) ApplyDeltas(ds []etcdsource.Delta) error {
	changes := make([]translator.MappingChange, len(ds))
	for i, d := range ds {
		changes[i] = translator.MappingChange{Op: translator.Add, Mapping: d.Mapping}
		if d.Op == etcdsource.Delete {
			changes[i].Op = translator.Del
		}
	}
	err := f.send(MappingUpdate{Changes: changes})
	if !errors.Is(err, errNothingChanged) {
		// Applied: a route or an announcement that failed is the loop's to
		// report and retry, not a reason to send the whole table.
		return nil
	}
	return err
}

// send hands u to the loop and waits for its result; nil when the daemon
// stops first (nothing more is applied then).
func (f etcdFeed) send(u MappingUpdate) error {
	res := make(chan error, 1)
	u.Result = res
	select {
	case f.updates <- u:
	case <-f.ctx.Done():
		return nil
	}
	select {
	case err := <-res:
		return err
	case <-f.ctx.Done():
		return nil
	}
}

// nodeID names this node in etcd (its record under prefix/nodes/): the
// BGP router ID, as operators know the node; without [bgp], the host
// name.
func nodeID(cfg *config.Config) string {
	if cfg.BGP.Enabled && cfg.BGP.RouterID.IsValid() {
		return cfg.BGP.RouterID.String()
	}
	if h, err := os.Hostname(); err == nil && h != "" {
		return h
	}
	return "map646"
}

// startSource starts the etcd source when the configuration names it:
// the node then waits for its first table before it announces anything.
// It runs on the loop's goroutine, at the end of start.
func (d *daemon) startSource() error {
	cfg := d.cfg
	if cfg.Mappings.Source != config.SourceEtcd {
		return nil
	}
	updates := make(chan MappingUpdate)
	d.updates = updates
	ctx, cancel := context.WithCancel(d.ctx)
	id := nodeID(cfg)
	lc := d.lc
	src, err := etcdsource.New(etcdsource.Config{
		Etcd:         cfg.Mappings.Etcd,
		PseudoPrefix: cfg.Translator.PseudoPrefix,
		MaxMappings:  cfg.Translator.MaxMappings,
		StateDir:     cfg.Node.StateDir,
		NodeID:       id,
		Version:      d.version,
		NodeState:    lc.stateName,
		Logger:       d.log,
	}, etcdFeed{ctx: ctx, updates: updates})
	if err != nil {
		cancel()
		return fmt.Errorf("[mappings.etcd]: %w", err)
	}
	if d.registry != nil {
		if err := src.Register(d.registry); err != nil {
			cancel()
			src.Close()
			return fmt.Errorf("[mappings.etcd] metrics: %w", err)
		}
	}
	d.source, d.stopSource = src, cancel
	d.sourceDone = make(chan struct{})
	go func() {
		defer close(d.sourceDone)
		src.Run(ctx)
	}()
	d.log.Info("mapping source: etcd", "endpoints", cfg.Mappings.Etcd.Endpoints, "prefix", cfg.Mappings.Etcd.Prefix,
		"node", id, "node_from", nodeIDFrom(cfg))
	return nil
}

// nodeIDFrom says where nodeID took the node's name, for the log.
func nodeIDFrom(cfg *config.Config) string {
	if cfg.BGP.Enabled && cfg.BGP.RouterID.IsValid() {
		return "[bgp] router_id"
	}
	return "host name (no [bgp] router_id)"
}

// closeSource stops the source (its record's lease revoked, the cache
// written) and closes its client: shutdown's step after the withdrawal.
func (d *daemon) closeSource() error {
	if d.sourceDone == nil {
		return nil
	}
	d.stopSource()
	<-d.sourceDone
	d.sourceDone = nil
	if err := d.source.Close(); err != nil {
		return fmt.Errorf("etcd: %w", err)
	}
	return nil
}

// noTableCause is why a node with the etcd source does not announce yet.
const noTableCause = "waiting for the mapping table (etcd's, or the one cached in [node] state_dir): nothing announced until then"

// tableApplied is called on the loop after each update u of the source,
// err its outcome: the first snapshot not refused whole gives the node its
// table (the source's first update is always a snapshot; an error of its
// routes or announcements leaves the table applied).
func (d *daemon) tableApplied(u MappingUpdate, err error) {
	if d.hasTable || u.Table == nil || errors.Is(err, errNothingChanged) {
		return
	}
	d.hasTable = true
	d.log.Info("first mapping table applied: the node may announce", "mappings", d.dp.Translator().Table().Len())
	if err := d.lc.tableReady(d.ctx); err != nil {
		d.log.Warn("the announcement failed; it is retried", "err", err)
	}
}

// mappingsStatus is the status's mappings part: src's (nil with the file
// source) and the table tv serves. Safe from any goroutine.
func mappingsStatus(src *etcdsource.Source, tv *tableView) *control.MappingsStatus {
	if src == nil {
		cfg := tv.cfg.Load()
		n := tv.dp.Translator().Table().Len()
		summary := fmt.Sprintf("%d mappings", n)
		if cfg != nil && cfg.Translator.MappingFile != "" {
			summary += " (" + cfg.Translator.MappingFile + " and [[mapping]] entries)"
		}
		return &control.MappingsStatus{Source: config.SourceFile, State: "file", Summary: summary, Mappings: n}
	}
	st := src.Status()
	ms := &control.MappingsStatus{Source: config.SourceEtcd, State: st.State.String(), Since: st.Since, Summary: st.String(),
		Mappings: st.Mappings, Revision: st.Revision, EtcdRevision: st.EtcdRevision, BadCount: st.BadEntries}
	if !st.StaleSince.IsZero() {
		t := st.StaleSince
		ms.StaleSince = &t
	}
	if st.BadEntries > 0 {
		for i, b := range src.BadEntries() {
			if i == control.MaxBadEntriesShown {
				break
			}
			ms.BadEntries = append(ms.BadEntries, control.BadEntryStatus{Key: b.Key, Value: b.Value, Reason: b.Reason})
		}
	}
	return ms
}

// etcdWaitServed bounds how long `map646 mapping add|del` on a node with
// the etcd source waits for the node to serve its own write.
const etcdWaitServed = 10 * time.Second

// changeInEtcd writes a change of `map646 mapping add|del` to etcd, then
// waits until this node serves it (its watch brought it back): the other
// nodes get it the same way.
func changeInEtcd(ctx context.Context, src *etcdsource.Source, del bool, m translator.Mapping) (string, error) {
	key := src.KeyOf(m.IPv4)
	var rev int64
	var err error
	if del {
		rev, err = src.Remove(ctx, m.IPv4)
	} else {
		rev, err = src.Add(ctx, m)
	}
	if err != nil {
		return "", fmt.Errorf("refused: %w", err)
	}
	what := "put " + key + " " + etcdsource.MappingValue(m)
	if del {
		what = "deleted " + key
	}
	wctx, cancel := context.WithTimeout(ctx, etcdWaitServed)
	defer cancel()
	if err := src.WaitRevision(wctx, rev); err != nil {
		return "", fmt.Errorf("%s at etcd revision %d, but this node does not serve it yet (%s): %w", what, rev, src.Status(), err)
	}
	return fmt.Sprintf("%s at etcd revision %d; this node serves it (every node gets it through its watch: map646 status -cluster shows their revisions)", what, rev), nil
}

// errNoEtcd answers cluster on a node without the etcd source.
var errNoEtcd = errors.New(`cluster: this node's mappings do not come from etcd ([mappings] source = "file"): there is no cluster to show`)

// clusterStatus reads every node's record from etcd.
func clusterStatus(ctx context.Context, src *etcdsource.Source, prefix string, timeout time.Duration) (control.ClusterStatus, error) {
	if src == nil {
		return control.ClusterStatus{}, errNoEtcd
	}
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	nodes, rev, err := etcdsource.ReadNodes(rctx, src.Client(), prefix)
	if err != nil {
		return control.ClusterStatus{}, fmt.Errorf("cluster: %w", err)
	}
	cs := control.ClusterStatus{EtcdRevision: rev, Nodes: []control.ClusterNode{}}
	for _, n := range nodes {
		cs.Nodes = append(cs.Nodes, control.ClusterNode{Node: n.Node, State: n.NodeState, Table: n.State, Since: n.Since,
			Revision: n.Revision, Lag: n.Lag, Mappings: n.Mappings, BadEntries: n.BadEntries, Version: n.Version})
	}
	return cs, nil
}
