package routing

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// Proves, when GOBGP_CLI names a gobgp v4 CLI binary (go install
// github.com/osrg/gobgp/v4/cmd/gobgp@v4.9.0), that the command documented in
// doc.go inspects the embedded speaker: its neighbors and its RIB.
func TestGobgpCLI(t *testing.T) {
	cli := os.Getenv("GOBGP_CLI")
	if cli == "" {
		t.Skip("GOBGP_CLI not set: no gobgp v4 CLI to run")
	}
	sock := t.TempDir() + "/gobgp.sock"
	s, err := New(Config{LocalAS: 65001, RouterID: addrS, ListenPort: -1, GRPCSocket: sock,
		Neighbors: []Neighbor{testNeighbor(addrR4, 65000, 179, IPv4Unicast)}}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	if err := s.Announce(context.Background(), []Announcement{{Prefix: pfx4, MED: 10}}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"neighbor"}, addrR4.String()},
		{[]string{"global", "rib", "-a", "ipv4"}, pfx4.String()},
	} {
		out, err := exec.Command(cli, append([]string{"--target", "unix://" + sock}, tc.args...)...).CombinedOutput()
		if err != nil || !strings.Contains(string(out), tc.want) {
			t.Errorf("gobgp %v: err %v, output:\n%s\nwant it to contain %s", tc.args, err, out, tc.want)
		}
		t.Logf("gobgp %s:\n%s", strings.Join(tc.args, " "), out)
	}
}
