package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"

	"golang.org/x/sys/unix"

	"github.com/map646/map646/lab/netlab"
)

// sighting is what a sniffer saw of a probe on a node's tun device.
type sighting uint8

const (
	sawRequest         sighting = iota + 1 // IPv4 echo request routed into the device
	sawTranslated                          // IPv6 echo request written by map646
	sawReply                               // IPv6 echo reply routed into the device
	sawReplyTranslated                     // IPv4 echo reply written by map646
)

// With the kernel fast path a packet it translates never reaches the
// device's tap on the way in (the program runs at the device's egress,
// before the tap, and puts the translation on the device's ingress, where
// the tap sees it): only the translations are seen. A translation on a
// node's device proves that node carried the packet as well as the
// original does, so either counts.

// Segment is a TCP segment with SYN set seen on a node's device (the
// flows scenario uses it to learn which node carries a connection).
type Segment struct {
	Node             string
	IPv6             bool
	SrcPort, DstPort uint16
	ACK              bool // SYN-ACK
}

// Sniffer watches a node's tun device with an AF_PACKET socket opened in
// the node's namespace: packets the kernel routes into the device (to
// map646) and those map646 writes (to the kernel) both pass it. A kernel
// filter keeps only ICMP, ICMPv6 and TCP SYNs, so a bulk transfer costs
// it nothing.
type Sniffer struct {
	Node string
	f    *os.File
	done chan struct{}
}

// Sniff starts a sniffer on dev in ns that reports the probes of p (may be
// nil) to p and the TCP SYNs to syns (may be nil; never blocks: a full
// channel drops them). It stops at t's cleanup or Close.
func Sniff(t netlab.TB, ns *netlab.NS, node, dev string, p *Prober, syns chan<- Segment) *Sniffer {
	t.Helper()
	s := &Sniffer{Node: node, done: make(chan struct{})}
	err := ns.Do(func() error {
		ifi, err := net.InterfaceByName(dev)
		if err != nil {
			return err
		}
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ALL)))
		if err != nil {
			return fmt.Errorf("AF_PACKET socket: %w", err)
		}
		prog := unix.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]}
		if err := unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &prog); err != nil {
			unix.Close(fd)
			return fmt.Errorf("attach filter: %w", err)
		}
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifi.Index}); err != nil {
			unix.Close(fd)
			return fmt.Errorf("bind to %s: %w", dev, err)
		}
		// Non-blocking, so the runtime's poller serves it and Close
		// interrupts a pending read.
		s.f = os.NewFile(uintptr(fd), "packet:"+dev)
		return nil
	})
	if err != nil {
		t.Fatalf("failover: sniffer on %s in %s: %v", dev, ns.Role, err)
	}
	go s.run(p, syns)
	t.Cleanup(s.Close)
	return s
}

// Close stops the sniffer; it is safe to call twice.
func (s *Sniffer) Close() {
	s.f.Close()
	<-s.done
}

func (s *Sniffer) run(p *Prober, syns chan<- Segment) {
	defer close(s.done)
	buf := make([]byte, 2048)
	for {
		n, err := s.f.Read(buf)
		if err != nil {
			if errors.Is(err, os.ErrClosed) {
				return
			}
			continue // ENETDOWN while a link flaps: keep reading
		}
		s.handle(buf[:n], p, syns)
	}
}

func (s *Sniffer) handle(b []byte, p *Prober, syns chan<- Segment) {
	var l4 []byte
	var proto byte
	v6 := false
	switch {
	case len(b) >= 20 && b[0]>>4 == 4:
		ihl := int(b[0]&0xf) * 4
		if ihl < 20 || len(b) < ihl || binary.BigEndian.Uint16(b[6:])&0x1fff != 0 {
			return // not a first fragment: no transport header
		}
		proto, l4 = b[9], b[ihl:]
	case len(b) >= 40 && b[0]>>4 == 6:
		proto, l4, v6 = b[6], b[40:], true
	default:
		return
	}
	switch {
	case p != nil && (proto == 1 || proto == 58):
		kinds := map[byte]sighting{8: sawRequest, 0: sawReplyTranslated}
		if v6 {
			kinds = map[byte]sighting{128: sawTranslated, 129: sawReply}
		}
		for typ, kind := range kinds {
			if seq, ok := p.parse(l4, typ); ok {
				p.sighted(seq, s.Node, kind)
			}
		}
	case syns != nil && proto == 6 && len(l4) >= 20 && l4[13]&0x02 != 0:
		seg := Segment{Node: s.Node, IPv6: v6, SrcPort: binary.BigEndian.Uint16(l4), DstPort: binary.BigEndian.Uint16(l4[2:]), ACK: l4[13]&0x10 != 0}
		select {
		case syns <- seg:
		default:
		}
	}
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// filter is a classic BPF program that accepts ICMP, ICMPv6 and TCP
// segments with SYN set (IPv6 without extension headers), and nothing
// else. On a tun device, an AF_PACKET SOCK_DGRAM socket's filter sees the
// packet from its IP header on, in both directions.
var filter = []unix.SockFilter{
	/* 0 */ {Code: 0x30, K: 0}, //                  ldb [0]
	/* 1 */ {Code: 0x54, K: 0xf0}, //               and #0xf0
	/* 2 */ {Code: 0x15, Jt: 1, Jf: 0, K: 0x40}, // jeq #0x40, 4, 3
	/* 3 */ {Code: 0x15, Jt: 6, Jf: 12, K: 0x60}, // jeq #0x60, 10, drop
	/* 4 */ {Code: 0x30, K: 9}, //                  ldb [9]: protocol
	/* 5 */ {Code: 0x15, Jt: 9, Jf: 0, K: 1}, //     jeq #1 (ICMP), accept, 6
	/* 6 */ {Code: 0x15, Jt: 0, Jf: 9, K: 6}, //     jeq #6 (TCP), 7, drop
	/* 7 */ {Code: 0xb1, K: 0}, //                  ldxb 4*([0]&0xf): header length
	/* 8 */ {Code: 0x50, K: 13}, //                 ldb [x+13]: TCP flags
	/* 9 */ {Code: 0x45, Jt: 5, Jf: 6, K: 0x02}, //  jset #SYN, accept, drop
	/* 10 */ {Code: 0x30, K: 6}, //                 ldb [6]: next header
	/* 11 */ {Code: 0x15, Jt: 3, Jf: 0, K: 58}, //  jeq #58 (ICMPv6), accept, 12
	/* 12 */ {Code: 0x15, Jt: 0, Jf: 3, K: 6}, //   jeq #6 (TCP), 13, drop
	/* 13 */ {Code: 0x30, K: 53}, //                ldb [53]: TCP flags
	/* 14 */ {Code: 0x45, Jt: 0, Jf: 1, K: 0x02}, // jset #SYN, accept, drop
	/* 15 */ {Code: 0x06, K: 0xffff}, //            accept
	/* 16 */ {Code: 0x06, K: 0}, //                 drop
}
