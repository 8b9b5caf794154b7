package main

import (
	"encoding/csv"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"
)

// cell is one table cell: the median, its ratio to the subject's
// baseline, and for latency the difference too.
func (r *results) cell(s subject, m metric) string {
	v, n := r.median(s.ID, m.ID)
	if math.IsNaN(v) {
		return "n/a"
	}
	out := m.format(v)
	if m.Ratio && r.hasSubject(s.Baseline) {
		b, _ := r.median(s.Baseline, m.ID)
		extra := formatRatio(v / b)
		if m.Unit == "µs" && s.ID != s.Baseline && !math.IsNaN(b) {
			extra += fmt.Sprintf(", %+.0f", v-b)
		}
		out += " (" + extra + ")"
	}
	if n < r.Reps {
		out += fmt.Sprintf(" [%d of %d runs]", n, r.Reps)
	}
	return out
}

// table returns the header and rows of the results table.
func (r *results) table() (header []string, rows [][]string) {
	header = []string{"metric"}
	for _, s := range r.Subjects {
		header = append(header, s.Name)
	}
	for _, m := range metrics {
		row := []string{fmt.Sprintf("%s (%s)", m.Name, m.Unit)}
		for _, s := range r.Subjects {
			row = append(row, r.cell(s, m))
		}
		rows = append(rows, row)
	}
	row := []string{"checksum errors at the receivers"}
	for _, s := range r.Subjects {
		if n, ok := r.csumGrowth(s.ID); ok {
			row = append(row, strconv.FormatUint(n, 10))
		} else {
			row = append(row, "n/a")
		}
	}
	rows = append(rows, row)
	return header, rows
}

// dropRows are the places packets were lost: the router's links, and
// map646's own counters.
func (r *results) dropRows() (rows [][]string) {
	links := []string{"dropped on the router's links"}
	rcvbuf := []string{"dropped at the server's full UDP socket"}
	xlat := []string{"dropped or refused by map646 (its metrics)"}
	for _, s := range r.Subjects {
		rep := r.Reports[s.ID]
		if rep == nil || rep.RouterDrops == nil {
			rcvbuf = append(rcvbuf, "n/a")
			links = append(links, "n/a")
		} else {
			var names []string
			var total uint64
			for l, n := range rep.RouterDrops {
				total += n
				if n > 0 {
					names = append(names, fmt.Sprintf("%s %d", l, n))
				}
			}
			sort.Strings(names)
			rcvbuf = append(rcvbuf, strconv.FormatUint(rep.RcvbufDrops, 10))
			c := strconv.FormatUint(total, 10)
			if len(names) > 0 {
				c += " (" + strings.Join(names, ", ") + ")"
			}
			links = append(links, c)
		}
		if rep == nil || rep.Map646 == nil {
			xlat = append(xlat, "-")
		} else {
			var parts, reasons []string
			for _, k := range []string{"drop", "icmp-error", "write_errors", "device_dropped"} {
				parts = append(parts, fmt.Sprintf("%s %.0f", k, rep.Map646[k]))
			}
			for k, v := range rep.Map646 {
				if strings.Count(k, " ") == 2 {
					reasons = append(reasons, fmt.Sprintf("%s %.0f", k, v))
				}
			}
			sort.Strings(reasons)
			c := strings.Join(parts, ", ")
			if len(reasons) > 0 {
				c += " (" + strings.Join(reasons, "; ") + ")"
			}
			xlat = append(xlat, c)
		}
	}
	return [][]string{links, xlat, rcvbuf}
}

func mdRow(w io.Writer, cells []string) {
	fmt.Fprintf(w, "| %s |\n", strings.Join(cells, " | "))
}

func mdTable(w io.Writer, header []string, rows [][]string) {
	mdRow(w, header)
	align := []string{"---"}
	for range header[1:] {
		align = append(align, "---:")
	}
	mdRow(w, align)
	for _, row := range rows {
		mdRow(w, row)
	}
}

