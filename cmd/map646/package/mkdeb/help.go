package main

import (
	"bytes"
	"fmt"
	"os/exec"
	"regexp"
	"strings"
)

// The help texts are read from the built binary, as an operator sees them
// (`map646 -h`, `map646 CMD -h`), so that the man page and the bash
// completion are what the binary says and cannot drift from it.

// program is what `map646 -h` says: its description and its commands.
type program struct {
	description []string // the paragraph before "Usage:"
	footer      []string // the paragraphs after the command list
	commands    []command
}

// command is one subcommand and what `map646 NAME -h` says.
type command struct {
	name, summary string
	usage         string     // "map646 check -config FILE"
	body          [][]string // paragraphs between the usage and the flags
	flags         []flagHelp
}

// flagHelp is one flag as Go's flag package prints it.
type flagHelp struct {
	name  string // without the dash
	arg   string // "FILE"; "" for a boolean flag
	usage string
}

// selfHelped are the commands that have no -h of their own: `map646 help`
// takes a command name, and its summary is all there is to say.
var selfHelped = map[string]bool{"help": true}

// readHelp runs binary -h and binary CMD -h for each command.
func readHelp(binary string) (*program, error) {
	top, err := runHelp(binary, "-h")
	if err != nil {
		return nil, err
	}
	p, err := parseProgram(top)
	if err != nil {
		return nil, err
	}
	for i := range p.commands {
		c := &p.commands[i]
		if selfHelped[c.name] {
			continue
		}
		out, err := runHelp(binary, c.name, "-h")
		if err != nil {
			return nil, err
		}
		if err := parseCommand(c, out); err != nil {
			return nil, err
		}
	}
	return p, nil
}

func runHelp(binary string, args ...string) (string, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(binary, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("mkdeb: %s %s: %v\n%s", binary, strings.Join(args, " "), err, stderr.Bytes())
	}
	return stdout.String(), nil
}

