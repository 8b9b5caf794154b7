// Package fastpathtest runs packets through the fast path's program with
// BPF_PROG_TEST_RUN and compares what it does with translator.Translate:
// the proof that the fast path is the same translator, used by the
// differential tests and the fuzz target.
//
// The program runs on the skb of a tun device, as attached in production:
// the test run is given the index of a tun device that Runner creates in a
// network namespace of its own. BPF_PROG_TEST_RUN gives a tc program an
// Ethernet frame whatever the device, so the program is loaded with
// fastpath.LinkEthernet: the same code, reading the IP header 14 bytes on.
package fastpathtest

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"unsafe"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/map646/map646/translator"
	"github.com/map646/map646/translator/fastpath"
)

// Verdicts of the tc program (linux/pkt_cls.h).
const (
	actOK       = 0 // punted: the packet goes on, untouched, to the tun device
	actShot     = 2 // dropped: an internal error
	actRedirect = 7 // translated and redirected to the tun device's ingress
)

// Runner owns a network namespace with one tun device and an OS thread in
// it, on which every test run happens (the kernel finds the device by index
// in the namespace of the calling thread).
type Runner struct {
	calls   chan func()
	ifindex int
}

// NewRunner creates the namespace, the thread and the tun device. It needs
// root.
func NewRunner() (*Runner, error) {
	r := &Runner{calls: make(chan func())}
	started := make(chan error)
	go func() {
		// The thread stays locked and dies with the goroutine: its
		// namespace is never seen by another goroutine.
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			started <- fmt.Errorf("new network namespace: %w", err)
			return
		}
		tun, err := openTun("fp0")
		if err != nil {
			started <- err
			return
		}
		defer tun.Close()
		ifi, err := net.InterfaceByName("fp0")
		if err != nil {
			started <- err
			return
		}
		r.ifindex = ifi.Index
		started <- nil
		for f := range r.calls {
			f()
		}
	}()
	if err := <-started; err != nil {
		return nil, err
	}
	return r, nil
}

// Close ends the thread, which takes the namespace and the device with it.
func (r *Runner) Close() { close(r.calls) }

func openTun(name string) (*os.File, error) {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open /dev/net/tun: %w", err)
	}
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	ifr.SetUint16(unix.IFF_TUN | unix.IFF_NO_PI)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("TUNSETIFF %s: %w", name, err)
	}
	return os.NewFile(uintptr(fd), "/dev/net/tun"), nil
}

// skbContext is the start of struct __sk_buff, up to the one field the
// test run is given: the device's index.
type skbContext struct {
	Len, PktType, Mark, QueueMapping, Protocol, VlanPresent, VlanTCI, VlanProto uint32
	Priority, IngressIfindex, Ifindex                                           uint32
}

var _ = [1]struct{}{}[unsafe.Sizeof(skbContext{})-44] // __sk_buff's ifindex ends at byte 44

// ErrTooLarge: the packet does not fit the test run's buffer, one page
// less the skb's headroom and shared info (net/bpf/test_run.c).
var ErrTooLarge = errors.New("packet too large for BPF_PROG_TEST_RUN")

// minRunLimit is less than what any kernel takes in a test run: an
// EINVAL for a longer frame is taken for ErrTooLarge.
const minRunLimit = 2048

// Run runs prog once on pkt, an IP packet, and returns the program's
// verdict and the packet as it left the program.
func (r *Runner) Run(prog *ebpf.Program, pkt []byte) (verdict uint32, out []byte, err error) {
	// The test run takes an Ethernet frame and removes its header (the tun
	// device has none): the EtherType gives the skb its protocol.
	frame := make([]byte, 14+len(pkt))
	binary.BigEndian.PutUint16(frame[12:], etherType(pkt))
	copy(frame[14:], pkt)
	buf := make([]byte, len(pkt)+256)
	done := make(chan struct{})
	r.calls <- func() {
		defer close(done)
		opts := ebpf.RunOptions{Data: frame, DataOut: buf, Context: skbContext{Ifindex: uint32(r.ifindex)}}
		verdict, err = prog.Run(&opts)
		out = opts.DataOut
	}
	<-done
	if err != nil {
		if errors.Is(err, unix.EINVAL) && len(frame) > minRunLimit {
			return 0, nil, fmt.Errorf("%w: %d bytes", ErrTooLarge, len(frame))
		}
		return 0, nil, fmt.Errorf("test run: %w", err)
	}
	if len(out) < 14 {
		return 0, nil, fmt.Errorf("test run: %d bytes out, less than an Ethernet header", len(out))
	}
	if want := etherType(out[14:]); binary.BigEndian.Uint16(out[12:]) != want {
		return 0, nil, fmt.Errorf("test run: EtherType %#04x out, want %#04x for the packet", binary.BigEndian.Uint16(out[12:]), want)
	}
	return verdict, out[14:], nil
}

