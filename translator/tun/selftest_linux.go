package tun

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"sync/atomic"
	"time"

	"github.com/map646/map646/translator/internal/checksum"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// The offload self-test. Linux has shipped bugs in exactly the paths the
// offload device depends on (6.6.44 refused tun GSO writes whose last
// segment is short; UDP GSO has been corrupted in others), and a node that
// trusts a broken offload corrupts or loses traffic without a sign. So
// before the device serves, SelfTest sends one packet per offload through
// a loop that stays on the node and checks what comes back, byte for byte.
//
// The loop: a host route sends selfTestAddr4 (and selfTestAddr6) into the
// device itself. A packet written to the device from that address to that
// address is received by the kernel, routed (forwarded) back into the
// device, and read: it crosses the write path and the read path of the
// offload, as translated traffic does, and cannot go anywhere else. The
// source equals the destination so that a strict reverse-path filter
// finds the same route. The forwarded copy differs from the written one
// only in the TTL (Hop Limit), one less, and the IPv4 header checksum.
//
// The tests, in order (each only if the offload was enabled):
//
//	csum  a TCP packet with a partial checksum (NEEDS_CSUM): it must come
//	      back ordinary with the checksum completed (by the read)
//	tso4  an IPv4 TCP super-packet of 3 segments and a short one
//	tso6  the same over IPv6
//	uso4  an IPv4 UDP super-packet (UDP_L4), the same shape
//	uso6  the same over IPv6
//
// each must come back as the same super-packet, segment size included.
// An ordinary UDP packet goes first, per IP version: if it does not come
// back, the loop does not work here (forwarding off, a firewall) and that
// version's offloads are not tested, and left as they are: an untested
// offload is not a failed one.
//
// A failed offload is switched off (TUNSETOFFLOAD without it; see
// switchOff for those that go with it), so the kernel hands over ordinary
// packets instead, and the data plane, which writes super-packets only
// where it read them, stops writing them too.

// Addresses of the loop: documentation addresses (RFC 5737, RFC 3849), a
// host route each, present only during the test.
var (
	selfTestAddr4 = netip.MustParseAddr("203.0.113.254")
	selfTestAddr6 = netip.MustParseAddr("2001:db8:646:ffff::1")
)

// selfTestWait bounds the wait for each packet of the self-test. The loop
// takes microseconds; a packet that is not back after this is lost.
const selfTestWait = time.Second

// selfTestPort is the source and destination port of the test packets,
// which tells them from the kernel's own packets on the device.
const selfTestPort = 64646

var offloadFlags = map[string]int{
	OffloadCsum: unix.TUN_F_CSUM,
	OffloadTSO4: unix.TUN_F_TSO4,
	OffloadTSO6: unix.TUN_F_TSO6,
	OffloadUSO4: unix.TUN_F_USO4,
	OffloadUSO6: unix.TUN_F_USO6,
}

// selfTestHook, when set, sees every packet the self-test reads back for
// an offload's test, before it is checked: a test corrupts it to make the
// offload fail.
var selfTestHook atomic.Pointer[func(offload string, pkt []byte)]

// SetSelfTestHook makes SelfTest call hook on each packet it reads back
// for an offload's test, before checking it; nil removes it. It is a test
// hook (a test that needs a failing offload corrupts the packet): nothing
// in map646 sets it.
func SetSelfTestHook(hook func(offload string, pkt []byte)) {
	if hook == nil {
		selfTestHook.Store(nil)
		return
	}
	selfTestHook.Store(&hook)
}

// OffloadStates reports every offload of OffloadNames, enabled or not.
func (d *offloadDevice) OffloadStates() []OffloadState {
	on := int(d.enabled.Load())
	states := make([]OffloadState, len(OffloadNames))
	for i, name := range OffloadNames {
		states[i] = OffloadState{name, on&offloadFlags[name] != 0}
	}
	return states
}

