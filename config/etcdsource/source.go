package etcdsource

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"

	"github.com/map646/map646/config"
	"github.com/map646/map646/translator"
)

// Config is what a Source needs: the [mappings.etcd] section and a few
// values from the rest of the configuration.
type Config struct {
	config.Etcd
	// PseudoPrefix is translator.pseudo_prefix: a mapping inside it is
	// refused, as in a mapping file.
	PseudoPrefix netip.Prefix
	// MaxMappings is translator.max_mappings: a start-up read that finds
	// more keys stops and retries, serving what it served before.
	MaxMappings int
	// StateDir is node.state_dir, where the cache is kept; "" keeps none.
	StateDir string
	// NodeID names the node's record (the BGP router ID, as the operator
	// knows the node); "" publishes none. Version goes into the record.
	NodeID, Version string
	// NodeState, if set, is the node's own state for its record
	// (starting, serving, drained...); safe from any goroutine.
	NodeState func() string
	Logger    *slog.Logger

	// Dial, if set, opens the connections to the members (the lab dials
	// from a network namespace).
	Dial func(ctx context.Context, addr string) (net.Conn, error)
	// PageSize is how many keys one request of the start-up read returns
	// (default DefaultPageSize): the read's memory is one page of etcd's
	// answers plus the table's compact form, whatever the table's size.
	PageSize int
	// ProbeInterval is how often etcd is asked whether it is reachable and
	// how far the watch has come (default 1s); CacheDelay how long after a
	// change the cache is rewritten (default 1s: a burst of changes costs
	// one write).
	ProbeInterval, CacheDelay time.Duration
}

// DefaultPageSize is the start-up read's page: 250,000 keys, about 15 MB
// of answer. etcd 3.4 walks every key from a page's start to the range's
// end to serve a limited range (3.5 stops at the limit), so each page
// costs as much as the rest of the table: pages of 10,000 made a million
// keys take 21 s to read, pages of 100,000 5 to 9 s, pages of 250,000
// 5.7 to 8.8 s (make iaas, three nodes and three members on 2 CPUs), for
// 20 MB more at the node's peak (VmHWM 270-285 MB against 245-269).
const DefaultPageSize = 250000

// minPageTimeout bounds a page of the start-up read, however short
// request_timeout is: on etcd 3.4 a page of a million-key range takes
// about half a second of the server's time (see DefaultPageSize), and a
// timeout that cuts it would retry it forever.
const minPageTimeout = 30 * time.Second

// Source follows the mappings under Prefix+"/mappings/" in etcd and hands
// their changes to an Applier: a snapshot, then deltas. It refuses bad
// entries (BadEntries) and keeps the rest working, caches the last table
// in StateDir, never withdraws anything because etcd is unreachable (it
// only reports since when it has been), and publishes the node's record
// under Prefix+"/nodes/".
//
// One goroutine (Run) owns the table; the other methods are safe from any
// goroutine.
type Source struct {
	cfg    Config
	apply  Applier
	client *clientv3.Client
	log    *slog.Logger

	mu           sync.Mutex
	idx          index                // the accepted mappings
	bad          map[string]*badEntry // refused keys
	status       Status
	lastContact  time.Time // last successful probe
	watchRev     int64     // last revision the watch delivered (or the snapshot's)
	watchCtx     context.Context
	cacheDirty   bool
	cacheWritten time.Time
	cacheErr     error
	changedc     chan struct{} // closed and replaced when the status changes
}

// badEntry is a refused key; m and lostTo are set when the entry is a
// valid mapping refused for an overlap with the key lostTo.
type badEntry struct {
	BadEntry
	m      translator.Mapping
	lostTo string
}

