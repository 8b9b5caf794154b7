package netlab

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Proc is a background process in a namespace, its output (stdout and
// stderr) kept line by line.
type Proc struct {
	Name string // ARGS[0] and the namespace's role, for messages
	cmd  *exec.Cmd

	mu    sync.Mutex
	lines []string
	grow  chan struct{} // closed and replaced when a line arrives

	done chan struct{}
	err  error // valid after done
}

// Start starts ARGS in the namespace in the background, in a process group
// of its own, and registers its stop on t (Stop with a 5 s grace).
func (n *NS) Start(t TB, args ...string) *Proc {
	t.Helper()
	p := &Proc{Name: args[0] + " in " + n.Role, cmd: n.Command(args...), grow: make(chan struct{}), done: make(chan struct{})}
	// Killed with this process, too: a test binary that dies skips its
	// cleanups.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	r, w := io.Pipe()
	p.cmd.Stdout, p.cmd.Stderr = w, w
	if err := spawn(p.cmd); err != nil {
		t.Fatalf("netlab: start %s: %v", strings.Join(args, " "), err)
	}
	collected := make(chan struct{})
	go func() {
		defer close(collected)
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			p.mu.Lock()
			p.lines = append(p.lines, sc.Text())
			close(p.grow)
			p.grow = make(chan struct{})
			p.mu.Unlock()
		}
		io.Copy(io.Discard, r)
	}()
	go func() {
		err := p.cmd.Wait()
		w.Close()
		<-collected
		p.err = err
		close(p.done)
	}()
	t.Cleanup(func() {
		if err := p.Stop(5 * time.Second); errors.Is(err, errKilled) {
			t.Logf("netlab: %v", err)
		}
	})
	return p
}

// The parent-death signal goes to a child when the thread that started it
// ends, not the process (Go issue 27505), and netlab.Do ends threads: every
// Proc is started from one thread that lives as long as the process.
var spawner = sync.OnceValue(func() chan func() {
	c := make(chan func())
	go func() {
		runtime.LockOSThread() // never unlocked: this thread is the spawner's alone
		for f := range c {
			f()
		}
	}()
	return c
})

func spawn(cmd *exec.Cmd) error {
	errc := make(chan error, 1)
	spawner() <- func() { errc <- cmd.Start() }
	return <-errc
}

// PID returns the process id (ip netns exec execs the tool: it is the
// tool's).
func (p *Proc) PID() int { return p.cmd.Process.Pid }

// Signal sends sig to the process (not its group).
func (p *Proc) Signal(sig syscall.Signal) error {
	select {
	case <-p.done:
		return fmt.Errorf("%s has exited: %v", p.Name, p.err)
	default:
	}
	return p.cmd.Process.Signal(sig)
}

// Done is closed when the process has exited and its output is read.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Err is the process's exit error, valid once Done is closed.
func (p *Proc) Err() error { return p.err }

// Wait waits for the process to exit by itself, for at most timeout; it
// returns its exit error, or an error saying it is still running.
func (p *Proc) Wait(timeout time.Duration) error {
	// An exited process first: with a timeout of 0 both cases below are
	// ready at once, and select would pick either.
	select {
	case <-p.done:
		return p.err
	default:
	}
	select {
	case <-p.done:
		return p.err
	case <-time.After(timeout):
		return fmt.Errorf("%s still running after %v", p.Name, timeout)
	}
}

// Stop ends the process: SIGTERM, then after grace SIGKILL to its whole
// process group (its children included), and waits for it. It returns the
// exit error (a process ended by SIGTERM returns that signal as error);
// it is safe to call on an exited process and more than once. Start
// registers it as a cleanup, which logs only a process that had to be
// killed.
func (p *Proc) Stop(grace time.Duration) error {
	select {
	case <-p.done:
		return p.err
	default:
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return p.err
	case <-time.After(grace):
	}
	syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL) // the group this Proc leads
	select {
	case <-p.done:
		return fmt.Errorf("%s did not stop within %v of SIGTERM: %w", p.Name, grace, errKilled)
	case <-time.After(10 * time.Second):
		return fmt.Errorf("%s survives SIGKILL: %w", p.Name, errKilled)
	}
}

