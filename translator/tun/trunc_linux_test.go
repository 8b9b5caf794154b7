package tun

import (
	"testing"

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
		// Replies of 28+200 and 28+56 bytes, into buffers of 120.
		if err := dev.WriteBatch(0, []Packet{echo(200), echo(56)}); err != nil {
			t.Fatal(err)
		}
		small := []Packet{{Buf: make([]byte, 120)}}
		for {
			n, err := dev.ReadBatch(0, small)
			if err != nil {
				t.Fatal(err)
			}
			if b := small[0].Bytes(); n == 1 && b[0]>>4 == 4 && b[9] == pt.ProtoICMP {
				if p, err := pt.Check(b); err != nil || p.ICMP.Type != 0 || len(p.Payload) != 56 {
					t.Fatalf("first echo reply read: %v, %d bytes", err, len(b))
				}
				break
			}
		}
		if dev.Dropped() == 0 {
			t.Fatal("the large reply was not counted as dropped")
		}
	})
}
