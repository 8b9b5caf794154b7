package tun

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/map646/map646/lab/labreq"
)

// Tests that create devices run as root, each in a network namespace of its
// own, so that they touch nothing on the host and cannot collide.

// netns is a network namespace that the calling test goroutine has entered.
type netns struct{ fd int }

// newNetns locks the test goroutine to its OS thread and moves the thread
// into a fresh network namespace with lo up, until the test ends. Devices
// and sockets the test goroutine creates live there; other goroutines that
// need to create sockets there use Go.
func newNetns(t testing.TB) *netns {
	t.Helper()
	labreq.Root(t, "create tun devices in a fresh network namespace")
	if _, err := os.Stat(tunPath); err != nil {
		labreq.Unavailable(t, "needs %s: %v", tunPath, err)
	}
	if _, err := exec.LookPath("ip"); err != nil {
		labreq.Unavailable(t, "needs iproute2 (ip) to configure addresses and routes")
	}
	runtime.LockOSThread()
	orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		runtime.UnlockOSThread()
		t.Fatal(err)
	}
	if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
		unix.Close(orig)
		runtime.UnlockOSThread()
		t.Fatalf("unshare network namespace: %v", err)
	}
	fd, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err) // the thread stays locked and dies with the goroutine
	}
	t.Cleanup(func() {
		unix.Close(fd)
		if err := unix.Setns(orig, unix.CLONE_NEWNET); err != nil {
			// Leave the thread locked: Go ends it with the goroutine
			// rather than reuse it in the wrong namespace.
			t.Errorf("back to the original network namespace: %v", err)
			return
		}
		unix.Close(orig)
		runtime.UnlockOSThread()
	})
	ip(t, "link", "set", "lo", "up")
	return &netns{fd}
}

// Go runs fn on a new goroutine inside the namespace. Its thread is never
// unlocked, so it ends with the goroutine.
func (n *netns) Go(fn func()) {
	go func() {
		runtime.LockOSThread()
		if err := unix.Setns(n.fd, unix.CLONE_NEWNET); err != nil {
			panic(err)
		}
		fn()
	}()
}

// ip runs ip(8); a child process inherits the namespace of the locked
// thread that starts it.
func ip(t testing.TB, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// testName returns a device name unique enough to spot in a listing.
func testName() string { return fmt.Sprintf("m646t%06x", rand.Uint32()&0xffffff) }

// kind is a device back-end under test; every device test runs for both.
type kind struct {
	name    string
	offload bool
	open    func(name string) (Device, error)
}

var kinds = []kind{
	{"offload", true, func(name string) (Device, error) { return OpenOffload(name, 1500, 2, 1000) }},
	{"plain", false, func(name string) (Device, error) { return OpenPlain(name, 1500) }},
}

// forKinds runs f as a subtest per back-end, each in its own namespace
// with a fresh device, closed at the end.
func forKinds(t *testing.T, f func(t *testing.T, k kind, dev Device)) {
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			newNetns(t)
			dev, err := k.open(testName())
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { dev.Close() })
			// A hung read must fail the test, not the whole run.
			timer := time.AfterFunc(60*time.Second, func() { dev.Close() })
			t.Cleanup(func() { timer.Stop() })
			f(t, k, dev)
		})
	}
}

// read is one packet read from a device, copied out of the batch.
type read struct {
	q       int
	pkt     []byte
	gso     int
	partial bool
}

// readAll reads every queue of dev until it is closed and sends copies of
// the packets on the returned channel.
func readAll(dev Device) <-chan read {
	ch := make(chan read, 4096)
	done := make(chan struct{}, dev.Queues())
	for q := range dev.Queues() {
		go func() {
			defer func() { done <- struct{}{} }()
			batch := NewBatch(8)
			for {
				n, err := dev.ReadBatch(q, batch)
				if err != nil {
					return
				}
				for _, p := range batch[:n] {
					ch <- read{q, append([]byte(nil), p.Bytes()...), p.GSOSize, p.Partial}
				}
			}
		}()
	}
	go func() {
		for range dev.Queues() {
			<-done
		}
		close(ch)
	}()
	return ch
}
