package tun

import (
	"bytes"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// forwarding turns IPv4 and IPv6 forwarding on in the test's namespace,
// as on a translator node: the self-test's loop needs it.
func forwarding(t *testing.T, on bool) {
	v := map[bool]string{true: "1", false: "0"}[on]
	for _, f := range []string{"/proc/sys/net/ipv4/ip_forward", "/proc/sys/net/ipv6/conf/all/forwarding"} {
		if err := os.WriteFile(f, []byte(v), 0); err != nil {
			t.Fatal(err)
		}
	}
}

func openSelfTested(t *testing.T) *offloadDevice {
	dev, err := OpenOffload(testName(), 1500, 2, 1000)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dev.Close() })
	return dev.(*offloadDevice)
}

// TestSelfTestPasses: on this kernel every offload the device enabled
// passes its self-test, and the test leaves no route behind.
func TestSelfTestPasses(t *testing.T) {
	newNetns(t)
	forwarding(t, true)
	d := openSelfTested(t)
	before := d.Offloads()
	start := time.Now()
	failed, skipped, err := d.SelfTest()
	t.Logf("offloads %q, self-test took %v", before, time.Since(start))
	if err != nil || len(failed) > 0 || len(skipped) > 0 {
		t.Fatalf("self-test: failed %v, skipped %v, err %v", failed, skipped, err)
	}
	if d.Offloads() != before {
		t.Errorf("offloads %q after the self-test, %q before", d.Offloads(), before)
	}
	for _, v := range []string{"-4", "-6"} {
		out, err := exec.Command("ip", v, "route", "show", "proto", "246").CombinedOutput()
		if err != nil || len(strings.TrimSpace(string(out))) > 0 {
			t.Errorf("ip %s route show proto 246 after the self-test: %v %s", v, err, out)
		}
	}
}

// TestSelfTestFailureSwitchesOff: an offload whose packet comes back
// changed (a hook corrupts the IPv4 TCP super-packet, as a kernel bug
// would) is reported with what failed and switched off in the kernel: a
// TCP stream through the translator afterwards arrives intact, the kernel
// hands over no IPv4 TCP super-packet any more, and still IPv6 ones.
func TestSelfTestFailureSwitchesOff(t *testing.T) {
	newNetns(t)
	forwarding(t, true)
	d := openSelfTested(t)
	timer := time.AfterFunc(60*time.Second, func() { d.Close() })
	t.Cleanup(func() { timer.Stop() })
	seen := map[string]int{}
	SetSelfTestHook(func(offload string, pkt []byte) {
		seen[offload] = len(pkt)
		if offload == OffloadTSO4 {
			pkt[len(pkt)-1] ^= 0xff
		}
	})
	t.Cleanup(func() { SetSelfTestHook(nil) })
	failed, skipped, err := d.SelfTest()
	if err != nil || len(skipped) > 0 {
		t.Fatalf("self-test: skipped %v, err %v", skipped, err)
	}
	t.Logf("read back (bytes): %v; failed: %v", seen, failed)
	if len(failed) != 1 || failed[0].Offload != OffloadTSO4 || !strings.Contains(failed[0].Err.Error(), "came back changed: byte 3372 of 3373") {
		t.Fatalf("failed %v, want tso4 with the byte that changed", failed)
	}
	if seen[OffloadTSO6] != 40+20+3333 || seen[OffloadUSO4] != 20+8+3333 || seen[OffloadUSO6] != 40+8+3333 {
		t.Errorf("the other super-packets did not come back whole: %v", seen)
	}
	if got, want := d.Offloads(), "csum tso6 uso4 uso6"; got != want {
		t.Errorf("offloads %q after the failure, want %q", got, want)
	}
	for _, s := range d.OffloadStates() {
		if s.Enabled != (s.Name != OffloadTSO4) {
			t.Errorf("%s enabled %v", s.Name, s.Enabled)
		}
	}

	r, c := translatedConn(t, d, true, func(c net.Conn) { io.Copy(c, c) })
	c.SetDeadline(time.Now().Add(30 * time.Second))
	data := payload(1 << 20)
	go func() {
		c.Write(data)
		c.(*net.TCPConn).CloseWrite()
	}()
	got, err := io.ReadAll(c)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("echo through the translator: %v, %d of %d bytes back intact: %v", err, len(got), len(data), bytes.Equal(got, data[:len(got)]))
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	t.Logf("%d packets read, super-packets %v from IPv4/IPv6", r.packets, r.supers)
	if r.supers[0] != 0 || r.supers[1] == 0 {
		t.Errorf("super-packets %v from IPv4/IPv6: want none from IPv4 (tso4 off), some from IPv6", r.supers)
	}
	if r.checkErr != nil || r.writeErr != nil {
		t.Errorf("relay: %v, %v", r.checkErr, r.writeErr)
	}
}

