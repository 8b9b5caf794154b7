package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
)

// version is set at build time: go build -ldflags "-X main.version=v1.2.3".
var version = "dev"

const versionHelp = `Usage: map646 version

Print the version of map646 and of the Go toolchain that built it. When the
binary was built from a git checkout, the commit follows the version
(+.dirty if the tree had uncommitted changes).

Example:
  map646 version
`

func runVersion(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("version")
	if code, done := parseFlags(fs, versionHelp, args, stdout, stderr); done {
		return code
	}
	fmt.Fprintf(stdout, "map646 %s (%s %s/%s)\n", fullVersion(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return exitOK
}

// fullVersion appends the commit the binary was built from, which the go
// command records on its own, so a "dev" build can still be traced.
func fullVersion() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return version
	}
	var rev string
	var dirty bool
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev == "" {
		return version
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	v := version + "+" + rev
	if dirty {
		v += ".dirty"
	}
	return v
}
