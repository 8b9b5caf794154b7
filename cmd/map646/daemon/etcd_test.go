package daemon

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/map646/map646/config"
	"github.com/map646/map646/config/etcdsource"
	"github.com/map646/map646/translator"
)

// The feed hands the source's changes to the loop and waits for their
// result; a loop that stopped reading (the daemon stopping) must not hold
// the source for ever: the feed returns when its context ends.
func TestEtcdFeed(t *testing.T) {
	updates := make(chan MappingUpdate)
	ctx, cancel := context.WithCancel(context.Background())
	f := etcdFeed{ctx: ctx, updates: updates}
	m := translator.Mapping{IPv4: netip.MustParsePrefix("198.51.100.10/32"), IPv6: netip.MustParsePrefix("2001:db8:1::10/128")}

	done := make(chan struct{})
	go func() {
		if err := f.ApplyDeltas([]etcdsource.Delta{{Op: etcdsource.Delete, Key: "/map646/mappings/198.51.100.10", Mapping: m, Revision: 7}}); !errors.Is(err, errNothingChanged) {
			t.Errorf("the loop's refusal came back as %v", err)
		}
		// Applied, a route failing: not a refusal (the source would send
		// the whole table for nothing).
		if err := f.ApplyDeltas([]etcdsource.Delta{{Op: etcdsource.Put, Key: "/map646/mappings/198.51.100.10", Mapping: m, Revision: 8}}); err != nil {
			t.Errorf("an applied batch whose route failed came back as %v", err)
		}
		f.ApplySnapshot(etcdsource.Snapshot{Revision: 9}) // an empty table
		close(done)
	}()
	u := <-updates
	if len(u.Changes) != 1 || u.Changes[0].Op != translator.Del || u.Changes[0].Mapping != m || u.Table != nil {
		t.Errorf("delta: %+v", u)
	}
	select {
	case <-done:
		t.Fatal("the feed returned before the loop answered")
	case <-time.After(20 * time.Millisecond):
	}
	u.Result <- fmt.Errorf("%w: no mapping to delete", errNothingChanged)
	u = <-updates
	u.Result <- errors.New("put 198.51.100.10: 1 mappings, but not every change was applied: route: file exists")
	u = <-updates
	if u.Table == nil || u.Table.Len() != 0 || u.Changes != nil {
		t.Errorf("an empty snapshot must be an empty table, not a delta: %+v", u)
	}
	cancel() // the loop never answers: the daemon stops
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the feed still waits for a stopped loop")
	}
	if err := f.ApplyDeltas([]etcdsource.Delta{{Op: etcdsource.Put, Mapping: m}}); err != nil { // nobody reads: returns at once
		t.Errorf("a stopped loop: %v", err)
	}
}

func TestNodeID(t *testing.T) {
	cfg := &config.Config{}
	host, _ := os.Hostname()
	if got := nodeID(cfg); got != host || host == "" {
		t.Errorf("without [bgp]: %q, want the host name %q", got, host)
	}
	cfg.BGP.Enabled, cfg.BGP.RouterID = true, netip.MustParseAddr("192.0.2.2")
	if got := nodeID(cfg); got != "192.0.2.2" {
		t.Errorf("with [bgp]: %q, want the router id", got)
	}
}
