package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// pingResult is one run of ping: the round-trip time of every reply, in
// microseconds, and the counts of its summary line.
type pingResult struct {
	RTTs        []float64 // µs, in arrival order, duplicates left out
	Transmitted int
	Received    int
}

var (
	pingReply   = regexp.MustCompile(`icmp_seq=\d+ .*time=([0-9.]+) ms`)
	pingSummary = regexp.MustCompile(`^(\d+) packets transmitted, (\d+) received`)
)

// parsePing reads the output of iputils ping (one line per reply, then the
// statistics). A reply marked (DUP!) is not counted. It fails on output with
// no reply or no summary: a run that measured nothing is not a result.
func parsePing(out string) (pingResult, error) {
	var r pingResult
	summary := false
	for _, line := range strings.Split(out, "\n") {
		if m := pingReply.FindStringSubmatch(line); m != nil && !strings.Contains(line, "DUP!") {
			ms, err := strconv.ParseFloat(m[1], 64)
			if err != nil {
				return r, fmt.Errorf("ping: %q: %v", line, err)
			}
			r.RTTs = append(r.RTTs, ms*1000)
		}
		if m := pingSummary.FindStringSubmatch(line); m != nil {
			r.Transmitted, _ = strconv.Atoi(m[1])
			r.Received, _ = strconv.Atoi(m[2])
			summary = true
		}
	}
	switch {
	case !summary:
		return r, errors.New("ping: no statistics line in its output")
	case len(r.RTTs) == 0:
		return r, fmt.Errorf("ping: no reply (%d sent)", r.Transmitted)
	}
	return r, nil
}

// iperfSum is a sum_sent or sum_received record of iperf3's JSON output
// (iperf3 3.12, Debian 12). Packets and LostPackets are UDP only,
// Retransmits TCP only (sender side).
type iperfSum struct {
	Seconds       float64 `json:"seconds"`
	Bytes         float64 `json:"bytes"`
	BitsPerSecond float64 `json:"bits_per_second"`
	Retransmits   float64 `json:"retransmits"`
	Packets       float64 `json:"packets"`
	LostPackets   float64 `json:"lost_packets"`
	LostPercent   float64 `json:"lost_percent"`
}

type iperfJSON struct {
	Error string `json:"error"`
	End   struct {
		Sum         *iperfSum `json:"sum"` // UDP, in versions without sum_received
		SumSent     *iperfSum `json:"sum_sent"`
		SumReceived *iperfSum `json:"sum_received"`
	} `json:"end"`
}

// iperfResult is what a run of iperf3 measured at its receiver.
type iperfResult struct {
	BitsPerSecond float64 // payload bits received per second
	PacketsPerSec float64 // UDP: datagrams received per second
	LossPercent   float64 // UDP: datagrams lost (the receiver's count)
	Retransmits   float64 // TCP: segments the sender retransmitted
}

// parseIperf reads the output of `iperf3 -J` (with whatever iperf3 printed
// to stderr around it). Rates are the receiver's: for UDP, the datagrams
// that arrived, not those the sender managed to write.
func parseIperf(out string, udp bool) (iperfResult, error) {
	var r iperfResult
	start, end := strings.Index(out, "{"), strings.LastIndex(out, "}")
	if start < 0 || end < start {
		return r, fmt.Errorf("iperf3: no JSON in its output: %q", clip(out, 300))
	}
	var j iperfJSON
	if err := json.Unmarshal([]byte(out[start:end+1]), &j); err != nil {
		return r, fmt.Errorf("iperf3: %v", err)
	}
	if j.Error != "" {
		return r, fmt.Errorf("iperf3: %s", j.Error)
	}
	rcv := j.End.SumReceived
	if udp && rcv == nil {
		rcv = j.End.Sum
	}
	if rcv == nil || rcv.Seconds <= 0 {
		return r, errors.New("iperf3: no receiver summary in its output")
	}
	r.BitsPerSecond = rcv.BitsPerSecond
	if udp {
		r.PacketsPerSec = (rcv.Packets - rcv.LostPackets) / rcv.Seconds
		r.LossPercent = rcv.LostPercent
	} else if j.End.SumSent != nil {
		r.Retransmits = j.End.SumSent.Retransmits
	}
	return r, nil
}

// lookupResult is Figure 12: ns per lookup by direction ("4to6", "6to4")
// and table size (entries), every run of `go test -count N`.
type lookupResult map[string]map[int][]float64

var benchLine = regexp.MustCompile(`^BenchmarkTableLookup/(4to6|6to4)/(\w+?)(?:-\d+)?\s+\d+\s+([0-9.]+) ns/op`)

// parseLookupBench reads the output of
// `go test -bench 'TableLookup$' ./translator/`: lines such as
// "BenchmarkTableLookup/4to6/1k-2  213231066  5.616 ns/op  0 B/op ...".
func parseLookupBench(out string) (lookupResult, error) {
	res := lookupResult{}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		m := benchLine.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		n, err := parseSize(m[2])
		if err != nil {
			return nil, err
		}
		ns, err := strconv.ParseFloat(m[3], 64)
		if err != nil {
			return nil, fmt.Errorf("go test: %q: %v", sc.Text(), err)
		}
		if res[m[1]] == nil {
			res[m[1]] = map[int][]float64{}
		}
		res[m[1]][n] = append(res[m[1]][n], ns)
	}
	if len(res) == 0 {
		return nil, errors.New("go test: no BenchmarkTableLookup result in its output")
	}
	return res, nil
}

// Sizes returns the table sizes measured, smallest first.
func (l lookupResult) Sizes() []int {
	seen := map[int]bool{}
	var s []int
	for _, bySize := range l {
		for n := range bySize {
			if !seen[n] {
				seen[n] = true
				s = append(s, n)
			}
		}
	}
	sort.Ints(s)
	return s
}

// parseSize reads a benchmark's table size: "1k", "10k", "1M", "500".
func parseSize(s string) (int, error) {
	mult := 1
	switch {
	case strings.HasSuffix(s, "k"):
		mult, s = 1000, strings.TrimSuffix(s, "k")
	case strings.HasSuffix(s, "M"):
		mult, s = 1_000_000, strings.TrimSuffix(s, "M")
	}
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("table size %q: want a count such as 1k, 10k or 1M", s)
	}
	return n * mult, nil
}

// linkStats is what `ip -s -j link show` reports of one link.
type linkStats struct {
	Name  string `json:"ifname"`
	Stats struct {
		RX struct {
			Dropped uint64 `json:"dropped"`
			Errors  uint64 `json:"errors"`
		} `json:"rx"`
		TX struct {
			Dropped uint64 `json:"dropped"`
			Errors  uint64 `json:"errors"`
		} `json:"tx"`
	} `json:"stats64"`
}

// parseLinkDrops sums the packets dropped (received or sent, errors
// included) on every link but the loopback, from `ip -s -j link show`.
func parseLinkDrops(out string) (map[string]uint64, error) {
	var links []linkStats
	if err := json.Unmarshal([]byte(out), &links); err != nil {
		return nil, fmt.Errorf("ip -s -j link: %v", err)
	}
	m := map[string]uint64{}
	for _, l := range links {
		if l.Name == "lo" {
			continue
		}
		m[l.Name] = l.Stats.RX.Dropped + l.Stats.RX.Errors + l.Stats.TX.Dropped + l.Stats.TX.Errors
	}
	return m, nil
}

func clip(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}
