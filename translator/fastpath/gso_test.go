package fastpath_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/map646/map646/lab/netlab"
	"github.com/map646/map646/translator"
	"github.com/map646/map646/translator/fastpath"
	pt "github.com/map646/map646/translator/packettest"
)

// TestAttachedGSO checks GSO super-packets, which a test run cannot make,
// segment by segment. The program sits at the egress of m646, a tun device
// with offloads (as map646's offload device), where a UDP socket with
// UDP_SEGMENT sends super-packets of four segments each way; the
// translated super-packet comes back on m646's ingress and the kernel
// forwards it out of "out", a tun device without offloads, so that the
// kernel cuts and checksums the segments in software. Each segment read
// from "out" must be the packet Translate makes of the segment the socket
// meant, but for the forwarding hop (TTL) and, from IPv6, the IPv4
// Identification, which the kernel numbers 0, 1, 2, ... (translator.gso6).
func TestAttachedGSO(t *testing.T) {
	netlab.RequireRoot(t)
	netlab.Need(t, "ip")
	ns := netlab.NewNS(t, "fastpath-gso")
	var m646, out *os.File
	var ifindex int
	err := ns.Do(func() (err error) {
		if m646, err = openTunDevice("m646", unix.IFF_VNET_HDR); err != nil {
			return err
		}
		const offloads = unix.TUN_F_CSUM | unix.TUN_F_TSO4 | unix.TUN_F_TSO6 | unix.TUN_F_USO4 | unix.TUN_F_USO6
		if err := unix.IoctlSetInt(int(m646.Fd()), unix.TUNSETOFFLOAD, offloads); err != nil {
			return err
		}
		if out, err = openTunDevice("out", 0); err != nil {
			return err
		}
		ifi, err := net.InterfaceByName("m646")
		if err != nil {
			return err
		}
		ifindex = ifi.Index
		return nil
	})
	if err != nil {
		t.Fatalf("tun devices: %v", err)
	}
	t.Cleanup(func() { m646.Close(); out.Close() })
	ns.Sysctl(t, "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1")
	for _, dev := range []string{"m646", "out"} {
		ns.IP(t, "link", "set", dev, "up")
	}
	ns.IP(t, "addr", "add", client4.String()+"/32", "dev", "lo")
	ns.IP(t, "addr", "add", "2001:db8:3::5/128", "dev", "lo", "nodad")
	ns.IP(t, "route", "add", "198.51.100.0/24", "dev", "m646")
	ns.IP(t, "route", "add", "203.0.113.0/24", "dev", "m646") // the IPv4 form of 2001:db8:3::5, for rp_filter
	ns.IP(t, "route", "add", "64:ff9b::/96", "dev", "m646")
	ns.IP(t, "route", "add", "2001:db8:1::/48", "dev", "out")
	ns.IP(t, "route", "add", "192.0.2.0/24", "dev", "out")

	cfg := testConfig()
	cfg.LocalAddrs = nil
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
		t.Fatalf("attach: %v", err)
	}
	t.Cleanup(func() { l.Close() })

	t.Run("4to6", func(t *testing.T) {
		const seg = 1200
		payload := pattern(3*seg + 500)
		sendGSO(t, ns, "udp4", client4.String()+":40000", netip.AddrPortFrom(server4, 53), seg, payload)
		for i, got := range readSegments(t, out, 4, 6) {
			chunk := payload[i*seg : min(len(payload), (i+1)*seg)]
			want := translate(t, tr, pt.UDP4(pt.IPv4{TTL: 64, DF: true, Src: client4, Dst: server4}, 40000, 53, chunk))
			want[7]-- // forwarded: the hop limit
			if !bytes.Equal(got, want) {
				t.Errorf("segment %d:\ngot  % x\nwant % x", i, got, want)
			}
		}
	})
	t.Run("6to4", func(t *testing.T) {
		const seg = 1300
		payload := pattern(3*seg + 1280)
		src6, dst6 := netip.MustParseAddr("2001:db8:3::5"), netip.MustParseAddr("64:ff9b::c000:208")
		sendGSO(t, ns, "udp6", "[2001:db8:3::5]:53", netip.AddrPortFrom(dst6, 40000), seg, payload)
		for i, got := range readSegments(t, out, 4, 4) {
			chunk := payload[i*seg : min(len(payload), (i+1)*seg)]
			want := translate(t, tr, pt.UDP6(pt.IPv6{Hop: 64, Src: src6, Dst: dst6}, 53, 40000, chunk))
			want[8]--                                       // forwarded: the TTL
			binary.BigEndian.PutUint16(want[4:], uint16(i)) // numbered by the kernel's segmentation
			binary.BigEndian.PutUint16(want[10:], 0)
			binary.BigEndian.PutUint16(want[10:], ^fold(want[:20]))
			if !bytes.Equal(got, want) {
				t.Errorf("segment %d:\ngot  % x\nwant % x", i, got, want)
			}
		}
	})
	c, err := fp.Counters()
	if err != nil {
		t.Fatal(err)
	}
	if c["translated-4to6"] != 4 || c["translated-6to4"] != 4 || c["punt-gso"] != 0 || c["internal-error"] != 0 {
		t.Errorf("counters: %v; want 4 segments translated each way, none punted", c)
	}
}

