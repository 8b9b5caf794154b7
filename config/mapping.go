package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/map646/map646/translator"
)

// origins records where each mapping of the table was written, compactly
// enough for a million entries (4 bytes per mapping-file line, no strings):
// entries [0, len(inline)) are [[mapping]] entries, the rest are lines of
// the mapping file, in the order given to translator.NewTable.
type origins struct {
	inline []inlineOrigin
	lines  []uint32
}

type inlineOrigin struct {
	m     translator.Mapping
	index int32 // i in mapping[i]
	// Lines of its [[mapping]] header and of its ipv4 and ipv6 keys, 0 if
	// unknown.
	header, ipv4, ipv6 int32
}

// Examples shown in messages.
const (
	example4 = "198.51.100.10 or 198.51.100.16/28"
	example6 = "2001:db8:1::10 or 2001:db8:2::/124"
)

// decodeMappings reads the [[mapping]] entries and the mapping file and
// checks every mapping on its own, then builds the table from those that
// passed: NewTable finds the overlaps and duplicates across both sources.
func (c *Config) decodeMappings(ts *section, entries []*section) {
	d := ts.d
	var ms []translator.Mapping
	pseudo := c.Translator.PseudoPrefix
	for i, s := range entries {
		if v4, v6, ok := s.swappedSides(); ok {
			s.bad("ipv4", v4, "ipv4 and ipv6 are swapped: this is an IPv6 value and ipv6 holds the IPv4 one (%s); write ipv4 = %q, ipv6 = %q", v6, v6, v4)
			s.done()
			continue
		}
		var m translator.Mapping
		ok := decodeSide(s, "ipv4", "IPv4", example4, pseudo, &m.IPv4)
		ok = decodeSide(s, "ipv6", "IPv6", example6, pseudo, &m.IPv6) && ok
		s.done()
		if ok {
			ms = append(ms, m)
			c.origins.inline = append(c.origins.inline, inlineOrigin{
				m, int32(i), int32(s.header), int32(s.line("ipv4")), int32(s.line("ipv6"))})
		}
	}
	if c.Translator.MappingFile != "" {
		ms = c.readMappingFile(d, ts, ms, pseudo)
	}

	if len(ms) > c.Translator.MaxMappings { // [[mapping]] entries alone: the file's are counted before they are read
		d.add(Problem{File: c.File, Key: "mapping", Msg: fmt.Sprintf("%d [[mapping]] entries, more than translator.max_mappings (%d)",
			len(ms), c.Translator.MaxMappings)})
		return
	}
	table, err := translator.NewTable(ms)
	var te *translator.TableError
	switch {
	case errors.As(err, &te):
		for _, e := range te.Problems {
			d.add(c.tableProblem(ms, e))
		}
		d.more += te.More
	case err != nil:
		d.add(Problem{File: c.File, Key: "mapping", Msg: err.Error()})
	}
	c.table = table
}

// decodeSide reads key ("ipv4" or "ipv6") of a [[mapping]] entry into *dst.
func decodeSide(s *section, key, family, example string, pseudo netip.Prefix, dst *netip.Prefix) bool {
	first, _, _ := strings.Cut(example, " ")
	s.require(key, key+` = "`+first+`"`)
	v, ok := s.str(key)
	if !ok {
		return false
	}
	p, msg := parseSide(v, family, example, pseudo)
	if msg != "" {
		s.bad(key, v, "%s", msg)
		return false
	}
	*dst = p
	return true
}

// swapped reports whether v4 is an IPv6 address or prefix and v6 an IPv4
// one: a mapping written the other way round, as Jool's EAMT and
// `jool eamt add` write it (IPv6 first).
func swapped(v4, v6 string) bool {
	return familyOf(v4) == 6 && familyOf(v6) == 4
}