// paragraphs splits text at blank lines.
func paragraphs(text string) [][]string {
	var out [][]string
	var cur []string
	for _, l := range strings.Split(strings.TrimRight(text, "\n"), "\n") {
		if strings.TrimSpace(l) == "" {
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

var commandLine = regexp.MustCompile(`^  (\S+)\s+(.+)$`)

// parseProgram reads `map646 -h`: description, "Usage: ...", "Commands:"
// followed by "  NAME  SUMMARY" lines, then a footer.
func parseProgram(text string) (*program, error) {
	p := &program{}
	sawUsage := false
	for _, para := range paragraphs(text) {
		switch {
		case strings.HasPrefix(para[0], "Usage: "):
			sawUsage = true
		case para[0] == "Commands:":
			for _, l := range para[1:] {
				m := commandLine.FindStringSubmatch(l)
				if m == nil {
					return nil, fmt.Errorf("mkdeb: map646 -h: %q is not a command line (\"  NAME  SUMMARY\")", l)
				}
				p.commands = append(p.commands, command{name: m[1], summary: m[2]})
			}
		case !sawUsage:
			p.description = append(p.description, para...)
		default:
			p.footer = append(p.footer, para...)
		}
	}
	if len(p.description) == 0 || len(p.commands) == 0 {
		return nil, fmt.Errorf("mkdeb: map646 -h has no description or no \"Commands:\" list:\n%s", text)
	}
	return p, nil
}

// flagLine is a flag as Go's flag.PrintDefaults prints it: "  -name ARG"
// with the usage on the next lines after "    \t".
var flagLine = regexp.MustCompile(`^  -(\S+)(?: (\S+))?(?:\t(.*))?$`)

// parseCommand reads `map646 NAME -h`: "Usage: map646 NAME ...", the
// paragraphs that explain it, and "Flags:" with PrintDefaults' listing.
func parseCommand(c *command, text string) error {
	paras := paragraphs(text)
	if len(paras) == 0 || !strings.HasPrefix(paras[0][0], "Usage: map646 "+c.name) {
		return fmt.Errorf("mkdeb: map646 %s -h does not start with \"Usage: map646 %s\":\n%s", c.name, c.name, text)
	}
	c.usage = strings.TrimPrefix(strings.Join(trimAll(paras[0]), " "), "Usage: ")
	for _, para := range paras[1:] {
		if para[0] != "Flags:" {
			c.body = append(c.body, para)
			continue
		}
		for _, l := range para[1:] {
			if strings.HasPrefix(l, "    \t") {
				if len(c.flags) == 0 {
					return fmt.Errorf("mkdeb: map646 %s -h: flag usage %q before any flag", c.name, l)
				}
				f := &c.flags[len(c.flags)-1]
				f.usage = strings.TrimSpace(f.usage + " " + strings.TrimSpace(l))
				continue
			}
			m := flagLine.FindStringSubmatch(l)
			if m == nil {
				return fmt.Errorf("mkdeb: map646 %s -h: %q is not a flag line", c.name, l)
			}
			c.flags = append(c.flags, flagHelp{name: m[1], arg: m[2], usage: m[3]})
		}
	}
	return nil
}

func trimAll(lines []string) []string {
	out := make([]string, len(lines))
	for i, l := range lines {
		out[i] = strings.TrimSpace(l)
	}
	return out
}

func indentOf(l string) int {
	return len(l) - len(strings.TrimLeft(l, " "))
}

// renderHelpParagraph writes one paragraph of a help text. Unindented
// lines are filled text; a paragraph starting "Example:" is a block of
// commands; indented lines are a list whose items start at the least
// indentation (see renderList).
func renderHelpParagraph(r *roff, para []string) {
	if para[0] == "Example:" || para[0] == "Examples:" {
		r.paragraph(para[:1])
		r.example(dedent(para[1:]))
		return
	}
	var text []string
	for i := 0; i < len(para); {
		if indentOf(para[i]) == 0 {
			text = append(text, para[i])
			i++
			continue
		}
		if len(text) > 0 {
			r.paragraph(text)
			text = nil
		}
		j := i
		for j < len(para) && indentOf(para[j]) > 0 {
			j++
		}
		renderList(r, para[i:j])
		i = j
	}
	if len(text) > 0 {
		r.paragraph(text)
	}
}

func dedent(lines []string) []string {
	least := -1
	for _, l := range lines {
		if n := indentOf(l); least < 0 || n < least {
			least = n
		}
	}
	out := make([]string, len(lines))
	for i, l := range lines {
		out[i] = l[least:]
	}
	return out
}

// renderList writes indented lines as tagged items. An item is a line at
// the least indentation and the more indented lines under it. Its tag is
// what stands left of the column the list's continuation lines are
// indented to ("  node       the state ...", "  1. refuse, ..."), or else
// left of a gap of two spaces ("  map646_probe_packets_total   the ...");
// otherwise the first line is the tag and the rest the body.
func renderList(r *roff, lines []string) {
	lines = dedent(lines)
	var items [][]string
	for i := 0; i < len(lines); {
		j := i + 1
		for j < len(lines) && indentOf(lines[j]) > 0 {
			j++
		}
		items = append(items, lines[i:j])
		i = j
	}
	col := 0 // the list's text column: the first continuation's indent
	for _, it := range items {
		if len(it) > 1 {
			col = indentOf(it[1])
			break
		}
	}
	for _, it := range items {
		tag, body, indent := splitItem(it[0], it[1:], col)
		r.item(indent, tag, body)
	}
}

// splitItem finds an item's tag. An item of several lines is tagged when
// its first line has a word break at the column of its continuation
// lines; an item of one line when a gap of two spaces ends at the list's
// column (listCol: 0 when no item continues), or else anywhere.
func splitItem(first string, rest []string, listCol int) (tag string, body []string, indent int) {
	col, gap := listCol, "  "
	if len(rest) > 0 {
		col, gap = indentOf(rest[0]), " "
	}
	if col > len(gap) && col < len(first) && first[col] != ' ' && first[col-len(gap):col] == gap && strings.TrimSpace(first[:col]) != "" {
		return strings.TrimSpace(first[:col]), append([]string{first[col:]}, rest...), col
	}
	if i := strings.Index(first, "  "); i > 0 {
		return first[:i], append([]string{first[i:]}, rest...), max(col, 4)
	}
	return first, rest, max(col, 4)
}

// manPage8 renders map646(8) from the binary's help.
func manPage8(p *program, date, version string) string {
	var r roff
	r.header("map646", 8, date, version, "the output of map646 -h and map646 COMMAND -h")
	r.request("SH NAME")
	r.text("map646 - " + strings.TrimPrefix(strings.TrimSpace(p.description[0]), "map646 "))
	r.request("SH SYNOPSIS")
	r.request("nf")
	for _, c := range p.commands {
		if c.usage != "" {
			r.literal(c.usage)
		} else {
			r.literal("map646 " + c.name)
		}
	}
	r.request("fi")
	r.request("SH DESCRIPTION")
	r.paragraph(p.description)
	if len(p.footer) > 0 {
		r.paragraph(p.footer)
	}
	r.request("SH COMMANDS")
	for _, c := range p.commands {
		r.request("SS %s", c.name)
		if c.usage == "" {
			r.paragraph([]string{strings.ToUpper(c.summary[:1]) + c.summary[1:] + "."})
			continue
		}
		r.request("nf")
		r.literal(c.usage)
		r.request("fi")
		for _, para := range c.body {
			renderHelpParagraph(&r, para)
		}
		if len(c.flags) > 0 {
			r.paragraph([]string{"Flags:"})
			for _, f := range c.flags {
				tag := `\fB\-` + f.name + `\fR`
				if f.arg != "" {
					tag += ` \fI` + escapeBackslash(f.arg) + `\fR`
				}
				r.request("TP 4")
				r.WriteString(tag + "\n")
				r.text(f.usage)
			}
		}
	}
	r.request("SH FILES")
	for _, f := range packageFiles {
		r.request("TP 4")
		r.text(f.path)
		r.text(f.what)
	}
	r.request("SH SEE ALSO")
	r.text("map646.toml(5), systemctl(1), journalctl(1)")
	return r.String()
}

// packageFiles are the files the package installs or the service uses, for
// the FILES sections.
var packageFiles = []struct{ path, what string }{
	{"/etc/map646/map646.toml", "The configuration the map646 service runs with (map646.toml(5)); check it with 'map646 check -config /etc/map646/map646.toml'."},
	{"/usr/share/doc/map646/examples/example.toml", "The annotated example: every key, with its default."},
	{"/lib/systemd/system/map646.service", "The systemd unit: 'systemctl reload map646' reloads, 'journalctl -u map646' shows the log."},
	{"/run/map646/", "The runtime directory of the service: the control socket of the packaged configuration."},
	{"/var/lib/map646/", "The state directory ([node] state_dir): the drained flag."},
}