var errKilled = errors.New("killed")

func isSignalled(err error) bool {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return true
		}
	}
	return false
}

// Lines returns the output lines so far.
func (p *Proc) Lines() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.lines...)
}

// Output returns the output so far as one string.
func (p *Proc) Output() string { return strings.Join(p.Lines(), "\n") }

// FailureLogLines is how many of its last output lines a process shows
// when its test fails. A daemon's debug log runs to thousands of lines,
// which would bury the test's own error; LAB_FULL_LOGS=1 in the
// environment shows every line.
const FailureLogLines = 80

// LogOnFailure makes p show its output under title when t has failed: its
// last FailureLogLines lines, or all of them with LAB_FULL_LOGS=1.
func (p *Proc) LogOnFailure(t TB, title string) {
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		lines := p.Lines()
		if n := len(lines) - FailureLogLines; n > 0 && os.Getenv("LAB_FULL_LOGS") != "1" {
			t.Logf("%s: %d lines, the last %d (LAB_FULL_LOGS=1 shows all):\n%s", title, len(lines), FailureLogLines, strings.Join(lines[n:], "\n"))
			return
		}
		t.Logf("%s:\n%s", title, strings.Join(lines, "\n"))
	})
}

// WaitLine waits for the first output line from index from on for which
// match is true, and returns it with the index after it. It fails t if the
// process exits first or timeout passes.
func (p *Proc) WaitLine(t TB, from int, timeout time.Duration, match func(string) bool) (string, int) {
	t.Helper()
	line, next, err := p.waitLine(from, timeout, match)
	if err != nil {
		t.Fatalf("netlab: %v", err)
	}
	return line, next
}

func (p *Proc) waitLine(from int, timeout time.Duration, match func(string) bool) (string, int, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		p.mu.Lock()
		for i := from; i < len(p.lines); i++ {
			if match(p.lines[i]) {
				line := p.lines[i]
				p.mu.Unlock()
				return line, i + 1, nil
			}
		}
		from = len(p.lines)
		grow := p.grow
		p.mu.Unlock()
		select {
		case <-grow:
		case <-p.done:
			// Lines that arrived before the exit are in; look once more.
			p.mu.Lock()
			var found string
			ok := false
			for i := from; i < len(p.lines); i++ {
				if match(p.lines[i]) {
					found, from, ok = p.lines[i], i+1, true
					break
				}
			}
			p.mu.Unlock()
			if ok {
				return found, from, nil
			}
			return "", from, fmt.Errorf("%s exited (%v) before printing the line waited for; output:\n%s", p.Name, p.err, p.Output())
		case <-deadline.C:
			return "", from, fmt.Errorf("%s: the line waited for did not come within %v; output:\n%s", p.Name, timeout, p.Output())
		}
	}
}

// CPUTime returns the user and system time process pid (all its threads)
// has used so far.
func CPUTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	return parseStatCPU(string(b))
}

// parseStatCPU returns utime + stime of a /proc/PID/stat line. The fields
// are counted after the command name's closing parenthesis, since the name
// may hold spaces; their unit is USER_HZ, 100 per second on Linux.
func parseStatCPU(stat string) (time.Duration, error) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc stat line without a command name: %q", stat[:min(len(stat), 80)])
	}
	f := strings.Fields(stat[i+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc stat line with %d fields after the command name, want 13 or more", len(f))
	}
	var ticks uint64
	for _, s := range f[11:13] { // fields 14 and 15 of proc(5): utime, stime
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc stat: utime or stime %q: %w", s, err)
		}
		ticks += n
	}
	return time.Duration(ticks) * (time.Second / 100), nil
}
