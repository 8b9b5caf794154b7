package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/map646/map646/translator"
	"github.com/map646/map646/translator/pcap"
)

const translateHelp = `Usage: map646 translate -config FILE -in IN.pcap -out OUT.pcap [-json]

Run the translator on a capture: the translator is built from FILE as the
daemon builds it and runs the same code. Every packet of IN.pcap is
translated; everything the translator sends (translated packets, their
fragments, hairpinned packets, generated ICMP errors) is written to OUT.pcap
in order, one raw-IP record (link type 101) per packet, with the timestamp of
the input packet.

IN.pcap is a pcap or pcapng file of raw IP, Ethernet (up to two VLAN tags)
or Linux cooked frames (SLL and SLL2: what 'tcpdump -i any' writes), holding
whole packets (capture with 'tcpdump -s 0'). Frames that are not IPv4 or
IPv6 (ARP, ...) are skipped and counted. A malformed capture stops the
command with an error naming the record, exit code 1, and OUT.pcap is not
written (it is written to OUT.pcap.tmp and renamed when complete). With
-out -, the capture written to stdout so far is left as it is.

Without -json a summary goes to stderr: packets in and out (and frames
skipped as not IP, if any), the count of each verdict and, under it, of each
reason. With -json, stdout gets one line per input packet (and stderr a line
that counts the skipped frames, if any):
  {"in":0,"verdict":"forward","reason":"","out":[0]}
  {"in":1,"verdict":"drop","reason":"bad-version","out":[]}
in is the input record index (skipped frames count), verdict forward, drop or icmp-error, reason
why the packet was not forwarded, out the indices of the output records it
produced.

ICMP errors are not rate limited here: translate shows every error the
translator generates. The running daemon applies the rate limit.

Example:
  map646 translate -config /etc/map646/map646.toml -in client.pcap -out backend.pcap -json | grep -v '"forward"'
  tcpdump -i eth0 -s 0 -w - | map646 translate -config map646.toml -in - -out - | tcpdump -n -r -
`

func runTranslate(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("translate")
	configPath := fs.String("config", "", "build the translator from the configuration `FILE` (required)")
	inPath := fs.String("in", "", "read the capture (pcap or pcapng) from `IN.pcap`, - for stdin (required)")
	outPath := fs.String("out", "", "write the translated packets to `OUT.pcap`, - for stdout (required)")
	jsonLines := fs.Bool("json", false, "print one JSON line per input packet on stdout instead of the summary on stderr")
	if code, done := parseFlags(fs, translateHelp, args, stdout, stderr); done {
		return code
	}
	switch {
	case *configPath == "":
		return usageError(stderr, "translate", "-config is required")
	case *inPath == "":
		return usageError(stderr, "translate", "-in is required")
	case *outPath == "":
		return usageError(stderr, "translate", "-out is required")
	case *jsonLines && *outPath == "-":
		return usageError(stderr, "translate", "-json and -out - both write to stdout; write the capture to a file")
	}
	_, tr, ok := loadConfig(*configPath, stderr)
	if !ok {
		return exitError
	}

	in := stdin
	if *inPath != "-" {
		f, err := os.Open(*inPath)
		if err != nil {
			fmt.Fprintf(stderr, "map646 translate: %v\n", err)
			return exitError
		}
		defer f.Close()
		in = f
	}
	r, err := pcap.NewReader(in)
	if err != nil {
		fmt.Fprintf(stderr, "map646 translate: %s: %v\n", displayName(*inPath, "stdin"), err)
		return exitError
	}

	out, err := createOutput(*outPath, stdout)
	if err != nil {
		fmt.Fprintf(stderr, "map646 translate: %v\n", err)
		return exitError
	}
	defer out.discard() // after a failure, or a panic in the translator

	var lines *json.Encoder
	var bufStdout *bufio.Writer
	if *jsonLines {
		bufStdout = bufio.NewWriter(stdout)
		lines = json.NewEncoder(bufStdout)
	}
	var st stats
	err = translateCapture(tr, r, out.w, lines, &st, displayName(*inPath, "stdin"), displayName(*outPath, "stdout"))
	if bufStdout != nil {
		// Flushed on failure too: the lines show how far the capture went.
		if ferr := bufStdout.Flush(); err == nil && ferr != nil {
			err = ferr
		}
	}
	if err == nil {
		err = out.commit()
	}
	if err != nil {
		fmt.Fprintf(stderr, "map646 translate: %v\n", err)
		return exitError
	}
	if !*jsonLines {
		st.print(stderr)
	} else if st.notIP > 0 {
		fmt.Fprintf(stderr, "map646 translate: %s: %d frames skipped: neither IPv4 nor IPv6\n", displayName(*inPath, "stdin"), st.notIP)
	}
	return exitOK
}

