package main

import (
	"encoding/csv"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"

	"github.com/map646/map646/cmd/map646/control"
	"github.com/map646/map646/config"
)

const lookupUsage = `Usage: map646 lookup [-json] [-socket PATH] ADDR

Say what the running map646 does with ADDR, an IPv4 or IPv6 address:
the mapping whose prefix holds it, where that mapping is written (the
mapping file and line, the [[mapping]] entry of the configuration, or
its etcd key with [mappings] source = "etcd"),
the address it translates to, and the mapping's counters both ways
(packets and bytes translated toward the server, 4to6, and from it, 6to4;
for any mapping, not only the first translator.mapping_series exported
to Prometheus). For an address no mapping holds: its form in the pseudo
prefix, and whether the policy translates it as a source or destination.
Exit 1 when no map646 answers; an unmapped address is an answer (exit 0).

Example:
  map646 lookup 198.51.100.10
  map646 lookup 64:ff9b::203.0.113.7
`

const mappingsUsage = `Usage: map646 mappings [-json | -csv] [-socket PATH] [PREFIX]

List the running mapping table with each mapping's counters, streamed
from a snapshot of the table (a million rows are fine; changes made while
it streams are not in it). PREFIX (IPv4 or IPv6, or an address) keeps the
mappings one of whose sides overlaps it. Columns: id (the mapping's
index in the running table, stable until the table is rebuilt), ipv4,
ipv6, packets and bytes 4to6 (toward the server), packets and bytes 6to4.
-json prints one JSON object per line (the MappingRow type of
cmd/map646/control/mappings.go; with the etcd source, "origin" is the
mapping's etcd key), -csv a header line and one line each.

Example:
  map646 mappings 198.51.100.0/24
  map646 mappings -csv > table.csv
`

const mappingUsage = `Usage: map646 mapping add|del [-socket PATH] IPV4[/LEN] IPV6[/LEN]

Add a mapping to the running table, or delete one (both sides must
match), without a reload: checked as a line of the mapping file is (the
address families, host bits, special-purpose ranges, the pseudo prefix,
the suffix length, and overlaps and duplicates against every mapping of
the running table), then written to translator.mapping_file (the file is
replaced atomically: an addition is appended as the line "IPV4 IPV6", a
deletion removes its line; comments and other lines stay), so that a
restart or a reload keeps it; then applied as a delta: only that mapping's
entry, the kernel routes of its span of addresses and the announcements
they make change, and every other mapping's counters go on. A refused
change changes nothing and says why (exit 1). Without a mapping_file, or
to delete a [[mapping]] entry of the configuration, it is refused: map646
does not rewrite the configuration file.

With [mappings] source = "etcd", the change is written to etcd instead:
checked the same way (an overlap with another key is refused), put as
the key PREFIX/mappings/IPV4[/LEN] with the value IPV6[/LEN] (refused if
the key holds another mapping: delete it first) or deleted; then the
command waits until this node serves it (its watch brings the change
back, at most 10 s) and says so with the etcd revision. Every node gets
it through its own watch: 'map646 status -cluster' shows the revision
each one serves.

Example:
  map646 mapping add 198.51.100.20 2001:db8:1::20
  map646 mapping del 198.51.100.20 2001:db8:1::20
`