// SelfTest tests the enabled offloads (see above), switches off those that
// fail and returns them. An IP version whose loop cannot be made or does
// not work is reported in skipped, its offloads left as they were. err
// says the test could not finish (the device is gone, a loop route could
// not be removed, TUNSETOFFLOAD failed); the offloads that failed up to then
// are switched off and returned all the same. Call it once, before the
// device serves (no other reader may be reading its queues), from a
// goroutine in the device's network namespace.
func (d *offloadDevice) SelfTest() (failed []OffloadFailure, skipped []string, err error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	defer d.drain()
	link, err := netlink.LinkByName(d.name)
	if err != nil {
		return nil, nil, fmt.Errorf("tun: self-test: %w", err)
	}
	lt := &loopTest{d: d, batch: NewBatch(8)}
	for _, v := range []struct {
		addr     netip.Addr
		sysctl   string
		offloads []string
	}{
		{selfTestAddr4, "/proc/sys/net/ipv4/conf/" + d.name + "/forwarding", []string{OffloadCsum, OffloadTSO4, OffloadUSO4}},
		{selfTestAddr6, "/proc/sys/net/ipv6/conf/all/forwarding", []string{OffloadCsum, OffloadTSO6, OffloadUSO6}},
	} {
		if b, err := os.ReadFile(v.sysctl); err == nil && strings.TrimSpace(string(b)) == "0" {
			skipped = append(skipped, fmt.Sprintf("IPv%d: forwarding is off (%s), so the loop cannot work", ipVersion(v.addr), v.sysctl))
			continue
		}
		remove, err := addLoopRoute(link, v.addr)
		if err != nil {
			// IPv6 disabled on the device, say: the other version may work.
			skipped = append(skipped, fmt.Sprintf("IPv%d: %v", ipVersion(v.addr), err))
			continue
		}
		lost, fails := lt.run(v.addr, v.offloads)
		// The failed offloads go before anything else can end the test: an
		// offload found broken must not stay on because the route could
		// not be removed.
		fails, offErr := d.switchOff(fails)
		failed = append(failed, fails...)
		if err := errors.Join(offErr, remove()); err != nil {
			return failed, skipped, err
		}
		if lost != nil {
			skipped = append(skipped, fmt.Sprintf("IPv%d: %v", ipVersion(v.addr), lost))
		}
	}
	return failed, skipped, nil
}

func ipVersion(a netip.Addr) int {
	if a.Is4() {
		return 4
	}
	return 6
}

// addLoopRoute routes addr (a host route) into the device and returns the
// function that removes the route again.
func addLoopRoute(link netlink.Link, addr netip.Addr) (remove func() error, err error) {
	r := &netlink.Route{
		LinkIndex: link.Attrs().Index,
		Dst:       &net.IPNet{IP: addr.AsSlice(), Mask: net.CIDRMask(addr.BitLen(), addr.BitLen())},
		Scope:     netlink.SCOPE_LINK,
		Protocol:  246, // dataplane.RouteProtocol: ip route show proto 246
	}
	if err := netlink.RouteAdd(r); err != nil {
		return nil, fmt.Errorf("tun: self-test: route %s into %s: %w", addr, link.Attrs().Name, err)
	}
	return func() error {
		// ESRCH: someone else removed it already, which is all we want.
		if err := netlink.RouteDel(r); err != nil && !errors.Is(err, unix.ESRCH) {
			return fmt.Errorf("tun: self-test: remove the route %s: %w", addr, err)
		}
		return nil
	}, nil
}

