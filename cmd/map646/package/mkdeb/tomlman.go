package main

import (
	"fmt"
	"regexp"
	"strings"
)

// map646.toml(5) is config/example.toml rendered: the example shows every
// key with its default and documents each in the comment above it, and
// the page is built from it, so that it says what the example says.
//
// The example is read line by line. A comment block followed by key lines
// is an entry: the keys (bold, with the example's values), then the
// comment indented under them. A key commented out ("# password = ...")
// is a key the example leaves unset. A comment block on its own (followed
// by a blank line) is a paragraph; when a table header follows it, it
// introduces that table and goes under the header. Any other line shape
// (a value spread over several lines, say) is an error, so that the page
// cannot silently lose part of the example.

const tomlValue = `("[^"]*"|\[.*\]|-?[0-9][0-9_.]*|true|false)`

var (
	tomlHeader = regexp.MustCompile(`^(\[\[?[a-z0-9_.]+\]\]?)\s*$`)
	// A key's whole value is on its line: a string, an array, a number
	// or a boolean. A commented-out key must have one too, and nothing
	// after it (# type = "dataplane": the node's own path... is prose).
	tomlKey          = regexp.MustCompile(`^([a-z0-9_]+\s*=\s*` + tomlValue + `)$`)
	tomlCommentedKey = regexp.MustCompile(`^#\s?([a-z0-9_]+\s*=\s*` + tomlValue + `)$`)
	tomlComment      = regexp.MustCompile(`^#\s?(.*)$`)
)

// tomlKeyLine is a key of an entry: "name = value", and whether the
// example leaves it commented out.
type tomlKeyLine struct {
	line      string
	commented bool
}

type tomlRenderer struct {
	r       roff
	comment []string      // the comment block being read; "" separates paragraphs
	held    [][]string    // comment blocks read on their own, not yet placed
	keys    []tomlKeyLine // the keys after comment
	inTable bool
	bare    bool // a table header was the last thing written
}

// manPage5 renders map646.toml(5) from the example configuration.
func manPage5(example []byte, date, version string) (string, error) {
	t := &tomlRenderer{}
	t.r.header("map646.toml", 5, date, version, "config/example.toml")
	t.r.request("SH NAME")
	t.r.text("map646.toml - configuration file of map646(8)")
	t.r.request("SH SYNOPSIS")
	t.r.text("/etc/map646/map646.toml")
	t.r.request("SH DESCRIPTION")
	t.r.paragraph([]string{
		"The configuration of map646(8), a TOML file. This page is the annotated example",
		"configuration of the map646 sources (config/example.toml, installed as",
		"/usr/share/doc/map646/examples/example.toml), rendered: each table, each key with",
		"the value the example gives it, and the comment that documents it. A key shown",
		"commented out is one the example leaves unset.",
		"Check a file with 'map646 check -config FILE' before running or reloading with it.",
	})
	for n, line := range strings.Split(strings.TrimRight(string(example), "\n"), "\n") {
		if err := t.line(line); err != nil {
			return "", fmt.Errorf("mkdeb: config/example.toml:%d: %v", n+1, err)
		}
	}
	t.endEntry()
	t.holdComment()
	t.placeHeld()
	t.r.request("SH FILES")
	for _, f := range packageFiles {
		t.r.request("TP 4")
		t.r.text(f.path)
		t.r.text(f.what)
	}
	t.r.request("SH SEE ALSO")
	t.r.text("map646(8)")
	return t.r.String(), nil
}

func (t *tomlRenderer) line(line string) error {
	line = strings.TrimRight(line, " \t")
	switch {
	case line == "":
		t.endEntry()
		t.holdComment()
	case tomlHeader.MatchString(line):
		t.endEntry()
		t.holdComment()
		if t.bare {
			// A comment between two headers belongs to the first
			// ([health], then the text about checks, then
			// [[health.check]]).
			t.placeHeld()
		}
		if !t.inTable {
			t.placeHeld() // the example's own introduction
			t.r.request("SH CONFIGURATION")
			t.inTable = true
		}
		t.r.request("SS %s", line)
		t.placeHeld()
		t.bare = true
	case tomlCommentedKey.MatchString(line) && (len(t.keys) > 0 || len(t.comment) > 0):
		t.keys = append(t.keys, tomlKeyLine{tomlCommentedKey.FindStringSubmatch(line)[1], true})
	case tomlComment.MatchString(line):
		t.endEntry()
		t.comment = append(t.comment, strings.TrimSpace(tomlComment.FindStringSubmatch(line)[1]))
	case tomlKey.MatchString(line):
		if !t.inTable {
			return fmt.Errorf("key %q before the first table", line)
		}
		t.placeHeld()
		t.keys = append(t.keys, tomlKeyLine{line: line})
		t.bare = false
	default:
		return fmt.Errorf("%q is neither a comment, a table header nor a one-line key = value", line)
	}
	return nil
}

// holdComment sets the comment block read so far aside until it is known
// whether a table header follows it.
func (t *tomlRenderer) holdComment() {
	if len(t.comment) > 0 {
		t.held = append(t.held, t.comment)
		t.comment = nil
	}
}

// placeHeld writes the comment blocks set aside as paragraphs.
func (t *tomlRenderer) placeHeld() {
	for _, block := range t.held {
		for _, para := range splitComment(block) {
			t.r.request("PP")
			t.markup(para)
		}
	}
	t.held = nil
}

// endEntry writes the entry read so far: its keys, then its comment.
func (t *tomlRenderer) endEntry() {
	if len(t.keys) == 0 {
		return
	}
	t.placeHeld()
	t.r.request("PP")
	for i, k := range t.keys {
		if i > 0 {
			t.r.request("br")
		}
		name, value, _ := strings.Cut(k.line, "=")
		line := `\fB` + escape(strings.TrimSpace(name)) + `\fR = ` + escape(strings.TrimSpace(value))
		if k.commented {
			line = `#\ ` + line + ` \fI(unset in the example)\fR`
		}
		t.r.WriteString(`\&` + line + "\n")
	}
	if len(t.comment) > 0 {
		t.r.request("RS 4")
		for i, para := range splitComment(t.comment) {
			if i > 0 {
				t.r.request("sp")
			}
			t.markup(para)
		}
		t.r.request("RE")
	}
	t.keys, t.comment = nil, nil
}

func (t *tomlRenderer) markup(lines []string) {
	for _, l := range lines {
		t.r.WriteString(`\&` + bold(escape(l)) + "\n")
	}
}

// splitComment splits a comment block at its empty lines ("#").
func splitComment(block []string) [][]string {
	var out [][]string
	var cur []string
	for _, l := range block {
		if l == "" {
			if cur != nil {
				out = append(out, cur)
				cur = nil
			}
			continue
		}
		cur = append(cur, l)
	}
	if cur != nil {
		out = append(out, cur)
	}
	return out
}
