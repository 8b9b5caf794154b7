package config

import (
	"bufio"
	"errors"
	"fmt"
	"io"
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
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	line, _, _, err := findLine(f, m, c.Translator.PseudoPrefix)
	return line, err
}

// findLine returns the line of a mapping file that holds m and that
// line's byte range, the newline included; line 0 if none. It reads the
// file as a stream, and parses only the lines whose IPv4 field is m's
// written as netip writes it (the only way to write it, with or without
// its length).
func findLine(r io.Reader, m translator.Mapping, pseudo netip.Prefix) (line int, start, end int64, err error) {
	want4, want4len := single(m.IPv4), m.IPv4.String()
	br := bufio.NewReaderSize(r, 64<<10)
	var at int64
	for line = 1; ; line++ {
		b, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			// A line longer than the buffer holds no mapping the loader
			// accepted as ours: skip it.
			n := int64(len(b))
			for errors.Is(err, bufio.ErrBufferFull) {
				b, err = br.ReadSlice('\n')
				n += int64(len(b))
			}
			at += n
			if err != nil {
				break
			}
			continue
		}
		next := at + int64(len(b))
		s := strings.TrimSuffix(string(b), "\n")
		if i := strings.IndexByte(s, '#'); i >= 0 {
			s = s[:i]
		}
		v4, rest := nextField(s)
		if v4 == want4 || v4 == want4len {
			v6, rest := nextField(rest)
			if extra, _ := nextField(rest); v6 != "" && extra == "" {
				p6, msg6 := parseSide(v6, "IPv6", example6, pseudo)
				if msg6 == "" && p6 == m.IPv6 {
					return line, at, next, nil
				}
			}
		}
		at = next
		if err != nil {
			if errors.Is(err, io.EOF) {
				return 0, 0, 0, nil
			}
			return 0, 0, 0, err
		}
	}
	if errors.Is(err, io.EOF) {
		return 0, 0, 0, nil
	}
	return 0, 0, 0, err
}

// ErrNoDurableSource refuses a runtime change that nothing would keep.
var ErrNoDurableSource = errors.New("no translator.mapping_file to write the change to: map646 does not rewrite the configuration's [[mapping]] entries; set mapping_file (the mappings added at run time go there) or edit the configuration and reload")

// ChangeMappingFile makes changes durable in the mapping file, all or
// none: an addition appends the line "IPV4 IPV6"; a deletion removes the
// line that holds the mapping (its comment with it); every other line,
// comments and blank lines included, stays as it is. A mapping that is a
// [[mapping]] entry cannot be deleted here: the refusal names its place.
//
// The file is replaced atomically: copied to a temporary file in its
// directory with the changes (the kernel copies the unchanged runs:
// copy_file_range, nothing of it in the daemon's memory), synced, renamed
// over it, and the directory synced, so a crash leaves the old file or the
// new one, never a mix. Its mode is kept. A million lines (30 MB) cost a
// read to find a deleted line and a copy.
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
	// One change at a time, each a rewrite: a batch from the control
	// socket is one change, and a source that sends many (etcd) keeps its
	// own copy and does not write here.
	for _, ch := range changes {
		if err := c.changeFile(path, ch); err != nil {
			return err
		}
	}
	return nil
}

func (c *Config) changeFile(path string, ch translator.MappingChange) error {
	src, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	defer src.Close()
	fi, err := src.Stat()
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	size := fi.Size()
	if size > int64(c.Translator.MaxMappingFileBytes) {
		return fmt.Errorf("%s is %d bytes, more than translator.max_mapping_file_bytes (%d)", path, size, c.Translator.MaxMappingFileBytes)
	}
	return writeAtomic(path, fi.Mode().Perm(), func(dst *os.File) error {
		if ch.Op == translator.Del {
			line, start, end, err := findLine(src, ch.Mapping, c.Translator.PseudoPrefix)
			switch {
			case err != nil:
				return err
			case line == 0:
				return fmt.Errorf("%s is not in %s (changed by hand since the last reload?); reload to resynchronize", FormatMapping(ch.Mapping), path)
			}
			if err := copyRange(dst, src, 0, start); err != nil {
				return err
			}
			return copyRange(dst, src, end, size-end)
		}
		if err := copyRange(dst, src, 0, size); err != nil {
			return err
		}
		line := FormatMapping(ch.Mapping) + "\n"
		if size > 0 {
			var last [1]byte
			if _, err := src.ReadAt(last[:], size-1); err != nil {
				return err
			}
			if last[0] != '\n' {
				line = "\n" + line
			}
		}
		_, err := dst.WriteString(line)
		return err
	})
}

// copyRange copies n bytes of src from offset off to the end of dst.
func copyRange(dst, src *os.File, off, n int64) error {
	if _, err := src.Seek(off, io.SeekStart); err != nil {
		return err
	}
	_, err := io.Copy(dst, io.LimitReader(src, n))
	return err
}

// writeAtomic replaces the file at path with what fill writes: temporary
// file, fsync, rename, fsync of the directory.
func writeAtomic(path string, mode os.FileMode, fill func(*os.File) error) error {
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
	if err := fill(f); err != nil {
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
