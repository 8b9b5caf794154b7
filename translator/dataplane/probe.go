package dataplane

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/map646/map646/translator"
)

// The data plane's self-check, the health package's Prober.
//
// Probe proves, in this order:
//
//  1. the device exists, is administratively up and has its carrier (a
//     process holds its queues);
//  2. every worker runs, and none has been inside one batch (translating or
//     writing) for longer than StuckAfter;
//  3. a packet makes the node's own round trip: a UDP datagram with TTL 1
//     from a local socket to the first mapped IPv4 address. The kernel's
//     route (checked first: it must lead into the device) brings it to the
//     device; a worker reads it; the translator parses it, finds the
//     destination in the mapping table and maps the source (translate4
//     checks the TTL only after both, so a table that lost the mapping or a
//     source it refuses fails the probe), then answers Time Exceeded from
//     translator.ipv4_address; the worker writes that to the device, and
//     the kernel accepts it (rp_filter, accept_local) and hands it to the
//     socket's error queue (IP_RECVERR), where Probe matches the datagram
//     and the sender.
//
// What it does not prove: the IPv6 output path (a 4->6 packet with TTL 1 is
// never emitted as IPv6), the 6->4 direction, and, with several queues, any
// queue but the one the kernel puts the probe on (2 covers them all). That
// queue is not fixed (the kernel picks it by the flow's hash or the
// sending CPU), and nothing here depends on which it is: the worker that
// reads the probe writes the answer to its own queue, and the kernel
// delivers it to the socket from any queue.
//
// Nothing leaves the node: the socket is bound to the device
// (SO_BINDTODEVICE), so the datagram can go nowhere else even if the routes
// change between the check and the send, and TTL 1 makes the translator
// answer it instead of forwarding it.
//
// The probe's packets are real packets and are counted like any other (one
// 4->6 icmp-error verdict with reason ttl-expired, one ICMP error sent),
// and once more in Stats.Probes, which a drain subtracts: with a check
// every 100 ms the probes alone are 10 packets/s. They carry a random
// secret made at New; a worker recognizes it only on a packet that earns an
// ICMP error and exempts that error from the rate limit, so a flood of errors cannot make the node fail its own check. The
// secret never leaves the node, so it cannot be used to get around the
// limit from outside.
//
// With icmp_errors = false the translator drops the probe silently; Probe
// then waits for the worker's ttl-expired drop counter to move instead,
// which proves the way in (route, device, worker, table) but not the way
// back.

// ProbeTimeout bounds a probe whose context has no deadline.
const ProbeTimeout = time.Second

// DefaultStuckAfter is how long a worker may stay inside one batch before
// Probe calls it stuck. A batch of 64 packets takes microseconds; a second
// means a blocked write or a bug.
const DefaultStuckAfter = time.Second

// probePort is the destination port of the probe: the first traceroute
// port, the most harmless one should the datagram ever be seen elsewhere.
const probePort = 33434

// probeState is what the probe shares with the workers.
type probeState struct {
	secret [16]byte  // the payload of every probe datagram
	born   time.Time // the heartbeats' clock starts here (monotonic)
	// stuckAfter: see DefaultStuckAfter. Tests shorten it.
	stuckAfter time.Duration
}

func newProbeState() probeState {
	p := probeState{born: time.Now(), stuckAfter: DefaultStuckAfter}
	rand.Read(p.secret[:]) // never fails (crypto/rand panics rather)
	return p
}

// SetBatchHook makes every worker call hook at the start of each batch,
// before it translates anything; nil removes it. It is a test hook, for
// tests outside this package that need a worker stuck in a batch (a hook
// that blocks): nothing in map646 sets it. StuckAfter still applies.
func (d *DataPlane) SetBatchHook(hook func(q int)) {
	if hook == nil {
		d.batchHook.Store(nil)
		return
	}
	d.batchHook.Store(&hook)
}

