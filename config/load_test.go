package config

import (
	"bufio"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"
)

// The budget for a mapping file of a million lines: loading it (reading,
// parsing, checking, building the table) and the Config that holds it.
// The time bound guards against work that grows faster than the table (a
// quadratic check would take minutes), not a speed figure (make microbench
// has BenchmarkNewTable): 0.6-0.8 s on a quiet 2-CPU machine, 3.7 s and
// 10.9 s seen while other jobs loaded both CPUs.
const (
	millionTime = 20 * time.Second
	millionHeap = 200 << 20
)

// TestLoadMillion loads a configuration whose mapping file holds 1,000,000
// mappings and fails if that takes more than millionTime or leaves more than
// millionHeap on the heap.
func TestLoadMillion(t *testing.T) {
	if testing.Short() {
		t.Skip("skipped with -short: writes and loads a 1,000,000-line mapping file")
	}
	const n = 1000000
	dir := t.TempDir()
	conf := filepath.Join(dir, "map646.toml")
	if err := os.WriteFile(conf, []byte(base+"mapping_file = \"mappings.txt\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// Single addresses from 10.0.0.0 up (a million do not fit in the
	// documentation blocks), one address mapped to a /96 in every 1000, and
	// a comment line before every 10000th.
	f, err := os.Create(filepath.Join(dir, "mappings.txt"))
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriter(f)
	for i := range n {
		a := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		switch {
		case i%1000 == 999:
			fmt.Fprintf(w, "%s/32 2001:db8:%x:%x::/96\n", a, i>>16, i&0xffff)
		case i%10000 == 0:
			fmt.Fprintf(w, "# block %d\n%s 2001:db8:%x:%x::1\n", i/10000, a, i>>16, i&0xffff)
		default:
			fmt.Fprintf(w, "%s\t2001:db8:%x:%x::1\n", a, i>>16, i&0xffff)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	start := time.Now()
	c, err := Load(conf)
	elapsed := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	held := int64(after.HeapAlloc) - int64(before.HeapAlloc)

	t.Logf("%d mappings loaded in %v; heap held by the Config: %.1f MB (HeapAlloc %.1f MB)",
		c.Table().Len(), elapsed.Round(time.Millisecond), float64(held)/(1<<20), float64(after.HeapAlloc)/(1<<20))
	if c.Table().Len() != n {
		t.Errorf("%d mappings, want %d", c.Table().Len(), n)
	}
	if got, want := c.MappingSource(n-1), filepath.Join(dir, "mappings.txt")+fmt.Sprintf(":%d", n+n/10000); got != want {
		t.Errorf("last mapping from %s, want %s", got, want)
	}
	if elapsed > millionTime {
		t.Errorf("loading took %v, more than %v", elapsed, millionTime)
	}
	if after.HeapAlloc > millionHeap {
		t.Errorf("heap %d MB, more than %d MB", after.HeapAlloc>>20, millionHeap>>20)
	}
	runtime.KeepAlive(c)
}
