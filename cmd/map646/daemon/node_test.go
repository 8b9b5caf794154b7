package daemon

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/map646/map646/routing"
)

var t0 = time.Date(2026, 5, 4, 12, 0, 0, 0, time.UTC)

func pfx(s ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(s))
	for i, p := range s {
		out[i] = netip.MustParsePrefix(p)
	}
	return out
}

var testPlan = Plan{
	IPv4:        pfx("198.51.100.0/28", "203.0.113.0/24"),
	Pseudo:      netip.MustParsePrefix("64:ff9b::/96"),
	MED:         10,
	DrainMED:    1000,
	Communities: []uint32{65001<<16 | 100},
}

// logRecorder collects the JSON log records of a node.
type logRecorder struct{ buf bytes.Buffer }

func (l *logRecorder) logger() *slog.Logger { return slog.New(slog.NewJSONHandler(&l.buf, nil)) }

// transitions returns the "node state" records as from>to.
func (l *logRecorder) transitions(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, line := range strings.Split(strings.TrimSpace(l.buf.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if m["msg"] == "node state" {
			if m["cause"] == "" {
				t.Errorf("transition without a cause: %s", line)
			}
			out = append(out, m["from"].(string)+">"+m["state"].(string))
		}
	}
	return out
}

func prefixesOf(as []routing.Announcement) []string {
	var out []string
	for _, a := range as {
		out = append(out, a.Prefix.String())
	}
	return out
}

// TestNodeTransitions drives the node through every transition and checks
// the state, the announcements and the log after each step, and the
// transitions counted for the metrics at the end.
func TestNodeTransitions(t *testing.T) {
	type step struct {
		name  string
		do    func(n *Node) error
		state State
		want  []string // prefixes of Desired
		err   string   // substring of the step's error
	}
	all := []string{"198.51.100.0/28", "203.0.113.0/24", "64:ff9b::/96"}
	v4 := []string{"198.51.100.0/28", "203.0.113.0/24"}
	health := func(h4, h6 bool) func(*Node) error {
		return func(n *Node) error { n.Health(h4, h6, "check x down"); return nil }
	}
	for _, tc := range []struct {
		name  string
		steps []step
		log   []string
	}{
		{"start, fail, recover, drain, undrain", []step{
			{"healthy before ready", health(true, true), Starting, nil, ""},
			{"ready", func(n *Node) error { n.Ready("data plane ready"); return nil }, Serving, all, ""},
			{"ipv6 side down", health(true, false), Failed, v4, ""},
			{"both down", health(false, false), Failed, nil, ""},
			{"recovered", health(true, true), Serving, all, ""},
			{"drain", func(n *Node) error { return n.StartDrain("operator") }, Draining, all, ""},
			{"second drain", func(n *Node) error { return n.StartDrain("operator") }, Draining, all, "a drain is in progress"},
			{"health while draining", health(false, true), Draining, []string{"64:ff9b::/96"}, ""},
			{"health back", health(true, true), Draining, all, ""},
			{"undrain while draining", func(n *Node) error { return n.Undrain("operator") }, Draining, all, "not drained"},
			{"withdrawn", func(n *Node) error { n.DrainWithdrawn(); return nil }, Draining, nil, ""},
			{"done", func(n *Node) error { n.DrainDone("drain complete"); return nil }, Drained, nil, ""},
			{"health while drained", health(false, false), Drained, nil, ""},
			{"drain when drained", func(n *Node) error { return n.StartDrain("operator") }, Drained, nil, "already drained since 2026-05-04T12:00:00Z"},
			{"undrain with checks down", func(n *Node) error { return n.Undrain("operator") }, Failed, nil, ""},
			{"recovered again", health(true, true), Serving, all, ""},
			{"undrain when serving", func(n *Node) error { return n.Undrain("operator") }, Serving, all, "not drained: serving since"},
		}, []string{">starting", "starting>serving", "serving>failed", "failed>serving", "serving>draining",
			"draining>drained", "drained>failed", "failed>serving"}},
		{"ready before healthy", []step{
			{"ready", func(n *Node) error { n.Ready("data plane ready"); return nil }, Starting, nil, ""},
			{"one side", health(true, false), Starting, nil, ""},
			{"both", health(true, true), Serving, all, ""},
		}, []string{">starting", "starting>serving"}},
		{"restored drained", []step{
			{"restore", func(n *Node) error { n.RestoreDrained(t0); return nil }, Drained, nil, ""},
			{"ready and healthy", func(n *Node) error { n.Ready("x"); n.Health(true, true, ""); return nil }, Drained, nil, ""},
			{"undrain", func(n *Node) error { return n.Undrain("operator") }, Serving, all, ""},
		}, []string{">starting", "starting>drained", "drained>serving"}},
		{"undrain before ready", []step{
			{"restore", func(n *Node) error { n.RestoreDrained(t0); return nil }, Drained, nil, ""},
			{"undrain", func(n *Node) error { return n.Undrain("operator") }, Starting, nil, ""},
			{"ready", func(n *Node) error { n.Ready("x"); n.Health(true, true, ""); return nil }, Serving, all, ""},
		}, []string{">starting", "starting>drained", "drained>starting", "starting>serving"}},
		{"drain while starting", []step{
			{"drain", func(n *Node) error { return n.StartDrain("operator") }, Draining, nil, ""},
			{"ready and healthy", func(n *Node) error { n.Ready("x"); n.Health(true, true, ""); return nil }, Draining, all, ""},
		}, []string{">starting", "starting>draining"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var rec logRecorder
			n := NewNode(rec.logger(), func() time.Time { return t0 })
			for _, s := range tc.steps {
				err := s.do(n)
				switch {
				case s.err == "" && err != nil:
					t.Errorf("%s: unexpected error %v", s.name, err)
				case s.err != "" && (err == nil || !strings.Contains(err.Error(), s.err)):
					t.Errorf("%s: error %v, want one containing %q", s.name, err, s.err)
				}
				if st, _, _ := n.State(); st != s.state {
					t.Errorf("%s: state %s, want %s", s.name, st, s.state)
				}
				if got := prefixesOf(n.Desired(testPlan)); !reflect.DeepEqual(got, s.want) {
					t.Errorf("%s: announces %q, want %q", s.name, got, s.want)
				}
			}
			if got := rec.transitions(t); !reflect.DeepEqual(got, tc.log) {
				t.Errorf("logged transitions %q, want %q", got, tc.log)
			}
			// Entered (the metrics' counters) counts each logged
			// transition into its state, the start left out.
			want := map[string]uint64{}
			for _, tr := range tc.log[1:] {
				want[tr[strings.Index(tr, ">")+1:]]++
			}
			for _, st := range States {
				if got := n.Entered(st); got != want[st.String()] {
					t.Errorf("Entered(%s) = %d, want %d (%q)", st, got, want[st.String()], tc.log)
				}
			}
		})
	}
}

// TestNodeAttributes: serving announces MED and the communities; draining
// DrainMED and GRACEFUL_SHUTDOWN added (once, even if configured).
func TestNodeAttributes(t *testing.T) {
	n := NewNode(slog.New(slog.DiscardHandler), func() time.Time { return t0 })
	n.Ready("x")
	n.Health(true, true, "")
	for _, a := range n.Desired(testPlan) {
		if a.MED != 10 || !reflect.DeepEqual(a.Communities, []uint32{65001<<16 | 100}) {
			t.Errorf("serving: %v", a)
		}
	}
	if err := n.StartDrain("operator"); err != nil {
		t.Fatal(err)
	}
	p := testPlan
	p.Communities = []uint32{65001<<16 | 100, routing.GracefulShutdown}
	for _, plan := range []Plan{testPlan, p} {
		got := n.Desired(plan)
		if len(got) != 3 {
			t.Fatalf("draining: %v", got)
		}
		for _, a := range got {
			if a.MED != 1000 || !reflect.DeepEqual(a.Communities, []uint32{65001<<16 | 100, routing.GracefulShutdown}) {
				t.Errorf("draining: %v", a)
			}
		}
	}
}

func TestIPv4Announced(t *testing.T) {
	for _, tc := range []struct {
		mapped, aggregates, want []string
	}{
		{[]string{"198.51.100.16/28", "64:ff9b::/96"}, nil, []string{"198.51.100.16/28"}},
		// The aggregate replaces what it covers; an unused one is not announced.
		{[]string{"198.51.100.16/28", "198.51.100.64/27", "203.0.113.5/32"},
			[]string{"198.51.100.0/24", "192.0.2.0/24"},
			[]string{"198.51.100.0/24", "203.0.113.5/32"}},
		// A mapped prefix wider than the aggregate is announced itself.
		{[]string{"198.51.100.0/23"}, []string{"198.51.100.0/24"}, []string{"198.51.100.0/23"}},
	} {
		got := ipv4Announced(pfx(tc.mapped...), pfx(tc.aggregates...))
		if !reflect.DeepEqual(got, pfx(tc.want...)) {
			t.Errorf("ipv4Announced(%q, %q) = %v, want %q", tc.mapped, tc.aggregates, got, tc.want)
		}
	}
}

// A node without a mapping table (the etcd source before its first table)
// stays starting and announces nothing, whatever its data plane and
// checks; its first table lets it serve, and nothing takes it away again.
func TestNodeNoTable(t *testing.T) {
	var l logRecorder
	n := NewNode(l.logger(), func() time.Time { return t0 })
	n.NoTable("waiting for the mapping table")
	n.Health(true, true, "every check up")
	n.Ready("data plane ready")
	if st, _, cause := n.State(); st != Starting || cause != "waiting for the mapping table" {
		t.Errorf("ready and healthy without a table: %s (%s), want starting waiting for the table", st, cause)
	}
	if d := n.Desired(testPlan); len(d) != 0 {
		t.Errorf("announces %v without a table", prefixesOf(d))
	}
	n.TableReady("mapping table applied")
	if st, _, _ := n.State(); st != Serving {
		t.Errorf("with its table: %s, want serving", st)
	}
	if d := n.Desired(testPlan); len(d) != 3 {
		t.Errorf("with its table announces %v, want the plan's 3 prefixes", prefixesOf(d))
	}
	n.DataPlaneDown("device gone")
	n.Ready("data plane back")
	if st, _, _ := n.State(); st != Serving {
		t.Errorf("data plane back: %s, want serving (the table stays)", st)
	}
}