// SetStuckAfter changes how long a worker may stay in one batch before
// Probe calls it stuck (DefaultStuckAfter). Call it before Run.
func (d *DataPlane) SetStuckAfter(after time.Duration) { d.probe.stuckAfter = after }

// now is the heartbeat clock: nanoseconds since born.
func (p *probeState) now() int64 { return int64(time.Since(p.born)) }

// is reports whether b is a probe datagram: IPv4 without options, UDP, and
// exactly the secret as payload. It runs only on packets that earn an ICMP
// error.
func (p *probeState) is(b []byte) bool {
	const n = 20 + 8 + len(p.secret)
	return len(b) == n && b[0] == 0x45 && b[9] == 17 && bytes.Equal(b[28:], p.secret[:])
}

// echoLen is the length of the kernel's ICMPv6 error about the fast
// path's probe: IPv6, ICMPv6, then the probe as the program translated it
// (IPv6 without extension headers, UDP, the secret).
const echoLen = 40 + 8 + 40 + 8 + len(probeState{}.secret)

// isEcho reports whether b, of echoLen bytes, is an ICMPv6 error (type 1
// to 4) quoting a probe datagram.
func (p *probeState) isEcho(b []byte) bool {
	return b[0]>>4 == 6 && b[6] == 58 && b[40] >= 1 && b[40] <= 4 && b[48]>>4 == 6 && b[54] == 17 &&
		bytes.Equal(b[96:], p.secret[:])
}

// heartbeat is a worker's sign of life.
type heartbeat struct {
	start atomic.Int64 // when the current or last batch began (probeState.now)
	alive atomic.Bool  // the worker's goroutine is in run
}

// Probe checks that the data plane translates (see above). It is safe to
// call concurrently with traffic, with Swap and with itself. Call it from a
// goroutine of the device's network namespace (sockets and netlink requests
// are made in the caller's).
func (d *DataPlane) Probe(ctx context.Context) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, ProbeTimeout)
		defer cancel()
	}
	link, err := d.deviceUp()
	if err != nil {
		return err
	}
	if err := d.workersAlive(); err != nil {
		return err
	}
	if err := d.roundTrip(ctx, link); err != nil {
		// A worker that got stuck meanwhile is the better explanation of
		// a probe that never came back.
		if werr := d.workersAlive(); werr != nil {
			return fmt.Errorf("%w (%v)", werr, err)
		}
		return err
	}
	return nil
}

// deviceUp checks the device's flags and operational state.
func (d *DataPlane) deviceUp() (netlink.Link, error) {
	name := d.Device().Name()
	l, err := netlink.LinkByName(name)
	if err != nil {
		return nil, fmt.Errorf("dataplane probe: device %s: %w", name, err)
	}
	a := l.Attrs()
	if a.Flags&net.FlagUp == 0 {
		return nil, fmt.Errorf("dataplane probe: device %s is administratively down (ip link set %s up)", name, name)
	}
	switch a.OperState {
	case netlink.OperDown, netlink.OperLowerLayerDown, netlink.OperNotPresent, netlink.OperDormant:
		return nil, fmt.Errorf("dataplane probe: device %s is operationally %s", name, a.OperState)
	}
	if a.Flags&net.FlagRunning == 0 {
		return nil, fmt.Errorf("dataplane probe: device %s has no carrier (no process holds its queues)", name)
	}
	return l, nil
}

// Alive reports whether every worker runs and none has been inside one
// batch for longer than StuckAfter: Probe's second step alone. It reads
// the workers' heartbeats and sends nothing, so a watchdog may call it at
// any rate (map646 run ties systemd's WATCHDOG=1 to it).
func (d *DataPlane) Alive() error { return d.workersAlive() }

