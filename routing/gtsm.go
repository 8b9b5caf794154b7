package routing

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strconv"

	"golang.org/x/sys/unix"
)

// GTSM (RFC 5082) on the listener.
//
// GoBGP applies a neighbor's TTL security to the session's own socket,
// and to an accepted one only once it has handed the connection to the
// neighbor's FSM: whatever arrived before, such as an OPEN sent in the
// first segment after the handshake, is read even with a TTL below 255
// (TestTTLSecurity saw GoBGP answer it). The kernel checks the minimum TTL
// of a listening socket against every SYN, and the accepted socket
// inherits it, so with the minimum set there a peer that is not directly
// connected cannot even complete the handshake. The listener serves every
// neighbor, though: it gets minimum TTL 255 only when every neighbor has
// TTL security (listenerMinTTL), and 0 (no check) otherwise.
//
// GoBGP keeps its listeners to itself, so the speaker finds them among the
// process's file descriptors: TCP sockets in the listening state bound to
// the speaker's port.

// listenerMinTTL is the minimum TTL the listener should demand.
func listenerMinTTL(neighbors []Neighbor) int {
	if len(neighbors) == 0 {
		return 0
	}
	for _, n := range neighbors {
		if !n.TTLSecurity {
			return 0
		}
	}
	return 255
}

// setListenerMinTTL sets IP_MINTTL (IPv4) or IPV6_MINHOPCOUNT (IPv6) to
// ttl on the process's TCP listening sockets bound to port and one of
// addrs, and returns how many it set.
func setListenerMinTTL(addrs []netip.Addr, port, ttl int) (int, error) {
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return 0, fmt.Errorf("routing: GTSM on the listener: %w", err)
	}
	n := 0
	var errs []error
	for _, e := range fds {
		fd, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		bound, ok := tcpListener(fd)
		if !ok || int(bound.Port()) != port || !slices.Contains(addrs, bound.Addr()) {
			continue
		}
		level, opt := unix.IPPROTO_IP, unix.IP_MINTTL
		if bound.Addr().Is6() {
			level, opt = unix.IPPROTO_IPV6, unix.IPV6_MINHOPCOUNT
		}
		if err := unix.SetsockoptInt(fd, level, opt, ttl); err != nil {
			errs = append(errs, fmt.Errorf("routing: GTSM on the listener (fd %d): %w", fd, err))
			continue
		}
		n++
	}
	return n, errors.Join(errs...)
}

// tcpListener reports whether fd is a listening TCP socket, and the
// address it is bound to. A descriptor closed meanwhile by another
// goroutine, or reused, fails one of the checks or is another listener
// of the process, which is GoBGP's anyway.
func tcpListener(fd int) (netip.AddrPort, bool) {
	if v, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ACCEPTCONN); err != nil || v != 1 {
		return netip.AddrPort{}, false
	}
	if v, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_PROTOCOL); err != nil || v != unix.IPPROTO_TCP {
		return netip.AddrPort{}, false
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return netip.AddrPort{}, false
	}
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(a.Addr), uint16(a.Port)), true
	case *unix.SockaddrInet6:
		return netip.AddrPortFrom(netip.AddrFrom16(a.Addr), uint16(a.Port)), true
	}
	return netip.AddrPort{}, false
}

// applyListenerGTSM gives the listener the minimum TTL the neighbors
// allow (listenerMinTTL). A failure is logged: the sessions' own sockets
// still have GoBGP's GTSM.
func (s *Speaker) applyListenerGTSM(cfg Config) {
	if cfg.ListenPort == -1 {
		return
	}
	port := cfg.ListenPort
	if port == 0 {
		port = 179
	}
	ttl := listenerMinTTL(cfg.Neighbors)
	n, err := setListenerMinTTL(cfg.ListenAddresses, port, ttl)
	switch {
	case err != nil:
		s.log.Warn("cannot set the minimum TTL of the BGP listener; GTSM checks only the packets after the OPEN", "err", err)
	case n != len(cfg.ListenAddresses):
		s.log.Warn("BGP listener sockets not found for GTSM", "found", n, "want", len(cfg.ListenAddresses))
	default:
		s.log.Debug("BGP listener minimum TTL set", "ttl", ttl, "sockets", n)
	}
}