// TestSelfTestCsumFailure: when the checksum offload fails, every offload
// goes (the others build on it), each named with the reason, and a TCP
// stream through the translator still arrives intact, in ordinary packets
// only.
func TestSelfTestCsumFailure(t *testing.T) {
	newNetns(t)
	forwarding(t, true)
	d := openSelfTested(t)
	timer := time.AfterFunc(60*time.Second, func() { d.Close() })
	t.Cleanup(func() { timer.Stop() })
	SetSelfTestHook(func(offload string, pkt []byte) {
		if offload == OffloadCsum {
			pkt[len(pkt)-1] ^= 0xff
		}
	})
	t.Cleanup(func() { SetSelfTestHook(nil) })
	failed, skipped, err := d.SelfTest()
	if err != nil || len(skipped) > 0 {
		t.Fatalf("self-test: skipped %v, err %v", skipped, err)
	}
	t.Logf("failed: %v", failed)
	var names []string
	for _, f := range failed {
		names = append(names, f.Offload)
		if f.Offload != OffloadCsum && !strings.Contains(f.Err.Error(), "switched off with csum") {
			t.Errorf("%s: %v, want switched off with csum", f.Offload, f.Err)
		}
	}
	if strings.Join(names, " ") != "csum tso4 tso6 uso4 uso6" || d.Offloads() != "none" {
		t.Fatalf("failed %v, offloads left %q; want all five, none", names, d.Offloads())
	}
	r, c := translatedConn(t, d, true, func(c net.Conn) { io.Copy(c, c) })
	c.SetDeadline(time.Now().Add(30 * time.Second))
	data := payload(1 << 20)
	go func() {
		c.Write(data)
		c.(*net.TCPConn).CloseWrite()
	}()
	got, err := io.ReadAll(c)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("echo through the translator: %v, %d of %d bytes back", err, len(got), len(data))
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.supers != [2]int{} || r.checkErr != nil || r.writeErr != nil {
		t.Errorf("super-packets %v (want none), relay errors %v, %v", r.supers, r.checkErr, r.writeErr)
	}
}

// TestSelfTestWithoutForwarding: without forwarding the loop cannot work;
// the self-test says so and leaves every offload on: untested is not
// failed.
func TestSelfTestWithoutForwarding(t *testing.T) {
	newNetns(t)
	forwarding(t, false)
	d := openSelfTested(t)
	before := d.Offloads()
	failed, skipped, err := d.SelfTest()
	if err != nil || len(failed) > 0 || len(skipped) != 2 || !strings.Contains(skipped[0], "IPv4: forwarding is off") || !strings.Contains(skipped[1], "IPv6: forwarding is off") {
		t.Fatalf("failed %v, skipped %q, err %v", failed, skipped, err)
	}
	if d.Offloads() != before {
		t.Errorf("offloads %q, were %q", d.Offloads(), before)
	}
}

// TestSelfTestStaysOnTheNode: with default routes out of a veth (IPv4 and
// IPv6, no ARP or neighbor discovery, so a packet leaves at once), nothing
// to or from the loop's addresses goes out of it during the self-test.
// The capture is proved first: a datagram sent to the loop's IPv4 address
// before the test is seen leaving.
func TestSelfTestStaysOnTheNode(t *testing.T) {
	newNetns(t)
	forwarding(t, true)
	ip(t, "link", "add", "m646l0", "type", "veth", "peer", "name", "m646l1")
	for _, dev := range []string{"m646l0", "m646l1"} {
		ip(t, "link", "set", dev, "arp", "off", "up")
	}
	ip(t, "addr", "add", "192.0.2.1/24", "dev", "m646l0")
	ip(t, "-6", "addr", "add", "2001:db8:1::1/64", "dev", "m646l0", "nodad")
	ip(t, "route", "add", "default", "dev", "m646l0")
	ip(t, "-6", "route", "add", "default", "dev", "m646l0")
	d := openSelfTested(t)

	ifc, err := net.InterfaceByName("m646l0")
	if err != nil {
		t.Fatal(err)
	}
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ALL)))
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifc.Index}); err != nil {
		t.Fatal(err)
	}
	tv := unix.NsecToTimeval(int64(200 * time.Millisecond))
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		t.Fatal(err)
	}
	// leaving counts the packets to or from the loop's addresses that
	// leave through the veth until it has read nothing for 200 ms.
	leaving := func() (n int) {
		buf := make([]byte, 65536)
		for {
			got, from, err := unix.Recvfrom(fd, buf, 0)
			if err != nil {
				return n // the timeout: quiet for 200 ms
			}
			ll, _ := from.(*unix.SockaddrLinklayer)
			if ll == nil || ll.Pkttype != unix.PACKET_OUTGOING || got < 14+40 {
				continue
			}
			b := buf[14:got]
			switch {
			case b[0]>>4 == 4 && (bytes.Equal(b[12:16], selfTestAddr4.AsSlice()) || bytes.Equal(b[16:20], selfTestAddr4.AsSlice())):
				n++
			case b[0]>>4 == 6 && (bytes.Equal(b[8:24], selfTestAddr6.AsSlice()) || bytes.Equal(b[24:40], selfTestAddr6.AsSlice())):
				n++
			}
		}
	}
	c, err := net.Dial("udp4", netip.AddrPortFrom(selfTestAddr4, 9).String())
	if err != nil {
		t.Fatal(err)
	}
	c.Write(make([]byte, 40))
	c.Close()
	if n := leaving(); n != 1 {
		t.Fatalf("the capture saw %d datagrams to %s leave, want the 1 sent", n, selfTestAddr4)
	}

	failed, skipped, err := d.SelfTest()
	if err != nil || len(failed) > 0 || len(skipped) > 0 {
		t.Fatalf("self-test: failed %v, skipped %v, err %v", failed, skipped, err)
	}
	if n := leaving(); n != 0 {
		t.Fatalf("%d packets of the self-test left the node", n)
	}
}

