package tun

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/map646/map646/lab/labreq"
	"github.com/map646/map646/lab/poll"
	pt "github.com/map646/map646/translator/packettest"
)

var (
	devAddr4  = netip.MustParseAddr("10.99.0.1")
	peerAddr4 = netip.MustParseAddr("10.99.0.2")
	devAddr6  = netip.MustParseAddr("fd99::1")
	peerAddr6 = netip.MustParseAddr("fd99::2")
)

// addrs gives the device 10.99.0.1/24 and fd99::1/64, so that 10.99.0.2 and
// fd99::2 are routed into it.
func addrs(t *testing.T, dev Device) {
	ip(t, "addr", "add", "10.99.0.1/24", "dev", dev.Name())
	addr6(t, dev, "fd99::1/64")
}

// addr6 adds an IPv6 address and waits for its local route: the kernel
// installs that from a work queue after `ip addr add` has returned, and a
// packet that arrives before it is discarded (Ip6InAddrErrors).
func addr6(t testing.TB, dev Device, prefix string) {
	t.Helper()
	ip(t, "-6", "addr", "add", prefix, "dev", dev.Name(), "nodad")
	a := netip.MustParsePrefix(prefix).Addr().String()
	routed := poll.Until(2*time.Second, 10*time.Millisecond, func() bool {
		out, err := exec.Command("ip", "-6", "route", "show", "table", "local", a).Output()
		if err != nil {
			t.Fatal(err)
		}
		return len(bytes.TrimSpace(out)) > 0
	})
	if !routed {
		t.Fatalf("no local route for %s", a)
	}
}

// TestReadFromDevice: UDP and TCP sent by ordinary sockets through a route
// into the device are read from it, well-formed with verified checksums
// (on the offload device that proves the NEEDS_CSUM completion, since the
// kernel leaves the checksums of its own packets to the device).
func TestReadFromDevice(t *testing.T) {
	forKinds(t, func(t *testing.T, k kind, dev Device) {
		addrs(t, dev)
		ch := readAll(dev)
		n := newNetnsHandle(t)
		for _, dst := range []netip.AddrPort{netip.AddrPortFrom(peerAddr4, 9999), netip.AddrPortFrom(peerAddr6, 9999)} {
			c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(dst))
			if err != nil {
				t.Fatal(err)
			}
			for i := range 5 {
				fmt.Fprintf(c, "datagram %d to %v", i, dst)
			}
			c.Close()
			// A TCP connection attempt: its SYN goes into the device.
			n.Go(func() {
				if c, err := net.DialTimeout("tcp", netip.AddrPortFrom(dst.Addr(), 80).String(), 300*time.Millisecond); err == nil {
					c.Close()
				}
			})
		}
		want := map[string]bool{}
		for _, a := range []netip.Addr{peerAddr4, peerAddr6} {
			for i := range 5 {
				want[fmt.Sprintf("udp datagram %d to %v", i, netip.AddrPortFrom(a, 9999))] = true
			}
			want["tcp syn to "+a.String()] = true
		}
		timeout := time.After(10 * time.Second)
		for len(want) > 0 {
			select {
			case r := <-ch:
				p, err := pt.Check(r.pkt)
				if err != nil {
					t.Fatalf("packet from the device: %v\n%s", err, pt.Format(r.pkt))
				}
				if r.gso != 0 || r.partial {
					t.Errorf("small packet read with GSOSize %d, Partial %v", r.gso, r.partial)
				}
				var key string
				switch {
				case p.Proto == pt.ProtoUDP && p.Dport == 9999:
					key = "udp " + string(p.Payload)
				case p.Proto == pt.ProtoTCP && p.Dport == 80 && p.TCP.Flags&pt.SYN != 0:
					key = "tcp syn to " + p.Dst.String()
				default:
					continue // the kernel's own chatter: MLD, router solicitations
				}
				if (p.Proto == pt.ProtoUDP || p.Proto == pt.ProtoTCP) && (!p.ChecksumChecked || !p.ChecksumOK) {
					t.Errorf("%s: checksum not verified (%s)", key, p.NotChecked)
				}
				delete(want, key)
			case <-timeout:
				t.Fatalf("not read from the device: %v", want)
			}
		}
	})
}

