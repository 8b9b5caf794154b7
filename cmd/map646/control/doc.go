// Package control is the daemon's control protocol: the request and reply
// lines on the unix socket [control] socket, the server that frames them
// for a Handler (the daemon), the client call the map646 commands make, and
// the Status schema that `map646 status -json` prints and the labs read.
//
// It owns the wire format and the sockets' life (the control socket mode
// 0600; the read-only status socket of [control] status_socket mode 0660
// with its group, answering status only; a stale socket removed, a live
// one refused); it carries out no command itself. It
// imports only the standard library, so that the command, the daemon and
// the labs can all import it and agree on one schema. Status is a stable
// interface: fields are added, never renamed or removed.
package control