// switchOff disables the failed offloads, and those that cannot stay on
// without them, which it adds to the failures it returns: the others
// build on csum, and the kernel takes UDP segmentation for both IP
// versions or neither (TUNSETOFFLOAD refuses USO4 without USO6). If the
// kernel refuses the smaller set, every offload goes: a failed offload
// must not stay on.
func (d *offloadDevice) switchOff(fails []OffloadFailure) ([]OffloadFailure, error) {
	if len(fails) == 0 {
		return nil, nil
	}
	was := int(d.enabled.Load())
	on := was
	for _, f := range fails {
		on &^= offloadFlags[f.Offload]
	}
	const uso = unix.TUN_F_USO4 | unix.TUN_F_USO6
	if on&uso != uso {
		on &^= uso
	}
	if on&unix.TUN_F_CSUM == 0 {
		on = 0
	}
	q := d.queues[0]
	q.mu.RLock()
	defer q.mu.RUnlock()
	if q.fd < 0 {
		return fails, fmt.Errorf("tun: self-test: %w", os.ErrClosed)
	}
	if err := unix.IoctlSetInt(q.fd, unix.TUNSETOFFLOAD, on); err != nil {
		on = 0
		if err := unix.IoctlSetInt(q.fd, unix.TUNSETOFFLOAD, on); err != nil {
			return fails, sysErr(fmt.Sprintf("TUNSETOFFLOAD 0 on %s", d.name), err)
		}
	}
	d.enabled.Store(int64(on))
	failed := map[string]bool{}
	for _, f := range fails {
		failed[f.Offload] = true
	}
	for _, name := range OffloadNames {
		if was&offloadFlags[name] != 0 && on&offloadFlags[name] == 0 && !failed[name] {
			fails = append(fails, OffloadFailure{name, fmt.Errorf("switched off with %s, which failed (offloads left on: %s)", fails[0].Offload, offloadString(on))})
		}
	}
	return fails, nil
}

func offloadString(on int) string {
	var names []string
	for _, name := range OffloadNames {
		if on&offloadFlags[name] != 0 {
			names = append(names, name)
		}
	}
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, " ")
}

// drain discards what the self-test left on the queues (an ICMP redirect
// the kernel sent for the looped packets, a late copy), so that the data
// plane does not start with it.
func (d *offloadDevice) drain() {
	batch := NewBatch(1)
	for _, q := range d.queues {
		q.mu.RLock()
		for q.fd >= 0 {
			if ok, e := d.tryRead(q, &batch[0]); !ok && e != 0 {
				break
			}
		}
		q.r.iov[1] = unix.Iovec{}
		q.mu.RUnlock()
	}
}

// loopTest sends test packets around the loop and reads them back.
type loopTest struct {
	d          *offloadDevice
	batch      []Packet
	csumTested bool
}

// run tests the offloads of one IP version whose loop goes through addr.
// lost says the loop did not bring back an ordinary packet: nothing was
// tested.
func (lt *loopTest) run(addr netip.Addr, offloads []string) (lost error, fails []OffloadFailure) {
	plain := testPacket(addr, unix.IPPROTO_UDP, 200, 0)
	if _, err := lt.roundTrip("", plain); err != nil {
		return fmt.Errorf("an ordinary packet did not come back through the loop (%v): is a firewall in the way?", err), nil
	}
	on := int(lt.d.enabled.Load())
	// The segment size keeps each segment within the MTU: the kernel
	// refuses to forward a super-packet whose segments would not fit.
	seg := min(1000, lt.d.mtu-100)
	for _, name := range offloads {
		if on&offloadFlags[name] == 0 {
			continue
		}
		var p Packet
		switch name {
		case OffloadCsum:
			if lt.csumTested {
				continue // once, on the first IP version whose loop works
			}
			lt.csumTested = true
			p = testPacket(addr, unix.IPPROTO_TCP, 300, 0)
		case OffloadTSO4, OffloadTSO6:
			p = testPacket(addr, unix.IPPROTO_TCP, 3*seg+seg/3, seg)
		case OffloadUSO4, OffloadUSO6:
			p = testPacket(addr, unix.IPPROTO_UDP, 3*seg+seg/3, seg)
		}
		if err := lt.check(name, p); err != nil {
			fails = append(fails, OffloadFailure{name, err})
			if name == OffloadCsum {
				break // the others build on it and go with it
			}
		}
	}
	return nil, fails
}

