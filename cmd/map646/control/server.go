package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"sync"
	"syscall"
	"time"
)

// The control protocol, on a unix stream socket: the client sends one
// request line, a JSON object
//
//	{"command": "status" | "drain" | "undrain" | "reload", "force": bool}
//
// (force only with drain), and the daemon answers with zero or more
// progress lines {"progress": "..."} and one final line, either
// {"ok": true, "message": "...", "status": {...}} or
// {"ok": false, "error": "..."}; then it closes the connection.
type controlRequest struct {
	Command string `json:"command"`
	Force   bool   `json:"force,omitempty"`
}

// controlReply is one answer line: a progress line (Progress set) or the
// final one (OK set).
type controlReply struct {
	Progress *string `json:"progress,omitempty"`
	OK       *bool   `json:"ok,omitempty"`
	Message  string  `json:"message,omitempty"`
	Error    string  `json:"error,omitempty"`
	Status   *Status `json:"status,omitempty"`
}

const (
	// maxRequest bounds a request line: a request is a few dozen bytes, and
	// a client must not make the daemon buffer without bound.
	maxRequest = 4096
	// writeTimeout bounds each answer line: a client that stops reading is
	// dropped (a drain it started goes on).
	writeTimeout = 5 * time.Second
)

// requestTimeout bounds the wait for the request line: a client that
// connects and says nothing does not hold a goroutine forever. A variable
// for tests.
var requestTimeout = 5 * time.Second

// controlHandler carries out the commands.
type controlHandler interface {
	Status() Status
	Drain(ctx context.Context, force bool, progress func(string)) (string, error)
	Undrain(ctx context.Context) (string, error)
	Reload(ctx context.Context) (string, error)
}

// controlServer serves the control socket.
type controlServer struct {
	ln  *net.UnixListener
	h   controlHandler
	log *slog.Logger

	ctx    context.Context // cancelled by Close: running commands stop
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
}

// listenControl creates the control socket at path, mode 0600 from the
// start (the umask is set around the bind, so there is no moment when
// another user could connect). It refuses when a live map646 answers on
// path and removes a stale socket left by a process that died.
func listenControl(path string, log *slog.Logger) (*net.UnixListener, error) {
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode().Type() != fs.ModeSocket {
			return nil, fmt.Errorf("control socket %s: the path exists and is not a socket; choose another [control] socket or remove the file", path)
		}
		c, err := net.DialTimeout("unix", path, time.Second)
		if err == nil {
			c.Close()
			return nil, fmt.Errorf("control socket %s: another map646 answers on it; stop it first, or give this one another [control] socket", path)
		}
		if !errors.Is(err, syscall.ECONNREFUSED) {
			return nil, fmt.Errorf("control socket %s: cannot tell whether another map646 uses it: %w", path, err)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("control socket %s: remove the stale socket: %w", path, err)
		}
		log.Warn("removed a stale control socket (left by a map646 that did not stop cleanly)", "socket", path)
	}
	old := syscall.Umask(0o177)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	syscall.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	// Belt and braces: the mode must be 0600 whatever the umask did.
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	ln.SetUnlinkOnClose(true)
	return ln, nil
}

func newControlServer(ln *net.UnixListener, h controlHandler, log *slog.Logger) *controlServer {
	ctx, cancel := context.WithCancel(context.Background())
	s := &controlServer{ln: ln, h: h, log: log, ctx: ctx, cancel: cancel}
	s.wg.Add(1)
	go s.serve()
	return s
}

func (s *controlServer) serve() {
	defer s.wg.Done()
	for {
		conn, err := s.ln.AcceptUnix()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				s.log.Error("control socket: accept", "err", err)
			}
			return
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.handle(conn)
		}()
	}
}

// Close stops accepting, cancels running commands and waits for their
// handlers; the socket file is removed. Safe twice.
func (s *controlServer) Close() {
	s.once.Do(func() {
		s.ln.Close()
		s.cancel()
		s.wg.Wait()
	})
}

