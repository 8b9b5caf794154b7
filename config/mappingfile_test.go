package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/map646/map646/translator"
)

// TestChangeMappingFile: an addition is appended, a deletion removes its
// line only, comments and blank lines stay, the mode is kept, a reload of
// the file gives the changed table; a [[mapping]] entry and a
// configuration without a mapping file are refused with the reason.
func TestChangeMappingFile(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "mappings.txt")
	orig := "# servers\n198.51.100.10 2001:db8:1::10 # web\n\n198.51.100.11 2001:db8:1::11\n198.51.100.12 2001:db8:1::12"
	if err := os.WriteFile(file, []byte(orig), 0o640); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "map646.toml")
	toml := `[translator]
pseudo_prefix = "64:ff9b::/96"
ipv4_address = "192.0.2.1"
ipv6_address = "2001:db8::1"
mapping_file = "mappings.txt"

[[mapping]]
ipv4 = "203.0.113.5"
ipv6 = "2001:db8:5::5"
`
	if err := os.WriteFile(conf, []byte(toml), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(conf)
	if err != nil {
		t.Fatal(err)
	}
	mp := func(a, b string) translator.Mapping {
		m, err := c.ParseMapping(a, b)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	if line, err := c.MappingFileLine(mp("198.51.100.11", "2001:db8:1::11")); line != 4 || err != nil {
		t.Errorf("MappingFileLine = %d, %v; want 4", line, err)
	}
	err = c.ChangeMappingFile([]translator.MappingChange{
		{Op: translator.Del, Mapping: mp("198.51.100.10", "2001:db8:1::10")},
		{Op: translator.Add, Mapping: mp("198.51.100.32/28", "2001:db8:2::/124")},
	})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(file)
	want := "# servers\n\n198.51.100.11 2001:db8:1::11\n198.51.100.12 2001:db8:1::12\n198.51.100.32/28 2001:db8:2::/124\n"
	if string(got) != want {
		t.Errorf("file:\n%s\nwant:\n%s", got, want)
	}
	if fi, _ := os.Stat(file); fi.Mode().Perm() != 0o640 {
		t.Errorf("mode %v, want 0640", fi.Mode().Perm())
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".mappings.txt.new-*")); len(left) > 0 {
		t.Errorf("temporary files left: %v", left)
	}
	c2, err := Load(conf)
	if err != nil {
		t.Fatal(err)
	}
	if c2.Table().Len() != 4 {
		t.Errorf("reloaded table has %d mappings, want 4", c2.Table().Len())
	}

	err = c.ChangeMappingFile([]translator.MappingChange{{Op: translator.Del, Mapping: mp("203.0.113.5", "2001:db8:5::5")}})
	if err == nil || !strings.Contains(err.Error(), "map646.toml:7: mapping[0]") {
		t.Errorf("deleting a [[mapping]] entry: %v", err)
	}
	if _, err := c.ParseMapping("224.0.0.1", "2001:db8::7"); err == nil || !strings.Contains(err.Error(), "multicast") {
		t.Errorf("a multicast IPv4 side: %v", err)
	}
	if _, err := c.ParseMapping("198.51.100.99", "64:ff9b::1"); err == nil || !strings.Contains(err.Error(), "pseudo prefix") {
		t.Errorf("an IPv6 side in the pseudo prefix: %v", err)
	}
	c.Translator.MappingFile = ""
	if err := c.ChangeMappingFile([]translator.MappingChange{{Op: translator.Add, Mapping: mp("198.51.100.77", "2001:db8:1::77")}}); err != ErrNoDurableSource {
		t.Errorf("without a mapping file: %v", err)
	}
}