// New makes a Source and its etcd client. It does not connect: Run does,
// and keeps trying.
func New(cfg Config, apply Applier) (*Source, error) {
	if cfg.PageSize <= 0 {
		cfg.PageSize = DefaultPageSize
	}
	if cfg.ProbeInterval <= 0 {
		cfg.ProbeInterval = time.Second
	}
	if cfg.CacheDelay <= 0 {
		cfg.CacheDelay = time.Second
	}
	if cfg.MaxMappings <= 0 {
		cfg.MaxMappings = config.DefaultMaxMappings
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = config.DefaultEtcdRequestTimeout
	}
	if cfg.LeaseTTL <= 0 {
		cfg.LeaseTTL = config.DefaultEtcdLeaseTTL
	}
	if cfg.Prefix == "" {
		cfg.Prefix = config.DefaultEtcdPrefix
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	client, err := NewClient(cfg)
	if err != nil {
		return nil, err
	}
	return &Source{cfg: cfg, apply: apply, client: client, bad: map[string]*badEntry{}, changedc: make(chan struct{}),
		log: log.With("component", "etcdsource")}, nil
}

// NewClient makes an etcd client for cfg: its endpoints, TLS files and
// timeouts. The gRPC keepalive notices a silent member within about twice
// the dial timeout, and the client moves to another endpoint.
func NewClient(cfg Config) (*clientv3.Client, error) {
	cc := clientv3.Config{
		Endpoints:            cfg.Endpoints,
		DialTimeout:          cfg.DialTimeout,
		DialKeepAliveTime:    max(cfg.DialTimeout, time.Second),
		DialKeepAliveTimeout: max(cfg.DialTimeout, time.Second),
		PermitWithoutStream:  true,
		Logger:               zap.NewNop(),
		MaxCallRecvMsgSize:   64 << 20,
	}
	if cfg.Dial != nil {
		cc.DialOptions = append(cc.DialOptions, grpc.WithContextDialer(cfg.Dial))
	}
	if cfg.CertFile != "" || cfg.CAFile != "" || hasHTTPS(cfg.Endpoints) {
		t, err := tlsConfig(cfg.Etcd)
		if err != nil {
			return nil, err
		}
		cc.TLS = t
	}
	c, err := clientv3.New(cc)
	if err != nil {
		return nil, fmt.Errorf("etcdsource: client: %w", err)
	}
	return c, nil
}

func hasHTTPS(eps []string) bool {
	return slices.ContainsFunc(eps, func(e string) bool { return len(e) > 8 && e[:8] == "https://" })
}

// tlsConfig loads the client certificate and the CA. The key's content is
// never part of a message: a read error names the file only.
func tlsConfig(e config.Etcd) (*tls.Config, error) {
	t := &tls.Config{MinVersion: tls.VersionTLS12}
	if e.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(e.CertFile, e.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("etcdsource: client certificate %s with key %s: %w", e.CertFile, e.KeyFile, err)
		}
		t.Certificates = []tls.Certificate{cert}
	}
	if e.CAFile != "" {
		pem, err := os.ReadFile(e.CAFile)
		if err != nil {
			return nil, fmt.Errorf("etcdsource: ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("etcdsource: ca_file %s: no PEM certificate in it", e.CAFile)
		}
		t.RootCAs = pool
	}
	return t, nil
}

// Client returns the etcd client (for the lab and for `map646 status
// -cluster`).
func (s *Source) Client() *clientv3.Client { return s.client }

// Close closes the etcd client; Run must have returned. Safe twice.
func (s *Source) Close() error {
	err := s.client.Close()
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	return err
}

// Status returns the source's state.
func (s *Source) Status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.status
	st.Mappings = s.idx.len()
	st.BadEntries = len(s.bad)
	return st
}

// BadEntries returns the refused keys in key order.
func (s *Source) BadEntries() []BadEntry {
	s.mu.Lock()
	defer s.mu.Unlock()
	list := make([]BadEntry, 0, len(s.bad))
	for _, b := range s.bad {
		list = append(list, b.BadEntry)
	}
	slices.SortFunc(list, func(a, b BadEntry) int {
		if a.Key < b.Key {
			return -1
		}
		if a.Key > b.Key {
			return 1
		}
		return 0
	})
	return list
}

// Run follows etcd until ctx ends: it reads the whole prefix, serves the
// cache while that fails, then watches; a compacted watch reads the whole
// prefix again. It returns ctx's error.
func (s *Source) Run(ctx context.Context) error {
	// The probe and the publisher end with ctx, and Run waits for them:
	// the publisher revokes the node's lease on its way out, before the
	// caller closes the client.
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() { s.probe(ctx) })
	if s.cfg.NodeID != "" {
		wg.Go(func() { s.publish(ctx) })
	}
	// A page of the whole read may take long (minPageTimeout); whether
	// etcd answers at all is known within request_timeout, and a node
	// that cannot reach it serves its cache at once.
	cacheTried := false
	if !s.reachable(ctx) {
		cacheTried = true
		s.serveCache()
	}
	needRead := true
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		var err error
		if needRead {
			err = s.readAll(ctx)
			if err != nil && !cacheTried {
				cacheTried = true
				s.serveCache()
			}
		}
		if err == nil {
			needRead = false
			started := time.Now()
			err = s.watch(ctx)
			if time.Since(started) > 10*time.Second {
				backoff = 100 * time.Millisecond // it worked for a while: a new failure
			}
			if errors.Is(err, errCompacted) {
				s.log.Info("watch compacted: reading the whole prefix again", "err", err)
				needRead = true
				continue
			}
		}
		if ctx.Err() != nil {
			break
		}
		s.log.Warn("etcd", "err", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
	s.flushCache()
	return ctx.Err()
}

