package netlab

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
)

// DatagramSize is the size of a numbered datagram.
const DatagramSize = 208

// Datagram is the numbered datagram seq of the labs' UDP streams: the
// number, then 200 bytes that depend on it, so that a receiver can tell a
// datagram lost, duplicated or damaged on the way (CheckDatagram).
func Datagram(seq uint64) []byte {
	b := make([]byte, 8, DatagramSize)
	binary.BigEndian.PutUint64(b, seq)
	h := sha256.Sum256(b)
	for len(b) < DatagramSize {
		b = append(b, h[:]...)
	}
	return b[:DatagramSize]
}

// CheckDatagram reports whether b is an intact numbered datagram.
func CheckDatagram(b []byte) bool {
	return len(b) == DatagramSize && bytes.Equal(b, Datagram(binary.BigEndian.Uint64(b)))
}
