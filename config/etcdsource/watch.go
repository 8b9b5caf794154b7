package etcdsource

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/map646/map646/translator"
)

// watch follows the prefix from the revision after the table's until ctx
// ends or the watch fails; errCompacted means the revision it needed is
// gone and the whole prefix must be read again.
func (s *Source) watch(ctx context.Context) error {
	// WithRequireLeader: a member cut off from its cluster ends the watch
	// instead of holding it open with nothing to say, and the client
	// watches again through another member.
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	s.mu.Lock()
	from := s.watchRev + 1
	s.watchCtx = wctx
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.watchCtx = nil
		s.mu.Unlock()
	}()

	dir := s.cfg.Prefix + mappingsDir
	wch := s.client.Watch(wctx, dir, clientv3.WithPrefix(), clientv3.WithRev(from), clientv3.WithProgressNotify())
	cacheTimer := time.NewTimer(time.Hour)
	cacheTimer.Stop()
	defer cacheTimer.Stop()
	gather := time.NewTimer(time.Hour)
	gather.Stop()
	defer gather.Stop()
	var next *batch // gathered while resting after a long apply
	for {
		b := next
		next = nil
		if b == nil {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-cacheTimer.C:
				s.writeCache()
				continue
			case resp, ok := <-wch:
				b = &batch{}
				b.stop = s.add(b, resp, ok, from)
				s.gather(b, wch, gather, from)
			}
		}
		if b.events > 0 {
			took := s.applyBatch(b)
			from = b.last + 1
			s.mu.Lock()
			first := !s.cacheDirty
			s.cacheDirty = true
			s.mu.Unlock()
			if first {
				cacheTimer.Reset(s.cfg.CacheDelay)
			}
			if b.stop == nil && took >= restAfter {
				next = s.rest(ctx, wch, cacheTimer, took, from)
			}
		}
		if b.progress != 0 {
			s.progress(b.progress)
		}
		if b.stop != nil {
			return b.stop
		}
	}
}

// gather adds to b the responses that follow at once (a bulk load: a
// controller writing thousands of keys a second), so that they are
// applied as one step, not revision by revision.
func (s *Source) gather(b *batch, wch clientv3.WatchChan, t *time.Timer, from int64) {
	started := time.Now()
	for b.stop == nil && b.events < maxBatch && time.Since(started) < maxGather {
		// The client hands its buffered responses over one at a time,
		// from a goroutine of its own, through a channel without a
		// buffer: a receive that does not wait finds the next one only
		// if that goroutine already offers it. A moment's wait lets it.
		t.Reset(gatherWait)
		select {
		case resp, ok := <-wch:
			t.Stop()
			b.stop = s.add(b, resp, ok, from)
		case <-t.C:
			return
		}
	}
}

// rest follows an apply that took long (a large table built anew for a
// bulk batch): for up to twice that time the watch's changes are only
// gathered, so that a node following a steady bulk load spends at most a
// third of a CPU applying it, leaving the rest to the data plane and, on
// a shared machine, to etcd itself. The rest ends as soon as the watch
// has been quiet for restQuiet: the load is over (or pauses: bursts more
// than restQuiet apart are each applied when they end), and what came is
// applied at once. A single change on a small table never rests.
func (s *Source) rest(ctx context.Context, wch clientv3.WatchChan, cacheTimer *time.Timer, took time.Duration, from int64) *batch {
	b := &batch{}
	end := time.NewTimer(min(2*took, maxRest))
	defer end.Stop()
	quiet := time.NewTimer(restQuiet)
	defer quiet.Stop()
	for b.stop == nil && b.events < maxBatch {
		select {
		case <-ctx.Done():
			return b
		case <-end.C:
			return b
		case <-quiet.C:
			return b
		case <-cacheTimer.C: // a load of several minutes still writes its cache
			s.writeCache()
		case resp, ok := <-wch:
			b.stop = s.add(b, resp, ok, from)
			quiet.Reset(restQuiet)
		}
	}
	return b
}

const (
	restAfter = 50 * time.Millisecond
	maxRest   = 5 * time.Second
	restQuiet = 100 * time.Millisecond
)