// check sends p, an offload's test packet, around the loop and compares
// what comes back with what must.
func (lt *loopTest) check(name string, p Packet) error {
	got, err := lt.roundTrip(name, p)
	if err != nil {
		return err
	}
	want := afterLoop(p)
	switch {
	case p.GSOSize > 0 && (got.GSOSize != p.GSOSize || !got.Partial):
		return fmt.Errorf("a super-packet of %d bytes, segment size %d, came back as a packet of %d bytes with segment size %d", p.Len, p.GSOSize, got.Len, got.GSOSize)
	case p.GSOSize == 0 && (got.GSOSize != 0 || got.Partial):
		return fmt.Errorf("an ordinary packet came back as a super-packet (segment size %d, partial %v)", got.GSOSize, got.Partial)
	case !bytes.Equal(got.Bytes(), want):
		return fmt.Errorf("the packet came back changed: %s", firstDifference(got.Bytes(), want))
	}
	return nil
}

// roundTrip writes p to the device and reads until its copy comes back
// through the loop: same protocol, addresses and ports. The copy is
// returned in lt.batch's memory.
func (lt *loopTest) roundTrip(name string, p Packet) (Packet, error) {
	if err := lt.d.WriteBatch(0, []Packet{p}); err != nil {
		return Packet{}, fmt.Errorf("the kernel refused the write: %w", err)
	}
	deadline := time.Now().Add(selfTestWait)
	for {
		got, err := lt.readAny(deadline)
		if err != nil {
			return Packet{}, err
		}
		if b := got.Bytes(); sameFlow(b, p.Bytes()) {
			if h := selfTestHook.Load(); h != nil && name != "" {
				(*h)(name, b)
			}
			return got, nil
		}
	}
}

// readAny returns the next packet read from any queue, waiting until
// deadline at most.
func (lt *loopTest) readAny(deadline time.Time) (Packet, error) {
	d := lt.d
	fds := make([]unix.PollFd, 0, len(d.queues)+1)
	for {
		if d.closed.Load() {
			return Packet{}, os.ErrClosed
		}
		for _, q := range d.queues {
			p := &lt.batch[0]
			q.mu.RLock()
			ok, e := d.tryRead(q, p)
			q.mu.RUnlock()
			switch {
			case ok:
				return *p, nil
			case e == 0, e == unix.EAGAIN, e == unix.EINTR:
			default:
				return Packet{}, fmt.Errorf("read: %w", e)
			}
		}
		left := time.Until(deadline)
		if left <= 0 {
			return Packet{}, fmt.Errorf("not back within %v", selfTestWait)
		}
		fds = fds[:0]
		for _, q := range d.queues {
			fds = append(fds, unix.PollFd{Fd: int32(q.fd), Events: unix.POLLIN})
		}
		fds = append(fds, unix.PollFd{Fd: int32(d.closing), Events: unix.POLLIN})
		ts := unix.NsecToTimespec(left.Nanoseconds())
		if _, err := unix.Ppoll(fds, &ts, nil); err != nil && !errors.Is(err, unix.EINTR) {
			return Packet{}, fmt.Errorf("ppoll: %w", err)
		}
	}
}

// sameFlow reports whether b is a packet of test packet p's flow: same IP
// version, protocol, addresses and ports.
func sameFlow(b, p []byte) bool {
	if len(b) < 48 || len(p) < 48 || b[0]>>4 != p[0]>>4 {
		return false
	}
	if b[0]>>4 == 4 {
		return b[9] == p[9] && bytes.Equal(b[12:24], p[12:24])
	}
	return b[6] == p[6] && bytes.Equal(b[8:44], p[8:44])
}

// afterLoop is p as it must come back: one hop older, and with its
// checksum completed if it was partial and not a super-packet (the read
// completes it), computed here from scratch.
func afterLoop(p Packet) []byte {
	b := bytes.Clone(p.Bytes())
	l4 := 40
	if b[0]>>4 == 4 {
		l4 = 20
		b[8]--
		b[10], b[11] = 0, 0
		binary.BigEndian.PutUint16(b[10:], checksum.Finish(checksum.Sum(b[:20], 0)))
	} else {
		b[7]--
	}
	if p.Partial && p.GSOSize == 0 {
		setChecksum(b, l4)
	}
	return b
}

