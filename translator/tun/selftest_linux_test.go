package tun

import (
	"bytes"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
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