// newNetnsHandle returns the namespace the test goroutine is in, for
// goroutines that must create sockets there.
func newNetnsHandle(t *testing.T) *netns {
	fd, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return &netns{fd}
}

// TestWriteToSockets: packets written to the device, several per batch,
// reach ordinary sockets with their payload and source intact; on the
// offload device also a UDP super-packet, and an IPv4 UDP super-packet
// translated whole to IPv6 by the translator.
func TestWriteToSockets(t *testing.T) {
	forKinds(t, func(t *testing.T, k kind, dev Device) {
		addrs(t, dev)
		addr6(t, dev, server6.String()+"/128")
		ip(t, "-6", "route", "add", "64:ff9b::/96", "dev", dev.Name())
		listen := func(a netip.Addr, port uint16) *net.UDPConn {
			c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(a, port)))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.Close() })
			return c
		}
		sock4, sock6 := listen(devAddr4, 7000), listen(devAddr6, 7000)

		var batch []Packet
		for i := range 3 {
			batch = append(batch,
				packet(pt.UDP4(pt.IPv4{TTL: 64, Src: peerAddr4, Dst: devAddr4}, 5000, 7000, fmt.Appendf(nil, "four %d", i)), 0, false),
				packet(pt.UDP6(pt.IPv6{Hop: 64, Src: peerAddr6, Dst: devAddr6}, 5000, 7000, fmt.Appendf(nil, "six %d", i)), 0, false))
		}
		if err := dev.WriteBatch(0, batch); err != nil {
			t.Fatal(err)
		}
		for i := range 3 {
			expectDatagram(t, sock4, netip.AddrPortFrom(peerAddr4, 5000), fmt.Appendf(nil, "four %d", i))
			expectDatagram(t, sock6, netip.AddrPortFrom(peerAddr6, 5000), fmt.Appendf(nil, "six %d", i))
		}

		// A super-packet: one UDP header and 5500 bytes, to be cut into
		// datagrams of 1000 bytes by the kernel.
		data := payload(5500)
		super := packet(partialize(pt.UDP6(pt.IPv6{Hop: 64, Src: peerAddr6, Dst: devAddr6}, 5001, 7000, data), 40, 6), 1000, true)
		err := dev.WriteBatch(0, []Packet{super})
		if !k.offload {
			if err == nil || !errors.Is(err, errPlainOffload) {
				t.Fatalf("plain device took a super-packet: %v", err)
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < len(data); i += 1000 {
			expectDatagram(t, sock6, netip.AddrPortFrom(peerAddr6, 5001), data[i:min(i+1000, len(data))])
		}

		// The data-plane step: an IPv4 super-packet as the device hands it
		// over, translated whole, written with the header HeaderFor builds.
		sock := listen(server6, 7001)
		tr := newTestTranslator(t, 1500)
		data = payload(4200)
		// DF: without it, datagrams above the lowest IPv6 MTU (1280) are
		// fragmented, which only the per-packet path does.
		in := partialize(pt.UDP4(pt.IPv4{TTL: 64, DF: true, Src: client4, Dst: server4}, 40000, 7001, data), 20, 6)
		o := newOut()
		res, seg, ok := tr.TranslateGSO(in, 1400, o)
		if !ok || len(o.Pkts) != 1 || seg != 1400 {
			t.Fatalf("TranslateGSO: ok %v %v %v, %d packets, segment size %d", ok, res.Verdict, res.Reason, len(o.Pkts), seg)
		}
		out := Packet{Buf: o.Pkts[0], Len: len(o.Pkts[0]), GSOSize: seg, Partial: true}
		if err := dev.WriteBatch(1, []Packet{out}); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < len(data); i += 1400 {
			expectDatagram(t, sock, netip.AddrPortFrom(client6, 40000), data[i:min(i+1400, len(data))])
		}
	})
}