// TestSelfTestLoopBlocked: when the loop is blocked (here by a policy
// rule that prohibits whatever comes in from the device, as a firewall
// would), the ordinary packet does not come back: each IP version is
// reported skipped and every offload stays on, untested.
func TestSelfTestLoopBlocked(t *testing.T) {
	newNetns(t)
	forwarding(t, true)
	d := openSelfTested(t)
	ip(t, "rule", "add", "iif", d.Name(), "prohibit")
	ip(t, "-6", "rule", "add", "iif", d.Name(), "prohibit")
	before := d.Offloads()
	failed, skipped, err := d.SelfTest()
	t.Logf("skipped: %q", skipped)
	if err != nil || len(failed) > 0 || len(skipped) != 2 {
		t.Fatalf("failed %v, skipped %q, err %v", failed, skipped, err)
	}
	for i, v := range []string{"IPv4: ", "IPv6: "} {
		if !strings.HasPrefix(skipped[i], v+"an ordinary packet did not come back through the loop") {
			t.Errorf("skipped %q, want %s...", skipped[i], v)
		}
	}
	if d.Offloads() != before {
		t.Errorf("offloads %q, were %q", d.Offloads(), before)
	}
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// TestSelfTestRouteGoneFailureOff: someone else deletes the IPv4 loop route
// while the self-test runs, and uso4 fails in the same run: the route
// already gone is no error (ESRCH), and the failed offload is switched
// off, with uso6 that goes with it, however the removal ends.
func TestSelfTestRouteGoneFailureOff(t *testing.T) {
	newNetns(t)
	forwarding(t, true)
	d := openSelfTested(t)
	timer := time.AfterFunc(60*time.Second, func() { d.Close() })
	t.Cleanup(func() { timer.Stop() })
	var delErr error
	SetSelfTestHook(func(offload string, pkt []byte) {
		if offload != OffloadUSO4 { // the last IPv4 test: the loop is needed no more
			return
		}
		pkt[len(pkt)-1] ^= 0xff
		delErr = netlink.RouteDel(&netlink.Route{Dst: &net.IPNet{IP: selfTestAddr4.AsSlice(), Mask: net.CIDRMask(32, 32)}, Scope: netlink.SCOPE_LINK})
	})
	t.Cleanup(func() { SetSelfTestHook(nil) })
	failed, skipped, err := d.SelfTest()
	if delErr != nil {
		t.Fatalf("the hook could not delete the loop route: %v", delErr)
	}
	t.Logf("failed %v, skipped %v, err %v", failed, skipped, err)
	if err != nil || len(skipped) > 0 {
		t.Errorf("self-test: skipped %v, err %v; want neither (the route already gone is no error)", skipped, err)
	}
	var names []string
	for _, f := range failed {
		names = append(names, f.Offload)
	}
	if strings.Join(names, " ") != "uso4 uso6" {
		t.Errorf("failed %v, want uso4 uso6", names)
	}
	if got, want := d.Offloads(), "csum tso4 tso6"; got != want {
		t.Errorf("offloads %q after the failure, want %q", got, want)
	}
}
