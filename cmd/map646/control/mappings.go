package control

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"time"
)

// The mapping table's commands (issue 15):
//
//	{"command": "lookup", "address": "198.51.100.10"}
//	{"command": "mappings", "prefix": "198.51.100.0/24"}   prefix optional
//	{"command": "mapping-add", "ipv4": "198.51.100.10", "ipv6": "2001:db8::10"}
//	{"command": "mapping-del", "ipv4": "198.51.100.10", "ipv6": "2001:db8::10"}
//
// lookup answers one final line with "lookup"; mappings streams one line
// {"row": {...}} per mapping, then the final line; mapping-add and
// mapping-del answer one final line with their message.

// MappingRow is one mapping of the running table with its counters.
type MappingRow struct {
	ID          int    `json:"id"` // its index in the table: stable until the table is rebuilt
	IPv4        string `json:"ipv4"`
	IPv6        string `json:"ipv6"`
	Packets4to6 uint64 `json:"packets_4to6"`
	Bytes4to6   uint64 `json:"bytes_4to6"`
	Packets6to4 uint64 `json:"packets_6to4"`
	Bytes6to4   uint64 `json:"bytes_6to4"`
	// Origin is the mapping's etcd key with the etcd source (mappings;
	// lookup has its own Origin, for every source).
	Origin string `json:"origin,omitempty"`
}

// LookupResult says what the running table does with an address.
type LookupResult struct {
	Address string `json:"address"`
	// Mapping is the mapping whose prefix holds the address, nil if none;
	// Origin where it is written (file:line, a [[mapping]] entry).
	Mapping *MappingRow `json:"mapping,omitempty"`
	Origin  string      `json:"origin,omitempty"`
	// Translated is the address on the other side: through the mapping,
	// else through the pseudo prefix; empty when neither applies.
	Translated string `json:"translated,omitempty"`
	// Note says, for people, how the policy treats the address.
	Note string `json:"note"`
}

// MappingHandler carries out the mapping table's commands. The Handler
// given to NewServer implements it or those commands are refused.
type MappingHandler interface {
	Lookup(addr string) (LookupResult, error)
	// Mappings calls row for each mapping of a snapshot of the table whose
	// prefixes overlap prefix (every mapping if prefix is ""), and returns
	// how many there were; it stops at row's first error.
	Mappings(prefix string, row func(MappingRow) error) (int, error)
	ChangeMapping(ctx context.Context, del bool, ipv4, ipv6 string) (string, error)
}

// mappingCommand serves the mapping commands; false for the others.
func (s *Server) mappingCommand(conn *net.UnixConn, req Request, send func(Reply), fail func(error)) bool {
	switch req.Command {
	case "lookup", "mappings", "mapping-add", "mapping-del":
	default:
		return false
	}
	h, ok := s.h.(MappingHandler)
	if !ok {
		fail(fmt.Errorf("%s: this map646 does not serve the mapping table's commands", req.Command))
		return true
	}
	t := true
	switch req.Command {
	case "lookup":
		r, err := h.Lookup(req.Address)
		if err != nil {
			fail(err)
			return true
		}
		send(Reply{OK: &t, Lookup: &r})
	case "mappings":
		s.streamMappings(conn, req, h)
	case "mapping-add", "mapping-del":
		del := req.Command == "mapping-del"
		s.log.Info("control: "+req.Command, "ipv4", req.IPv4, "ipv6", req.IPv6)
		msg, err := h.ChangeMapping(s.ctx, del, req.IPv4, req.IPv6)
		if err != nil {
			s.log.Warn("control: "+req.Command+" refused", "err", err)
			fail(err)
			return true
		}
		send(Reply{OK: &t, Message: msg})
	}
	return true
}

// streamMappings writes one line per mapping through a buffer, the write
// deadline renewed at each flush: a million rows must not cost a million
// writes, and a client that stops reading is dropped after writeTimeout
// without holding anything of the daemon but the snapshot it reads.
func (s *Server) streamMappings(conn *net.UnixConn, req Request, h MappingHandler) {
	bw := bufio.NewWriterSize(conn, 64<<10)
	enc := json.NewEncoder(bw)
	conn.SetWriteDeadline(time.Now().Add(writeTimeout))
	n, err := h.Mappings(req.Prefix, func(r MappingRow) error {
		if bw.Available() < 512 {
			if err := bw.Flush(); err != nil {
				return err
			}
			conn.SetWriteDeadline(time.Now().Add(writeTimeout))
		}
		return enc.Encode(Reply{Row: &r})
	})
	ok := err == nil
	final := Reply{OK: &ok}
	if err != nil {
		final.Error = err.Error()
	} else {
		final.Message = fmt.Sprintf("%d mappings", n)
	}
	if err := enc.Encode(final); err == nil {
		err = bw.Flush()
		if err != nil {
			s.log.Warn("control socket: the client went away", "command", req.Command, "err", err)
		}
	}
}

// CallStream is Call for a command that streams rows (mappings): row is
// called with each row as it arrives.
func CallStream(path string, req Request, timeout time.Duration, row func(MappingRow)) (Reply, error) {
	return call(path, req, timeout, nil, row)
}
