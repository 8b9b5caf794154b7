package etcdsource

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// NodeRecord is what each node publishes under Prefix+"/nodes/"+NodeID,
// as JSON, under a lease: a node that stops renewing it (stopped, crashed,
// cut off from etcd for longer than the lease) disappears.
type NodeRecord struct {
	Node     string    `json:"node"`
	Revision int64     `json:"revision"` // the revision of the table it serves
	State    string    `json:"state"`    // State.String(): the table's
	Since    time.Time `json:"since"`    // when State began
	// NodeState is the node's own state (starting, serving, draining,
	// drained, failed: Config.NodeState), "" when not given.
	NodeState  string `json:"node_state,omitempty"`
	Version    string `json:"version"`
	Mappings   int    `json:"mappings"`
	BadEntries int    `json:"bad_entries"`
}

// NodeStatus is one node's record as `map646 status -cluster` shows it.
type NodeStatus struct {
	NodeRecord
	// Lag is how many revisions etcd is ahead of the node's table. A node
	// in step lags by the changes of the last ProbeInterval at most (and
	// by the other nodes' record updates, which are revisions too).
	Lag int64
}

// probe asks etcd every ProbeInterval whether it is reachable (a
// linearizable read: it needs the cluster's quorum) and asks the watch for
// a progress notification, which moves the revision served on while no
// mapping changes. A failed probe makes a synced source Stale since its
// last contact; nothing is withdrawn (see the package comment).
func (s *Source) probe(ctx context.Context) {
	t := time.NewTicker(s.cfg.ProbeInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		rctx, cancel := context.WithTimeout(ctx, s.cfg.RequestTimeout)
		resp, err := s.client.Get(rctx, s.cfg.Prefix+"/", clientv3.WithCountOnly())
		cancel()
		s.mu.Lock()
		wctx := s.watchCtx
		switch {
		case err == nil:
			s.lastContact = time.Now()
			s.status.EtcdRevision = max(s.status.EtcdRevision, resp.Header.Revision)
			if s.status.State == Stale {
				s.status.StaleSince = time.Time{}
				s.setState(Synced)
				s.log.Info("etcd reached again", "revision", s.status.Revision)
			}
		case s.status.State == Synced && ctx.Err() == nil:
			s.status.StaleSince = s.lastContact
			s.setState(Stale)
			s.log.Warn("etcd unreachable: serving the table as it was", "stale_since", s.lastContact, "revision", s.status.Revision, "err", err)
		}
		s.mu.Unlock()
		if err == nil && wctx != nil {
			s.client.RequestProgress(wctx)
		}
	}
}

// publish keeps the node's record up to date under a lease until ctx
// ends, then revokes the lease so that the record goes at once.
func (s *Source) publish(ctx context.Context) {
	key := s.cfg.Prefix + nodesDir + s.cfg.NodeID
	ttl := int64(s.cfg.LeaseTTL / time.Second)
	var lease clientv3.LeaseID
	var alive <-chan *clientv3.LeaseKeepAliveResponse
	var last NodeRecord
	t := time.NewTicker(s.cfg.ProbeInterval)
	defer t.Stop()
	for {
		if lease != 0 {
			select {
			case _, ok := <-alive:
				if !ok {
					lease = 0 // expired or unreachable: a new one below
				}
				continue
			case <-ctx.Done():
			case <-t.C:
			}
		} else {
			select {
			case <-ctx.Done():
			case <-t.C:
			}
		}
		if ctx.Err() != nil {
			break
		}
		if lease == 0 {
			rctx, cancel := context.WithTimeout(ctx, s.cfg.RequestTimeout)
			g, err := s.client.Grant(rctx, ttl)
			cancel()
			if err != nil {
				continue
			}
			ka, err := s.client.KeepAlive(ctx, g.ID)
			if err != nil {
				continue
			}
			lease, alive, last = g.ID, ka, NodeRecord{}
		}
		st := s.Status()
		rec := NodeRecord{Node: s.cfg.NodeID, Revision: st.Revision, State: st.State.String(), Since: st.Since.UTC(),
			Version: s.cfg.Version, Mappings: st.Mappings, BadEntries: st.BadEntries}
		if s.cfg.NodeState != nil {
			rec.NodeState = s.cfg.NodeState()
		}
		if rec == last {
			continue
		}
		b, _ := json.Marshal(rec) // plain fields: cannot fail
		rctx, cancel := context.WithTimeout(ctx, s.cfg.RequestTimeout)
		_, err := s.client.Put(rctx, key, string(b), clientv3.WithLease(lease))
		cancel()
		if err == nil {
			last = rec
		}
	}
	if lease != 0 {
		rctx, cancel := context.WithTimeout(context.Background(), s.cfg.RequestTimeout)
		s.client.Revoke(rctx, lease)
		cancel()
	}
}

// ReadNodes reads every node's record under prefix, in node order, with
// its lag behind etcd's current revision (also returned). A record that is
// not JSON is returned with its State saying so.
func ReadNodes(ctx context.Context, c *clientv3.Client, prefix string) ([]NodeStatus, int64, error) {
	dir := prefix + nodesDir
	resp, err := c.Get(ctx, dir, clientv3.WithPrefix())
	if err != nil {
		return nil, 0, fmt.Errorf("etcdsource: read %s: %w", dir, err)
	}
	rev := resp.Header.Revision
	var nodes []NodeStatus
	for _, kv := range resp.Kvs {
		var n NodeStatus
		if err := json.Unmarshal(kv.Value, &n.NodeRecord); err != nil {
			n.State = "unreadable record: " + err.Error()
		}
		n.Node = strings.TrimPrefix(string(kv.Key), dir)
		n.Lag = rev - n.Revision
		nodes = append(nodes, n)
	}
	slices.SortFunc(nodes, func(a, b NodeStatus) int { return strings.Compare(a.Node, b.Node) })
	return nodes, rev, nil
}

// WriteCluster writes the nodes' records as `map646 status -cluster`
// shows them: etcd's revision, then a line per node: its own state
// (serving, drained...), its table's (synced, stale...) and since when,
// the revision it serves and its lag.
func WriteCluster(w io.Writer, nodes []NodeStatus, etcdRevision int64) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "etcd revision %d, %d nodes\n", etcdRevision, len(nodes))
	fmt.Fprintf(tw, "NODE\tSTATE\tTABLE\tSINCE\tREVISION\tLAG\tMAPPINGS\tBAD\tVERSION\n")
	for _, n := range nodes {
		since := "-"
		if !n.Since.IsZero() {
			since = n.Since.UTC().Format(time.RFC3339)
		}
		state := n.NodeState
		if state == "" {
			state = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%s\n", n.Node, state, n.State, since, n.Revision, n.Lag, n.Mappings, n.BadEntries, n.Version)
	}
	return tw.Flush()
}