// writeMarkdown writes results.md: the table, the targets, where packets
// were lost, Figure 12, the charts and how it all was measured.
func (r *results) writeMarkdown(w io.Writer, charts []string) {
	fmt.Fprintf(w, "# map646 against kernel forwarding and TAYGA\n\n")
	fmt.Fprintf(w, "`make bench`, %s, took %s, on %s.\n\n", r.Start.Format("2006-01-02 15:04 MST"),
		r.End.Sub(r.Start).Round(time.Second), r.Machine)
	fmt.Fprintf(w, "Each cell is the median of %d runs, and in brackets its ratio to kernel forwarding "+
		"(the translators, whose clients are IPv4, to kernel IPv4 forwarding; each kernel to itself); "+
		"for round-trip times also the difference in µs. Higher is better except for RTT and loss.\n\n", r.Reps)
	if r.BusyBefore > 0.15 || r.BusyAfter > 0.15 {
		fmt.Fprintf(w, "**Warning: other work ran on the machine** (CPU %.0f%% busy in the 2 s before the start, %.0f%% after the end): read the ratios, not the absolute figures, and expect noise.\n\n",
			100*r.BusyBefore, 100*r.BusyAfter)
	}
	if len(r.Subjects) > 0 {
		h, rows := r.table()
		mdTable(w, h, rows)
	} else {
		fmt.Fprintf(w, "No router was measured.\n")
	}

	fmt.Fprintf(w, "\n## Targets (this machine, ratios in the same run)\n\n")
	fmt.Fprintf(w, "A translator is held to both kernels: a target is met only if it holds against kernel IPv4 and kernel IPv6 forwarding.\n\n")
	for _, t := range r.targets() {
		fmt.Fprintf(w, "- **%s**: %s. %s.\n", t.verdict(), t.Goal, t.Detail)
	}

	fmt.Fprintf(w, "\n## Where packets were lost\n\n")
	fmt.Fprintf(w, "Counted from before the first measurement of a subject to after its last (all tests, all runs). "+
		"A UDP sender with `-b 0` overruns every router on this machine: the loss row above says how much, this says where.\n\n")
	h := []string{"counter"}
	for _, s := range r.Subjects {
		h = append(h, s.Name)
	}
	mdTable(w, h, r.dropRows())

	fmt.Fprintf(w, "\n## Figure 12: mapping-table lookup against table size\n\n")
	if r.LookupErr != "" {
		fmt.Fprintf(w, "Not measured: %s\n", r.LookupErr)
	} else if r.Lookup != nil {
		fmt.Fprintf(w, "`go test -run '^$' -bench 'TableLookup$' -benchtime 1s -count %d ./translator/` (took %s): "+
			"ns per lookup, median of the runs, addresses drawn uniformly from the table's entries.\n\n",
			r.lookupCount(), r.LookupTook.Round(time.Second))
		mdTable(w, []string{"entries", "IPv4 -> IPv6 (ns)", "IPv6 -> IPv4 (ns)"}, r.lookupRows())
	}

	if len(charts) > 0 {
		fmt.Fprintf(w, "\n## Charts\n\n")
		for _, c := range charts {
			fmt.Fprintf(w, "![%s](%s)\n\n", strings.TrimSuffix(c, ".png"), c)
		}
	}

	fmt.Fprintf(w, "\n## How it was measured\n\n")
	r.writeSetup(w)
	for _, s := range r.Subjects {
		rep := r.Reports[s.ID]
		if rep == nil {
			continue
		}
		if rep.SetupErr != "" {
			fmt.Fprintf(w, "- %s could not be set up: %s\n", s.Name, rep.SetupErr)
		}
		for _, n := range rep.Notes {
			fmt.Fprintf(w, "- %s: %s\n", s.Name, n)
		}
	}
	if errs := r.failedRuns(); len(errs) > 0 {
		fmt.Fprintf(w, "\nFailed runs (left out of the medians):\n\n")
		for _, e := range errs {
			fmt.Fprintf(w, "- %s\n", e)
		}
	}
}

