package netlab

import (
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync"
	"syscall"
)

// Script is a TB for a program (a lab command rather than a test): Cleanup
// stacks functions that Close runs last-in first-out; Fatalf prints, runs
// them and exits 1; SIGINT and SIGTERM run them too before exiting 1
// (unless the program asked for the first one, see Interrupts). Use it as
//
//	s := netlab.NewScript(os.Stderr)
//	defer s.Close()
type Script struct {
	mu       sync.Mutex
	log      io.Writer
	cleanups []func()
	failed   bool
	sigs     chan os.Signal
	// interrupt, when not nil, is closed by the first SIGINT or SIGTERM
	// instead of cleaning up and exiting (Interrupts).
	interrupt chan struct{}
}

// NewScript returns a Script that logs to log and cleans up on SIGINT and
// SIGTERM.
func NewScript(log io.Writer) *Script {
	s := &Script{log: log, sigs: make(chan os.Signal, 1)}
	signal.Notify(s.sigs, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		for sig := range s.sigs {
			s.mu.Lock()
			interrupt := s.interrupt
			s.interrupt = nil
			s.mu.Unlock()
			if interrupt != nil {
				s.Logf("\nnetlab: %v: stopping at the next step and cleaning up (again to quit at once)", sig)
				close(interrupt)
				continue
			}
			s.Logf("netlab: %v: cleaning up", sig)
			s.Close()
			os.Exit(1)
		}
	}()
	return s
}

// Interrupts returns a channel that the first SIGINT or SIGTERM closes, for
// a program that stops at its next step and reports what ran; a second
// signal cleans up and exits as before.
func (s *Script) Interrupts() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.interrupt == nil {
		s.interrupt = make(chan struct{})
	}
	return s.interrupt
}

func (s *Script) Helper() {}

func (s *Script) Cleanup(f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cleanups = append(s.cleanups, f)
}

func (s *Script) Logf(format string, args ...any) {
	fmt.Fprintf(s.log, format+"\n", args...)
}

func (s *Script) Errorf(format string, args ...any) {
	s.mu.Lock()
	s.failed = true
	s.mu.Unlock()
	s.Logf(format, args...)
}

// Fatalf prints, cleans up and exits 1.
func (s *Script) Fatalf(format string, args ...any) {
	s.Errorf(format, args...)
	s.Close()
	os.Exit(1)
}

func (s *Script) Failed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.failed
}

// TempDir returns a new temporary directory, removed by Close.
func (s *Script) TempDir() string {
	d, err := os.MkdirTemp("", "netlab")
	if err != nil {
		s.Fatalf("netlab: %v", err)
	}
	s.Cleanup(func() { os.RemoveAll(d) })
	return d
}

// Close runs the cleanups, last first; it is safe to call more than once.
func (s *Script) Close() {
	for {
		s.mu.Lock()
		n := len(s.cleanups)
		if n == 0 {
			s.mu.Unlock()
			return
		}
		f := s.cleanups[n-1]
		s.cleanups = s.cleanups[:n-1]
		s.mu.Unlock()
		f()
	}
}
