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
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-cacheTimer.C:
			s.writeCache()
		case resp, ok := <-wch:
			if !ok {
				return errors.New("watch closed")
			}
			if resp.CompactRevision != 0 {
				return fmt.Errorf("%w: watching from %d, compacted up to %d", errCompacted, from, resp.CompactRevision)
			}
			if err := resp.Err(); err != nil {
				return fmt.Errorf("watch %s from %d: %w", dir, from, err)
			}
			if resp.IsProgressNotify() {
				s.progress(resp.Header.Revision)
				continue
			}
			for _, ev := range resp.Events {
				s.event(ev)
			}
			if len(resp.Events) > 0 {
				from = resp.Events[len(resp.Events)-1].Kv.ModRevision + 1
				s.mu.Lock()
				first := !s.cacheDirty
				s.cacheDirty = true
				s.mu.Unlock()
				if first {
					cacheTimer.Reset(s.cfg.CacheDelay)
				}
			}
		}
	}
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

// event applies one change of the watch.
func (s *Source) event(ev *clientv3.Event) {
	key := string(ev.Kv.Key)
	rev := ev.Kv.ModRevision
	s.mu.Lock()
	var deltas []Delta
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
	s.watchRev = rev
	s.mu.Unlock()

	for _, d := range deltas {
		s.apply.ApplyDelta(d)
	}

	s.mu.Lock()
	s.status.Applied += uint64(len(deltas))
	s.status.Revision = max(s.status.Revision, rev)
	s.status.EtcdRevision = max(s.status.EtcdRevision, rev)
	s.lastContact = time.Now()
	s.changed()
	s.mu.Unlock()
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