// maxBatch bounds the events applied as one step: their deltas (the
// events themselves are dropped as they are accepted; about 130 bytes
// each) are held until the node has made its changes of them (about 90
// bytes each), which it holds while the table is rebuilt with them: some
// 13 MB and 9 MB at 100,000 (estimates from the types' sizes). A smaller
// batch saves memory but costs more
// rebuilds, each a pass over the whole table (0.3 s of a CPU at a million
// entries): with batches of 25,000, three nodes on two CPUs fell 30 s
// behind a million written in a minute, and peaked at 366-375 MB (against
// 341-357 MB with 100,000) as the etcd client buffered the events.
// maxGather bounds the time
// spent gathering them, and gatherWait is how long the gathering waits for
// the next response: what a change alone waits for more to join it.
const (
	maxBatch   = 100000
	maxGather  = 50 * time.Millisecond
	gatherWait = 200 * time.Microsecond
)

// batch gathers the watch's changes applied as one step. Each response's
// events are accepted (checked against the accepted mappings and recorded:
// Source.accept) as it comes, so that a batch holds the deltas they make,
// not the client's events, which are several times their size.
type batch struct {
	deltas   []Delta
	events   int   // the events taken in
	last     int64 // the revision of the last of them
	progress int64 // the last progress notification's revision, after the events
	stop     error // why the watch ended after the events, if it did
}

// add takes resp into b; a response that ends the watch returns why.
func (s *Source) add(b *batch, resp clientv3.WatchResponse, ok bool, from int64) error {
	switch {
	case !ok:
		return errors.New("watch closed")
	case resp.CompactRevision != 0:
		return fmt.Errorf("%w: watching from %d, compacted up to %d", errCompacted, from, resp.CompactRevision)
	case resp.Err() != nil:
		return fmt.Errorf("watch from %d: %w", from, resp.Err())
	case resp.IsProgressNotify():
		b.progress = resp.Header.Revision
	default:
		if n := len(resp.Events); n > 0 {
			s.mu.Lock()
			for _, ev := range resp.Events {
				b.deltas = s.accept(b.deltas, ev)
			}
			b.last = resp.Events[n-1].Kv.ModRevision
			s.watchRev = b.last
			s.mu.Unlock()
			b.events += n
		}
		b.progress = 0 // a notification is only news after the last event
	}
	return nil
}

// progress records that etcd has sent every change up to rev (a progress
// notification). The revision served moves on; the watch's own resume
// point does not: etcd 3.4 answers a progress request with its current
// revision even while the watch still has events to send, so rev only
// feeds the revision reported.
func (s *Source) progress(rev int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.status.EtcdRevision = max(s.status.EtcdRevision, rev)
	if s.status.State == Synced || s.status.State == Stale {
		s.status.Revision = max(s.status.Revision, rev)
	}
	s.lastContact = time.Now()
	s.changed()
}

// applyBatch applies a batch of the watch's changes, accepted in revision
// order, as one step, and returns how long the Applier took. A batch the
// Applier refuses (its table and the source's disagree: a bug) is followed
// by the whole table, so that the two agree again.
func (s *Source) applyBatch(b *batch) time.Duration {
	// The deltas are the Applier's alone from now on: once it has made
	// what it needs of them, the collector may free them while it applies
	// (some 15 MB at 100,000, during the rebuild of a million).
	deltas, n, rev := b.deltas, len(b.deltas), b.last
	b.deltas = nil
	start := time.Now()
	var err error
	if n > 0 {
		err = s.apply.ApplyDeltas(deltas)
	}
	if err != nil {
		s.log.Error("changes from etcd refused by the node; applying the whole table instead", "changes", n, "revision", rev, "err", err)
		// Without s.mu: only this goroutine changes the index, and the
		// build takes a second at a million mappings.
		t, err := s.idx.table()
		if err != nil {
			s.log.Error("cannot apply the whole table either", "err", err)
		} else {
			s.apply.ApplySnapshot(Snapshot{Table: t, Revision: rev})
		}
	}
	took := time.Since(start)

	s.mu.Lock()
	if err == nil {
		s.status.Applied += uint64(n)
	} else {
		s.status.Snapshots++
	}
	s.status.Revision = max(s.status.Revision, rev)
	s.status.EtcdRevision = max(s.status.EtcdRevision, rev)
	s.lastContact = time.Now()
	s.changed()
	s.mu.Unlock()
	return took
}