func expectDatagram(t *testing.T, c *net.UDPConn, from netip.AddrPort, want []byte) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 65536)
	n, src, err := c.ReadFromUDPAddrPort(buf)
	if err != nil {
		t.Fatalf("waiting for %q from %v: %v", want, from, err)
	}
	if src.Addr().Unmap() != from.Addr() || src.Port() != from.Port() || !bytes.Equal(buf[:n], want) {
		t.Fatalf("received %d bytes from %v, want %d bytes from %v (%q...)", n, src, len(want), from, want[:min(len(want), 16)])
	}
}

// TestUDPSegmentationRead: a UDP_SEGMENT send of 12000 bytes reaches the
// offload device as one UDP_L4 super-packet where the kernel has UDP
// segmentation offload (else as ten datagrams), and Segment cuts it into
// the datagrams the kernel would have made.
func TestUDPSegmentationRead(t *testing.T) {
	forKinds(t, func(t *testing.T, k kind, dev Device) {
		addrs(t, dev)
		ch := readAll(dev)
		c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(peerAddr4, 9)))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		rc, _ := c.SyscallConn()
		var serr error
		rc.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.SOL_UDP, unix.UDP_SEGMENT, 1200) })
		if serr != nil {
			labreq.Unavailable(t, "the kernel has no UDP_SEGMENT (Linux 4.18): %v", serr)
		}
		data := payload(12000)
		if _, err := c.Write(data); err != nil {
			t.Fatal(err)
		}
		uso := false
		if o, ok := dev.(interface{ Offloads() string }); ok {
			uso = strings.Contains(o.Offloads(), "uso4")
			t.Logf("offloads: %s", o.Offloads())
		}
		var got []byte
		supers := 0
		segs := buffers(64, 1500)
		timeout := time.After(10 * time.Second)
		for len(got) < len(data) {
			select {
			case r := <-ch:
				if r.pkt[0]>>4 != 4 {
					continue
				}
				n, err := Segment(Packet{Buf: r.pkt, Len: len(r.pkt), GSOSize: r.gso, Partial: r.partial}, segs)
				if err != nil {
					t.Fatal(err)
				}
				if r.gso > 0 {
					supers++
					if r.gso != 1200 || n != 10 {
						t.Errorf("super-packet: GSOSize %d, %d segments; want 1200, 10", r.gso, n)
					}
				}
				for _, s := range segs[:n] {
					p, err := pt.Check(s)
					if err != nil || !p.ChecksumChecked || p.UDPLen != 1208 {
						t.Fatalf("datagram: %v (checked %v, UDP length %d)", err, p != nil && p.ChecksumChecked, p.UDPLen)
					}
					got = append(got, p.Payload...)
				}
			case <-timeout:
				t.Fatalf("read %d of %d bytes", len(got), len(data))
			}
		}
		if !bytes.Equal(got, data) {
			t.Fatal("datagrams do not add up to what was sent")
		}
		if want := 0; k.offload && uso {
			want = 1
			if supers != want {
				t.Fatalf("%d super-packets, want %d", supers, want)
			}
		} else if supers != 0 {
			t.Fatalf("%d super-packets without UDP segmentation offload", supers)
		}
	})
}

// TestNameTaken: a name any link already has is refused with
// ErrNameTaken, by both back-ends, and the existing device is not touched.
func TestNameTaken(t *testing.T) {
	forKinds(t, func(t *testing.T, _ kind, dev Device) {
		for _, k := range kinds {
			for _, name := range []string{dev.Name(), "lo"} {
				d, err := k.open(name)
				if err == nil {
					d.Close()
					t.Fatalf("%s: opened %q twice", k.name, name)
				}
				want := fmt.Sprintf("tun: device name taken: a link named %q exists already", name)
				if !errors.Is(err, ErrNameTaken) || err.Error() != want {
					t.Errorf("%s: %q: %v, want %s", k.name, name, err, want)
				}
			}
		}
		if _, err := net.InterfaceByName(dev.Name()); err != nil {
			t.Fatalf("the first device is gone: %v", err)
		}
	})
}

