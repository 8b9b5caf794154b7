package netlab

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
)

// Owners: every namespace netlab creates is recorded in OwnerDir with the
// PID and start time of the process that created it. A test binary killed
// by `go test -timeout` or SIGKILL runs no cleanup; the next NewNS in any
// process deletes the namespaces whose creator is gone (and what still runs
// in them), and never one whose creator lives: concurrent labs are safe.

// OwnerDir holds one file per live netlab namespace.
const OwnerDir = "/run/netlab"

var sweepOnce sync.Once

// self is this process's owner record: "PID STARTTIME".
func self() string {
	return fmt.Sprintf("%d %s", os.Getpid(), startTime(os.Getpid()))
}

// startTime returns field 22 of /proc/PID/stat (start time in clock ticks
// since boot), "" if the process does not exist.
func startTime(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	s := string(b)
	// The command name (field 2) is in parentheses and may hold spaces.
	if i := strings.LastIndexByte(s, ')'); i >= 0 {
		f := strings.Fields(s[i+1:])
		if len(f) > 19 {
			return f[19] // fields 3.. start at index 0: field 22 is index 19
		}
	}
	return ""
}

func recordOwner(name string) error {
	if err := os.MkdirAll(OwnerDir, 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(OwnerDir, name), []byte(self()), 0o644)
}

func forgetOwner(name string) { os.Remove(filepath.Join(OwnerDir, name)) }

// alive tells whether the owner record names a running process.
func alive(record string) bool {
	f := strings.Fields(record)
	if len(f) != 2 {
		return false
	}
	pid, err := strconv.Atoi(f[0])
	if err != nil {
		return false
	}
	return startTime(pid) == f[1]
}

// SweepStale deletes the namespaces netlab created in processes that have
// exited without cleaning up, and returns their names. NewNS calls it once
// per process.
func SweepStale() ([]string, error) {
	entries, err := os.ReadDir(OwnerDir)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var swept []string
	var errs []error
	for _, e := range entries {
		name := e.Name()
		if !strings.HasPrefix(name, Prefix) {
			continue
		}
		b, err := os.ReadFile(filepath.Join(OwnerDir, name))
		if err != nil || alive(string(b)) {
			continue
		}
		if err := (&NS{Name: name}).Delete(); err != nil {
			errs = append(errs, err)
			continue
		}
		swept = append(swept, name)
	}
	if len(errs) > 0 {
		return swept, fmt.Errorf("netlab: deleting stale namespaces: %v", errs)
	}
	return swept, nil
}
