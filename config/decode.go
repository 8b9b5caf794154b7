package config

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// decoder reads a TOML document one key at a time, so that one bad value
// does not hide the problems of the others (the library's own decoding into a
// struct stops at the first), and collects every problem.
type decoder struct {
	file string
	data []byte
	md   toml.MetaData
	problems

	lines [][]byte // data split into lines, for arrayHeaders; built on first use
}

// section is one TOML table. Its keys are read with the typed getters below,
// which record what they were asked for; done reports every other key as
// unknown, so that a misspelt key is an error instead of a silent default.
type section struct {
	d      *decoder
	name   string // prefix of the keys in messages: "translator", "mapping[2]"; "" at the top level
	keys   map[string]toml.Primitive
	asked  []string         // keys asked for, in order: the accepted keys
	header int              // line of the table's header, 0 if unknown
	line   func(string) int // line of a key, 0 if unknown
	broken bool             // not a table: its keys are not missing, the table is
}

// newDecoder parses data, the file called file. If data is not TOML, the
// decoder holds the syntax error and the top-level section is nil.
func newDecoder(data []byte, file string) (*decoder, *section) {
	d := &decoder{file: file, data: data}
	var top map[string]toml.Primitive
	md, err := toml.Decode(string(data), &top)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			msg := "invalid TOML: " + parserMessage(data, pe.Message)
			d.add(Problem{File: file, Line: pe.Position.Line, Msg: msg})
		} else {
			d.add(Problem{File: file, Msg: "invalid TOML: " + parserMessage(data, err.Error())})
		}
		return d, nil
	}
	d.md = md
	root := &section{d: d, keys: top}
	root.line = root.keyLine
	return d, root
}

// keyLine returns the line on which key was defined, as the TOML library
// recorded it. The library keeps positions to itself but puts them into the
// errors of custom unmarshalers, so a probe that always fails reveals them.
func (s *section) keyLine(key string) int {
	p, ok := s.keys[key]
	if !ok {
		return 0
	}
	var pe toml.ParseError
	if errors.As(s.d.md.PrimitiveDecode(p, probe{}), &pe) {
		return pe.Position.Line
	}
	return 0
}

type probe struct{}

var errProbe = errors.New("probe")

func (probe) UnmarshalTOML(any) error { return errProbe }

func (s *section) path(key string) string {
	if s.name == "" {
		return key
	}
	return s.name + "." + key
}

// bad records a problem with key, whose value is v (nil: none).
func (s *section) bad(key string, v any, format string, args ...any) {
	s.d.add(Problem{
		File:  s.d.file,
		Line:  s.line(key),
		Key:   s.path(key),
		Value: s.shown(key, v),
		Msg:   fmt.Sprintf(format, args...),
	})
}

// has marks key as accepted and reports whether it is present.
func (s *section) has(key string) bool {
	if !slices.Contains(s.asked, key) {
		s.asked = append(s.asked, key)
	}
	_, ok := s.keys[key]
	return ok
}

// require records a problem if key is absent; example shows a valid line.
func (s *section) require(key, example string) {
	if !s.has(key) && !s.broken {
		s.d.add(Problem{File: s.d.file, Line: s.header, Key: s.path(key),
			Msg: "missing; this key is required, e.g. " + example})
	}
}

// raw returns the value of key, if present, as the TOML library decodes it
// into an interface: string, int64, float64, bool, time.Time, []any,
// map[string]any or (for [[tables]]) []map[string]any.
func (s *section) raw(key string) (any, bool) {
	if !s.has(key) {
		return nil, false
	}
	var v any
	if err := s.d.md.PrimitiveDecode(s.keys[key], &v); err != nil {
		s.bad(key, nil, "%v", err) // decoding into any does not fail
		return nil, false
	}
	return v, true
}

// str returns the string value of key. ok is false if key is absent or not
// a string (a problem is recorded then).
func (s *section) str(key string) (v string, ok bool) {
	r, ok := s.raw(key)
	if !ok {
		return "", false
	}
	if v, ok = r.(string); !ok {
		s.bad(key, r, "must be a string, not %s", typeName(r))
	}
	return v, ok
}

// stringList returns the value of key, an array of strings.
func (s *section) stringList(key string) (v []string, ok bool) {
	r, ok := s.raw(key)
	if !ok {
		return nil, false
	}
	a, ok := r.([]any)
	if !ok {
		s.bad(key, r, "must be an array of strings, not %s", typeName(r))
		return nil, false
	}
	for i, e := range a {
		es, ok := e.(string)
		if !ok {
			s.bad(key, r, "must be an array of strings; element %d is %s", i, typeName(e))
			return nil, false
		}
		v = append(v, es)
	}
	return v, true
}

