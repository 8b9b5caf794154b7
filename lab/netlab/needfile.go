package netlab

import (
	"os"
	"time"
)

// NeedFile is Need for what is not a command, a header say: it installs
// the Debian package pkg when path is missing, and fails t when that does
// not work.
func NeedFile(t TB, path, pkg string) {
	t.Helper()
	if _, err := os.Stat(path); err == nil {
		return
	}
	install.Lock()
	defer install.Unlock()
	t.Logf("netlab: installing %s for %s", pkg, path)
	if !install.updated {
		if out, err := apt(10*time.Minute, "update"); err != nil {
			t.Fatalf("netlab: %s needs the package %s: apt-get update: %v\n%s", path, pkg, err, out)
		}
		install.updated = true
	}
	if out, err := apt(10*time.Minute, "install", "-y", "--no-install-recommends", pkg); err != nil {
		t.Fatalf("netlab: %s needs the package %s: %v\n%s", path, pkg, err, out)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("netlab: %s still missing after installing %s: %v", path, pkg, err)
	}
}