// ctlArgs parses the flags of fs anywhere among the arguments and returns
// the others; done as parseFlags.
func ctlArgs(fs *flag.FlagSet, help string, args []string, stdout, stderr io.Writer) (rest []string, code int, done bool) {
	for {
		err := fs.Parse(args)
		switch {
		case errors.Is(err, flag.ErrHelp):
			printUsage(stdout, fs, help)
			return nil, exitOK, true
		case err != nil:
			return nil, usageError(stderr, fs.Name(), err.Error()), true
		}
		if fs.NArg() == 0 {
			return rest, exitOK, false
		}
		rest = append(rest, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

func runLookup(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("lookup")
	socket := fs.String("socket", config.DefaultControlSocket, socketHelp)
	asJSON := fs.Bool("json", false, "print the answer as JSON")
	rest, code, done := ctlArgs(fs, lookupUsage, args, stdout, stderr)
	if done {
		return code
	}
	if len(rest) != 1 {
		return usageError(stderr, "lookup", "one address expected")
	}
	r, err := control.Call(*socket, control.Request{Command: "lookup", Address: rest[0]}, ctlTimeout, nil)
	if err == nil && !*r.OK {
		err = errors.New(r.Error)
	}
	if err == nil && r.Lookup == nil {
		err = fmt.Errorf("map646 at %s answered without a lookup", *socket)
	}
	if err != nil {
		fmt.Fprintf(stderr, "map646 lookup: %v\n", err)
		return exitError
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(r.Lookup)
		return exitOK
	}
	l := r.Lookup
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "address\t%s\n", l.Address)
	if m := l.Mapping; m != nil {
		fmt.Fprintf(tw, "mapping\t%s %s (id %d)\n", m.IPv4, m.IPv6, m.ID)
		fmt.Fprintf(tw, "origin\t%s\n", l.Origin)
		fmt.Fprintf(tw, "4to6\t%d packets, %d bytes\n", m.Packets4to6, m.Bytes4to6)
		fmt.Fprintf(tw, "6to4\t%d packets, %d bytes\n", m.Packets6to4, m.Bytes6to4)
	} else {
		fmt.Fprintf(tw, "mapping\tnone\n")
	}
	if l.Translated != "" {
		fmt.Fprintf(tw, "translated\t%s\n", l.Translated)
	}
	fmt.Fprintf(tw, "note\t%s\n", l.Note)
	tw.Flush()
	return exitOK
}

func runMappings(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("mappings")
	socket := fs.String("socket", config.DefaultControlSocket, socketHelp)
	asJSON := fs.Bool("json", false, "print one JSON object per mapping")
	asCSV := fs.Bool("csv", false, "print CSV with a header line")
	rest, code, done := ctlArgs(fs, mappingsUsage, args, stdout, stderr)
	if done {
		return code
	}
	switch {
	case len(rest) > 1:
		return usageError(stderr, "mappings", "at most one PREFIX")
	case *asJSON && *asCSV:
		return usageError(stderr, "mappings", "-json or -csv, not both")
	}
	req := control.Request{Command: "mappings"}
	if len(rest) == 1 {
		req.Prefix = rest[0]
	}
	var row func(control.MappingRow)
	var flush func() error
	switch {
	case *asJSON:
		enc := json.NewEncoder(stdout)
		row = func(r control.MappingRow) { enc.Encode(r) }
		flush = func() error { return nil }
	case *asCSV:
		w := csv.NewWriter(stdout)
		w.Write([]string{"id", "ipv4", "ipv6", "packets_4to6", "bytes_4to6", "packets_6to4", "bytes_6to4"})
		u := func(v uint64) string { return strconv.FormatUint(v, 10) }
		row = func(r control.MappingRow) {
			w.Write([]string{strconv.Itoa(r.ID), r.IPv4, r.IPv6, u(r.Packets4to6), u(r.Bytes4to6), u(r.Packets6to4), u(r.Bytes6to4)})
		}
		flush = func() error { w.Flush(); return w.Error() }
	default:
		// Columns sized by a fixed width, not by the whole table: a
		// tabwriter would hold a million rows before printing one.
		fmt.Fprintf(stdout, "%-8s %-18s %-40s %12s %14s %12s %14s\n", "id", "ipv4", "ipv6", "packets_4to6", "bytes_4to6", "packets_6to4", "bytes_6to4")
		row = func(r control.MappingRow) {
			fmt.Fprintf(stdout, "%-8d %-18s %-40s %12d %14d %12d %14d\n", r.ID, r.IPv4, r.IPv6, r.Packets4to6, r.Bytes4to6, r.Packets6to4, r.Bytes6to4)
		}
		flush = func() error { return nil }
	}
	r, err := control.CallStream(*socket, req, 0, row)
	if ferr := flush(); err == nil {
		err = ferr
	}
	if err == nil && !*r.OK {
		err = errors.New(r.Error)
	}
	if err != nil {
		fmt.Fprintf(stderr, "map646 mappings: %v\n", err)
		return exitError
	}
	return exitOK
}

func runMapping(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("mapping")
	socket := fs.String("socket", config.DefaultControlSocket, socketHelp)
	rest, code, done := ctlArgs(fs, mappingUsage, args, stdout, stderr)
	if done {
		return code
	}
	if len(rest) != 3 || rest[0] != "add" && rest[0] != "del" {
		return usageError(stderr, "mapping", "expected add or del, then IPV4[/LEN] IPV6[/LEN]")
	}
	req := control.Request{Command: "mapping-" + rest[0], IPv4: rest[1], IPv6: rest[2]}
	return ctlCommand("mapping "+rest[0], *socket, req, ctlTimeout, stdout, stderr)
}
