package main

import (
	"bytes"
	"regexp"
	"runtime/debug"
	"strings"
	"testing"
)

// runCmd runs map646 in-process with args and returns its exit code and
// output streams.
func runCmd(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestCommandList(t *testing.T) {
	for _, args := range [][]string{{"-h"}, {"--help"}, {"help"}} {
		code, stdout, stderr := runCmd(t, args...)
		if code != exitOK || stderr != "" {
			t.Errorf("%q: exit %d, stderr %q", args, code, stderr)
		}
		for _, c := range commands {
			if !strings.Contains(stdout, "\n  "+c.name+" ") || !strings.Contains(stdout, c.summary) {
				t.Errorf("%q: command %s missing from\n%s", args, c.name, stdout)
			}
		}
	}
	// No command at all is a usage error, with the list where it is seen.
	code, stdout, stderr := runCmd(t)
	if code != exitUsage || stdout != "" || !strings.Contains(stderr, "Commands:") {
		t.Errorf("no arguments: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
}

func TestUnknownCommand(t *testing.T) {
	code, stdout, stderr := runCmd(t, "frobnicate", "-x")
	want := "map646: unknown command \"frobnicate\"\nRun 'map646 help' for the list of commands.\n"
	if code != exitUsage || stdout != "" || stderr != want {
		t.Errorf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	code, _, stderr = runCmd(t, "help", "frobnicate")
	if code != exitUsage || !strings.HasPrefix(stderr, "map646 help: unknown command \"frobnicate\"") {
		t.Errorf("help frobnicate: exit %d, stderr %q", code, stderr)
	}
}

// Every command explains itself and each of its flags, with an example.
func TestCommandHelp(t *testing.T) {
	flags := map[string][]string{
		"check":     {"-config FILE"},
		"translate": {"-config FILE", "-in IN.pcap", "-out OUT.pcap", "-json", "rate limit"},
		"version":   {},
		"run":       {"-config FILE", "SIGHUP", "SIGTERM", "/dev/net/tun", "map646_packets_total"},
		"status":    {"-json", "-socket PATH", "GRACEFUL_SHUTDOWN"},
		"drain":     {"-force", "-socket PATH", "drain_timeout", "state_dir"},
		"undrain":   {"-socket PATH", "state_dir"},
		"reload":    {"-socket PATH", "SIGHUP"},
		"lookup":    {"-json", "-socket PATH", "pseudo", "mapping_series"},
		"mappings":  {"-json", "-csv", "-socket PATH", "PREFIX"},
		"mapping":   {"-socket PATH", "add|del", "mapping_file", "atomically", "[[mapping]]"},
	}
	for _, c := range commands {
		if c.name == "help" {
			continue
		}
		want, ok := flags[c.name]
		if !ok {
			t.Errorf("command %s has no help test", c.name)
			continue
		}
		for _, args := range [][]string{{c.name, "-h"}, {"help", c.name}} {
			code, stdout, stderr := runCmd(t, args...)
			if code != exitOK || stderr != "" {
				t.Errorf("%q: exit %d, stderr %q", args, code, stderr)
			}
			for _, w := range append(want, "Usage: map646 "+c.name, "Example:") {
				if !strings.Contains(stdout, w) {
					t.Errorf("%q: %q missing from\n%s", args, w, stdout)
				}
			}
		}
	}
}

func TestUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"check", "-bogus"}, "map646 check: flag provided but not defined: -bogus\n"},
		{[]string{"check"}, "map646 check: -config is required\n"},
		{[]string{"check", "-config"}, "map646 check: flag needs an argument: -config\n"},
		{[]string{"check", "-config", "a.toml", "b.toml"}, "map646 check: unexpected argument \"b.toml\"\n"},
		{[]string{"version", "extra"}, "map646 version: unexpected argument \"extra\"\n"},
		{[]string{"lookup"}, "map646 lookup: one address expected\n"},
		{[]string{"mappings", "a", "b"}, "map646 mappings: at most one PREFIX\n"},
		{[]string{"mappings", "-json", "-csv"}, "map646 mappings: -json or -csv, not both\n"},
		{[]string{"mapping", "put", "198.51.100.1", "2001:db8::1"}, "map646 mapping: expected add or del, then IPV4[/LEN] IPV6[/LEN]\n"},
		{[]string{"translate", "-in", "a", "-out", "b"}, "map646 translate: -config is required\n"},
		{[]string{"translate", "-config", "c", "-out", "b"}, "map646 translate: -in is required\n"},
		{[]string{"translate", "-config", "c", "-in", "a"}, "map646 translate: -out is required\n"},
		{[]string{"translate", "-config", "c", "-in", "a", "-out", "-", "-json"},
			"map646 translate: -json and -out - both write to stdout; write the capture to a file\n"},
	} {
		code, stdout, stderr := runCmd(t, tc.args...)
		cmd := tc.args[0]
		want := tc.want + "Run 'map646 " + cmd + " -h' for usage.\n"
		if code != exitUsage || stdout != "" || stderr != want {
			t.Errorf("%q: exit %d, stdout %q\nstderr %q\nwant   %q", tc.args, code, stdout, stderr, want)
		}
	}
}

// TestVersionOf: what the go command records makes the version when make
// build stamped none.
func TestVersionOf(t *testing.T) {
	rev := []debug.BuildSetting{{Key: "vcs.revision", Value: "0123456789abcdef0123"}, {Key: "vcs.modified", Value: "true"}}
	for _, tc := range []struct {
		stamped, module string
		settings        []debug.BuildSetting
		want            string
	}{
		{"dev", "v1.2.3", nil, "v1.2.3"}, // go install ...@v1.2.3
		// go build in a dirty checkout with VCS stamping (Go >= 1.24): the
		// pseudo-version names the commit already.
		{"dev", "v0.0.0-20261207103249-21ec3d35f069+dirty", rev, "v0.0.0-20261207103249-21ec3d35f069+dirty"},
		{"dev", "(devel)", nil, "dev"},                                        // go build in a checkout without VCS stamp
		{"dev", "(devel)", rev, "dev+0123456789ab.dirty"},                     // a VCS stamp without a pseudo-version (Go < 1.24)
		{"v1.2.3-4-gabc", "(devel)", rev, "v1.2.3-4-gabc+0123456789ab.dirty"}, // make build
		{"v1.2.3-4-gabc", "v1.2.0", nil, "v1.2.3-4-gabc"},                     // the stamp wins
	} {
		info := &debug.BuildInfo{Main: debug.Module{Path: "github.com/map646/map646", Version: tc.module}, Settings: tc.settings}
		if got := versionOf(tc.stamped, info); got != tc.want {
			t.Errorf("versionOf(%q, module %q, %v) = %q, want %q", tc.stamped, tc.module, tc.settings, got, tc.want)
		}
	}
}

func TestVersion(t *testing.T) {
	code, stdout, stderr := runCmd(t, "version")
	// Under go test there is no VCS stamp, so the version is the default.
	re := regexp.MustCompile(`^map646 dev(\+[0-9a-f]{1,12}(\.dirty)?)? \(go[^ ]+ [a-z0-9]+/[a-z0-9]+\)\n$`)
	if code != exitOK || stderr != "" || !re.MatchString(stdout) {
		t.Errorf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
}
