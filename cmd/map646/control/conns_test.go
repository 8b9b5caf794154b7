package control

import (
	"net"
	"reflect"
	"testing"
	"time"
)

// TestControlMaxConns: with MaxConns connections open (idle ones, which
// hold their slot until requestTimeout), the next is answered with a
// refusal and closed; once one ends, a new one is served.
func TestControlMaxConns(t *testing.T) {
	_, _, path := newTestServer(t)
	var idle []net.Conn
	for range MaxConns {
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
	got := rawCall(t, path, `{"command":"status"}`+"\n")
	want := []map[string]any{{"ok": false, "error": "too many control connections (16 at once); try again when one has ended"}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("connection %d: %v\nwant %v", MaxConns+1, got, want)
	}

	idle[0].Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := rawCall(t, path, `{"command":"status"}`+"\n")
		if len(got) == 1 && got[0]["ok"] == true {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a connection closed, but a new one is still refused: %v", got)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
