package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

// Exit codes: a usage error is told apart from a failure so scripts can
// tell "you called me wrong" from "what you asked for failed".
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

// stdin is read by commands given "-"; tests replace it.
var stdin io.Reader = os.Stdin

// command is one subcommand. run gets the arguments after the command name.
type command struct {
	name    string
	summary string // one line for `map646 help`
	run     func(args []string, stdout, stderr io.Writer) int
}

// commands is filled in init because help refers to it.
var commands []command

func init() {
	commands = []command{
		{"check", "validate a configuration and describe what it would do", runCheck},
		{"translate", "run the translator on a pcap capture", runTranslate},
		{"run", "run the translator on a tun device (the daemon)", runRun},
		{"status", "show the running daemon's state, checks, BGP sessions, routes and traffic", runStatus},
		{"drain", "take the node out of service without losing a packet", runDrain},
		{"undrain", "put a drained node back in service", runUndrain},
		{"reload", "reload the running daemon's configuration and print the result", runReload},
		{"lookup", "say which mapping of the running table applies to an address, with its counters", runLookup},
		{"mappings", "list the running mapping table with each mapping's counters", runMappings},
		{"mapping", "add or delete a mapping of the running table, durably, without a reload", runMapping},
		{"version", "print the version", runVersion},
		{"help", "show help for map646 or for a command", runHelp},
	}
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run is main without the process: it returns the exit code.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		printCommands(stderr)
		return exitUsage
	}
	switch args[0] {
	case "-h", "-help", "--help":
		printCommands(stdout)
		return exitOK
	}
	c := lookup(args[0])
	if c == nil {
		fmt.Fprintf(stderr, "map646: unknown command %q\nRun 'map646 help' for the list of commands.\n", args[0])
		return exitUsage
	}
	return c.run(args[1:], stdout, stderr)
}

func lookup(name string) *command {
	for i := range commands {
		if commands[i].name == name {
			return &commands[i]
		}
	}
	return nil
}

func printCommands(w io.Writer) {
	fmt.Fprint(w, `map646 translates between IPv4 and IPv6 without per-flow state
(RFC 7915 SIIT with RFC 7757 mappings, the SIIT-DC model).

Usage: map646 <command> [flags]

Commands:
`)
	for _, c := range commands {
		fmt.Fprintf(w, "  %-10s %s\n", c.name, c.summary)
	}
	fmt.Fprint(w, "\nRun 'map646 <command> -h' for the flags of a command.\n")
}

func runHelp(args []string, stdout, stderr io.Writer) int {
	switch len(args) {
	case 0:
		printCommands(stdout)
		return exitOK
	case 1:
		c := lookup(args[0])
		if c == nil || c.name == "help" {
			break
		}
		return c.run([]string{"-h"}, stdout, stderr)
	}
	fmt.Fprintf(stderr, "map646 help: unknown command %q\nRun 'map646 help' for the list of commands.\n", strings.Join(args, " "))
	return exitUsage
}

// newFlagSet returns a FlagSet for a command whose messages parseFlags
// prints, each to the right stream.
func newFlagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return fs
}

// parseFlags parses args. done says the command must stop and return code:
// help was asked for (0, help and the flags on stdout) or the arguments are
// wrong (2, a message on stderr). help says what the command does and gives
// an example.
func parseFlags(fs *flag.FlagSet, help string, args []string, stdout, stderr io.Writer) (code int, done bool) {
	err := fs.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		printUsage(stdout, fs, help)
		return exitOK, true
	case err != nil:
		return usageError(stderr, fs.Name(), err.Error()), true
	case fs.NArg() > 0:
		return usageError(stderr, fs.Name(), fmt.Sprintf("unexpected argument %q", fs.Arg(0))), true
	}
	return exitOK, false
}

func printUsage(w io.Writer, fs *flag.FlagSet, help string) {
	fmt.Fprint(w, help)
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	if n == 0 {
		return
	}
	fmt.Fprint(w, "\nFlags:\n")
	fs.SetOutput(w)
	fs.PrintDefaults()
	fs.SetOutput(io.Discard)
}

// usageError reports a wrong invocation of cmd and returns exitUsage.
func usageError(stderr io.Writer, cmd, msg string) int {
	fmt.Fprintf(stderr, "map646 %s: %s\nRun 'map646 %s -h' for usage.\n", cmd, msg, cmd)
	return exitUsage
}