// TestClose: Close wakes a blocked reader with os.ErrClosed, is safe twice,
// makes writes fail, and removes the link.
func TestClose(t *testing.T) {
	forKinds(t, func(t *testing.T, _ kind, dev Device) {
		errc := make(chan error, 1)
		go func() {
			batch := NewBatch(1)
			for {
				// The kernel's own packets (MLD, router solicitations)
				// may be read first.
				if _, err := dev.ReadBatch(0, batch); err != nil {
					errc <- err
					return
				}
			}
		}()
		time.Sleep(50 * time.Millisecond) // let the reader block
		if err := dev.Close(); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-errc:
			if !errors.Is(err, os.ErrClosed) {
				t.Fatalf("blocked ReadBatch after Close: %v, want os.ErrClosed", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Close did not wake the blocked reader")
		}
		if err := dev.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
		if _, err := dev.ReadBatch(0, NewBatch(1)); !errors.Is(err, os.ErrClosed) {
			t.Fatalf("ReadBatch after Close: %v", err)
		}
		pkt := packet(pt.UDP4(pt.IPv4{TTL: 64, Src: peerAddr4, Dst: devAddr4}, 1, 2, nil), 0, false)
		if err := dev.WriteBatch(0, []Packet{pkt}); !errors.Is(err, os.ErrClosed) {
			t.Fatalf("WriteBatch after Close: %v", err)
		}
		if _, err := net.InterfaceByName(dev.Name()); err == nil {
			t.Fatal("the link is still there after Close")
		}
	})
}

// TestNotPermitted: without CAP_NET_ADMIN the error says so. The test
// drops the effective uid of one locked thread only, which never runs
// anything else.
func TestNotPermitted(t *testing.T) {
	newNetns(t)
	errc := make(chan [2]error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
		if _, _, e := unix.RawSyscall(unix.SYS_SETRESUID, ^uintptr(0), 65534, ^uintptr(0)); e != 0 {
			errc <- [2]error{e, e}
			return
		}
		var errs [2]error
		for i, k := range kinds {
			if d, err := k.open(testName()); err == nil {
				d.Close()
			} else {
				errs[i] = err
			}
		}
		errc <- errs
	}()
	for i, err := range <-errc {
		t.Logf("%s: %v", kinds[i].name, err)
		if !errors.Is(err, ErrNotPermitted) || !errors.Is(err, os.ErrPermission) {
			t.Errorf("%s as uid 65534: %v, want ErrNotPermitted", kinds[i].name, err)
		}
	}
}

func TestOpenRefusesBadArguments(t *testing.T) {
	for _, c := range []struct {
		name string
		open func() (Device, error)
	}{
		{"mtu-too-small", func() (Device, error) { return OpenOffload("m646tx", 67, 1, 0) }},
		{"mtu-too-large", func() (Device, error) { return OpenPlain("m646tx", 65536) }},
		{"name-too-long", func() (Device, error) { return OpenOffload("m646t0123456789a", 1500, 1, 0) }},
		{"no-queues", func() (Device, error) { return OpenOffload("m646tx", 1500, 0, 0) }},
		{"too-many-queues", func() (Device, error) { return OpenOffload("m646tx", 1500, 257, 0) }},
	} {
		if d, err := c.open(); err == nil {
			d.Close()
			t.Errorf("%s: accepted", c.name)
		}
	}
}

// TestReadWriteDoNotAllocate: an echo request written to the device and
// the kernel's reply read back, per iteration, with no allocation, with
// and without busy polling.
func TestReadWriteDoNotAllocate(t *testing.T) {
	forKinds(t, func(t *testing.T, k kind, dev Device) {
		addrs(t, dev)
		req := []Packet{packet(pt.ICMP4(pt.IPv4{TTL: 64, Src: peerAddr4, Dst: devAddr4}, 8, 0, pt.Rest16(7, 1), payload(56)), 0, false)}
		replies, failed := readEveryQueue(dev, 4, func(b []byte) bool {
			return b[0]>>4 == 4 && b[9] == pt.ProtoICMP && b[20] == 0
		})
		// One timer, reset per echo: time.After would allocate.
		timeout := time.NewTimer(time.Hour)
		defer timeout.Stop()
		echo := func() {
			if err := dev.WriteBatch(0, req); err != nil {
				t.Fatal(err)
			}
			timeout.Reset(5 * time.Second)
			select {
			case <-replies:
			case err := <-failed:
				t.Fatal(err)
			case <-timeout.C:
				t.Fatal("no echo reply on any queue within 5 s")
			}
		}
		for _, busy := range []time.Duration{0, time.Second} {
			dev.SetBusyPoll(busy)
			echo()
			if a := testing.AllocsPerRun(200, echo); a != 0 {
				t.Errorf("%s, busy poll %v: %v allocations per write and read", k.name, busy, a)
			}
		}
	})
}

// readEveryQueue reads every queue of dev, each on a goroutine of its own
// with a batch of n packets, until the device is closed, and signals on
// the first channel each packet that match accepts; a read error goes to
// the second. A test must not expect a reply on the queue it wrote the
// request to: the kernel picks the queue of a packet it sends into the
// device by the CPU that handles it (or the flow's recorded queue), so on
// a loaded machine an echo reply may come back on any queue. Nothing here
// allocates once the goroutines run, so a test may count allocations
// around it.
func readEveryQueue(dev Device, n int, match func([]byte) bool) (<-chan struct{}, <-chan error) {
	found := make(chan struct{}, 16)
	failed := make(chan error, dev.Queues())
	for q := range dev.Queues() {
		batch := NewBatch(n)
		go func() {
			for {
				got, err := dev.ReadBatch(q, batch)
				if err != nil {
					failed <- err
					return
				}
				for _, p := range batch[:got] {
					if match(p.Bytes()) {
						select {
						case found <- struct{}{}:
						default: // nobody is waiting for this many
						}
					}
				}
			}
		}()
	}
	return found, failed
}

// TestLinkSettings: the MTU, transmit queue length and queue count asked
// for are what the link has, and it is up.
func TestLinkSettings(t *testing.T) {
	newNetns(t)
	off, err := OpenOffload(testName(), 9000, 3, 4321)
	if err != nil {
		t.Fatal(err)
	}
	defer off.Close()
	plain, err := OpenPlain(testName(), 1400)
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	if off.Queues() != 3 || plain.Queues() != 1 {
		t.Errorf("queues: offload %d, plain %d; want 3, 1", off.Queues(), plain.Queues())
	}
	for _, c := range []struct {
		dev       Device
		mtu, qlen int
	}{{off, 9000, 4321}, {plain, 1400, 500}} {
		ifc, err := net.InterfaceByName(c.dev.Name())
		if err != nil {
			t.Fatal(err)
		}
		if ifc.MTU != c.mtu || ifc.Flags&net.FlagUp == 0 {
			t.Errorf("%s: MTU %d, flags %v; want MTU %d and up", c.dev.Name(), ifc.MTU, ifc.Flags, c.mtu)
		}
		out, err := exec.Command("ip", "-o", "link", "show", c.dev.Name()).Output()
		if err != nil {
			t.Fatal(err)
		}
		if want := fmt.Sprintf(" qlen %d", c.qlen); !strings.Contains(string(out), want) {
			t.Errorf("%s: %q, want %q (500 is the tun default)", c.dev.Name(), out, want)
		}
	}
}

// TestMissingTunDevice: without /dev/net/tun both back-ends say so.
func TestMissingTunDevice(t *testing.T) {
	defer func(p string) { tunPath = p }(tunPath)
	tunPath = "/nonexistent/net/tun"
	for _, k := range kinds {
		if d, err := k.open("m646tx"); !errors.Is(err, ErrNoTun) {
			if d != nil {
				d.Close()
			}
			t.Errorf("%s: %v, want ErrNoTun", k.name, err)
		} else {
			t.Logf("%s: %v", k.name, err)
		}
	}
}