// familyOf returns 4 or 6, the family of the address or prefix s, or 0
// when s is neither.
func familyOf(s string) int {
	a, err := netip.ParseAddr(s)
	if p, perr := netip.ParsePrefix(s); perr == nil {
		a, err = p.Addr(), nil
	}
	switch {
	case err != nil:
		return 0
	case a.Is4():
		return 4
	}
	return 6
}

// swappedSides reports whether the [[mapping]] entry has its ipv4 and ipv6
// values swapped (swapped), and returns them as written.
func (s *section) swappedSides() (v4, v6 string, ok bool) {
	if !s.has("ipv4") || !s.has("ipv6") {
		return "", "", false
	}
	r4, _ := s.raw("ipv4")
	r6, _ := s.raw("ipv6")
	v4, ok4 := r4.(string)
	v6, ok6 := r6.(string)
	return v4, v6, ok4 && ok6 && swapped(v4, v6)
}

// parseSide parses one side of a mapping and checks it on its own.
func parseSide(v, family, example string, pseudo netip.Prefix) (netip.Prefix, string) {
	p, msg := parsePrefix(v, family, example)
	// A mapped IPv6 prefix overlapping the pseudo prefix would make its
	// addresses stand for two things at once.
	if msg == "" && family == "IPv6" && pseudo.IsValid() && p.Overlaps(pseudo) {
		msg = "overlaps the pseudo prefix " + pseudo.String() + " (translator.pseudo_prefix); accepted: IPv6 addresses outside it"
	}
	return p, msg
}

// readMappingFile parses the mapping file and appends its mappings to ms:
// one mapping per line, "IPV4[/LEN] IPV6[/LEN]", # starts a comment. The
// file is read whole and cut into substrings, so a million lines cost no
// allocation each. Its size and its number of mappings are checked against
// max_mapping_file_bytes and max_mappings before anything is allocated for
// them: a stray file named on a reload must not take the daemon's memory.
func (c *Config) readMappingFile(d *decoder, ts *section, ms []translator.Mapping, pseudo netip.Prefix) []translator.Mapping {
	path := c.Translator.MappingFile
	v, _ := ts.raw("mapping_file")
	data, err := readLimited(path, c.Translator.MaxMappingFileBytes)
	if err != nil {
		var pe *fs.PathError
		var big *tooLarge
		msg := ""
		switch {
		case errors.As(err, &big) && big.size > 0:
			msg = fmt.Sprintf("%s is %d bytes, more than translator.max_mapping_file_bytes (%d); nothing was loaded from it (a larger file needs a larger max_mapping_file_bytes)",
				path, big.size, c.Translator.MaxMappingFileBytes)
		case errors.As(err, &big):
			msg = fmt.Sprintf("%s holds more than translator.max_mapping_file_bytes (%d); nothing was loaded from it (a larger file needs a larger max_mapping_file_bytes)",
				path, c.Translator.MaxMappingFileBytes)
		case errors.As(err, &pe):
			err = pe.Err // the path is in the message already
			fallthrough
		default:
			msg = "cannot read " + path + ": " + err.Error()
			if !filepath.IsAbs(v.(string)) {
				msg += " (a relative path is looked up in the configuration file's directory)"
			}
		}
		ts.bad("mapping_file", v, "%s", msg)
		return ms
	}
	// Room for every mapping at once: growing a million-entry slice by
	// doubling would leave the old copies to the collector. Counted, not
	// guessed from the lines: a file of blank lines would cost 70 bytes of
	// slices per byte.
	n := countMappingLines(data)
	if len(ms)+n > c.Translator.MaxMappings {
		ts.bad("mapping_file", v, "%s has %d mapping lines and the configuration %d [[mapping]] entries: %d in all, more than translator.max_mappings (%d); nothing was loaded from it (a larger table needs a larger max_mappings)",
			path, n, len(ms), len(ms)+n, c.Translator.MaxMappings)
		return ms
	}
	ms = append(make([]translator.Mapping, 0, len(ms)+n), ms...)
	c.origins.lines = make([]uint32, 0, n)
	text := string(data)
	data = nil

	bad := func(line int, value, msg string) {
		d.add(Problem{File: path, Line: line, Value: value, Msg: msg})
	}
	for line := 1; len(text) > 0; line++ {
		var s string
		s, text, _ = strings.Cut(text, "\n")
		if i := strings.IndexByte(s, '#'); i >= 0 {
			s = s[:i]
		}
		v4, rest := nextField(s)
		if v4 == "" {
			continue // blank or comment
		}
		v6, rest := nextField(rest)
		if extra, _ := nextField(rest); v6 == "" || extra != "" {
			bad(line, strings.TrimSpace(s), `expected two fields "IPV4[/LEN] IPV6[/LEN]", e.g. "198.51.100.10 2001:db8:1::10"`)
			continue
		}
		if swapped(v4, v6) {
			bad(line, strings.TrimSpace(s), fmt.Sprintf(`the fields are swapped: a line is "IPV4[/LEN] IPV6[/LEN]", IPv4 first (Jool's EAMT order, IPv6 first, is the other way round); write "%s %s"`, v6, v4))
			continue
		}
		var m translator.Mapping
		var msg4, msg6 string
		m.IPv4, msg4 = parseSide(v4, "IPv4", example4, pseudo)
		m.IPv6, msg6 = parseSide(v6, "IPv6", example6, pseudo)
		if msg4 != "" {
			bad(line, v4, msg4)
		}
		if msg6 != "" {
			bad(line, v6, msg6)
		}
		if msg4 == "" && msg6 == "" {
			ms = append(ms, m)
			c.origins.lines = append(c.origins.lines, uint32(line))
		}
	}
	return ms
}

