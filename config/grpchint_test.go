package config

import (
	"context"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/map646/map646/routing"
)

// TestGRPCHintWorks: the gobgp command that `map646 check` prints for
// [bgp] grpc_socket reaches a speaker serving that socket. The command is
// taken from the printed text and run, with a subcommand, by the gobgp CLI
// of the GoBGP version this module uses.
func TestGRPCHintWorks(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "gobgp.sock")
	c, msg := parse(t, base+`
[bgp]
local_as = 64512
router_id = "192.0.2.2"
listen_port = -1
grpc_socket = "`+sock+`"

[[bgp.neighbor]]
address = "192.0.2.254"
peer_as = 64513
`)
	if msg != "" {
		t.Fatal(msg)
	}
	var b strings.Builder
	c.Describe(&b)
	m := regexp.MustCompile(`\(gobgp (.+) \.\.\.\)`).FindStringSubmatch(b.String())
	if m == nil {
		t.Fatalf("no gobgp command in what check prints:\n%s", b.String())
	}
	hintArgs := strings.Fields(m[1])
	t.Logf("printed: gobgp %s ...", m[1])

	cli := installGobgpCLI(t)
	s, err := routing.New(c.BGP.Config, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	out, err := exec.Command(cli, append(hintArgs, "neighbor")...).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "192.0.2.254") {
		t.Fatalf("gobgp %s neighbor: err %v, output:\n%s\nwant the configured neighbor 192.0.2.254", m[1], err, out)
	}
	t.Logf("gobgp %s neighbor:\n%s", m[1], out)
}

// installGobgpCLI installs the gobgp CLI of the GoBGP version this module
// requires (the CLI must match the server's major version) into a temporary
// directory. Without it the test skips, or fails under CI=true.
func installGobgpCLI(t *testing.T) string {
	t.Helper()
	cannot := t.Skipf
	if os.Getenv("CI") == "true" {
		cannot = t.Fatalf
	}
	// The version this module requires: the test runs in the module.
	v, err := exec.Command("go", "list", "-m", "-f", "{{.Version}}", "github.com/osrg/gobgp/v4").Output()
	version := strings.TrimSpace(string(v))
	if err != nil || version == "" {
		cannot("go list -m github.com/osrg/gobgp/v4: %v", err)
		return ""
	}
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "install", "github.com/osrg/gobgp/v4/cmd/gobgp@"+version)
	cmd.Env = append(os.Environ(), "GOBIN="+dir, "GOFLAGS=")
	if out, err := cmd.CombinedOutput(); err != nil {
		cannot("cannot install the gobgp CLI %s: %v\n%s", version, err, out)
		return ""
	}
	return filepath.Join(dir, "gobgp")
}
