package config

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
)

// allocated returns the bytes allocated while f ran.
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// loadIn writes conf as map646.toml in dir and loads it; the error text has
// dir replaced by DIR.
func loadIn(t *testing.T, dir, conf string) (c *Config, msg string, alloc uint64) {
	t.Helper()
	path := filepath.Join(dir, "map646.toml")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	var err error
	alloc = allocated(func() { c, err = Load(path) })
	if err != nil {
		msg = strings.ReplaceAll(err.Error(), dir, "DIR")
	}
	return c, msg, alloc
}

// TestMappingFileTooLarge: a mapping file over max_mapping_file_bytes is
// refused from its size alone, nothing of it read: an 8 MiB file (sparse:
// it takes no disk) costs the load less than 1 MiB of allocations.
func TestMappingFileTooLarge(t *testing.T) {
	dir := t.TempDir()
	f, err := os.Create(filepath.Join(dir, "big.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(8 << 20); err != nil {
		t.Fatal(err)
	}
	f.Close()
	_, msg, alloc := loadIn(t, dir, base+"mapping_file = \"big.txt\"\nmax_mapping_file_bytes = 1048576\n")
	want := `DIR/map646.toml:5: translator.mapping_file = "big.txt": DIR/big.txt is 8388608 bytes, more than translator.max_mapping_file_bytes (1048576); nothing was loaded from it (a larger file needs a larger max_mapping_file_bytes)`
	if msg != want {
		t.Errorf("got:\n%s\nwant:\n%s", msg, want)
	}
	t.Logf("refusing an 8 MiB file allocated %d bytes", alloc)
	if alloc > 1<<20 {
		t.Errorf("refusing an 8 MiB file allocated %d bytes, want under 1 MiB", alloc)
	}
}

// TestMappingFileTooLargeUnsized: a file whose size is not known before it
// is read (a FIFO here; a device, a file that grows) is read up to the
// limit and refused there. (Not /dev/zero: without the limit the test
// would take the machine's memory instead of failing.)
func TestMappingFileTooLargeUnsized(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	wrote := make(chan struct{})
	go func() {
		defer close(wrote)
		w, err := os.OpenFile(fifo, os.O_WRONLY, 0)
		if err != nil {
			return
		}
		defer w.Close()
		line := []byte("198.51.100.10 2001:db8:1::10\n")
		for range (4 << 20) / len(line) {
			if _, err := w.Write(line); err != nil {
				return // the reader stopped: EPIPE
			}
		}
	}()
	_, msg, alloc := loadIn(t, dir, base+"mapping_file = \"fifo\"\nmax_mapping_file_bytes = 1048576\n")
	<-wrote
	want := `DIR/map646.toml:5: translator.mapping_file = "fifo": DIR/fifo holds more than translator.max_mapping_file_bytes (1048576); nothing was loaded from it (a larger file needs a larger max_mapping_file_bytes)`
	if msg != want {
		t.Errorf("got:\n%s\nwant:\n%s", msg, want)
	}
	// Bounded by the limit (the buffer grows as it is read), not by the
	// stream.
	t.Logf("refusing a 4 MiB stream at 1 MiB allocated %d bytes", alloc)
	if alloc > 8<<20 {
		t.Errorf("refusing a 4 MiB stream at 1 MiB allocated %d bytes, want under 8 MiB", alloc)
	}
}

// TestMappingFileBlankLines: blank lines cost nothing but their bytes: a
// file of 4 Mi newlines around one mapping loads for about twice its size
// (the file and its string), not 70 times.
func TestMappingFileBlankLines(t *testing.T) {
	dir := t.TempDir()
	blank := strings.Repeat("\n", 2<<20)
	if err := os.WriteFile(filepath.Join(dir, "m.txt"), []byte(blank+"198.51.100.10 2001:db8:1::10\n"+blank), 0o600); err != nil {
		t.Fatal(err)
	}
	c, msg, alloc := loadIn(t, dir, base+"mapping_file = \"m.txt\"\n")
	if msg != "" {
		t.Fatal(msg)
	}
	if c.Table().Len() != 1 || c.MappingSource(0) != filepath.Join(dir, "m.txt")+":2097153" {
		t.Errorf("%d mappings, the first from %s", c.Table().Len(), c.MappingSource(0))
	}
	t.Logf("a 4 MiB file of blank lines and one mapping: %d bytes allocated", alloc)
	if alloc > 12<<20 {
		t.Errorf("a 4 MiB file of blank lines allocated %d bytes, want under 12 MiB", alloc)
	}
}

// TestTooManyMappings: more mappings than max_mappings, the file's and the
// [[mapping]] entries together, are refused before the table is built.
func TestTooManyMappings(t *testing.T) {
	dir := t.TempDir()
	lines := "# three\n198.51.100.1 2001:db8:1::1\n\n198.51.100.2 2001:db8:1::2\n198.51.100.3 2001:db8:1::3\n"
	if err := os.WriteFile(filepath.Join(dir, "m.txt"), []byte(lines), 0o600); err != nil {
		t.Fatal(err)
	}
	const inline = "\n[[mapping]]\nipv4 = \"198.51.100.10\"\nipv6 = \"2001:db8:1::10\"\n"
	for _, tc := range []struct {
		name, conf, want string
	}{
		{"file and entries", base + "mapping_file = \"m.txt\"\nmax_mappings = 3\n" + inline,
			`DIR/map646.toml:5: translator.mapping_file = "m.txt": DIR/m.txt has 3 mapping lines and the configuration 1 [[mapping]] entries: 4 in all, more than translator.max_mappings (3); nothing was loaded from it (a larger table needs a larger max_mappings)`},
		{"entries alone", base + "max_mappings = 1\n" + inline + inline[:len(inline)-2] + "1\"\n",
			`DIR/map646.toml: mapping: 2 [[mapping]] entries, more than translator.max_mappings (1)`},
		{"max_mappings zero", base + "max_mappings = 0\n",
			`DIR/map646.toml:5: translator.max_mappings = 0: must be from 1 to 16777215`},
		{"max_mapping_file_bytes too large", base + "max_mapping_file_bytes = 5000000000\n",
			`DIR/map646.toml:5: translator.max_mapping_file_bytes = 5000000000: must be from 1 to 4294967296`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, msg, _ := loadIn(t, dir, tc.conf)
			if msg != tc.want {
				t.Errorf("got:\n%s\nwant:\n%s", msg, tc.want)
			}
			if c != nil {
				t.Errorf("a refused configuration came with a table of %d mappings", c.Table().Len())
			}
		})
	}
	// At the limit: accepted.
	c, msg, _ := loadIn(t, dir, base+"mapping_file = \"m.txt\"\nmax_mappings = 4\n"+inline)
	if msg != "" || c.Table().Len() != 4 {
		t.Errorf("4 mappings under max_mappings = 4: %q", msg)
	}
}
