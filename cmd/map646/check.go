package main

import (
	"errors"
	"fmt"
	"io"
	"os/user"
	"strings"

	"github.com/map646/map646/config"
	"github.com/map646/map646/translator"
)

const checkHelp = `Usage: map646 check -config FILE

Check a configuration: load FILE (and the mapping files it names), build the
translator from it as the daemon would, and print what it would do. Every
problem found is reported on stderr, one per line; the exit code is 0 for a
valid configuration and 1 otherwise, so check can guard a deployment or a
reload. No message shows the value of a password, nor of an unknown key
whose name looks like a secret (a misspelling of password, or a name
holding pass, pwd, secret, token, key, cred or auth). A file holding a
password that users other than its owner may read gets a warning on stderr
(the exit code stays 0), and so does a [control] status_group that is no
group of this system (map646 run would refuse to start).

Example:
  map646 check -config /etc/map646/map646.toml
`

func runCheck(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("check")
	configPath := fs.String("config", "", "the configuration `FILE` to check (required)")
	if code, done := parseFlags(fs, checkHelp, args, stdout, stderr); done {
		return code
	}
	if *configPath == "" {
		return usageError(stderr, "check", "-config is required")
	}
	cfg, _, ok := loadConfig(*configPath, stderr)
	if !ok {
		return exitError
	}
	if w := cfg.Exposure(); w != "" {
		fmt.Fprintln(stderr, "map646: warning: "+w)
	}
	if g := cfg.Control.StatusGroup; g != "" {
		// The file may be checked elsewhere than where it runs: a warning.
		if _, err := user.LookupGroup(g); err != nil {
			fmt.Fprintf(stderr, "map646: warning: [control] status_group %q: %v: map646 run refuses to start on this system until the group exists (groupadd --system %s)\n", g, err, g)
		}
	}
	cfg.Describe(stdout)
	return exitOK
}

// loadConfig loads path and builds its translator: a configuration the
// translator refuses is as invalid as one that does not parse. Problems go
// to stderr; ok is false if there was any.
func loadConfig(path string, stderr io.Writer) (cfg *config.Config, tr *translator.Translator, ok bool) {
	cfg, err := config.Load(path)
	if err == nil {
		tr, err = cfg.NewTranslator()
	}
	if err == nil {
		return cfg, tr, true
	}
	var invalid *config.Error
	if errors.As(err, &invalid) || cfg != nil {
		// One problem per line, unindented: each starts with FILE:LINE,
		// which editors and CI logs turn into a link.
		fmt.Fprintf(stderr, "map646: config %s is invalid:\n%s\n", path, strings.TrimRight(err.Error(), "\n"))
	} else {
		// The file could not be read at all.
		fmt.Fprintf(stderr, "map646: %v\n", err)
	}
	return nil, nil, false
}
