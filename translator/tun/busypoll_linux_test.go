package tun

import (
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	pt "github.com/map646/map646/translator/packettest"
)

// TestBusyPoll: a reader that finds its queue empty stays on the CPU,
// reading, for its busy-poll time and then sleeps; without busy polling it
// sleeps at once. Either way it reads the packet that arrives later, and
// Close wakes it whether it is spinning or asleep.
func TestBusyPoll(t *testing.T) {
	const spin = 300 * time.Millisecond
	const wait = 1200 * time.Millisecond // from the start of the read to the packet
	opens := map[string]func(string) (Device, error){
		"offload": func(name string) (Device, error) { return OpenOffload(name, 1500, 1, 1000) },
		"plain":   func(name string) (Device, error) { return OpenPlain(name, 1500) },
	}
	for name, open := range opens {
		t.Run(name, func(t *testing.T) {
			newNetns(t)
			// No IPv6 on the device: the kernel's MLD reports and router
			// solicitations would end an empty queue's wait early.
			if err := os.WriteFile("/proc/sys/net/ipv6/conf/default/disable_ipv6", []byte("1"), 0); err != nil {
				t.Fatal(err)
			}
			dev, err := open(testName())
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { dev.Close() })
			ip(t, "addr", "add", "10.99.0.1/24", "dev", dev.Name())
			c, err := net.DialUDP("udp4", nil, &net.UDPAddr{IP: peerAddr4.AsSlice(), Port: 9999})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()

			for _, busy := range []time.Duration{0, spin} {
				dev.SetBusyPoll(busy)
				res := make(chan timedRead, 1)
				go func() { res <- readDatagram(dev, 9999) }()
				time.Sleep(wait)
				if _, err := c.Write([]byte("late")); err != nil {
					t.Fatal(err)
				}
				var r timedRead
				select {
				case r = <-res:
				case <-time.After(5 * time.Second):
					t.Fatalf("busy poll %v: the datagram was not read", busy)
				}
				if r.err != nil {
					t.Fatalf("busy poll %v: %v", busy, r.err)
				}
				t.Logf("busy poll %v: read after %v, runnable %v of it (%v on a CPU)", busy, r.wall.Round(time.Millisecond), r.runnable.Round(time.Millisecond), r.cpu.Round(time.Millisecond))
				// Runnable time, not CPU time: a spinning reader never
				// sleeps, but on a loaded machine it may wait for a CPU
				// (115 ms of CPU in a 300 ms spin was seen with other
				// jobs on both CPUs); a sleeping one is neither.
				switch {
				case r.wall < wait-100*time.Millisecond:
					t.Errorf("busy poll %v: read after %v, before the datagram was sent", busy, r.wall)
				case busy == 0 && r.runnable > 100*time.Millisecond:
					t.Errorf("no busy poll: runnable %v while waiting %v: the reader did not sleep", r.runnable, r.wall)
				case busy > 0 && r.runnable < busy*8/10:
					t.Errorf("busy poll %v: runnable only %v: the reader slept early", busy, r.runnable)
				case busy > 0 && r.runnable > r.wall-300*time.Millisecond:
					t.Errorf("busy poll %v: runnable %v in %v: the reader never slept", busy, r.runnable, r.wall)
				}
			}

			// Close wakes a spinning reader.
			dev.SetBusyPoll(time.Hour)
			res := make(chan timedRead, 1)
			go func() { res <- readDatagram(dev, 9999) }()
			time.Sleep(100 * time.Millisecond)
			dev.Close()
			select {
			case r := <-res:
				if !errors.Is(r.err, os.ErrClosed) {
					t.Errorf("spinning reader after Close: %v, want os.ErrClosed", r.err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("Close did not stop the spinning reader")
			}
		})
	}
}

// timedRead is what readDatagram saw: how long it took, how long its
// thread was runnable meanwhile (on a CPU or waiting for one) and of that
// on a CPU, and the error that ended it.
type timedRead struct {
	wall, runnable, cpu time.Duration
	err                 error
}

// runnableTime is the time the calling thread has spent on a CPU or
// waiting in a run queue for one (the first two fields of
// /proc/thread-self/schedstat, in nanoseconds): everything but sleeping.
func runnableTime() (time.Duration, error) {
	b, err := os.ReadFile("/proc/thread-self/schedstat")
	if err != nil {
		return 0, err
	}
	var run, wait int64
	if _, err := fmt.Sscan(string(b), &run, &wait); err != nil {
		return 0, fmt.Errorf("/proc/thread-self/schedstat %q: %w", b, err)
	}
	return time.Duration(run + wait), nil
}

// readDatagram reads from queue 0 until a UDP datagram to port arrives,
// on a thread of its own so that the thread's CPU time is the reader's.
func readDatagram(dev Device, port uint16) timedRead {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	cpu := func() time.Duration {
		var ts unix.Timespec
		unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts)
		return time.Duration(ts.Nano())
	}
	start, cpu0 := time.Now(), cpu()
	runnable0, err := runnableTime()
	if err != nil {
		return timedRead{err: err}
	}
	batch := NewBatch(4)
	for {
		n, err := dev.ReadBatch(0, batch)
		if err != nil {
			return timedRead{err: err}
		}
		for _, p := range batch[:n] {
			if q, err := pt.Check(p.Bytes()); err == nil && q.Proto == pt.ProtoUDP && q.Dport == port {
				wall, cpu := time.Since(start), cpu()-cpu0
				runnable, err := runnableTime()
				return timedRead{wall: wall, runnable: runnable - runnable0, cpu: cpu, err: err}
			}
		}
	}
}
