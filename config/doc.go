// Package config reads map646's configuration: a TOML file (example.toml
// documents every key) and an optional mapping file of up to a million
// lines.
//
// Load and Parse return either a *Config that is entirely valid, or an
// *Error listing every problem found, one per line, each naming the file,
// the line where known, the key, the value as written and what would be
// accepted. A typo is an error: unknown keys and sections are refused, never
// ignored. A Config holds typed values (net/netip), defaults filled in, and
// the mapping table, built once; it is read-only, so a reload builds a new
// one and swaps it in whole. The package keeps no other state and starts no
// goroutines.
//
// Each section is decoded by a method of its own (translator.go for
// [translator], mapping.go for [[mapping]] and the mapping file, daemon.go
// for the [tun], [metrics] and [log] sections of `map646 run`, fastpath.go
// for [fastpath], bgp.go for
// [bgp] and [[bgp.neighbor]], health.go for [[health.check]], node.go for
// [node] and [control]), reading its keys one at a time through the typed
// getters of decode.go, which is all it takes to add one. Every duration
// is a string in time.ParseDuration's syntax ("3s", "100ms"); BGP timers
// must be whole seconds.
//
// It owns the configuration's syntax and validation. It imports translator
// (to build the table), routing and health (to fill in their Config and
// Check types, so that one validation covers them), and BurntSushi/toml;
// nothing of the daemon or the command, which import it.
package config
