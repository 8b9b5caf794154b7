package dataplane

import (
	"net/netip"
	"testing"

	"github.com/map646/map646/translator"
	pt "github.com/map646/map646/translator/packettest"
	"github.com/map646/map646/translator/tun"
)

// TestApplyDelta: a mapping added by a delta translates at once, without
// a swap of the whole table, and the counters of the mappings kept are
// the same counters (not copies), untouched; a deleted one stops
// translating.
func TestApplyDelta(t *testing.T) {
	cfg := newConfig(t, "icmp_errors = false", "")
	batches := make(chan []tun.Packet)
	dev := newFakeDevice(1, nil, nil)
	dev.next = func(int) []tun.Packet {
		select {
		case b := <-batches:
			return b
		case <-dev.closed:
			return nil
		}
	}
	d := newDataPlane(t, cfg, dev)
	run(t, d)
	send := func(pkts ...[]byte) {
		var b []tun.Packet
		for _, p := range pkts {
			b = append(b, tun.Packet{Buf: append([]byte(nil), p...), Len: len(p)})
		}
		batches <- b
	}
	added := netip.MustParseAddr("203.0.113.50")
	to := func(dst netip.Addr) []byte {
		return pt.UDP4(pt.IPv4{TTL: 64, Src: client4, Dst: dst}, 40000, 53, make([]byte, 100))
	}

	send(to(server4), to(server4), to(added))
	waitBatches(t, d, 1)
	before := d.state.Load().entries
	id10, ok := d.Translator().Table().Lookup4(server4)
	if !ok {
		t.Fatal("198.51.100.10 not mapped")
	}
	c10 := d.Counts(id10)
	if c10.Packets4to6 != 2 {
		t.Fatalf("198.51.100.10 counted %d packets, want 2", c10.Packets4to6)
	}

	m := translator.Mapping{IPv4: netip.MustParsePrefix("203.0.113.50/32"), IPv6: netip.MustParsePrefix("2001:db8:7::50/128")}
	changes := []translator.MappingChange{
		{Op: translator.Add, Mapping: m},
		{Op: translator.Del, Mapping: translator.Mapping{IPv4: netip.MustParsePrefix("198.51.100.11/32"), IPv6: netip.MustParsePrefix("2001:db8:1::11/128")}},
	}
	tr, err := d.Translator().Apply(changes)
	if err != nil {
		t.Fatal(err)
	}
	d.Apply(tr, changes)
	if &d.state.Load().entries.of(0)[0] != &before.of(0)[0] {
		t.Error("Apply replaced the counters")
	}
	send(to(added), to(server4b))
	waitBatches(t, d, 2)
	s := d.Stats()
	if got := s.Packets[Dir4to6][translator.Forward][translator.ReasonNone]; got != 3 {
		t.Errorf("%d packets translated, want 3 (two to .10, one to the added mapping)", got)
	}
	idNew, ok := d.Translator().Table().Lookup4(added)
	if !ok {
		t.Fatal("the added mapping is not in the table")
	}
	if c := d.Counts(idNew); c.Packets4to6 != 1 {
		t.Errorf("the added mapping counted %+v, want 1 packet 4to6", c)
	}
	if c := d.Counts(id10); c != c10 {
		t.Errorf("198.51.100.10's counters went from %+v to %+v", c10, c)
	}
	n := 0
	d.Mappings(-1, func(id int, got translator.Mapping, c MappingCounts) bool {
		n++
		if got == m && (id != idNew || c.Packets4to6 != 1) {
			t.Errorf("Mappings: %v id %d counts %+v", got, id, c)
		}
		return true
	})
	if n != 2 {
		t.Errorf("Mappings yielded %d mappings, want 2", n)
	}
}

// TestFastPathDelta: the program gets each addition that is in the table
// with the id the table gave it, and not an addition withdrawn later in
// the same batch, whose address the table maps to the mapping that
// replaced it.
func TestFastPathDelta(t *testing.T) {
	mp := func(a, b string) translator.Mapping {
		return translator.Mapping{IPv4: netip.MustParsePrefix(a), IPv6: netip.MustParsePrefix(b)}
	}
	table, err := translator.NewTable([]translator.Mapping{mp("192.0.2.1/32", "2001:db8:1::1/128")})
	if err != nil {
		t.Fatal(err)
	}
	withdrawn, kept := mp("198.51.100.7/32", "2001:db8:5::7/128"), mp("198.51.100.7/32", "2001:db8:5::8/128")
	changes := []translator.MappingChange{
		{Op: translator.Add, Mapping: withdrawn},
		{Op: translator.Del, Mapping: withdrawn},
		{Op: translator.Add, Mapping: kept},
	}
	next, err := table.Rebuild(changes, nil)
	if err != nil {
		t.Fatal(err)
	}
	del, add := fastPathDelta(next, changes)
	id, _ := next.Lookup4(kept.IPv4.Addr())
	if len(add) != 1 || add[0].Mapping != kept || add[0].Index != int32(id) {
		t.Errorf("additions %v, want only %v with id %d", add, kept, id)
	}
	if len(del) != 1 || del[0] != withdrawn {
		t.Errorf("removals %v, want %v", del, withdrawn)
	}
}
