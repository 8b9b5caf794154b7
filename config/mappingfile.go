package config

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/map646/map646/translator"
)

// ParseMapping parses the two sides of a mapping as a mapping file line
// gives them ("IPV4[/LEN]", "IPV6[/LEN]") and checks each as the loader
// does (family, host bits, special-purpose ranges, the pseudo prefix).
// The checks against the table (overlaps, suffix length) are the table's
// (translator.Table.Apply).
func (c *Config) ParseMapping(v4, v6 string) (translator.Mapping, error) {
	var m translator.Mapping
	var msg4, msg6 string
	m.IPv4, msg4 = parseSide(v4, "IPv4", example4, c.Translator.PseudoPrefix)
	m.IPv6, msg6 = parseSide(v6, "IPv6", example6, c.Translator.PseudoPrefix)
	var errs []error
	if msg4 != "" {
		errs = append(errs, fmt.Errorf("%s: %s", v4, msg4))
	}
	if msg6 != "" {
		errs = append(errs, fmt.Errorf("%s: %s", v6, msg6))
	}
	return m, errors.Join(errs...)
}

// FormatSide writes one side of a mapping as a mapping file line writes
// it: a single address without its length.
func FormatSide(p netip.Prefix) string { return single(p) }

// FormatMapping writes m as a mapping file line writes it.
func FormatMapping(m translator.Mapping) string { return showMapping(m, false) }

// InlineSource says where m is written if it is one of the configuration's
// [[mapping]] entries ("map646.toml:12: mapping[0]"), else "".
func (c *Config) InlineSource(m translator.Mapping) string {
	for i, o := range c.origins.inline {
		if o.m == m {
			return c.MappingSource(i)
		}
	}
	return ""
}

// ReleaseTable drops the Config's reference to its table once the daemon
// has taken it (or applied it to the running table as a delta): a running
// table changes and is rebuilt (compaction), and a Config kept for its
// settings must not keep an old million-entry table alive. Table and
// NewTranslator return nil and an empty table after it; the origins stay.
func (c *Config) ReleaseTable() { c.table = nil }

// MappingFileLine returns the line of the mapping file that holds m, 0 if
// none does; it reads the file anew (the daemon changes it at run time).
func (c *Config) MappingFileLine(m translator.Mapping) (int, error) {
	path := c.Translator.MappingFile
	if path == "" {
		return 0, nil
	}
	data, err := readLimited(path, c.Translator.MaxMappingFileBytes)
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", path, err)
	}
	line, _, _ := findLine(string(data), m, c.Translator.PseudoPrefix)
	return line, nil
}

// findLine returns the line of text (a mapping file) that holds m and
// that line's byte range, the newline included; line 0 if none.
func findLine(text string, m translator.Mapping, pseudo netip.Prefix) (line, start, end int) {
	for line, at := 1, 0; at < len(text); line++ {
		s, _, found := strings.Cut(text[at:], "\n")
		next := at + len(s)
		if found {
			next++
		}
		if i := strings.IndexByte(s, '#'); i >= 0 {
			s = s[:i]
		}
		v4, rest := nextField(s)
		v6, rest := nextField(rest)
		if extra, _ := nextField(rest); v4 != "" && v6 != "" && extra == "" {
			p4, msg4 := parseSide(v4, "IPv4", example4, pseudo)
			p6, msg6 := parseSide(v6, "IPv6", example6, pseudo)
			if msg4 == "" && msg6 == "" && p4 == m.IPv4 && p6 == m.IPv6 {
				return line, at, next
			}
		}
		at = next
	}
	return 0, 0, 0
}

// ErrNoDurableSource refuses a runtime change that nothing would keep.
var ErrNoDurableSource = errors.New("no translator.mapping_file to write the change to: map646 does not rewrite the configuration's [[mapping]] entries; set mapping_file (the mappings added at run time go there) or edit the configuration and reload")

// ChangeMappingFile makes changes durable in the mapping file, all or
// none: an addition appends the line "IPV4 IPV6"; a deletion removes the
// line that holds the mapping (its comment with it); every other line,
// comments and blank lines included, stays as it is. A mapping that is a
// [[mapping]] entry cannot be deleted here: the refusal names its place.
//
// The file is replaced atomically: written whole to a temporary file in
// its directory, synced, renamed over it, and the directory synced, so a
// crash leaves the old file or the new one, never a mix. Its mode is kept.
// It costs a read and a write of the file (a million lines: about 30 MB).
func (c *Config) ChangeMappingFile(changes []translator.MappingChange) error {
	for _, ch := range changes {
		if ch.Op == translator.Del {
			if src := c.InlineSource(ch.Mapping); src != "" {
				return fmt.Errorf("%s is a [[mapping]] entry of the configuration (%s): map646 does not rewrite the configuration; remove it there and reload", FormatMapping(ch.Mapping), src)
			}
		}
	}
	path := c.Translator.MappingFile
	if path == "" {
		return ErrNoDurableSource
	}
	data, err := readLimited(path, c.Translator.MaxMappingFileBytes)
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	text := string(data)
	for _, ch := range changes {
		if ch.Op == translator.Del {
			line, start, end := findLine(text, ch.Mapping, c.Translator.PseudoPrefix)
			if line == 0 {
				return fmt.Errorf("%s is not in %s (changed by hand since the last reload?); reload to resynchronize", FormatMapping(ch.Mapping), path)
			}
			text = text[:start] + text[end:]
			continue
		}
		if text != "" && !strings.HasSuffix(text, "\n") {
			text += "\n"
		}
		text += FormatMapping(ch.Mapping) + "\n"
	}
	return writeAtomic(path, []byte(text))
}

// writeAtomic replaces the file at path with data: temporary file, fsync,
// rename, fsync of the directory.
func writeAtomic(path string, data []byte) error {
	mode := os.FileMode(0o644)
	if fi, err := os.Stat(path); err == nil {
		mode = fi.Mode().Perm()
	}
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".new-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	fail := func(err error) error {
		f.Close()
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		return fail(err)
	}
	if err := f.Chmod(mode); err != nil {
		return fail(err)
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	if err := f.Close(); err != nil {
		return fail(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	if d, err := os.Open(dir); err == nil {
		err = d.Sync()
		d.Close()
		if err != nil {
			return fmt.Errorf("write %s: sync the directory: %w", path, err)
		}
	}
	return nil
}

// MappingOrigin says where a mapping file line is, for lookups:
// "mappings.txt:17".
func (c *Config) MappingOrigin(line int) string {
	return c.Translator.MappingFile + ":" + strconv.Itoa(line)
}
