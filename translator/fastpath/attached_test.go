package fastpath_test

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/map646/map646/lab/netlab"
	"github.com/map646/map646/translator"
	"github.com/map646/map646/translator/fastpath"
)

// TestAttachedTun attaches the program as map646 will: LinkTun, at the
// egress of a tun device, in a namespace of its own. The test plays the
// tun path: what the program punts, it reads from the device, translates
// with translator.Translate and writes back, as map646's data plane does.
// An IPv4 UDP client and an IPv6 UDP server on the node's loopback talk
// through the translator both ways, then a TCP connection carries a small
// exchange and 1 MB each way: GSO super-packets, taken by the program when
// each of their segments would be, else punted, segmented by the kernel and
// translated by the tun path. The kernel verifies the UDP checksums on
// delivery: a datagram with a wrong one would never arrive (TCP's, which
// stay partial on this path, TestAttachedGSO checks segment by segment).
func TestAttachedTun(t *testing.T) {
	netlab.RequireRoot(t)
	netlab.Need(t, "ip")
	ns := netlab.NewNS(t, "fastpath")
	var tun *os.File
	var ifindex int
	err := ns.Do(func() error {
		fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		ifr, err := unix.NewIfreq("m646")
		if err != nil {
			return err
		}
		ifr.SetUint16(unix.IFF_TUN | unix.IFF_NO_PI)
		if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
			return err
		}
		tun = os.NewFile(uintptr(fd), "m646")
		ifi, err := net.InterfaceByName("m646")
		if err != nil {
			return err
		}
		ifindex = ifi.Index
		return nil
	})
	if err != nil {
		t.Fatalf("tun device: %v", err)
	}
	t.Cleanup(func() { tun.Close() })
	ns.IP(t, "link", "set", "m646", "up")
	ns.IP(t, "addr", "add", client4.String()+"/32", "dev", "lo")
	ns.IP(t, "addr", "add", server6.String()+"/128", "dev", "lo", "nodad")
	ns.IP(t, "route", "add", "198.51.100.0/24", "dev", "m646")
	ns.IP(t, "route", "add", "64:ff9b::/96", "dev", "m646")

	cfg := testConfig()
	cfg.LocalAddrs = nil // the test's "servers" live on the node itself
	table := testTable(t)
	tr, err := translator.New(cfg, table)
	if err != nil {
		t.Fatal(err)
	}
	fp, err := fastpath.Load(cfg, table, fastpath.LinkTun)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fp.Close() })
	var l link.Link
	if err := ns.Do(func() (err error) {
		l, err = fp.Attach(ifindex)
		return err
	}); err != nil {
		t.Fatalf("attach at the egress of the tun device: %v", err)
	}
	t.Cleanup(func() { l.Close() })

	var tunPath sync.WaitGroup
	tunPath.Add(1)
	var punted countedPackets
	go func() {
		defer tunPath.Done()
		serveTun(tun, tr, &punted)
	}()
	t.Cleanup(tunPath.Wait)
	t.Cleanup(func() { tun.SetReadDeadline(time.Now()) })

	// UDP, both ways.
	u4 := ns.ListenPacket(t, "udp4", client4.String()+":40000")
	u6 := ns.ListenPacket(t, "udp6", "["+server6.String()+"]:53")
	exchange(t, u4, u6, "hello", net.UDPAddrFromAddrPort(netip.AddrPortFrom(server4, 53)), netip.AddrPortFrom(client6, 40000))
	exchange(t, u6, u4, "world", net.UDPAddrFromAddrPort(netip.AddrPortFrom(client6, 40000)), netip.AddrPortFrom(server4, 53))
	c, err := fp.Counters()
	if err != nil {
		t.Fatal(err)
	}
	if c["translated-4to6"] != 1 || c["translated-6to4"] != 1 {
		t.Fatalf("counters after one datagram each way: %v", c)
	}

	// TCP: a small exchange, then 1 MB each way.
	ln := ns.Listen(t, "tcp6", "["+server6.String()+"]:443")
	go func() {
		s, err := ln.Accept()
		if err != nil {
			return
		}
		defer s.Close()
		io.Copy(s, s) // echo
	}()
	conn, err := ns.Dial("tcp4", client4.String(), server4.String()+":443", 5*time.Second)
	if err != nil {
		t.Fatalf("TCP through the translator: %v", err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	echo(t, conn, []byte("ping"))
	big := make([]byte, 1<<20)
	for i := range big {
		big[i] = byte(i * 7)
	}
	echo(t, conn, big)

	c, err = fp.Counters()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("program: %v; tun path: %d packets translated", c, punted.n())
	if c["internal-error"] != 0 {
		t.Errorf("%d internal errors", c["internal-error"])
	}
	if c["translated-4to6"] < 4 || c["translated-6to4"] < 4 {
		t.Errorf("the TCP connection did not take the fast path (translated %d, %d)", c["translated-4to6"], c["translated-6to4"])
	}
}

// exchange sends msg from a to b's address to, and checks that b receives
// it from the translated address from.
func exchange(t *testing.T, a, b net.PacketConn, msg string, to net.Addr, from netip.AddrPort) {
	t.Helper()
	if _, err := a.WriteTo([]byte(msg), to); err != nil {
		t.Fatal(err)
	}
	b.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 100)
	n, got, err := b.ReadFrom(buf)
	if err != nil {
		t.Fatalf("%q to %v: %v", msg, to, err)
	}
	if string(buf[:n]) != msg || got.(*net.UDPAddr).AddrPort() != from {
		t.Fatalf("got %q from %v, want %q from %v", buf[:n], got, msg, from)
	}
}

// echo writes b and reads it back.
func echo(t *testing.T, conn net.Conn, b []byte) {
	t.Helper()
	errc := make(chan error, 1)
	go func() { _, err := conn.Write(b); errc <- err }()
	got := make([]byte, len(b))
	if _, err := io.ReadFull(conn, got); err != nil {
		t.Fatalf("echo of %d bytes: %v", len(b), err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, b) {
		t.Fatalf("echo of %d bytes came back different", len(b))
	}
}

type countedPackets struct {
	mu sync.Mutex
	k  int
}

func (c *countedPackets) add() { c.mu.Lock(); c.k++; c.mu.Unlock() }

func (c *countedPackets) n() int { c.mu.Lock(); defer c.mu.Unlock(); return c.k }

// serveTun is the tun path: every packet the program punted is
// translated by Translate and written back, until the device is closed
// or its read deadline passes.
func serveTun(tun *os.File, tr *translator.Translator, translated *countedPackets) {
	buf := make([]byte, 65536)
	o := translator.NewOut()
	for {
		n, err := tun.Read(buf)
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, os.ErrClosed) {
				return
			}
			continue
		}
		if res := tr.Translate(buf[:n], o); res.Verdict == translator.Forward {
			translated.add()
		}
		for _, p := range o.Pkts {
			tun.Write(p)
		}
	}
}