// tooLarge is readLimited's refusal: size is the file's size, 0 when only
// reading it found it too large (a device, a file that grew).
type tooLarge struct{ size int64 }

func (e *tooLarge) Error() string { return "file too large" }

// readLimited reads the file at path if it holds at most limit bytes. A
// regular file's size is known before a byte is read; anything else (a
// device, a pipe, a file growing as it is read) is read up to limit+1
// bytes and refused then.
func readLimited(path string, limit int) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if fi.Size() > int64(limit) {
		return nil, &tooLarge{fi.Size()}
	}
	r := io.LimitReader(f, int64(limit)+1)
	data := make([]byte, 0, fi.Size()+1) // one more: the read that finds the end
	for {
		if len(data) == cap(data) {
			data = append(data, 0)[:len(data)]
		}
		n, err := r.Read(data[len(data):cap(data)])
		data = data[:len(data)+n]
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
	}
	if len(data) > limit {
		return nil, &tooLarge{}
	}
	return data, nil
}

// countMappingLines counts the lines of a mapping file that are neither
// blank nor only a comment: an upper bound of its mappings.
func countMappingLines(data []byte) int {
	n := 0
	for len(data) > 0 {
		line, rest, _ := bytes.Cut(data, []byte("\n"))
		data = rest
		if i := bytes.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		for _, b := range line {
			if !isSpace(b) {
				n++
				break
			}
		}
	}
	return n
}

// nextField returns the first whitespace-separated field of s and the rest.
func nextField(s string) (field, rest string) {
	i := 0
	for i < len(s) && isSpace(s[i]) {
		i++
	}
	j := i
	for j < len(s) && !isSpace(s[j]) {
		j++
	}
	return s[i:j], s[j:]
}

func isSpace(b byte) bool { return b == ' ' || b == '\t' || b == '\r' || b == '\v' || b == '\f' }