// reachable reports whether etcd answers a linearizable read (which needs
// its quorum) within request_timeout.
func (s *Source) reachable(ctx context.Context) bool {
	rctx, cancel := context.WithTimeout(ctx, s.cfg.RequestTimeout)
	defer cancel()
	_, err := s.client.Get(rctx, s.cfg.Prefix+"/", clientv3.WithCountOnly())
	return err == nil
}

var errCompacted = errors.New("required revision has been compacted")

// serveCache applies the cached table if the source has none yet.
func (s *Source) serveCache() {
	if s.cfg.StateDir == "" || s.Status().HasTable() {
		return
	}
	c, err := readCache(s.cfg.StateDir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		s.log.Warn("etcd unreachable and no cached table: nothing to serve")
		return
	case err != nil:
		s.log.Error("etcd unreachable and the cached table is unusable", "err", err)
		return
	case c.prefix != s.cfg.Prefix:
		s.log.Error("etcd unreachable and the cached table is of another prefix", "cached", c.prefix, "prefix", s.cfg.Prefix)
		return
	}
	recs := c.recs[:0]
	for _, r := range c.recs {
		if s.cfg.PseudoPrefix.IsValid() && r.mapping().IPv6.Overlaps(s.cfg.PseudoPrefix) {
			continue // the pseudo prefix changed since: the entry would be refused
		}
		recs = append(recs, r)
	}
	s.mu.Lock()
	s.idx.build(recs, make([]int64, len(recs))) // a cache from this package has no overlaps
	t, err := s.idx.table()
	if err != nil {
		s.idx = index{}
		s.mu.Unlock()
		s.log.Error("etcd unreachable and the cached table is unusable", "err", err)
		return
	}
	s.watchRev = c.revision
	s.setState(FromCache)
	s.status.Revision = c.revision
	s.status.StaleSince = c.written
	s.status.Snapshots++
	s.mu.Unlock()
	s.log.Warn("etcd unreachable: serving the cached table", "revision", c.revision, "written", c.written, "mappings", t.Len())
	s.apply.ApplySnapshot(Snapshot{Table: t, Revision: c.revision, FromCache: true})
}

// readAll reads every key under the prefix at one revision, page by
// page, builds the table and applies it as a Snapshot.
func (s *Source) readAll(ctx context.Context) error {
	start := time.Now()
	dir := s.cfg.Prefix + mappingsDir
	end := clientv3.GetPrefixRangeEnd(dir)
	var recs []record // the valid entries, and their ModRevisions
	var revs []int64
	bad := map[string]*badEntry{}
	var rev int64
	from := dir
	for {
		opts := []clientv3.OpOption{clientv3.WithRange(end), clientv3.WithLimit(int64(s.cfg.PageSize))}
		if rev != 0 {
			opts = append(opts, clientv3.WithRev(rev)) // every page at the first one's revision
		}
		rctx, cancel := context.WithTimeout(ctx, max(s.cfg.RequestTimeout, minPageTimeout))
		resp, err := s.client.Get(rctx, from, opts...)
		cancel()
		if err != nil {
			return fmt.Errorf("read %s at revision %d: %w", dir, rev, err)
		}
		if rev == 0 {
			rev = resp.Header.Revision
			// Count is every key of the range: room for all of them at
			// once, not a million-entry slice grown by doubling.
			n := min(resp.Count, int64(s.cfg.MaxMappings)+1)
			recs, revs = make([]record, 0, n), make([]int64, 0, n)
		}
		for _, kv := range resp.Kvs {
			m, msg := parseEntry(s.cfg.Prefix, kv.Key, kv.Value, s.cfg.PseudoPrefix)
			if msg != "" {
				bad[string(kv.Key)] = newBad(kv.Key, kv.Value, msg, kv.ModRevision)
				continue
			}
			if len(recs) >= s.cfg.MaxMappings {
				return fmt.Errorf("more than translator.max_mappings (%d) mappings under %s: not applied; raise max_mappings", s.cfg.MaxMappings, dir)
			}
			recs = append(recs, toRecord(m))
			revs = append(revs, kv.ModRevision)
		}
		if !resp.More || len(resp.Kvs) == 0 {
			break
		}
		from = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}

	var idx index
	for _, l := range idx.build(recs, revs) {
		m, w := l.rec.mapping(), l.to.mapping()
		key, wkey := MappingKey(s.cfg.Prefix, m.IPv4), MappingKey(s.cfg.Prefix, w.IPv4)
		b := newBad([]byte(key), []byte(MappingValue(m)), overlapReason(m, w, wkey), l.rev)
		b.m, b.lostTo = m, wkey
		bad[key] = b
	}
	recs, revs = nil, nil
	// A whole read leaves its pages and candidates to the collector (tens
	// of MB at a million keys) just before the table is built, the peak of
	// a node's memory: collected now, the heap's next goal is set by what
	// is live, not by what the read left behind.
	runtime.GC()
	t, err := idx.table()
	if err != nil {
		return err
	}

	s.mu.Lock()
	s.idx = idx
	s.bad = bad
	s.watchRev = rev
	s.mu.Unlock()

	s.log.Info("read the whole table", "revision", rev, "mappings", t.Len(), "bad_entries", len(bad), "took", time.Since(start).Round(time.Millisecond))
	for _, b := range bad {
		s.log.Warn("refused entry", "key", b.Key, "reason", b.Reason)
	}
	s.apply.ApplySnapshot(Snapshot{Table: t, Revision: rev})

	s.mu.Lock()
	s.status.Revision = rev
	s.status.EtcdRevision = max(s.status.EtcdRevision, rev)
	s.status.StaleSince = time.Time{}
	s.status.Snapshots++
	s.lastContact = time.Now()
	s.setState(Synced)
	s.mu.Unlock()
	s.writeCache()
	return nil
}

