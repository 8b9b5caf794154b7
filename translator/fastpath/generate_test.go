package fastpath_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/map646/map646/lab/labreq"
	"github.com/map646/map646/lab/netlab"
)

// TestObjectMatchesSource rebuilds the program with the //go:generate line
// of gen.go into a temporary directory and checks that the committed
// object and Go bindings are byte for byte what the source compiles to
// (clang's output is deterministic: the same source, flags and compiler
// give the same bytes). It installs clang, llvm (llvm-strip) and
// libbpf-dev when missing. A change to xlat.c or xlat.h without `make
// generate` fails here.
func TestObjectMatchesSource(t *testing.T) {
	_, errClang := exec.LookPath("clang")
	_, errStrip := exec.LookPath("llvm-strip")
	_, errHdr := os.Stat("/usr/include/bpf/bpf_helpers.h")
	if (errClang != nil || errStrip != nil || errHdr != nil) && os.Geteuid() != 0 {
		labreq.Unavailable(t, "needs clang, llvm-strip and libbpf-dev's headers, which it installs as root (or make generate does)")
	}
	netlab.Need(t, "clang")
	netlab.NeedFile(t, "/usr/bin/llvm-strip", "llvm")
	netlab.NeedFile(t, "/usr/include/bpf/bpf_helpers.h", "libbpf-dev")
	gen, err := os.ReadFile("gen.go")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^//go:generate go tool bpf2go (.*)$`).FindSubmatch(gen)
	if m == nil {
		t.Fatal("gen.go has no //go:generate go tool bpf2go line")
	}
	dir := t.TempDir()
	args := append([]string{"tool", "bpf2go", "-output-dir", dir}, strings.Fields(string(m[1]))...)
	cmd := exec.Command("go", args...)
	cmd.Env = append(os.Environ(), "GOPACKAGE=fastpath")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	for _, f := range []string{"xlat_bpfel.o", "xlat_bpfel.go"} {
		committed, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		rebuilt, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(committed, rebuilt) {
			version, _ := exec.Command("clang", "--version").Output()
			first, _, _ := strings.Cut(string(version), "\n")
			t.Errorf("%s differs from what xlat.c compiles to with %s (%d bytes committed, %d rebuilt): run make generate and commit it (the committed one is Debian 12's clang 14's)",
				f, first, len(committed), len(rebuilt))
		}
	}
}
