package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// requestTimeout bounds the wait for the request line: a client that
// connects and says nothing does not hold a goroutine forever. A variable
// for tests.
var requestTimeout = 5 * time.Second

// maxConns bounds the connections served at once: each holds a goroutine
// and, for a drain, a request in the daemon loop's queue; a local client
// opening connections in a loop must not grow them without bound. A drain
// holds its connection until it ends; sixteen leave room for status calls
// meanwhile. A variable for tests.
var maxConns = 16

// refusedLogEvery bounds the log lines about refused connections: a flood
// of them must not flood the log too.
const refusedLogEvery = 10 * time.Second

// Handler carries out the commands.
type Handler interface {
	Status() Status
	Drain(ctx context.Context, force bool, progress func(string)) (string, error)
	Undrain(ctx context.Context) (string, error)
	Reload(ctx context.Context) (string, error)
}

// Server serves the control socket, or the read-only status socket.
type Server struct {
	ln  *net.UnixListener
	h   Handler
	log *slog.Logger
	// readOnly: the status socket, which answers status and refuses every
	// command that changes the node.
	readOnly bool

	ctx    context.Context // cancelled by Close: running commands stop
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once

	slots chan struct{} // one per connection served; maxConns of them
	// Refused connections since the last log line, and when that was;
	// serve's goroutine alone uses them.
	refused    int
	refusedLog time.Time
}

// Listen creates the control socket at path, mode 0600 from the
// start (the umask is set around the bind, so there is no moment when
// another user could connect). It refuses when a live map646 answers on
// path and removes a stale socket left by a process that died.
func Listen(path string, log *slog.Logger) (*net.UnixListener, error) {
	return listen("control socket", "[control] socket", path, 0o600, -1, log)
}

// ListenStatus creates the read-only status socket at path as Listen
// does, mode 0660 and owned by the group gid: its members may connect,
// and what they reach is NewStatusServer's, which changes nothing.
func ListenStatus(path string, gid int, log *slog.Logger) (*net.UnixListener, error) {
	return listen("status socket", "[control] status_socket", path, 0o660, gid, log)
}

// listen creates the socket what (configured as key) at path with the
// permissions perm and, unless gid is -1, the group gid.
func listen(what, key, path string, perm os.FileMode, gid int, log *slog.Logger) (*net.UnixListener, error) {
	// The default lives in a directory of its own, /run/map646, which
	// systemd makes for the unit (RuntimeDirectory=map646), owned by the
	// user it runs as; run by hand, map646 makes it (not its parents: a
	// path whose grandparent is missing is a mistake).
	if err := os.Mkdir(filepath.Dir(path), 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("%s %s: create its directory: %w", what, path, err)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode().Type() != fs.ModeSocket {
			return nil, fmt.Errorf("%s %s: the path exists and is not a socket; choose another %s or remove the file", what, path, key)
		}
		c, err := net.DialTimeout("unix", path, time.Second)
		if err == nil {
			c.Close()
			return nil, fmt.Errorf("%s %s: another map646 answers on it; stop it first, or give this one another %s", what, path, key)
		}
		if !errors.Is(err, syscall.ECONNREFUSED) {
			return nil, fmt.Errorf("%s %s: cannot tell whether another map646 uses it: %w", what, path, err)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("%s %s: remove the stale socket: %w", what, path, err)
		}
		log.Warn("removed a stale "+what+" (left by a map646 that did not stop cleanly)", "socket", path)
	}
	// Until the group is set, the socket is the owner's only.
	old := syscall.Umask(0o177)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	syscall.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if gid >= 0 {
		if err := os.Lchown(path, -1, gid); err != nil {
			ln.Close()
			return nil, fmt.Errorf("%s %s: give it the group %d: %w (a map646 that is not root needs CAP_CHOWN, or to be a member of the group)", what, path, gid, err)
		}
	}
	// Belt and braces for the control socket (the mode must be 0600
	// whatever the umask did); the status socket's group gets its access
	// only now that the group is right.
	if err := os.Chmod(path, perm); err != nil {
		ln.Close()
		return nil, fmt.Errorf("%s %s: %w", what, path, err)
	}
	ln.SetUnlinkOnClose(true)
	return ln, nil
}

// NewServer serves the control socket ln (Listen): every command.
func NewServer(ln *net.UnixListener, h Handler, log *slog.Logger) *Server {
	return newServer(ln, h, log, false)
}