// etherType is the EtherType of an IP packet by its version: IPv6 or else
// IPv4 (which the program punts when the version says otherwise). The test
// run refuses an IPv4 or IPv6 frame shorter than the IP header, which the
// kernel never hands a device either: such a packet goes as an EtherType
// of local experiments, which the program must punt as well.
func etherType(pkt []byte) uint16 {
	switch {
	case len(pkt) >= 40 && pkt[0]>>4 == 6:
		return unix.ETH_P_IPV6
	case len(pkt) >= 20 && pkt[0]>>4 != 6:
		return unix.ETH_P_IP
	}
	return unix.ETH_P_802_EX1
}

// Outcome is what the program did with one packet, checked against the Go
// translator.
type Outcome struct {
	Taken    bool // the program translated the packet
	Eligible bool // the packet belongs to the fast path's classes (doc.go)
}

// Compare runs pkt through prog and through tr, which must have the
// configuration and table prog was loaded with, and returns an error when
// they disagree: the program's output must be byte for byte the one
// packet tr emits, or the input untouched (punted). A packet of the fast
// path's classes must be taken.
func (r *Runner) Compare(prog *ebpf.Program, tr *translator.Translator, pkt []byte) (Outcome, error) {
	verdict, out, err := r.Run(prog, pkt)
	if err != nil {
		return Outcome{}, err
	}
	o := translator.NewOut()
	res := tr.Translate(pkt, o)
	oc := Outcome{Eligible: Eligible(tr, pkt, res, o)}
	switch verdict {
	case actOK:
		if !bytes.Equal(out, pkt) {
			return oc, fmt.Errorf("punted but modified:\n in % x\nout % x", pkt, out)
		}
		if oc.Eligible {
			return oc, fmt.Errorf("punted a packet of the fast path's classes (Go: %v), % x", res.Verdict, pkt)
		}
		return oc, nil
	case actRedirect:
		oc.Taken = true
		if res.Verdict != translator.Forward || len(o.Pkts) != 1 {
			return oc, fmt.Errorf("translated, but Go says %v %q with %d packets:\n in % x\nout % x", res.Verdict, res.Reason, len(o.Pkts), pkt, out)
		}
		if !bytes.Equal(out, o.Pkts[0]) {
			return oc, fmt.Errorf("translations differ:\n in % x\nbpf % x\n go % x", pkt, out, o.Pkts[0])
		}
		return oc, nil
	case actShot:
		return oc, errors.New("dropped: an internal error")
	}
	return oc, fmt.Errorf("unexpected verdict %d", verdict)
}

// Eligible says whether pkt belongs to the classes the fast path must
// take (doc.go), judged from the Go translator's result and the packet,
// independently of the program: a program that punted everything would
// fail Compare on these.
func Eligible(tr *translator.Translator, pkt []byte, res translator.Result, o *translator.Out) bool {
	cfg := tr.Config()
	if res.Verdict != translator.Forward || len(o.Pkts) != 1 || res.Entry < 0 {
		return false
	}
	out := o.Pkts[0]
	if len(pkt) < 28 || len(out) < 28 || pkt[0]>>4 == out[0]>>4 {
		return false // no transport header, or hairpinned (IPv6 in and out)
	}
	if !fewLengths(tr.Table()) {
		return false
	}
	var proto uint8
	var l4 []byte
	switch pkt[0] >> 4 {
	case 4:
		if pkt[0] != 0x45 || int(binary.BigEndian.Uint16(pkt[2:])) != len(pkt) ||
			binary.BigEndian.Uint16(pkt[6:])&0x3fff != 0 {
			return false
		}
		if _, _, mapped := tr.Table().Map4([4]byte(pkt[12:16])); mapped {
			return false // a mapped source: a spoof, or SIIT's server to server
		}
		proto, l4 = pkt[9], pkt[20:]
	case 6:
		if int(binary.BigEndian.Uint16(pkt[4:]))+40 != len(pkt) || !cfg.PseudoPrefix.Contains(netip.AddrFrom16([16]byte(pkt[24:40]))) {
			return false
		}
		proto, l4 = pkt[6], pkt[40:]
		if _, _, mapped := tr.Table().Map4([4]byte(out[16:20])); mapped {
			return false // to a mapped address: a hairpin, even with hairpinning off
		}
		if cfg.GenerateIPv4ID && len(out) > 88 && len(out) <= 1280 {
			return false
		}
	default:
		return false
	}
	switch proto {
	case 6:
		return true
	case 17:
		return binary.BigEndian.Uint16(l4[6:]) != 0
	case 1, 58:
		if l4[0] != 8 && l4[0] != 0 && l4[0] != 128 && l4[0] != 129 {
			return false
		}
		// From IPv6, a translated checksum that is a zero (0x0000 or
		// 0xffff) is left to the tun path (xlat.c).
		c := binary.BigEndian.Uint16(out[22:])
		return proto == 1 || (c != 0 && c != 0xffff)
	}
	return false
}

func fewLengths(t *translator.Table) bool {
	l4, l6 := map[int]bool{}, map[int]bool{}
	for i := range t.Len() {
		m := t.Mapping(i)
		l4[m.IPv4.Bits()] = true
		l6[m.IPv6.Bits()] = true
	}
	return len(l4) <= fastpath.MaxLengths && len(l6) <= fastpath.MaxLengths
}
