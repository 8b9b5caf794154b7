package config

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// Problem is one thing wrong with a configuration.
type Problem struct {
	File  string // the configuration file or the mapping file
	Line  int    // 1-based; 0 if unknown
	Key   string // "translator.ipv6_mtu", "mapping[3].ipv4"; "" for a mapping-file line
	Value string // the offending value as written (TOML syntax in the configuration file); "" if none
	Msg   string // what is wrong and what would be accepted
}

// String formats p as FILE:LINE: KEY = VALUE: MSG, leaving out the parts
// that are unknown or empty.
func (p Problem) String() string {
	var b strings.Builder
	b.WriteString(p.File)
	if p.Line > 0 {
		fmt.Fprintf(&b, ":%d", p.Line)
	}
	b.WriteString(": ")
	switch {
	case p.Key != "" && p.Value != "":
		b.WriteString(p.Key + " = " + p.Value + ": ")
	case p.Key != "":
		b.WriteString(p.Key + ": ")
	case p.Value != "":
		b.WriteString(p.Value + ": ")
	}
	b.WriteString(p.Msg)
	return b.String()
}

// Error lists every problem found in a configuration. Parse and Load return
// it (as a *Error) for anything but a file that cannot be read.
type Error struct {
	Problems []Problem
	// More counts the problems left out of Problems: a broken mapping file of
	// a million lines must not yield a million lines of errors.
	More int
}

// maxProblems bounds Error.Problems.
const maxProblems = 100

// Error returns the problems one per line.
func (e *Error) Error() string {
	lines := make([]string, 0, len(e.Problems)+1)
	for _, p := range e.Problems {
		lines = append(lines, p.String())
	}
	if e.More > 0 {
		lines = append(lines, fmt.Sprintf("... and %d more problems", e.More))
	}
	return strings.Join(lines, "\n")
}

// problems collects Problems up to maxProblems and counts the rest.
type problems struct {
	list []Problem
	more int
}

func (ps *problems) add(p Problem) {
	if len(ps.list) < maxProblems {
		ps.list = append(ps.list, p)
	} else {
		ps.more++
	}
}

func (ps *problems) len() int { return len(ps.list) + ps.more }

// err returns the collected problems as an *Error, or nil if there are none.
// They are sorted to read like the files: the configuration file first,
// then by line (the sections are checked in an order of their own).
func (ps *problems) err(config string) error {
	if ps.len() == 0 {
		return nil
	}
	rank := func(p Problem) int {
		if p.File == config {
			return 0
		}
		return 1
	}
	slices.SortStableFunc(ps.list, func(a, b Problem) int {
		return cmp.Or(
			cmp.Compare(rank(a), rank(b)),
			cmp.Compare(a.File, b.File),
			cmp.Compare(a.Line, b.Line))
	})
	return &Error{Problems: ps.list, More: ps.more}
}