// readRequest reads and checks one request line.
func readRequest(r io.Reader) (controlRequest, error) {
	var req controlRequest
	line, err := bufio.NewReader(io.LimitReader(r, maxRequest+1)).ReadBytes('\n')
	switch {
	case len(line) > maxRequest:
		return req, fmt.Errorf("request longer than %d bytes", maxRequest)
	case errors.Is(err, io.EOF) && len(line) == 0:
		return req, errors.New("connection closed before a request")
	case err != nil:
		return req, fmt.Errorf("incomplete request (no end of line): %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return req, fmt.Errorf("request is not a JSON object {\"command\": ...}: %v", err)
	}
	if dec.More() {
		return req, errors.New("request has more than one JSON value")
	}
	switch req.Command {
	case "status", "drain", "undrain", "reload":
	case "":
		return req, errors.New(`request has no "command"`)
	default:
		return req, fmt.Errorf("unknown command %q: status, drain, undrain or reload", req.Command)
	}
	if req.Force && req.Command != "drain" {
		return req, fmt.Errorf("force applies to drain only, not to %s", req.Command)
	}
	return req, nil
}

func (s *controlServer) handle(conn *net.UnixConn) {
	defer conn.Close()
	conn.SetReadDeadline(time.Now().Add(requestTimeout))
	req, err := readRequest(conn)
	conn.SetReadDeadline(time.Time{})
	gone := false // the client stopped reading: stop writing, log once
	send := func(r controlReply) {
		if gone {
			return
		}
		b, _ := json.Marshal(r)
		conn.SetWriteDeadline(time.Now().Add(writeTimeout))
		if _, err := conn.Write(append(b, '\n')); err != nil {
			gone = true
			s.log.Warn("control socket: the client went away", "command", req.Command, "err", err)
		}
	}
	fail := func(err error) {
		f := false
		send(controlReply{OK: &f, Error: err.Error()})
	}
	if err != nil {
		s.log.Warn("control socket: bad request", "err", err)
		fail(err)
		return
	}
	var msg string
	switch req.Command {
	case "status":
	case "drain":
		s.log.Info("control: drain", "force", req.Force)
		msg, err = s.h.Drain(s.ctx, req.Force, func(p string) { send(controlReply{Progress: &p}) })
	case "undrain":
		s.log.Info("control: undrain")
		msg, err = s.h.Undrain(s.ctx)
	case "reload":
		s.log.Info("control: reload")
		msg, err = s.h.Reload(s.ctx)
	}
	if err != nil {
		if req.Command != "status" {
			s.log.Warn("control: "+req.Command+" failed", "err", err)
		}
		fail(err)
		return
	}
	t, st := true, s.h.Status()
	send(controlReply{OK: &t, Message: msg, Status: &st})
}

// controlCall sends req to the daemon at path and returns its final
// answer, passing progress lines to progress. timeout bounds the whole
// call (0: none, for a drain, which the daemon bounds).
func controlCall(path string, req controlRequest, timeout time.Duration, progress func(string)) (controlReply, error) {
	var final controlReply
	conn, err := net.DialTimeout("unix", path, 2*time.Second)
	if err != nil {
		return final, dialError(path, err)
	}
	defer conn.Close()
	if timeout > 0 {
		conn.SetDeadline(time.Now().Add(timeout))
	}
	b, _ := json.Marshal(req)
	if _, err := conn.Write(append(b, '\n')); err != nil {
		return final, fmt.Errorf("send the request to %s: %w", path, err)
	}
	sc := bufio.NewScanner(conn)
	sc.Buffer(make([]byte, 64*1024), 64<<20) // a status with many neighbors and prefixes is long
	for sc.Scan() {
		var r controlReply
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			return final, fmt.Errorf("garbled answer from %s: %v", path, err)
		}
		switch {
		case r.Progress != nil:
			if progress != nil {
				progress(*r.Progress)
			}
		case r.OK != nil:
			return r, nil
		default:
			return final, fmt.Errorf("garbled answer from %s: neither progress nor ok: %s", path, sc.Bytes())
		}
	}
	if err := sc.Err(); err != nil {
		return final, fmt.Errorf("read the answer from %s: %w", path, err)
	}
	return final, fmt.Errorf("map646 at %s closed the connection without an answer (did it stop?)", path)
}

// dialError turns a failed connection into what the operator can do.
func dialError(path string, err error) error {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("no control socket at %s: map646 run is not running, or its [control] socket is elsewhere (-socket PATH)", path)
	case errors.Is(err, fs.ErrPermission):
		return fmt.Errorf("permission denied on %s: the control socket is root's only (mode 0600); run as root", path)
	case errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Errorf("nothing answers on %s: map646 is not running (the socket was left by a process that died)", path)
	}
	return fmt.Errorf("connect to %s: %w", path, err)
}
