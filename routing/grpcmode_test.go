package routing

import (
	"bytes"
	"context"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Proves: the gRPC socket is 0600 from the moment it exists at its path.
// An inotify watch on its directory sees every change there as it
// happens: the socket must arrive by a rename (IN_MOVED_TO), with mode
// 0600 at once, never be created there (IN_CREATE) nor have its mode
// changed there (IN_ATTRIB); and the directory it was bound in must be
// 0700. The umask is 022 meanwhile, as root's usually is: a socket bound
// at its path would appear as 0755 first.
func TestGRPCSocketModeAtCreation(t *testing.T) {
	old := syscall.Umask(0o022)
	defer syscall.Umask(old)
	dir := t.TempDir()
	sock := filepath.Join(dir, "gobgp.sock")

	// Non-blocking, in an *os.File: Go's poller reads it, and Close stops
	// the reader (a raw descriptor closed under a blocked read would not,
	// and its number could be reused by the next test's watch).
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := unix.InotifyAddWatch(fd, dir, unix.IN_CREATE|unix.IN_MOVED_TO|unix.IN_ATTRIB); err != nil {
		unix.Close(fd)
		t.Fatal(err)
	}
	watch := os.NewFile(uintptr(fd), "inotify")
	defer watch.Close()
	type seen struct {
		name string
		mask uint32
		mode os.FileMode // at the event; 0 if it was gone
	}
	events := make(chan seen, 64)
	go func() {
		defer close(events)
		buf := make([]byte, 64<<10)
		for {
			n, err := watch.Read(buf)
			if err != nil || n <= 0 {
				return
			}
			for off := 0; off+unix.SizeofInotifyEvent <= n; {
				mask := binary.NativeEndian.Uint32(buf[off+4:])
				l := int(binary.NativeEndian.Uint32(buf[off+12:]))
				name := string(bytes.TrimRight(buf[off+unix.SizeofInotifyEvent:off+unix.SizeofInotifyEvent+l], "\x00"))
				off += unix.SizeofInotifyEvent + l
				var mode os.FileMode
				if fi, err := os.Lstat(filepath.Join(dir, name)); err == nil {
					mode = fi.Mode()
				}
				events <- seen{name, mask, mode}
			}
		}
	}()

	s, err := New(Config{LocalAS: 65001, RouterID: addrS, ListenPort: -1, GRPCSocket: sock,
		Neighbors: []Neighbor{testNeighbor(addrR4, 65000, 179, IPv4Unicast)}}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())

	var onSock []seen
	var private []seen
	timeout := time.After(2 * time.Second)
collect:
	for {
		select {
		case e := <-events:
			switch {
			case e.name == "gobgp.sock":
				onSock = append(onSock, e)
			case strings.HasPrefix(e.name, ".gobgp") && e.mask&unix.IN_ISDIR != 0 && e.mask&unix.IN_CREATE != 0:
				private = append(private, e)
			}
			if len(onSock) > 0 {
				// Anything more (a chmod) comes within the watch's next
				// events; wait a little for it.
				select {
				case e := <-events:
					if e.name == "gobgp.sock" {
						onSock = append(onSock, e)
					}
				case <-time.After(100 * time.Millisecond):
				}
				break collect
			}
		case <-timeout:
			break collect
		}
	}
	if len(onSock) != 1 || onSock[0].mask&unix.IN_MOVED_TO == 0 {
		t.Errorf("events on the socket's path: %+v; want one IN_MOVED_TO (0x%x)", onSock, unix.IN_MOVED_TO)
	}
	for _, e := range onSock {
		if e.mode.Type() != os.ModeSocket || e.mode.Perm() != 0o600 {
			t.Errorf("the socket at event 0x%x: mode %v, want a socket with 0600", e.mask, e.mode)
		}
	}
	if len(private) != 1 || private[0].mode.Perm() != 0o700 {
		t.Errorf("the private directories the socket was bound in: %+v; want one of mode 0700", private)
	}
}