func (r *results) writeSetup(w io.Writer) {
	csum := "on (the kernels' defaults)"
	if r.CsumOff {
		csum = "off (`ethtool -K tx off rx off`, GRO on), as in the lab tests: the router's kernel completes every checksum in software before a packet leaves it, so the receivers verify every checksum and a wrong one (a wrong partial checksum handed back by map646's offload device included) shows in their counters"
	}
	fmt.Fprintf(w, `Three network namespaces per subject, every topology up at once, measurements interleaved (each repetition runs every test on every subject before the next repetition starts, the subject order rotated) so that a noisy moment of this shared machine does not fall on one subject only:

`+"```"+`
client ── veth ── router ── veth ── server
kernel IPv4:   192.0.2.7 -> 192.0.2.1 | 198.51.100.1 -> 198.51.100.10
kernel IPv6:   2001:db8:2::7 -> 2001:db8:2::1 | 2001:db8:1::1 -> 2001:db8:1::10
translators:   192.0.2.7 -> 192.0.2.1 | 2001:db8:1::1 -> 2001:db8:1::10
               client dials 198.51.100.10 (mapped to 2001:db8:1::10);
               the server sees it as pseudo-prefix 64:ff9b::c000:207
               (TAYGA: 2001:db8:ff9b::c000:207, see below)
`+"```"+`

- Links: veth pairs, MTU 1500 everywhere; tun devices MTU 1500, txqueuelen 10000 (map646's default; TAYGA's device set to the same).
- Checksum offload on the router's veths: %s.
- map646: `+"`map646 run`"+` built from this tree, default queues (one per CPU), pseudo prefix 64:ff9b::/96, mapping 198.51.100.10 <-> 2001:db8:1::10; offload = true (multiqueue tun with virtio header, TCP super-packets translated whole) or false (the plain one-queue device, water).
- TAYGA %s (Debian package): `+"`tayga --mktun`"+`, link, routes and txqueuelen set by hand, then `+"`tayga --nodetach`"+`; static `+"`map 198.51.100.10 2001:db8:1::10`"+`. Its prefix is 2001:db8:ff9b::/96, not 64:ff9b::/96: TAYGA refuses documentation IPv4 addresses (192.0.2.0/24, the client) under the well-known prefix (RFC 6052 §3.1 non-global addresses; map646 exempts the three documentation blocks so that it can be tested with them), and this lab uses documentation addresses only. The prefix changes no per-packet work.
- ping: `+"`ping -c %d -i 0.002`"+` (56-byte payload), p50 and p99 of the replies of each run. At one echo every 2 ms a translator's thread sleeps between packets: each echo pays its wake-up (and, on an idle virtual machine, the wake-up of a halted virtual CPU) on top of the translation; kernel forwarding runs in the softirq of the sending CPU and pays neither.
- iperf3 %s: `+"`-t %d`"+` each, TCP `+"`-c`"+`, `+"`-R`"+`, `+"`-P 4`"+`; UDP `+"`-u -b 0 -l 1400`"+` and `+"`-l 64`"+` (as fast as the sender can write), client to server; rates are the receiver's (payload bits; for 64 B, datagrams per second), loss is the receiver's count.
- Checksum errors: `+"`nstat`"+` %s in the client's and the server's namespaces, before the first and after the last measurement of each subject.
- Other work on the machine: CPU %.0f%% busy in the 2 s before the start, %.0f%% after the end (the benchmark's own processes stopped).
- Raw runs: runs.csv.

`, csum, r.Versions["tayga"], r.PingCount, r.Versions["iperf3"], int(r.Duration.Seconds()), strings.Join(csumCounters, ", "),
		100*r.BusyBefore, 100*r.BusyAfter)
}

func (r *results) failedRuns() []string {
	var out []string
	for _, x := range r.Runs {
		if x.Err != "" {
			out = append(out, fmt.Sprintf("%s %s run %d: %s", x.Subject, x.Test, x.Rep, clip(x.Err, 300)))
		}
	}
	return out
}