// packetLine is one line of -json output. The field order is the output's.
type packetLine struct {
	In      int    `json:"in"`
	Verdict string `json:"verdict"`
	Reason  string `json:"reason"`
	Out     []int  `json:"out"`
}

// translateCapture translates every record of r with one Out, as a data-plane
// worker does, and writes every output packet to w. lines may be nil. Errors
// name the file they are about.
func translateCapture(tr *translator.Translator, r *pcap.Reader, w *pcap.Writer, lines *json.Encoder, st *stats, inName, outName string) error {
	o := translator.NewOut()
	line := packetLine{Out: []int{}} // not nil: a drop prints "out":[]
	for {
		rec, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("%s: %w", inName, err)
		}
		res := tr.Translate(rec.Data, o)
		st.count(res)
		line.Out = line.Out[:0]
		for _, p := range o.Pkts {
			if err := w.Write(rec.Time, p); err != nil {
				return fmt.Errorf("%s: %w", outName, err)
			}
			line.Out = append(line.Out, st.out)
			st.out++
		}
		if lines != nil {
			line.In = rec.Index
			line.Verdict = res.Verdict.String()
			line.Reason = res.Reason.String()
			if err := lines.Encode(&line); err != nil {
				return err
			}
		}
	}
	st.notIP = r.NotIP()
	if err := w.Flush(); err != nil {
		return fmt.Errorf("%s: %w", outName, err)
	}
	return nil
}

// displayName names a file argument in messages; "-" is the standard stream.
func displayName(path, std string) string {
	if path == "-" {
		return std
	}
	return path
}

// stats counts what translate saw, for the summary.
type stats struct {
	in, out  int
	notIP    int // frames skipped by the reader: neither IPv4 nor IPv6
	verdicts map[translator.Verdict]int
	reasons  map[translator.Verdict]map[translator.Reason]int
}

func (s *stats) count(res translator.Result) {
	if s.verdicts == nil {
		s.verdicts = map[translator.Verdict]int{}
		s.reasons = map[translator.Verdict]map[translator.Reason]int{}
	}
	s.in++
	s.verdicts[res.Verdict]++
	if res.Reason != translator.ReasonNone {
		if s.reasons[res.Verdict] == nil {
			s.reasons[res.Verdict] = map[translator.Reason]int{}
		}
		s.reasons[res.Verdict][res.Reason]++
	}
}

// print writes the summary: every verdict, even at zero, so the reader sees
// at a glance that nothing was dropped; under each, its non-zero reasons.
func (s *stats) print(w io.Writer) {
	type row struct {
		label string
		n     int
	}
	rows := []row{{"packets in", s.in}}
	if s.notIP > 0 {
		rows = append(rows, row{"not IP, skipped", s.notIP})
	}
	rows = append(rows, row{"packets out", s.out})
	for _, v := range []translator.Verdict{translator.Forward, translator.Drop, translator.ICMPError} {
		rows = append(rows, row{v.String(), s.verdicts[v]})
		for r := range translator.Reason(translator.NumReasons) {
			if n := s.reasons[v][r]; n > 0 {
				rows = append(rows, row{"  " + r.String(), n})
			}
		}
	}
	width := 0
	for _, r := range rows {
		width = max(width, len(r.label))
	}
	for _, r := range rows {
		fmt.Fprintf(w, "%-*s %d\n", width, r.label, r.n)
	}
}

// output is where translate writes its capture. A file is written under a
// temporary name and renamed when complete, so OUT.pcap is either whole or
// absent, never a silently truncated capture.
type output struct {
	w    *pcap.Writer
	file *os.File // nil for stdout
	path string
	done bool
}

func createOutput(path string, stdout io.Writer) (*output, error) {
	o := &output{path: path}
	dst := stdout
	if path != "-" {
		f, err := os.Create(path + ".tmp")
		if err != nil {
			return nil, err
		}
		o.file, dst = f, f
	}
	w, err := pcap.NewWriter(dst)
	if err != nil {
		o.discard()
		return nil, err
	}
	o.w = w
	return o, nil
}

// commit makes the capture visible under its name.
func (o *output) commit() error {
	if o.file == nil {
		return nil
	}
	o.done = true
	err := o.file.Close()
	if err == nil {
		err = os.Rename(o.file.Name(), o.path)
	}
	if err != nil {
		os.Remove(o.file.Name())
		return fmt.Errorf("writing %s: %w", o.path, err)
	}
	return nil
}

// discard removes an uncommitted file; after commit it does nothing.
func (o *output) discard() {
	if o.file == nil || o.done {
		return
	}
	o.done = true
	o.file.Close()
	// A failure to remove is not reported: the .tmp name already says the
	// file is not a result, and the command is failing for a better reason.
	os.Remove(o.file.Name())
}
