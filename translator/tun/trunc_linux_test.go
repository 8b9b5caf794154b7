package tun

import (
	"bytes"
	"testing"
	"time"

	"github.com/map646/map646/lab/poll"
	pt "github.com/map646/map646/translator/packettest"
)

// TestTruncatedReadIsDropped: a tun device silently cuts a packet larger
// than the read buffer; ReadBatch drops and counts it instead of returning
// a packet whose headers promise bytes that are not there.
func TestTruncatedReadIsDropped(t *testing.T) {
	forKinds(t, func(t *testing.T, k kind, dev Device) {
		addrs(t, dev)
		echo := func(size int) Packet {
			return packet(pt.ICMP4(pt.IPv4{TTL: 64, Src: peerAddr4, Dst: devAddr4}, 8, 0, pt.Rest16(7, uint16(size)), payload(size)), 0, false)
		}
		// Replies of 28+200 and 28+56 bytes, into buffers of 120, read
		// on every queue: the kernel may answer on any of them.
		if err := dev.WriteBatch(0, []Packet{echo(200), echo(56)}); err != nil {
			t.Fatal(err)
		}
		replies := make(chan []byte, 16)
		for q := range dev.Queues() {
			go func() {
				small := []Packet{{Buf: make([]byte, 120)}}
				for {
					n, err := dev.ReadBatch(q, small)
					if err != nil {
						return // closed at the end of the test
					}
					if b := small[0].Bytes(); n == 1 && b[0]>>4 == 4 && b[9] == pt.ProtoICMP {
						replies <- bytes.Clone(b)
					}
				}
			}()
		}
		select {
		case b := <-replies:
			if p, err := pt.Check(b); err != nil || p.ICMP.Type != 0 || len(p.Payload) != 56 {
				t.Fatalf("first echo reply read: %v, %d bytes", err, len(b))
			}
		case <-time.After(5 * time.Second):
			t.Fatal("no echo reply read on any queue within 5 s")
		}
		// The large reply may be on another queue, read a little later.
		if !poll.Until(5*time.Second, time.Millisecond, func() bool { return dev.Dropped() != 0 }) {
			t.Fatal("the large reply was not counted as dropped within 5 s")
		}
		select {
		case b := <-replies:
			t.Fatalf("a second echo reply was read, %d bytes: the large one got through", len(b))
		default:
		}
	})
}
