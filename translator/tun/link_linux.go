package tun

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// tunPath is a variable only so that a test can point it at a missing file.
var tunPath = "/dev/net/tun"

// maxQueues is the kernel's limit on the queues of one tun device
// (MAX_TAP_QUEUES).
const maxQueues = 256

// link configures the interface through an AF_INET socket, whose ioctls
// reach every link of the network namespace the socket was created in:
// callers create it on the same (locked) OS thread as the device, so both
// are in one namespace even if the caller switches namespaces per thread.
type link struct{ fd int }

func openLink() (link, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return link{}, fmt.Errorf("tun: control socket: %w", err)
	}
	return link{fd}, nil
}

func (l link) close() { unix.Close(l.fd) }

// checkFree refuses a name that an existing link already has: TUNSETIFF
// would attach to an existing tun device of that name, and an operator who
// named an interface twice wants to hear about it.
func (l link) checkFree(name string) error {
	if name == "" {
		return nil // the kernel picks a free tunN
	}
	if len(name) >= unix.IFNAMSIZ {
		return fmt.Errorf("tun: device name %q longer than %d bytes", name, unix.IFNAMSIZ-1)
	}
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return fmt.Errorf("tun: device name %q: %w", name, err)
	}
	switch err := unix.IoctlIfreq(l.fd, unix.SIOCGIFINDEX, ifr); {
	case err == nil:
		return nameTaken(name)
	case errors.Is(err, unix.ENODEV):
		return nil
	default:
		return fmt.Errorf("tun: look up %s: %w", name, err)
	}
}

func nameTaken(name string) error {
	return fmt.Errorf("%w: a link named %q exists already", ErrNameTaken, name)
}

// up sets the MTU and the transmit queue length (0: leave the kernel's
// default) and brings the link up.
func (l link) up(name string, mtu, txqueuelen int) error {
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return err
	}
	ifr.SetUint32(uint32(mtu))
	if err := unix.IoctlIfreq(l.fd, unix.SIOCSIFMTU, ifr); err != nil {
		return sysErr(fmt.Sprintf("set MTU %d on %s", mtu, name), err)
	}
	if txqueuelen > 0 {
		ifr.SetUint32(uint32(txqueuelen))
		if err := unix.IoctlIfreq(l.fd, unix.SIOCSIFTXQLEN, ifr); err != nil {
			return sysErr(fmt.Sprintf("set txqueuelen %d on %s", txqueuelen, name), err)
		}
	}
	if err := unix.IoctlIfreq(l.fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return sysErr("get flags of "+name, err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(l.fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return sysErr("bring up "+name, err)
	}
	return nil
}

// sysErr turns the errnos an operator can act on into this package's
// errors, keeping the errno in the chain.
func sysErr(what string, err error) error {
	switch {
	case errors.Is(err, unix.EPERM), errors.Is(err, unix.EACCES):
		return fmt.Errorf("%w: %s: %w", ErrNotPermitted, what, err)
	case errors.Is(err, unix.ENOENT), errors.Is(err, unix.ENXIO), errors.Is(err, unix.ENODEV):
		if what == "open "+tunPath {
			return fmt.Errorf("%w (no tun support in the kernel, or no device node: mknod %s c 10 200): %w", ErrNoTun, tunPath, err)
		}
	}
	return fmt.Errorf("tun: %s: %w", what, err)
}

func checkArgs(name string, mtu int) error {
	if mtu < 68 || mtu > 65535 {
		return fmt.Errorf("tun: MTU %d outside 68..65535", mtu)
	}
	if len(name) >= unix.IFNAMSIZ {
		return fmt.Errorf("tun: device name %q longer than %d bytes", name, unix.IFNAMSIZ-1)
	}
	if _, err := os.Stat(tunPath); err != nil {
		return sysErr("open "+tunPath, err)
	}
	return nil
}
