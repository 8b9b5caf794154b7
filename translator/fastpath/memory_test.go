package fastpath_test

import (
	"encoding/binary"
	"net/netip"
	"testing"
	"time"

	"github.com/map646/map646/translator"
	"github.com/map646/map646/translator/fastpath"
	pt "github.com/map646/map646/translator/packettest"
)

// TestMemoryMillion loads a table of a million mappings, /32 to /128 as a
// datacenter numbers its servers, and reports what the kernel charges for
// the maps (memlock) against their payload (entries x (key + value)); it
// checks that the last mapping is translated by the program.
func TestMemoryMillion(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a million-entry table (-short)")
	}
	r := newRunner(t)
	const n = 1_000_000
	ms := make([]translator.Mapping, n)
	for i := range ms {
		var a4 [4]byte
		binary.BigEndian.PutUint32(a4[:], 52<<24+uint32(i))
		var a6 [16]byte
		binary.BigEndian.PutUint64(a6[:8], 0x20010db800000000|uint64(i>>8))
		binary.BigEndian.PutUint64(a6[8:], uint64(i&0xff))
		ms[i] = translator.Mapping{IPv4: netip.PrefixFrom(netip.AddrFrom4(a4), 32), IPv6: netip.PrefixFrom(netip.AddrFrom16(a6), 128)}
	}
	table, err := translator.NewTable(ms)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	fp, tr := load(t, testConfig(), table)
	took := time.Since(start)
	mem, err := fp.MapMemory()
	if err != nil {
		t.Fatal(err)
	}
	var all uint64
	for _, m := range mem {
		all += m.Charged
		payload := uint64(m.MaxEntries) * uint64(m.KeySize+m.ValueSize)
		t.Logf("map %s: %d entries of %d+%d bytes (%.1f MB), %.1f MB charged", m.Name, m.MaxEntries, m.KeySize, m.ValueSize, float64(payload)/1e6, float64(m.Charged)/1e6)
		if (m.Name == "table4" || m.Name == "table6") && (m.MaxEntries != n+fastpath.DeltaRoom || m.Charged < payload) {
			t.Errorf("map %s: %d entries, %d bytes charged: not sized to a million mappings", m.Name, m.MaxEntries, m.Charged)
		}
	}
	t.Logf("%d mappings loaded in %v; all maps %.1f MB", n, took.Round(time.Millisecond), float64(all)/1e6)
	last := ms[n-1]
	pkt := pt.UDP4(pt.IPv4{TTL: 64, Src: client4, Dst: last.IPv4.Addr()}, 1, 2, []byte("last"))
	oc, err := r.Compare(fp.Program(), tr, pkt)
	if err != nil || !oc.Taken {
		t.Errorf("a packet to the last mapping: taken %v, %v", oc.Taken, err)
	}
}