// accept checks one change of the watch against the accepted mappings,
// records it, and appends the deltas it makes; s.mu is held.
func (s *Source) accept(deltas []Delta, ev *clientv3.Event) []Delta {
	key := string(ev.Kv.Key)
	rev := ev.Kv.ModRevision
	old, had := s.acceptedAt(key)
	delete(s.bad, key)
	if ev.Type == mvccpb.PUT {
		m, msg := parseEntry(s.cfg.Prefix, ev.Kv.Key, ev.Kv.Value, s.cfg.PseudoPrefix)
		switch {
		case msg == "" && had && old == m:
			// Rewritten with the same value: nothing changes.
		case msg != "":
			s.bad[key] = newBad(ev.Kv.Key, ev.Kv.Value, msg, rev)
			if had {
				deltas = s.removeAccepted(deltas, key, old, rev)
			}
		default:
			if had {
				deltas = s.removeAccepted(deltas, key, old, rev)
			}
			r := toRecord(m)
			if w, conflict := s.idx.conflict(r); conflict {
				wm := w.mapping()
				wkey := MappingKey(s.cfg.Prefix, wm.IPv4)
				b := newBad(ev.Kv.Key, ev.Kv.Value, overlapReason(m, wm, wkey), rev)
				b.m, b.lostTo = m, wkey
				s.bad[key] = b
			} else if s.idx.len() >= s.cfg.MaxMappings {
				s.bad[key] = newBad(ev.Kv.Key, ev.Kv.Value, fmt.Sprintf("the table holds translator.max_mappings (%d) mappings already", s.cfg.MaxMappings), rev)
			} else {
				s.idx.insert(r)
				deltas = append(deltas, Delta{Op: Put, Key: key, Mapping: m, Revision: rev})
			}
		}
	} else if had {
		deltas = s.removeAccepted(deltas, key, old, rev)
	}
	if b := s.bad[key]; b != nil {
		s.log.Warn("refused entry", "key", b.Key, "reason", b.Reason, "revision", rev)
	}
	return deltas
}

// acceptedAt returns the accepted mapping of key, if any.
func (s *Source) acceptedAt(key string) (m translator.Mapping, ok bool) {
	v4, ok := keyPrefix(s.cfg.Prefix, key)
	if !ok {
		return m, false
	}
	r, ok := s.idx.find(recordOf4(v4))
	if !ok {
		return m, false
	}
	return r.mapping(), true
}

// removeAccepted removes the accepted mapping old of key, then retries,
// oldest first, the entries refused for overlapping it.
func (s *Source) removeAccepted(deltas []Delta, key string, old translator.Mapping, rev int64) []Delta {
	s.idx.remove(recordOf4(old.IPv4))
	deltas = append(deltas, Delta{Op: Delete, Key: key, Mapping: old, Revision: rev})
	var retry []*badEntry
	for _, b := range s.bad {
		if b.lostTo == key {
			retry = append(retry, b)
		}
	}
	slices.SortFunc(retry, func(a, b *badEntry) int { return cmp.Compare(a.Revision, b.Revision) })
	for _, b := range retry {
		r := toRecord(b.m)
		if w, conflict := s.idx.conflict(r); conflict {
			wm := w.mapping()
			b.lostTo = MappingKey(s.cfg.Prefix, wm.IPv4)
			b.Reason = overlapReason(b.m, wm, b.lostTo)
			continue
		}
		s.idx.insert(r)
		delete(s.bad, b.Key)
		s.log.Info("entry accepted: the key it overlapped is gone", "key", b.Key, "was", key)
		deltas = append(deltas, Delta{Op: Put, Key: b.Key, Mapping: b.m, Revision: rev})
	}
	return deltas
}