func newBad(key, value []byte, reason string, rev int64) *badEntry {
	v := value
	if len(v) > maxShownValue {
		v = v[:maxShownValue]
	}
	return &badEntry{BadEntry: BadEntry{Key: string(key), Value: string(v), Reason: reason, Revision: rev}}
}

func overlapReason(m, other translator.Mapping, otherKey string) string {
	if m.IPv4.Overlaps(other.IPv4) {
		return fmt.Sprintf("IPv4 %s overlaps %s of the older key %s", single(m.IPv4), single(other.IPv4), otherKey)
	}
	return fmt.Sprintf("IPv6 %s overlaps %s of the older key %s", single(m.IPv6), single(other.IPv6), otherKey)
}

// writeCache writes the table to the state directory now.
func (s *Source) writeCache() {
	if s.cfg.StateDir == "" {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	// The index holds every change accepted, up to watchRev, which is
	// ahead of the revision served while a batch is gathered (its events
	// are accepted as they come) and not yet applied: the cache is labelled
	// with the revision of what it holds, so that a node restarted on it
	// watches from the change after its content, not replays changes it has.
	err := writeCache(s.cfg.StateDir, s.cfg.Prefix, max(s.status.Revision, s.watchRev), &s.idx)
	s.cacheDirty = false
	if err != nil && (s.cacheErr == nil || s.cacheErr.Error() != err.Error()) {
		s.log.Error("cannot write the cached table", "err", err)
	}
	s.cacheErr = err
	if err == nil {
		s.cacheWritten = time.Now()
	}
}

func (s *Source) flushCache() {
	s.mu.Lock()
	dirty := s.cacheDirty
	s.mu.Unlock()
	if dirty {
		s.writeCache()
	}
}

// changed wakes the goroutines waiting for a change of the status; s.mu
// is held.
func (s *Source) changed() {
	close(s.changedc)
	s.changedc = make(chan struct{})
}

// setState moves to state st; s.mu is held.
func (s *Source) setState(st State) {
	if s.status.State != st {
		s.status.State = st
		s.status.Since = time.Now()
	}
	s.changed()
}

// WaitRevision waits until the table served includes every change up to
// rev (`map646 mapping add` returns once its own node translates the new
// mapping), or ctx ends.
func (s *Source) WaitRevision(ctx context.Context, rev int64) error {
	for {
		s.mu.Lock()
		done := s.status.Revision >= rev && (s.status.State == Synced || s.status.State == Stale)
		c := s.changedc
		s.mu.Unlock()
		if done {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("etcdsource: waiting for revision %d: %w", rev, ctx.Err())
		case <-c:
		}
	}
}
