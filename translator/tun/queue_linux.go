package tun

import (
	"errors"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// fdQueue is the file descriptor of one queue, read and written with raw
// system calls on the caller's own thread. It is deliberately not in the
// Go runtime's poller: there, a packet arriving on an idle queue wakes the
// thread waiting in epoll_wait, which then wakes the worker's locked thread
// (two wake-ups, each tens of microseconds when the CPU was asleep), and
// every packet wakes the epoll thread again even while the worker is busy
// reading. A reader that finds the queue empty instead waits in ppoll(2)
// on its own thread: one wake-up per idle period, none while busy.
type fdQueue struct {
	fd int
	// closing is the device's eventfd, readable once Close has begun: it
	// is the second descriptor of every ppoll, so Close wakes the waiters.
	closing int
	// mu is held shared by every read and write, and exclusively by Close
	// to close fd: a descriptor number is never closed under a call that
	// uses it (and so never reused by another file in the middle of one).
	mu sync.RWMutex
	// Separate poll sets let one goroutine read while another writes.
	rpoll, wpoll [2]unix.PollFd
	// busyPoll: see Device.SetBusyPoll (nanoseconds).
	busyPoll *atomic.Int64
}

// newFDQueue takes fd, which must be non-blocking and owned by nobody
// else (not an os.File: that would put it in the runtime poller).
func newFDQueue(fd, closing int, busyPoll *atomic.Int64) *fdQueue {
	q := &fdQueue{fd: fd, closing: closing, busyPoll: busyPoll}
	q.rpoll = [2]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}, {Fd: int32(closing), Events: unix.POLLIN}}
	q.wpoll = [2]unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}, {Fd: int32(closing), Events: unix.POLLIN}}
	return q
}

// idle is called by a reader that found the queue empty before it read
// anything. With busy polling on, it returns at once (try again) until
// busyPoll has passed since *since (set on the first call); then, and
// always without busy polling, it waits for the queue to become readable.
func (q *fdQueue) idle(since *int64) error {
	if spin := q.busyPoll.Load(); spin > 0 {
		now := time.Now().UnixNano()
		if *since == 0 {
			*since = now
		}
		if now-*since < spin {
			return nil
		}
		*since = 0
	}
	return q.wait(&q.rpoll)
}

// wait blocks in ppoll until the queue is ready for the events of p[0] or
// has an error (the read or write that follows reports it), or until the
// device is closing (os.ErrClosed).
func (q *fdQueue) wait(p *[2]unix.PollFd) error {
	for {
		p[0].Revents, p[1].Revents = 0, 0
		_, err := unix.Ppoll(p[:], nil, nil)
		switch {
		case errors.Is(err, unix.EINTR):
			continue
		case err != nil:
			return err
		case p[1].Revents != 0:
			return os.ErrClosed
		case p[0].Revents != 0:
			return nil
		}
	}
}

// closeQueues closes the queues' descriptors, then the eventfd, after
// waking every waiter; the calls in progress finish first (they hold mu).
func closeQueues(queues []*fdQueue, closing int) error {
	var errs []error
	if closing >= 0 {
		// An eventfd counter above zero stays readable: every current and
		// future ppoll on it returns.
		var one = [8]byte{1}
		if _, err := unix.Write(closing, one[:]); err != nil {
			errs = append(errs, err)
		}
	}
	for _, q := range queues {
		q.mu.Lock()
		if err := unix.Close(q.fd); err != nil {
			errs = append(errs, err)
		}
		q.fd = -1
		q.mu.Unlock()
	}
	if closing >= 0 {
		if err := unix.Close(closing); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// newClosingFD returns the eventfd that Close signals.
func newClosingFD() (int, error) {
	return unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
}
