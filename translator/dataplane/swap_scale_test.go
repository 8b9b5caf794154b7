package dataplane

import (
	"net/netip"
	"testing"
	"time"

	"github.com/map646/map646/translator"
)

// TestSwapMillion measures a reload of a table of 1,000,000 mappings with
// every mapping counted: the new counter array and the carrying over.
func TestSwapMillion(t *testing.T) {
	if testing.Short() {
		t.Skip("skipped with -short: builds two tables of 1,000,000 mappings")
	}
	const n = 1000000
	build := func(shift int) *translator.Translator {
		ms := make([]translator.Mapping, n)
		for i := range ms {
			a := uint32(10<<24) + uint32(i+shift)
			ms[i] = translator.Mapping{
				IPv4: netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(a >> 24), byte(a >> 16), byte(a >> 8), byte(a)}), 32),
				IPv6: netip.PrefixFrom(netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, byte(a >> 24), byte(a >> 16), byte(a >> 8), byte(a)}), 128),
			}
		}
		table, err := translator.NewTable(ms)
		if err != nil {
			t.Fatal(err)
		}
		tr, err := translator.New(newConfig(t, "", "").Translator.Config, table)
		if err != nil {
			t.Fatal(err)
		}
		return tr
	}
	a, b := build(0), build(1) // b: the same mappings but the first, one more at the end, each one index lower
	d := newDataPlane(t, newConfig(t, "", ""), newFakeDevice(1, nil, nil))
	d.Swap(a)
	st := d.state.Load()
	for id := range st.entries.ids() {
		w := st.entries.of(id)
		for k := range w {
			w[k] = uint64(id*entryWords + k)
		}
	}
	start := time.Now()
	d.Swap(b)
	took := time.Since(start)
	t.Logf("swap of %d mappings with counts carried over: %v", n, took.Round(time.Millisecond))
	next := d.state.Load()
	// Mapping i+1 of a is mapping i of b.
	for _, i := range []int{0, 1, n / 2, n - 2} {
		for k := range entryWords {
			if got, want := next.entries.of(i)[k], uint64((i+1)*entryWords+k); got != want {
				t.Fatalf("mapping %d word %d: %d, want %d", i, k, got, want)
			}
		}
	}
	if last := next.entries.of(n - 1); last[0] != 0 || last[3] != 0 {
		t.Errorf("the new mapping has counts %v", last)
	}
}