// NewStatusServer serves the read-only status socket ln (ListenStatus):
// status, and an error for every other command. Its connections are
// bounded apart from the control socket's: a monitoring user cannot take
// the slots an operator's drain needs.
func NewStatusServer(ln *net.UnixListener, h Handler, log *slog.Logger) *Server {
	return newServer(ln, h, log, true)
}

func newServer(ln *net.UnixListener, h Handler, log *slog.Logger, readOnly bool) *Server {
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{ln: ln, h: h, log: log, readOnly: readOnly, ctx: ctx, cancel: cancel, slots: make(chan struct{}, maxConns)}
	s.wg.Add(1)
	go s.serve()
	return s
}

func (s *Server) serve() {
	defer s.wg.Done()
	for {
		conn, err := s.ln.AcceptUnix()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				s.log.Error("control socket: accept", "err", err)
			}
			return
		}
		select {
		case s.slots <- struct{}{}:
		default:
			s.refuse(conn)
			continue
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer func() { <-s.slots }()
			s.handle(conn)
		}()
	}
}

// refuse answers a connection over maxConns with an error line and closes
// it. The line is short and the socket new: the write does not block, and
// the deadline makes sure of it.
func (s *Server) refuse(conn *net.UnixConn) {
	f := false
	b, _ := json.Marshal(Reply{OK: &f, Error: fmt.Sprintf("too many control connections (%d at once); try again when one has ended", maxConns)})
	conn.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
	conn.Write(append(b, '\n'))
	conn.Close()
	s.refused++
	if now := time.Now(); now.Sub(s.refusedLog) >= refusedLogEvery {
		s.log.Warn("control socket: connections refused: too many at once", "refused", s.refused, "max", maxConns)
		s.refused, s.refusedLog = 0, now
	}
}

// Close stops accepting, cancels running commands and waits for their
// handlers; the socket file is removed. Safe twice.
func (s *Server) Close() {
	s.once.Do(func() {
		s.ln.Close()
		s.cancel()
		s.wg.Wait()
	})
}

func (s *Server) handle(conn *net.UnixConn) {
	defer conn.Close()
	conn.SetReadDeadline(time.Now().Add(requestTimeout))
	req, err := readRequest(conn)
	conn.SetReadDeadline(time.Time{})
	gone := false // the client stopped reading: stop writing, log once
	send := func(r Reply) {
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
		r := Reply{OK: &f, Error: err.Error()}
		var rn *RestartNeeded
		if errors.As(err, &rn) {
			r.RestartNeeded = rn.Keys
		}
		send(r)
	}
	if err != nil {
		s.log.Warn("control socket: bad request", "err", err)
		fail(err)
		return
	}
	if s.readOnly && !readOnlyCommand(req.Command) {
		s.log.Warn("status socket: command refused", "command", req.Command)
		fail(fmt.Errorf("%s refused: this is map646's read-only status socket ([control] status_socket), which answers status, lookup, mappings and cluster only; %s is taken on the control socket ([control] socket, the daemon user's)", req.Command, req.Command))
		return
	}
	if s.mappingCommand(conn, req, send, fail) {
		return
	}
	if req.Command == "cluster" {
		s.cluster(send, fail)
		return
	}
	var msg string
	switch req.Command {
	case "status":
	case "drain":
		s.log.Info("control: drain", "force", req.Force)
		msg, err = s.h.Drain(s.ctx, req.Force, func(p string) { send(Reply{Progress: &p}) })
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
	send(Reply{OK: &t, Message: msg, Status: &st})
}

// readOnlyCommand reports whether the read-only status socket may answer
// command: the ones that read the node and change nothing.
func readOnlyCommand(command string) bool {
	switch command {
	case "status", "lookup", "mappings", "cluster":
		return true
	}
	return false
}

// ClusterHandler answers cluster: the nodes' records of the etcd source.
// The Handler given to NewServer implements it or cluster is refused.
type ClusterHandler interface {
	Cluster(ctx context.Context) (ClusterStatus, error)
}

// cluster answers the cluster command.
func (s *Server) cluster(send func(Reply), fail func(error)) {
	h, ok := s.h.(ClusterHandler)
	if !ok {
		fail(errors.New("cluster: this map646 does not serve it"))
		return
	}
	c, err := h.Cluster(s.ctx)
	if err != nil {
		fail(err)
		return
	}
	t := true
	send(Reply{OK: &t, Cluster: &c})
}
