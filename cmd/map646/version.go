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

Print the version of map646 and of the Go toolchain that built it: the
version make build stamps (git describe), else the module version the go
command recorded (go install github.com/map646/map646/cmd/map646@v1.2.3
says v1.2.3), else "dev". When the binary was built from a git checkout,
the commit follows the version (+.dirty if the tree had uncommitted
changes).

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

// fullVersion is the version the binary says it is (see versionHelp).
func fullVersion() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return version
	}
	return versionOf(version, info)
}

// versionOf is fullVersion for a stamped version and the build
// information the go command recorded: a build without -X main.version
// (go install ...@v1.2.3, go build) still says what it is, and the commit
// is recorded on its own, so a "dev" build can still be traced.
func versionOf(stamped string, info *debug.BuildInfo) string {
	if stamped == "dev" && info.Main.Version != "" && info.Main.Version != "(devel)" {
		// A tag, or since Go 1.24 in a checkout a pseudo-version that
		// already names the commit (and +dirty).
		return info.Main.Version
	}
	v := stamped
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
		return v
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	v += "+" + rev
	if dirty {
		v += ".dirty"
	}
	return v
}