func firstDifference(got, want []byte) string {
	if len(got) != len(want) {
		return fmt.Sprintf("%d bytes, want %d", len(got), len(want))
	}
	for i := range got {
		if got[i] != want[i] {
			return fmt.Sprintf("byte %d of %d is %#02x, want %#02x", i, len(got), got[i], want[i])
		}
	}
	return "no difference"
}

// testPacket builds a test packet of the loop through addr: TCP or UDP
// from and to addr, port selfTestPort, with size bytes of payload. With
// seg > 0 it is a super-packet of that segment size; with seg > 0 or TCP
// its checksum is partial (the pseudo-header sum, as the kernel leaves
// it), else complete.
func testPacket(addr netip.Addr, proto uint8, size, seg int) Packet {
	ipLen, l4Len := 20, 8
	if addr.Is6() {
		ipLen = 40
	}
	if proto == unix.IPPROTO_TCP {
		l4Len = 20
	}
	total := ipLen + l4Len + size
	buf := make([]byte, Headroom+total)
	b := buf[Headroom:]
	if addr.Is4() {
		b[0] = 0x45
		binary.BigEndian.PutUint16(b[2:], uint16(total))
		binary.BigEndian.PutUint16(b[4:], 0x0646) // Identification
		b[6] = 0x40                               // DF
		b[8], b[9] = 64, proto
		a := addr.As4()
		copy(b[12:], a[:])
		copy(b[16:], a[:])
		binary.BigEndian.PutUint16(b[10:], checksum.Finish(checksum.Sum(b[:20], 0)))
	} else {
		b[0] = 0x60
		binary.BigEndian.PutUint16(b[4:], uint16(total-40))
		b[6], b[7] = proto, 64
		a := addr.As16()
		copy(b[8:], a[:])
		copy(b[24:], a[:])
	}
	t := b[ipLen:]
	binary.BigEndian.PutUint16(t[0:], selfTestPort)
	binary.BigEndian.PutUint16(t[2:], selfTestPort)
	if proto == unix.IPPROTO_TCP {
		binary.BigEndian.PutUint32(t[4:], 1) // sequence number
		binary.BigEndian.PutUint32(t[8:], 1) // acknowledgment number
		t[12] = 5 << 4                       // data offset
		t[13] = 0x10 | tcpPSH                // ACK, PSH
		binary.BigEndian.PutUint16(t[14:], 1024)
	} else {
		binary.BigEndian.PutUint16(t[4:], uint16(l4Len+size))
	}
	for i := range size {
		t[l4Len+i] = byte(i*7 + i/251) // differs from segment to segment
	}
	p := Packet{Buf: buf, Off: Headroom, Len: total, GSOSize: seg}
	csumOff := 6
	if proto == unix.IPPROTO_TCP {
		csumOff = 16
	}
	if seg > 0 || proto == unix.IPPROTO_TCP {
		binary.BigEndian.PutUint16(t[csumOff:], checksum.Fold(checksum.PseudoOf(b, proto, len(t))))
		p.Partial = true
	} else {
		setChecksum(b, ipLen)
	}
	return p
}

// setChecksum computes the TCP or UDP checksum of b, whose transport
// header starts at l4, from scratch.
func setChecksum(b []byte, l4 int) {
	proto := b[9]
	if b[0]>>4 == 6 {
		proto = b[6]
	}
	at := l4 + 6
	if proto == unix.IPPROTO_TCP {
		at = l4 + 16
	}
	b[at], b[at+1] = 0, 0
	c := checksum.Finish(checksum.Sum(b[l4:], checksum.PseudoOf(b, proto, len(b)-l4)))
	if c == 0 && proto == unix.IPPROTO_UDP {
		c = 0xffff
	}
	binary.BigEndian.PutUint16(b[at:], c)
}
