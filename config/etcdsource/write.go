package etcdsource

import (
	"context"
	"errors"
	"fmt"
	"net/netip"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/map646/map646/config"
	"github.com/map646/map646/translator"
)

// ErrMapped and ErrNotMapped are Add's and Remove's refusals.
var (
	ErrMapped    = errors.New("already mapped")
	ErrNotMapped = errors.New("not mapped")
	ErrOverlap   = errors.New("overlaps a mapping")
)

// Add writes mapping m to etcd (`map646 mapping add` on a node with the
// etcd source) and returns the revision of the write; WaitRevision then
// tells when this node serves it. m is checked as a line of a mapping
// file is, and against the table this node serves: an overlap with
// another key is refused here rather than written and refused by every
// node. The write itself is a transaction that refuses a key that exists
// already with another value (changing a mapping is Remove, then Add):
// two controllers cannot overwrite each other's mapping unknowingly.
func (s *Source) Add(ctx context.Context, m translator.Mapping) (int64, error) {
	m, msg := config.ParseMapping(single(m.IPv4), single(m.IPv6), s.cfg.PseudoPrefix)
	if msg != "" {
		return 0, fmt.Errorf("etcdsource: add: %s", msg)
	}
	key := MappingKey(s.cfg.Prefix, m.IPv4)
	s.mu.Lock()
	w, conflict := s.idx.conflict(toRecord(m))
	s.mu.Unlock()
	if conflict && w.mapping() != m {
		wm := w.mapping()
		wkey := MappingKey(s.cfg.Prefix, wm.IPv4)
		if wkey != key {
			return 0, fmt.Errorf("etcdsource: add %s: %w: %s", key, ErrOverlap, overlapReason(m, wm, wkey))
		}
	}
	return AddMapping(ctx, s.client, s.cfg.Prefix, m)
}

// AddMapping writes m under prefix unless its key holds another mapping;
// writing the same mapping again succeeds without a change.
func AddMapping(ctx context.Context, c *clientv3.Client, prefix string, m translator.Mapping) (int64, error) {
	key, value := MappingKey(prefix, m.IPv4), MappingValue(m)
	resp, err := c.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, value)).
		Else(clientv3.OpGet(key)).
		Commit()
	if err != nil {
		return 0, fmt.Errorf("etcdsource: add %s: %w", key, err)
	}
	if resp.Succeeded {
		return resp.Header.Revision, nil
	}
	kvs := resp.Responses[0].GetResponseRange().Kvs
	if len(kvs) == 1 && string(kvs[0].Value) == value {
		return kvs[0].ModRevision, nil
	}
	got := ""
	if len(kvs) == 1 {
		got = string(kvs[0].Value)
	}
	return 0, fmt.Errorf("etcdsource: add %s: %w to %q; remove it first to change it", key, ErrMapped, got)
}

// KeyOf returns the key of the mapping of the IPv4 prefix p: where a
// mapping of this source comes from (`map646 lookup`).
func (s *Source) KeyOf(p netip.Prefix) string { return MappingKey(s.cfg.Prefix, p) }

// Remove deletes the mapping of the IPv4 prefix p from etcd and returns
// the revision of the deletion.
func (s *Source) Remove(ctx context.Context, p netip.Prefix) (int64, error) {
	return RemoveMapping(ctx, s.client, s.cfg.Prefix, p)
}

// RemoveMapping deletes the key of the IPv4 prefix p under prefix.
func RemoveMapping(ctx context.Context, c *clientv3.Client, prefix string, p netip.Prefix) (int64, error) {
	if !p.IsValid() || !p.Addr().Is4() || p.Masked() != p {
		return 0, fmt.Errorf("etcdsource: remove %s: not an IPv4 prefix without host bits", p)
	}
	key := MappingKey(prefix, p)
	resp, err := c.Delete(ctx, key)
	if err != nil {
		return 0, fmt.Errorf("etcdsource: remove %s: %w", key, err)
	}
	if resp.Deleted == 0 {
		return 0, fmt.Errorf("etcdsource: remove %s: %w", key, ErrNotMapped)
	}
	return resp.Header.Revision, nil
}