// integer stores the value of key in *dst if it is an integer from lo to
// hi; note (if any) is added to the message when it is not. It reports
// whether *dst was set.
func (s *section) integer(key string, dst *int, lo, hi int, note string) bool {
	r, ok := s.raw(key)
	if !ok {
		return false
	}
	if note != "" {
		note = " (" + note + ")"
	}
	n, ok := r.(int64)
	if !ok {
		s.bad(key, r, "must be an integer from %d to %d, not %s%s", lo, hi, typeName(r), note)
		return false
	}
	if n < int64(lo) || n > int64(hi) {
		s.bad(key, r, "must be from %d to %d%s", lo, hi, note)
		return false
	}
	*dst = int(n)
	return true
}

// duration stores the value of key in *dst if it is a duration string
// (time.ParseDuration: "3s", "100ms", "1m30s") from lo to hi; note (if
// any) is added to the message when it is not. Every duration key is
// written this way: a bare number would leave the unit to guesswork.
func (s *section) duration(key string, dst *time.Duration, lo, hi time.Duration, note string) bool {
	r, ok := s.raw(key)
	if !ok {
		return false
	}
	if note != "" {
		note = " (" + note + ")"
	}
	v, ok := r.(string)
	if !ok {
		s.bad(key, r, `must be a duration string such as "3s" or "100ms", not %s%s`, typeName(r), note)
		return false
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		s.bad(key, r, `not a duration; accepted: a number with a unit (ms, s, m, h), e.g. "3s" or "100ms"`)
		return false
	}
	if d < lo || d > hi {
		s.bad(key, r, "must be from %s to %s%s", fmtDuration(lo), fmtDuration(hi), note)
		return false
	}
	*dst = d
	return true
}

// fmtDuration writes d as a duration string without the zero parts that
// time.Duration.String leaves ("1m" instead of "1m0s", "1h" for "1h0m0s").
func fmtDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// boolean stores the value of key in *dst.
func (s *section) boolean(key string, dst *bool) {
	r, ok := s.raw(key)
	if !ok {
		return
	}
	b, ok := r.(bool)
	if !ok {
		s.bad(key, r, "must be true or false, not %s", typeName(r))
		return
	}
	*dst = b
}

// enum returns the value of key, which must be one of names. The first name
// is the default: it is returned when key is absent or wrong.
func (s *section) enum(key string, names ...string) string {
	r, ok := s.raw(key)
	if !ok {
		return names[0]
	}
	v, ok := r.(string)
	if !ok || !slices.Contains(names, v) {
		s.bad(key, r, "must be one of %s", quoteAll(names))
		return names[0]
	}
	return v
}

// table returns the table under key; it is empty if key is absent.
func (s *section) table(key string) *section {
	t := &section{d: s.d, name: s.path(key), keys: map[string]toml.Primitive{}}
	t.line = t.keyLine
	r, ok := s.raw(key)
	if !ok {
		return t
	}
	// The library would decode a non-table into an empty map without a word.
	if _, ok := r.(map[string]any); !ok {
		s.bad(key, r, "must be a table ([%s]), not %s", s.path(key), typeName(r))
		t.broken = true
		return t
	}
	t.header = s.line(key)
	s.d.md.PrimitiveDecode(s.keys[key], &t.keys) // a table of anything: cannot fail
	return t
}

// tables returns the array of tables under key ([[key]] entries), named
// key[0], key[1]... The TOML library does not tell where each entry starts;
// the lines come from arrayHeaders when it finds them reliably.
func (s *section) tables(key string) []*section {
	r, ok := s.raw(key)
	if !ok {
		return nil
	}
	// [[key]] entries decode as []map[string]any, an inline array of
	// tables as []any.
	switch a := r.(type) {
	case []map[string]any:
	case []any:
		for i, e := range a {
			if _, ok := e.(map[string]any); !ok {
				s.bad(key, r, "must be an array of tables ([[%s]]); element %d is %s", s.path(key), i, typeName(e))
				return nil
			}
		}
	default:
		s.bad(key, r, "must be an array of tables ([[%s]]), not %s", s.path(key), typeName(r))
		return nil
	}
	var list []map[string]toml.Primitive
	s.d.md.PrimitiveDecode(s.keys[key], &list) // checked above: cannot fail
	headers := s.d.arrayHeaders(s.path(key))   // [[bgp.neighbor]] is written with its full name
	if len(headers) != len(list) {
		headers = nil // an inline array, or the scan was fooled: no lines
	}
	ts := make([]*section, len(list))
	for i, keys := range list {
		t := &section{d: s.d, name: fmt.Sprintf("%s[%d]", s.path(key), i), keys: keys}
		if headers != nil {
			t.header = headers[i]
		}
		t.line = func(key string) int { return s.d.keyAfter(t.header, key) }
		ts[i] = t
	}
	return ts
}

