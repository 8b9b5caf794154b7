package control

import (
	"bufio"
	"encoding/json"
	"net"
	"reflect"
	"testing"
	"time"
)

// TestControlMaxConns: with maxConns connections open (idle ones, which
// hold their slot until requestTimeout), the next is answered with a
// refusal and closed; once one ends, a new one is served.
func TestControlMaxConns(t *testing.T) {
	_, _, path := newTestServer(t)
	var idle []net.Conn
	for range maxConns {
		c, err := net.Dial("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		idle = append(idle, c)
	}
	defer func() {
		for _, c := range idle {
			c.Close()
		}
	}()
	// The server accepts in order: once a status call on a 17th connection
	// is refused, the 16 hold every slot.
	got := refusableCall(t, path)
	want := []map[string]any{{"ok": false, "error": "too many control connections (16 at once); try again when one has ended"}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("connection %d: %v\nwant %v", maxConns+1, got, want)
	}

	// Through Call, as map646 status uses it: the refusal arrives even
	// when the server closes before the request is written.
	for range 20 {
		r, err := Call(path, Request{Command: "status"}, 5*time.Second, nil)
		if err != nil || r.OK == nil || *r.OK || r.Error != want[0]["error"] {
			t.Fatalf("Call on connection %d: %+v, %v", maxConns+1, r, err)
		}
	}

	idle[0].Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := refusableCall(t, path)
		if len(got) == 1 && got[0]["ok"] == true {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a connection closed, but a new one is still refused: %v", got)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// refusableCall is rawCall of a status request that goes on when the
// server closed the connection before the request was written (a refused
// connection): the answer is read all the same.
func refusableCall(t *testing.T, path string) []map[string]any {
	t.Helper()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	c.Write([]byte(`{"command":"status"}` + "\n")) // may fail: see above
	var out []map[string]any
	sc := bufio.NewScanner(c)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("answer %q: %v", sc.Text(), err)
		}
		out = append(out, m)
	}
	return out
}