// workersAlive checks every worker's heartbeat.
func (d *DataPlane) workersAlive() error {
	now := d.probe.now()
	var errs []string
	for _, w := range d.workers {
		if !w.hb.alive.Load() {
			errs = append(errs, fmt.Sprintf("the worker of queue %d is not running", w.q))
			continue
		}
		// cur before start: see batch.
		if w.pub.cur.Load() == idle {
			continue // waiting for packets
		}
		if in := time.Duration(now - w.hb.start.Load()); in > d.probe.stuckAfter {
			errs = append(errs, fmt.Sprintf("the worker of queue %d has been stuck in one batch for %v", w.q, in.Round(time.Millisecond)))
		}
	}
	if len(errs) > 0 {
		return errors.New("dataplane probe: " + strings.Join(errs, "; "))
	}
	return nil
}

// roundTrip sends the probe datagram and waits for its answer.
func (d *DataPlane) roundTrip(ctx context.Context, link netlink.Link) error {
	tr := d.Translator()
	if tr.Table().Len() == 0 {
		return errors.New("dataplane probe: the mapping table is empty: no mapped address to probe")
	}
	var dst netip.Addr
	for _, m := range tr.Table().All() {
		dst = m.IPv4.Addr()
		break
	}
	name := link.Attrs().Name

	// The kernel's route must lead into the device: that is how the
	// node's traffic gets there.
	routes, err := netlink.RouteGet(dst.AsSlice())
	if err != nil {
		return fmt.Errorf("dataplane probe: no route to the mapped address %s (the routes into %s are missing): %w", dst, name, err)
	}
	if len(routes) == 0 || routes[0].LinkIndex != link.Attrs().Index {
		via := "nowhere"
		if len(routes) > 0 {
			via = linkName(routes[0].LinkIndex)
		}
		return fmt.Errorf("dataplane probe: the route to the mapped address %s leads to %s, not into %s", dst, via, name)
	}
	src, err := d.probeSource(tr, routes[0].Src, dst)
	if err != nil {
		return err
	}
	icmp := tr.Config().ICMPErrors
	before := d.ttlDrops()

	conn, err := d.dialProbe(ctx, name, src, dst, 1)
	if err != nil {
		return err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	if _, err := conn.Write(d.probe.secret[:]); err != nil {
		return fmt.Errorf("dataplane probe: send %s -> %s: %w", src, dst, err)
	}
	if !icmp {
		err = d.waitTTLDrop(ctx, before, src, dst)
	} else {
		err = d.readAnswer(conn, src, dst, tr.Config().IPv4Addr)
	}
	if err == nil {
		// The tun path works: now the fast path, which fails alone.
		d.checkFastPath(ctx, name, src, dst)
	}
	return err
}

// probeSource picks the probe's source address: the kernel's choice for
// the route, else translator.ipv4_address when it is one of the node's.
// The translator must answer a probe from it with Time Exceeded (or, with
// ICMP errors off, drop it for its TTL): with the well-known prefix it
// refuses a non-global source, and in the datacenter policy a mapped one.
func (d *DataPlane) probeSource(tr *translator.Translator, kernel net.IP, dst netip.Addr) (netip.Addr, error) {
	o := translator.NewOut()
	var why []string
	try := func(src netip.Addr) bool {
		res := tr.Translate(probePacket(src, dst, d.probe.secret[:]), o)
		if res.Reason == translator.ReasonTTLExpired {
			return true
		}
		why = append(why, fmt.Sprintf("from %s: %v %s", src, res.Verdict, res.Reason))
		return false
	}
	first, ok := netip.AddrFromSlice(kernel)
	first = first.Unmap()
	if ok && try(first) {
		return first, nil
	}
	// The fallback is looked up only when needed: one netlink request less
	// per probe.
	if own := tr.Config().IPv4Addr; own != first && isLocal4(own) && try(own) {
		return own, nil
	}
	if len(why) == 0 {
		return netip.Addr{}, fmt.Errorf("dataplane probe: the node has no IPv4 address to send a probe to %s from (give %s one, or make translator.ipv4_address local)", dst, d.Device().Name())
	}
	return netip.Addr{}, fmt.Errorf("dataplane probe: the translator would not answer a probe to %s (%s); give the node an IPv4 source it translates",
		dst, strings.Join(why, ", "))
}

// isLocal4 reports whether a is an IPv4 address of this node.
func isLocal4(a netip.Addr) bool {
	if !a.Is4() {
		return false
	}
	rs, err := netlink.RouteGet(a.AsSlice())
	return err == nil && len(rs) > 0 && rs[0].Type == unix.RTN_LOCAL
}

// probePacket is the datagram the kernel will send, for the translator's
// verdict in advance (the UDP checksum is left zero: the translator looks
// at the TTL before it).
func probePacket(src, dst netip.Addr, payload []byte) []byte {
	b := make([]byte, 28+len(payload))
	b[0] = 0x45
	binary.BigEndian.PutUint16(b[2:], uint16(len(b)))
	b[8], b[9] = 1, 17 // TTL, UDP
	s, t := src.As4(), dst.As4()
	copy(b[12:], s[:])
	copy(b[16:], t[:])
	var sum uint32
	for i := 0; i < 20; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	binary.BigEndian.PutUint16(b[10:], ^uint16(sum))
	binary.BigEndian.PutUint16(b[20:], 33434) // any source port: the kernel picks one
	binary.BigEndian.PutUint16(b[22:], probePort)
	binary.BigEndian.PutUint16(b[24:], uint16(8+len(payload)))
	copy(b[28:], payload)
	return b
}

// dialProbe opens the probe's UDP socket: bound to the device and to src,
// TTL ttl, ICMP errors queued (IP_RECVERR), connected to dst.
func (d *DataPlane) dialProbe(ctx context.Context, dev string, src, dst netip.Addr, ttl int) (*net.UDPConn, error) {
	dialer := net.Dialer{
		LocalAddr: net.UDPAddrFromAddrPort(netip.AddrPortFrom(src, 0)),
		Control: func(_, _ string, c syscall.RawConn) error {
			var serr error
			err := c.Control(func(fd uintptr) {
				serr = errors.Join(
					unix.SetsockoptString(int(fd), unix.SOL_SOCKET, unix.SO_BINDTODEVICE, dev),
					unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_TTL, ttl),
					unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_RECVERR, 1))
			})
			return errors.Join(err, serr)
		},
	}
	c, err := dialer.DialContext(ctx, "udp4", netip.AddrPortFrom(dst, probePort).String())
	if err != nil {
		return nil, fmt.Errorf("dataplane probe: socket from %s to %s on %s: %w", src, dst, dev, err)
	}
	return c.(*net.UDPConn), nil
}