// lookupCount is how many runs each lookup benchmark had.
func (r *results) lookupCount() int {
	n := 0
	for _, bySize := range r.Lookup {
		for _, v := range bySize {
			n = max(n, len(v))
		}
	}
	return n
}

func (r *results) lookupRows() [][]string {
	var rows [][]string
	for _, n := range r.Lookup.Sizes() {
		row := []string{formatCount(n)}
		for _, dir := range []string{"4to6", "6to4"} {
			if v := r.Lookup[dir][n]; len(v) > 0 {
				row = append(row, strconv.FormatFloat(median(v), 'f', 1, 64))
			} else {
				row = append(row, "n/a")
			}
		}
		rows = append(rows, row)
	}
	return rows
}

// formatCount prints 1000000 as 1,000,000.
func formatCount(n int) string {
	s := strconv.Itoa(n)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// writeCSV writes every run, one line per value, failed runs with their
// error.
func (r *results) writeCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	cw.Write([]string{"subject", "test", "rep", "start", "seconds", "metric", "value", "error"})
	for _, x := range r.Runs {
		base := []string{x.Subject, x.Test, strconv.Itoa(x.Rep), x.Start.UTC().Format(time.RFC3339),
			strconv.FormatFloat(x.Took.Seconds(), 'f', 2, 64)}
		if x.Err != "" || len(x.Values) == 0 {
			cw.Write(append(base, "", "", x.Err))
			continue
		}
		keys := make([]string, 0, len(x.Values))
		for k := range x.Values {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			cw.Write(append(base, k, strconv.FormatFloat(x.Values[k], 'g', 8, 64), ""))
		}
	}
	for _, dir := range []string{"4to6", "6to4"} {
		for _, n := range r.Lookup.Sizes() {
			for i, v := range r.Lookup[dir][n] {
				cw.Write([]string{"lookup-" + dir, strconv.Itoa(n), strconv.Itoa(i + 1), "", "",
					"ns/op", strconv.FormatFloat(v, 'g', 8, 64), ""})
			}
		}
	}
	cw.Flush()
	return cw.Error()
}

// writeText prints the table and the targets for the terminal.
func (r *results) writeText(w io.Writer) {
	if len(r.Subjects) > 0 {
		h, rows := r.table()
		textTable(w, h, rows)
		fmt.Fprintln(w)
	}
	fmt.Fprintln(w, "Targets (each translator held to both kernels):")
	for _, t := range r.targets() {
		fmt.Fprintf(w, "  %-7s  %s: %s\n", t.verdict(), t.Goal, t.Detail)
	}
	if r.Lookup != nil {
		fmt.Fprintln(w)
		fmt.Fprintln(w, "Figure 12, table lookup (ns):")
		textTable(w, []string{"entries", "4->6", "6->4"}, r.lookupRows())
	} else if r.LookupErr != "" {
		fmt.Fprintf(w, "\nFigure 12 not measured: %s\n", r.LookupErr)
	}
	if errs := r.failedRuns(); len(errs) > 0 {
		fmt.Fprintf(w, "\n%d failed runs (left out of the medians):\n", len(errs))
		for _, e := range errs {
			fmt.Fprintf(w, "  %s\n", e)
		}
	}
}

func textTable(w io.Writer, header []string, rows [][]string) {
	width := make([]int, len(header))
	for _, row := range append([][]string{header}, rows...) {
		for i, c := range row {
			width[i] = max(width[i], len([]rune(c)))
		}
	}
	line := func(row []string) {
		var b strings.Builder
		for i, c := range row {
			pad := strings.Repeat(" ", width[i]-len([]rune(c)))
			if i == 0 {
				b.WriteString(c + pad)
			} else {
				b.WriteString("  " + pad + c)
			}
		}
		fmt.Fprintln(w, strings.TrimRight(b.String(), " "))
	}
	line(header)
	for _, row := range rows {
		line(row)
	}
}