func openTunDevice(name string, flags uint16) (*os.File, error) {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	ifr.SetUint16(unix.IFF_TUN | unix.IFF_NO_PI | flags)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		unix.Close(fd)
		return nil, err
	}
	return os.NewFile(uintptr(fd), name), nil
}

func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*13 + i>>8)
	}
	return b
}

// sendGSO sends payload in one sendmsg with UDP_SEGMENT seg: one
// super-packet.
func sendGSO(t *testing.T, ns *netlab.NS, network, local string, to netip.AddrPort, seg int, payload []byte) {
	t.Helper()
	c := ns.ListenPacket(t, network, local)
	raw, err := c.(*net.UDPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var serr error
	if err := raw.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.SOL_UDP, unix.UDP_SEGMENT, seg) }); err != nil || serr != nil {
		t.Fatalf("UDP_SEGMENT: %v %v", err, serr)
	}
	if _, err := c.WriteTo(payload, net.UDPAddrFromAddrPort(to)); err != nil {
		t.Fatalf("send %d bytes in segments of %d: %v", len(payload), seg, err)
	}
}

// readSegments reads n UDP packets of IP version v from dev.
func readSegments(t *testing.T, dev *os.File, n int, v byte) [][]byte {
	t.Helper()
	var pkts [][]byte
	buf := make([]byte, 65536)
	dev.SetReadDeadline(time.Now().Add(5 * time.Second))
	for len(pkts) < n {
		k, err := dev.Read(buf)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("%d of %d segments came out", len(pkts), n)
		}
		if err != nil {
			t.Fatal(err)
		}
		// UDP only: the kernel sends MLD reports out of the device too.
		udp := k >= 40 && (v == 4 && buf[0]>>4 == 4 && buf[9] == 17 || v == 6 && buf[0]>>4 == 6 && buf[6] == 17)
		if udp {
			pkts = append(pkts, bytes.Clone(buf[:k]))
		}
	}
	return pkts
}

func translate(t *testing.T, tr *translator.Translator, pkt []byte) []byte {
	t.Helper()
	o := translator.NewOut()
	if res := tr.Translate(pkt, o); res.Verdict != translator.Forward || len(o.Pkts) != 1 {
		t.Fatalf("Translate: %v %v, %d packets", res.Verdict, res.Reason, len(o.Pkts))
	}
	return bytes.Clone(o.Pkts[0])
}

func fold(b []byte) uint16 {
	var s uint32
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	return uint16(s)
}
