package control

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// The control protocol, on a unix stream socket: the client sends one
// request line, a JSON object
//
//	{"command": "status" | "drain" | "undrain" | "reload", "force": bool}
//
// (force only with drain; the mapping commands are in mappings.go, and
// "cluster" answers every node's record of an etcd source in "cluster"), and the daemon answers with zero or more
// progress lines {"progress": "..."} and one final line, either
// {"ok": true, "message": "...", "status": {...}} or
// {"ok": false, "error": "...", "restart_needed": [...]} (restart_needed
// only for a reload that left keys to a restart); then it closes the
// connection.
type Request struct {
	Command string `json:"command"`
	Force   bool   `json:"force,omitempty"`
	// The mapping table's commands (mappings.go).
	Address string `json:"address,omitempty"` // lookup
	Prefix  string `json:"prefix,omitempty"`  // mappings
	IPv4    string `json:"ipv4,omitempty"`    // mapping-add, mapping-del
	IPv6    string `json:"ipv6,omitempty"`
}

// Reply is one answer line: a progress line (Progress set) or the
// final one (OK set).
type Reply struct {
	Progress *string `json:"progress,omitempty"`
	OK       *bool   `json:"ok,omitempty"`
	Message  string  `json:"message,omitempty"`
	Error    string  `json:"error,omitempty"`
	// RestartNeeded: the keys a reload did not apply, as "[section] key"
	// (with ok false: the rest was applied).
	RestartNeeded []string `json:"restart_needed,omitempty"`
	Status        *Status  `json:"status,omitempty"`
	// Lookup answers lookup; Row is one streamed row of mappings.
	Lookup *LookupResult `json:"lookup,omitempty"`
	Row    *MappingRow   `json:"row,omitempty"`
	// Cluster answers cluster.
	Cluster *ClusterStatus `json:"cluster,omitempty"`
}

// RestartNeeded is a reload's error when the file changed keys that only a
// restart applies (config.RestartNeeded). The control socket's answer
// carries the keys in Reply.RestartNeeded.
type RestartNeeded struct {
	Keys []string
}

func (e *RestartNeeded) Error() string {
	return "restart map646 to apply " + strings.Join(e.Keys, ", ") + " (a reload leaves them as they run)"
}

const (
	// MaxRequest bounds a request line: a request is a few dozen bytes, and
	// a client must not make the daemon buffer without bound.
	MaxRequest = 4096
	// writeTimeout bounds each answer line: a client that stops reading is
	// dropped (a drain it started goes on).
	writeTimeout = 5 * time.Second
)

// readRequest reads and checks one request line.
func readRequest(r io.Reader) (Request, error) {
	var req Request
	line, err := bufio.NewReader(io.LimitReader(r, MaxRequest+1)).ReadBytes('\n')
	switch {
	case len(line) > MaxRequest:
		return req, fmt.Errorf("request longer than %d bytes", MaxRequest)
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
	case "lookup", "mappings", "mapping-add", "mapping-del", "cluster":
	case "":
		return req, errors.New(`request has no "command"`)
	default:
		return req, fmt.Errorf("unknown command %q: status, drain, undrain, reload, lookup, mappings, mapping-add, mapping-del or cluster", req.Command)
	}
	if req.Force && req.Command != "drain" {
		return req, fmt.Errorf("force applies to drain only, not to %s", req.Command)
	}
	return req, nil
}
