package control

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"syscall"
	"time"
)

// Call sends req to the daemon at path and returns its final
// answer, passing progress lines to progress. timeout bounds the whole
// call (0: none, for a drain, which the daemon bounds).
func Call(path string, req Request, timeout time.Duration, progress func(string)) (Reply, error) {
	return call(path, req, timeout, progress, nil)
}

func call(path string, req Request, timeout time.Duration, progress func(string), row func(MappingRow)) (Reply, error) {
	var final Reply
	conn, err := net.DialTimeout("unix", path, 2*time.Second)
	if err != nil {
		return final, dialError(path, err)
	}
	defer conn.Close()
	if timeout > 0 {
		conn.SetDeadline(time.Now().Add(timeout))
	}
	b, _ := json.Marshal(req)
	// A daemon that refuses the connection (too many at once) answers and
	// closes before reading the request: its answer is still there to read.
	_, werr := conn.Write(append(b, '\n'))
	sc := bufio.NewScanner(conn)
	sc.Buffer(make([]byte, 64*1024), 64<<20) // a status with many neighbors and prefixes is long
	for sc.Scan() {
		var r Reply
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			return final, fmt.Errorf("garbled answer from %s: %v", path, err)
		}
		switch {
		case r.Row != nil:
			if row != nil {
				row(*r.Row)
			}
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
	if werr != nil {
		return final, fmt.Errorf("send the request to %s: %w", path, werr)
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
		return fmt.Errorf("permission denied on %s: the control socket ([control] socket) is the daemon user's only (mode 0600: root's, or map646's under the packaged unit), the read-only status socket ([control] status_socket) its status_group's (0660); run as that user or root, or ask the status socket as a member of its group", path)
	case errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Errorf("nothing answers on %s: map646 is not running (the socket was left by a process that died)", path)
	}
	return fmt.Errorf("connect to %s: %w", path, err)
}