// readAnswer waits for the ICMP error about the probe on conn's error
// queue and checks it is the translator's Time Exceeded.
func (d *DataPlane) readAnswer(conn *net.UDPConn, src, dst, own netip.Addr) error {
	rc, err := conn.SyscallConn()
	if err != nil {
		return fmt.Errorf("dataplane probe: %w", err)
	}
	var (
		buf  [64]byte
		oob  [128]byte
		n    int
		oobn int
		rerr error
	)
	err = rc.Read(func(fd uintptr) bool {
		n, oobn, _, _, rerr = unix.Recvmsg(int(fd), buf[:], oob[:], unix.MSG_ERRQUEUE)
		return rerr != unix.EAGAIN
	})
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, net.ErrClosed) || errors.Is(err, syscall.ETIMEDOUT) || isTimeout(err) {
			return fmt.Errorf("dataplane probe: no answer to a probe %s -> %s within its timeout (translator, device write or rp_filter/accept_local on %s)", src, dst, d.Device().Name())
		}
		return fmt.Errorf("dataplane probe: %w", err)
	}
	if rerr != nil {
		return fmt.Errorf("dataplane probe: read the error queue: %w", rerr)
	}
	ee, from, err := parseRecvErr(oob[:oobn])
	if err != nil {
		return err
	}
	if !bytes.Equal(buf[:n], d.probe.secret[:]) {
		return fmt.Errorf("dataplane probe: an ICMP error about a datagram that is not the probe (%d bytes)", n)
	}
	if ee.Origin != unix.SO_EE_ORIGIN_ICMP {
		return fmt.Errorf("dataplane probe: probe %s -> %s failed locally: %v", src, dst, syscall.Errno(ee.Errno))
	}
	if ee.Type != 11 || ee.Code != 0 {
		return fmt.Errorf("dataplane probe: probe %s -> %s answered with ICMP type %d code %d from %s, not Time Exceeded", src, dst, ee.Type, ee.Code, from)
	}
	// The sender is the translator: own is its address when the probe was
	// sent, and a reload may have changed it since.
	if now := d.Translator().Config().IPv4Addr; from != own && from != now {
		return fmt.Errorf("dataplane probe: Time Exceeded for the probe came from %s, not from translator.ipv4_address %s", from, now)
	}
	return nil
}

func isTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}

// parseRecvErr finds the IP_RECVERR message in oob: the extended error and
// the address of the node that sent the ICMP error.
func parseRecvErr(oob []byte) (unix.SockExtendedErr, netip.Addr, error) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return unix.SockExtendedErr{}, netip.Addr{}, fmt.Errorf("dataplane probe: error queue: %w", err)
	}
	for _, m := range msgs {
		if m.Header.Level != unix.IPPROTO_IP || m.Header.Type != unix.IP_RECVERR || len(m.Data) < sizeofSockExtendedErr {
			continue
		}
		var ee unix.SockExtendedErr
		ee.Errno = binary.NativeEndian.Uint32(m.Data[0:])
		ee.Origin, ee.Type, ee.Code = m.Data[4], m.Data[5], m.Data[6]
		ee.Info = binary.NativeEndian.Uint32(m.Data[8:])
		ee.Data = binary.NativeEndian.Uint32(m.Data[12:])
		var from netip.Addr
		// The offender (SO_EE_OFFENDER) follows: a sockaddr_in.
		if off := m.Data[sizeofSockExtendedErr:]; len(off) >= 8 && binary.NativeEndian.Uint16(off) == unix.AF_INET {
			from = netip.AddrFrom4([4]byte(off[4:8]))
		}
		return ee, from, nil
	}
	return unix.SockExtendedErr{}, netip.Addr{}, errors.New("dataplane probe: the error queue held no IP_RECVERR message")
}

// ttlDrops counts the 4->6 packets dropped for their TTL.
func (d *DataPlane) ttlDrops() uint64 {
	s := d.Stats()
	return s.Packets[Dir4to6][translator.Drop][translator.ReasonTTLExpired]
}

// waitTTLDrop waits until a worker has dropped a packet for its TTL (with
// ICMP errors off, the only trace the probe leaves). Another packet with
// TTL 1 arriving at the same moment would pass for it.
func (d *DataPlane) waitTTLDrop(ctx context.Context, before uint64, src, dst netip.Addr) error {
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for d.ttlDrops() == before {
		select {
		case <-ctx.Done():
			return fmt.Errorf("dataplane probe: no worker handled a probe %s -> %s within its timeout (icmp_errors is off: only the way in is checked)", src, dst)
		case <-tick.C:
		}
	}
	return nil
}

// linkName names the link of index i, or gives the index.
func linkName(i int) string {
	if l, err := netlink.LinkByIndex(i); err == nil {
		return l.Attrs().Name
	}
	return fmt.Sprintf("link index %d", i)
}

// sizeofSockExtendedErr is sizeof(struct sock_extended_err) (x/sys/unix
// has the type but not its size).
const sizeofSockExtendedErr = 16
