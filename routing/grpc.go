package routing

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/osrg/gobgp/v4/pkg/server"
)

// CLITarget is what the gobgp v4 CLI takes as --target to reach the gRPC
// API served on the unix socket at path. The CLI's -u and -p flags name a
// TCP host and port, which the speaker never serves.
func CLITarget(path string) string {
	return "unix://" + path
}

// grpcOptions serves GoBGP's gRPC API on the unix socket at path, and only
// there: the API has no authentication, so it must never listen on a
// network address. The socket is made mode 0600 once it exists (waitSocket).
func grpcOptions(path string) ([]server.ServerOption, func(), error) {
	if err := checkSocketPath(path); err != nil {
		return nil, nil, err
	}
	cleanup := func() {
		if fi, err := os.Lstat(path); err == nil && fi.Mode()&os.ModeSocket != 0 {
			os.Remove(path)
		}
	}
	return []server.ServerOption{server.GrpcListenAddress(CLITarget(path))}, cleanup, nil
}

func checkSocketPath(path string) error {
	if !filepath.IsAbs(path) || strings.Contains(path, "://") || strings.Contains(path, ",") {
		return fmt.Errorf("routing: grpc socket %q: want the absolute path of a unix socket (the API has no authentication: never a network address)", path)
	}
	dir := filepath.Dir(path)
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return fmt.Errorf("routing: grpc socket %s: directory %s does not exist", path, dir)
	}
	fi, err := os.Lstat(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("routing: grpc socket %s: %w", path, err)
	}
	if fi.Mode()&os.ModeSocket == 0 {
		return fmt.Errorf("routing: grpc socket %s: a file that is not a socket is in the way; remove it or choose another path", path)
	}
	// A socket someone still answers on belongs to a running process;
	// one nobody answers on is left over from a previous run.
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return fmt.Errorf("routing: grpc socket %s is in use by another process (another map646?)", path)
	}
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("routing: grpc socket %s: remove the stale socket: %w", path, err)
	}
	return nil
}

// waitSocket waits until GoBGP has created the socket (it listens in a
// goroutine of its own and reports a failure only in its log: there is no
// event to wait on), then restricts it to its owner. Until the chmod the
// socket has the mode the umask gives it, which for root's usual 022
// already denies connect (write) to everyone else.
func waitSocket(ctx context.Context, path string) error {
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		if fi, err := os.Lstat(path); err == nil && fi.Mode()&os.ModeSocket != 0 {
			if err := os.Chmod(path, 0o600); err != nil {
				return fmt.Errorf("routing: grpc socket %s: chmod 0600: %w", path, err)
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("routing: grpc socket %s was not created (see GoBGP's \"listen failed\" log line): %w", path, ctx.Err())
		case <-tick.C:
		}
	}
}