// done reports the keys no getter asked for.
func (s *section) done() {
	var unknown []string
	for k := range s.keys {
		if !slices.Contains(s.asked, k) {
			unknown = append(unknown, k)
		}
	}
	// Report them in file order (map order is random); the line is known
	// for all but [[mapping]] entries, where the name decides.
	slices.SortFunc(unknown, func(a, b string) int {
		if c := s.line(a) - s.line(b); c != 0 {
			return c
		}
		return strings.Compare(a, b)
	})
	for _, k := range unknown {
		var r any
		s.d.md.PrimitiveDecode(s.keys[k], &r)
		what := "key"
		if s.name == "" {
			what = "section"
		}
		switch r.(type) {
		case map[string]any, []map[string]any:
			r = nil // a table's value is its keys: too long to print
		}
		msg := "unknown " + what
		if near := nearest(k, s.asked); near != "" {
			msg += "; did you mean " + near + "?"
		} else {
			msg += "; accepted: " + strings.Join(s.asked, ", ")
		}
		s.bad(k, r, "%s", msg)
	}
}

// arrayHeaders returns the lines of the [[key]] headers of the top-level
// array of tables key, in order. A header line inside a multi-line string
// would fool it; tables checks the count against the entries the TOML
// library found.
func (d *decoder) arrayHeaders(key string) []int {
	if d.lines == nil {
		d.lines = bytes.Split(d.data, []byte("\n"))
	}
	var headers []int
	for i, line := range d.lines {
		line = bytes.TrimSpace(line)
		inner, ok := bytes.CutPrefix(line, []byte("[["))
		if !ok {
			continue
		}
		inner, rest, ok := bytes.Cut(inner, []byte("]]"))
		if !ok {
			continue
		}
		rest = bytes.TrimSpace(rest)
		if len(rest) > 0 && rest[0] != '#' {
			continue
		}
		// TOML allows blanks around the dots of a dotted name: [[ bgp . neighbor ]].
		name := strings.Join(strings.Fields(string(inner)), "")
		if name == key || name == strconv.Quote(key) || name == "'"+key+"'" {
			headers = append(headers, i+1)
		}
	}
	return headers
}

// keyAfter returns the line of `key =` in the table whose header is on line
// header, or header itself if it cannot tell (0 if the header is unknown).
func (d *decoder) keyAfter(header int, key string) int {
	if header == 0 {
		return 0
	}
	for i := header; i < len(d.lines); i++ { // d.lines[header] is the line after the header
		line := bytes.TrimSpace(d.lines[i])
		if len(line) > 0 && line[0] == '[' {
			break // next table
		}
		if rest, ok := bytes.CutPrefix(line, []byte(key)); ok {
			if rest = bytes.TrimSpace(rest); len(rest) > 0 && rest[0] == '=' {
				return i + 1
			}
		}
	}
	return header
}

// tomlString formats a decoded value as it would be written in TOML.
func tomlString(v any) string {
	switch v := v.(type) {
	case nil:
		return ""
	case string:
		return strconv.Quote(v)
	case []any:
		parts := make([]string, len(v))
		for i, e := range v {
			parts[i] = tomlString(e)
		}
		return "[" + strings.Join(parts, ", ") + "]"
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = k + " = " + tomlString(v[k])
		}
		return "{" + strings.Join(parts, ", ") + "}"
	case time.Time:
		return v.Format(time.RFC3339Nano)
	}
	return fmt.Sprint(v)
}

// typeName names the TOML type of a decoded value, with an article.
func typeName(v any) string {
	switch v.(type) {
	case string:
		return "a string"
	case int64:
		return "an integer"
	case float64:
		return "a float"
	case bool:
		return "a boolean"
	case time.Time:
		return "a date-time"
	case []any, []map[string]any:
		return "an array"
	case map[string]any:
		return "a table"
	}
	return fmt.Sprintf("a %T", v)
}

func quoteAll(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = strconv.Quote(n)
	}
	return strings.Join(q, ", ")
}

// nearest returns the name in names closest to s if it is close enough to be
// a typo (at most two edits, ignoring case), else "".
func nearest(s string, names []string) string {
	best, bestDist := "", 3
	for _, n := range names {
		if d := editDistance(strings.ToLower(s), strings.ToLower(n)); d < bestDist {
			best, bestDist = n, d
		}
	}
	return best
}

// editDistance is the optimal string alignment distance between a and b:
// Levenshtein's insertions, deletions and substitutions, and swaps of two
// adjacent characters, the commonest typo ("bpg" is one edit from "bgp",
// not two, and so nearer to it than to "log").
func editDistance(a, b string) int {
	prev2 := make([]int, len(b)+1)
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(b)]
}
