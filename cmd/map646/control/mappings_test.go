package control

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// tableHandler serves the mapping commands over n generated rows.
type tableHandler struct {
	fakeHandler
	n int
}

func (h *tableHandler) Lookup(addr string) (LookupResult, error) {
	if addr == "bad" {
		return LookupResult{}, fmt.Errorf("lookup: %q is not an address", addr)
	}
	return LookupResult{Address: addr, Mapping: &MappingRow{ID: 3, IPv4: addr, IPv6: "2001:db8::3", Packets4to6: 9}, Origin: "m.txt:4", Note: "mapped"}, nil
}

func (h *tableHandler) Mappings(prefix string, row func(MappingRow) error) (int, error) {
	for i := range h.n {
		if err := row(MappingRow{ID: i, IPv4: fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255), IPv6: "2001:db8::1", Packets4to6: uint64(i)}); err != nil {
			return i, err
		}
	}
	return h.n, nil
}

func (h *tableHandler) ChangeMapping(_ context.Context, del bool, ipv4, ipv6 string) (string, error) {
	if del {
		return "", fmt.Errorf("refused: no mapping %s %s to delete", ipv4, ipv6)
	}
	return "add " + ipv4 + " " + ipv6, nil
}

// TestMappingCommands: a streamed listing arrives whole and in order, a
// lookup and a change answer, a refusal keeps its reason, and a daemon
// whose handler does not serve the table says so.
func TestMappingCommands(t *testing.T) {
	path := filepath.Join(t.TempDir(), "map646.sock")
	ln, err := Listen(path, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	h := &tableHandler{n: 200_000}
	s := NewServer(ln, h, slog.New(slog.DiscardHandler))
	defer s.Close()

	next := 0
	r, err := CallStream(path, Request{Command: "mappings"}, time.Minute, func(row MappingRow) {
		if row.ID != next || row.Packets4to6 != uint64(next) {
			t.Fatalf("row %d: %+v", next, row)
		}
		next++
	})
	if err != nil || !*r.OK || r.Message != "200000 mappings" || next != h.n {
		t.Fatalf("mappings: %d rows, %+v, %v", next, r, err)
	}
	r, err = Call(path, Request{Command: "lookup", Address: "198.51.100.3"}, time.Minute, nil)
	if err != nil || !*r.OK || r.Lookup == nil || r.Lookup.Origin != "m.txt:4" || r.Lookup.Mapping.Packets4to6 != 9 {
		t.Errorf("lookup: %+v %v", r, err)
	}
	r, err = Call(path, Request{Command: "lookup", Address: "bad"}, time.Minute, nil)
	if err != nil || *r.OK || !strings.Contains(r.Error, "not an address") {
		t.Errorf("bad lookup: %+v %v", r, err)
	}
	r, err = Call(path, Request{Command: "mapping-add", IPv4: "198.51.100.3", IPv6: "2001:db8::3"}, time.Minute, nil)
	if err != nil || !*r.OK || r.Message != "add 198.51.100.3 2001:db8::3" {
		t.Errorf("mapping-add: %+v %v", r, err)
	}
	r, err = Call(path, Request{Command: "mapping-del", IPv4: "198.51.100.3", IPv6: "2001:db8::3"}, time.Minute, nil)
	if err != nil || *r.OK || r.Error != "refused: no mapping 198.51.100.3 2001:db8::3 to delete" {
		t.Errorf("mapping-del: %+v %v", r, err)
	}

	_, _, plain := newTestServer(t) // its handler serves no table
	r, err = Call(plain, Request{Command: "lookup", Address: "198.51.100.3"}, time.Minute, nil)
	if err != nil || *r.OK || !strings.Contains(r.Error, "does not serve the mapping table's commands") {
		t.Errorf("lookup on a handler without the table: %+v %v", r, err)
	}
}
