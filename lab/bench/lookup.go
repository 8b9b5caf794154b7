package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// runLookupBench runs the translator's table-lookup benchmark (the
// paper's Figure 12: 1k to 1M entries, both directions) count times,
// writes its output to rawPath and parses it.
func runLookupBench(count int, rawPath string) (lookupResult, time.Duration, error) {
	root, err := moduleRoot()
	if err != nil {
		return nil, 0, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	args := []string{"test", "-run", "^$", "-bench", "TableLookup$", "-benchtime", "1s",
		"-count", strconv.Itoa(count), "./translator/"}
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = root
	start := time.Now()
	out, err := cmd.CombinedOutput()
	took := time.Since(start)
	if werr := os.WriteFile(rawPath, out, 0o644); werr != nil && err == nil {
		err = werr
	}
	if err != nil {
		return nil, took, fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, clip(string(out), 2000))
	}
	res, err := parseLookupBench(string(out))
	return res, took, err
}

// moduleRoot is the directory of this module's go.mod.
func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	gomod := strings.TrimSpace(string(out))
	if err != nil || gomod == "" || gomod == os.DevNull {
		return "", fmt.Errorf("cannot find the map646 module (go env GOMOD: %q, %v): run from inside it", gomod, err)
	}
	return filepath.Dir(gomod), nil
}
