package health

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"os"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// ICMPv6 echo (RFC 4443 §4.1, §4.2).
const (
	icmp6EchoRequest = 128
	icmp6EchoReply   = 129
	echoHdrLen       = 8 // type, code, checksum, identifier, sequence
	echoPayloadLen   = 16
)

// socket kinds an echo6 may use.
const (
	sockAuto = iota // a ping socket, else a raw one
	sockPing        // tests: the ping socket only
	sockRaw         // tests: the raw socket only
)

// echo6 sends echo requests to one address. Each probe opens its own
// socket, so a late reply to an earlier probe has nowhere to go but a
// closed socket, and sequence numbers tell the rest apart.
type echo6 struct {
	dst  netip.Addr
	id   uint16 // the identifier on a raw socket (a ping socket sets its own)
	seq  atomic.Uint32
	sock int
}

func newEcho6(dst netip.Addr) *echo6 {
	var b [2]byte
	rand.Read(b[:])
	return &echo6{dst: dst, id: binary.BigEndian.Uint16(b[:])}
}

// probe sends one echo request and waits for its reply until ctx ends.
func (e *echo6) probe(ctx context.Context) error {
	conn, raw, err := e.open()
	if err != nil {
		return err
	}
	defer conn.Close()
	if d, ok := ctx.Deadline(); ok {
		conn.SetDeadline(d)
	}
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	seq := uint16(e.seq.Add(1))
	var msg [echoHdrLen + echoPayloadLen]byte
	msg[0] = icmp6EchoRequest
	binary.BigEndian.PutUint16(msg[4:], e.id)
	binary.BigEndian.PutUint16(msg[6:], seq)
	rand.Read(msg[echoHdrLen:])
	// The kernel computes the checksum on both kinds of socket.
	var to net.Addr = &net.IPAddr{IP: e.dst.AsSlice(), Zone: e.dst.Zone()}
	if !raw {
		to = &net.UDPAddr{IP: e.dst.AsSlice(), Zone: e.dst.Zone()}
	}
	if _, err := conn.WriteTo(msg[:], to); err != nil {
		return fmt.Errorf("echo request to %s: %w", e.dst, err)
	}
	buf := make([]byte, 1500)
	for {
		n, from, err := conn.ReadFrom(buf)
		if err != nil {
			if isTimeout(err) {
				return fmt.Errorf("no echo reply from %s (seq %d) within the timeout", e.dst, seq)
			}
			return fmt.Errorf("echo reply from %s: %w", e.dst, err)
		}
		r := buf[:n]
		// Replies of others (another check's, ping's) are skipped: a raw
		// socket sees every echo reply; a ping socket only its own
		// identifier, which the kernel sets and checks.
		if len(r) != len(msg) || r[0] != icmp6EchoReply || r[1] != 0 ||
			binary.BigEndian.Uint16(r[6:]) != seq || !bytes.Equal(r[echoHdrLen:], msg[echoHdrLen:]) ||
			(raw && binary.BigEndian.Uint16(r[4:]) != e.id) || !sameAddr(from, e.dst) {
			continue
		}
		return nil
	}
}

func sameAddr(a net.Addr, want netip.Addr) bool {
	var ip net.IP
	switch a := a.(type) {
	case *net.IPAddr:
		ip = a.IP
	case *net.UDPAddr:
		ip = a.IP
	}
	got, ok := netip.AddrFromSlice(ip)
	return ok && got == want.WithZone("")
}

func isTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.Is(err, os.ErrDeadlineExceeded) || (errors.As(err, &t) && t.Timeout())
}

// open returns a socket for the probe and whether it is raw.
func (e *echo6) open() (net.PacketConn, bool, error) {
	if e.sock != sockRaw {
		c, err := openPing6()
		if err == nil || e.sock == sockPing {
			return c, false, err
		}
		// EACCES: our group is outside net.ipv4.ping_group_range (which
		// governs ICMPv6 ping sockets too); try the raw socket.
	}
	c, err := openRaw6()
	return c, true, err
}

// openPing6 opens an unprivileged ICMPv6 datagram socket.
func openPing6() (net.PacketConn, error) {
	fd, err := unix.Socket(unix.AF_INET6, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.IPPROTO_ICMPV6)
	if err != nil {
		return nil, fmt.Errorf("icmp6 ping socket: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrInet6{}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("icmp6 ping socket: bind: %w", err)
	}
	f := os.NewFile(uintptr(fd), "icmp6-ping")
	defer f.Close() // FilePacketConn holds a duplicate
	c, err := net.FilePacketConn(f)
	if err != nil {
		return nil, fmt.Errorf("icmp6 ping socket: %w", err)
	}
	return c, nil
}

// openRaw6 opens a raw ICMPv6 socket that receives echo replies only.
func openRaw6() (net.PacketConn, error) {
	c, err := net.ListenPacket("ip6:ipv6-icmp", "::")
	if err != nil {
		return nil, fmt.Errorf("icmp6 raw socket (needs root or CAP_NET_RAW, or a ping_group_range that includes us): %w", err)
	}
	rc, err := c.(*net.IPConn).SyscallConn()
	if err != nil {
		c.Close()
		return nil, err
	}
	// Bit set = blocked (ICMP6_FILTER_SETBLOCKALL, then SETPASS).
	var f unix.ICMPv6Filter
	for i := range f.Data {
		f.Data[i] = math.MaxUint32
	}
	f.Data[icmp6EchoReply>>5] &^= 1 << (icmp6EchoReply & 31)
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptICMPv6Filter(int(fd), unix.IPPROTO_ICMPV6, unix.ICMPV6_FILTER, &f)
	}); err != nil || serr != nil {
		c.Close()
		return nil, fmt.Errorf("icmp6 raw socket: filter: %w", errors.Join(err, serr))
	}
	return c, nil
}
