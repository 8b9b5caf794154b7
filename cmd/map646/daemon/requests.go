package daemon

import (
	"context"
	"errors"

	"github.com/map646/map646/cmd/map646/control"
	"github.com/map646/map646/translator"
)

// The control socket's commands reach the node as requests to the daemon
// loop: the connection's goroutine hands one over and waits for the
// answer, passing on a drain's progress lines as they come. Only the loop
// acts on them; only the status is read without it (the view the loop
// publishes).

// errStopping answers a command the loop will not carry out any more.
var errStopping = errors.New("map646 is stopping")

// progressLines bounds the progress lines waiting for a client: the loop
// never waits for one. A client that reads is never that far behind (a
// drain reports about once a second, and the control server drops a client
// that has not taken a line in 5 s); the lines of one that does not are
// dropped, not the drain.
const progressLines = 64

// request is one command for the loop.
type request struct {
	command string                     // drain, undrain, reload or mapping
	force   bool                       // drain -force
	changes []translator.MappingChange // mapping
	lines   chan string
	done    chan answer
}

// answer is a command's final answer: a message for the operator, or why
// it failed.
type answer struct {
	msg string
	err error
}

func newRequest(command string, force bool) *request {
	return &request{command: command, force: force,
		lines: make(chan string, progressLines), done: make(chan answer, 1)}
}

// progress passes a progress line to the client, if there is room.
func (r *request) progress(line string) {
	select {
	case r.lines <- line:
	default:
	}
}

// answer ends the request. It is called once.
func (r *request) answer(msg string, err error) { r.done <- answer{msg, err} }

// requests is the loop's queue of requests.
type requests chan *request

// ask hands r to the loop and waits for its answer, calling progress with
// each progress line first. ctx ends with the control server: a request
// the loop has not answered by then gets errStopping.
func (q requests) ask(ctx context.Context, r *request, progress func(string)) (string, error) {
	select {
	case q <- r:
	case <-ctx.Done():
		return "", errStopping
	}
	finish := func(a answer) (string, error) {
		for { // every line was sent before the answer
			select {
			case line := <-r.lines:
				progress(line)
			default:
				return a.msg, a.err
			}
		}
	}
	for {
		select {
		case line := <-r.lines:
			progress(line)
		case a := <-r.done:
			return finish(a)
		case <-ctx.Done():
			select {
			case a := <-r.done: // answered as the server closed
				return finish(a)
			default:
				return "", errStopping
			}
		}
	}
}

// controlHandler is what the control socket serves: the status from the
// lifecycle's published view, every command through the loop.
type controlHandler struct {
	lc *lifecycle
	q  requests
	tv *tableView // the mapping commands' (mappings.go)
}

func (h controlHandler) Status() control.Status { return h.lc.Status() }

func (h controlHandler) Drain(ctx context.Context, force bool, progress func(string)) (string, error) {
	return h.q.ask(ctx, newRequest("drain", force), progress)
}

func (h controlHandler) Undrain(ctx context.Context) (string, error) {
	return h.q.ask(ctx, newRequest("undrain", false), func(string) {})
}

func (h controlHandler) Reload(ctx context.Context) (string, error) {
	return h.q.ask(ctx, newRequest("reload", false), func(string) {})
}

// handle carries out a drain or an undrain (a reload is the daemon's: it
// never reaches here).
func (c *lifecycle) handle(ctx context.Context, r *request) {
	switch r.command {
	case "drain":
		c.startDrain(ctx, r)
	case "undrain":
		r.answer(c.undrain(ctx))
	default:
		r.answer("", errors.New("unknown command "+r.command))
	}
}
