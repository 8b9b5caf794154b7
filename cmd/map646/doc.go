// Command map646 is the map646 translator appliance: one binary whose
// subcommands check a configuration, run the translator on captures, and
// run and steer the daemon.
//
// This package parses the flags and prints: check.go, translate.go and
// version.go are whole commands; daemon.go is `run`, which hands over to
// package cmd/map646/daemon; client.go is status, drain, undrain and
// reload, which talk to the daemon through package cmd/map646/control.
//
// It imports cmd/map646/daemon (run), cmd/map646/control (the clients),
// config (check, and the configuration run loads), translator and
// translator/pcap (translate); the daemon's parts (data plane, routing,
// health) only through cmd/map646/daemon.
package main