// at returns where mapping i (an index into the table) was written: the
// file, the line (0 if unknown), and for a [[mapping]] entry its key. side
// ("ipv4", "ipv6" or "" for the whole entry) narrows a [[mapping]] entry to
// one of its keys.
func (c *Config) at(i int, side string) (file string, line int, key string) {
	if i >= len(c.origins.inline) {
		return c.Translator.MappingFile, int(c.origins.lines[i-len(c.origins.inline)]), ""
	}
	o := c.origins.inline[i]
	key = fmt.Sprintf("mapping[%d]", o.index)
	switch side {
	case "ipv4":
		return c.File, int(o.ipv4), key + ".ipv4"
	case "ipv6":
		return c.File, int(o.ipv6), key + ".ipv6"
	}
	return c.File, int(o.header), key
}

// MappingSource says where entry i of Table was written, for messages:
// "map646.toml:12: mapping[0]" or "mappings.txt:17".
func (c *Config) MappingSource(i int) string {
	file, line, key := c.at(i, "")
	return location(file, line, key)
}

func location(file string, line int, key string) string {
	s := file
	if line > 0 {
		s += ":" + strconv.Itoa(line)
	}
	if key != "" {
		s += ": " + key
	}
	return s
}

// tableProblem turns a problem found by translator.NewTable in ms into a
// Problem at the mapping's location. A conflict between two mappings is
// described here, naming both by their locations: NewTable's message names
// them by index into ms, which means nothing to the user.
func (c *Config) tableProblem(ms []translator.Mapping, e translator.MappingError) Problem {
	if e.Index < 0 || e.Index >= len(ms) || e.Other >= len(ms) {
		return Problem{File: c.File, Key: "mapping", Msg: e.Msg} // not about one entry
	}
	m := ms[e.Index]
	file, line, key := c.at(e.Index, "")
	p := Problem{File: file, Line: line, Key: key, Value: showMapping(m, key != ""), Msg: e.Msg}
	if e.Other < 0 {
		return p
	}

	// Which side conflicts: both (a duplicate), or one of them.
	o := ms[e.Other]
	side := ""
	mine, theirs := m.IPv4, o.IPv4
	switch {
	case m == o:
	case m.IPv4.Overlaps(o.IPv4):
		side = "ipv4"
	case m.IPv6.Overlaps(o.IPv6):
		side, mine, theirs = "ipv6", m.IPv6, o.IPv6
	default:
		return p // not a conflict this code knows: NewTable's message it is
	}

	file, p.Line, p.Key = c.at(e.Index, side)
	ofile, oline, okey := c.at(e.Other, side)
	var other string
	switch {
	case okey == "" && ofile == file:
		other = "line " + strconv.Itoa(oline) // same mapping file
	case okey == "":
		other = location(ofile, oline, "")
	case oline == 0:
		other = okey
	case ofile == file:
		other = fmt.Sprintf("%s (line %d)", okey, oline)
	default:
		other = fmt.Sprintf("%s (%s)", okey, location(ofile, oline, ""))
	}

	switch {
	case side == "":
		p.Msg = "duplicates " + other
	case mine == theirs:
		p.Value = showSide(mine, key != "")
		p.Msg = "already mapped by " + other + "; an address may be mapped only once"
	default:
		p.Value = showSide(mine, key != "")
		p.Msg = "overlaps " + single(theirs) + " of " + other + "; mapped prefixes must not overlap"
	}
	return p
}

// showSide writes one side of a mapping as written in the configuration (a
// TOML string) or in the mapping file.
func showSide(p netip.Prefix, toml bool) string {
	if toml {
		return strconv.Quote(single(p))
	}
	return single(p)
}

// showMapping writes a mapping as written in the configuration (a TOML
// inline table) or in the mapping file.
func showMapping(m translator.Mapping, toml bool) string {
	if toml {
		return fmt.Sprintf("{ipv4 = %q, ipv6 = %q}", single(m.IPv4), single(m.IPv6))
	}
	return single(m.IPv4) + " " + single(m.IPv6)
}

// single writes a host prefix as an address, as a user would.
func single(p netip.Prefix) string {
	if p.IsSingleIP() {
		return p.Addr().String()
	}
	return p.String()
}
