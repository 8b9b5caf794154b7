package routing

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/osrg/gobgp/v4/pkg/server"
	"golang.org/x/sys/unix"
)

// CLITarget is what the gobgp v4 CLI takes as --target to reach the gRPC
// API served on the unix socket at path. The CLI's -u and -p flags name a
// TCP host and port, which the speaker never serves.
func CLITarget(path string) string {
	return "unix://" + path
}

// grpcOptions serves GoBGP's gRPC API on the unix socket at path, and only
// there: the API has no authentication, so it must never listen on a
// network address, and the socket must be its owner's alone from the
// moment it exists.
//
// GoBGP binds the socket itself, in a goroutine of its own, so the umask
// cannot be set around that bind: the umask belongs to the process, and
// would change the mode of whatever the daemon's other goroutines create
// meanwhile. Nor can a chmod after the bind close the window before it. So
// GoBGP binds in a private directory (mode 0700, made next to path so that
// a rename stays within one file system), where nobody else can reach the
// socket whatever its mode; waitSocket then makes it 0600 and renames it to
// path, where it appears with that mode. The listening socket follows its
// inode: connections by the new name reach it.
func grpcOptions(path string) ([]server.ServerOption, func(), error) {
	if err := checkSocketPath(path); err != nil {
		return nil, nil, err
	}
	dir, err := os.MkdirTemp(filepath.Dir(path), ".gobgp")
	if err != nil {
		return nil, nil, fmt.Errorf("routing: grpc socket %s: a private directory for the bind: %w", path, err)
	}
	bind := filepath.Join(dir, "s")
	if len(bind) > maxSocketPath {
		os.Remove(dir)
		return nil, nil, fmt.Errorf("routing: grpc socket %s: the path is too long: the socket is bound first as %s, longer than the %d bytes a unix socket path may have; choose a shorter one", path, bind, maxSocketPath)
	}
	binds.Store(path, bind)
	cleanup := func() {
		binds.Delete(path)
		if fi, err := os.Lstat(path); err == nil && fi.Mode()&os.ModeSocket != 0 {
			os.Remove(path)
		}
		os.RemoveAll(dir) // the socket, if waitSocket never moved it
	}
	return []server.ServerOption{server.GrpcListenAddress(CLITarget(bind))}, cleanup, nil
}

// maxSocketPath is the longest unix socket path: sun_path's 108 bytes, the
// last one a NUL.
const maxSocketPath = 107

// binds holds, by the socket's path, where GoBGP binds it until waitSocket
// moves it there (grpcOptions).
var binds sync.Map // string -> string

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

// waitSocket waits until GoBGP has bound the socket in its private
// directory (it listens in a goroutine of its own and reports a failure
// only in its log: there is no event to wait on), makes it 0600 there and
// moves it to path (grpcOptions), never over something that appeared
// there meanwhile.
func waitSocket(ctx context.Context, path string) error {
	v, ok := binds.Load(path)
	if !ok {
		return fmt.Errorf("routing: grpc socket %s: not prepared by grpcOptions", path)
	}
	bind := v.(string)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		if fi, err := os.Lstat(bind); err == nil && fi.Mode()&os.ModeSocket != 0 {
			if err := os.Chmod(bind, 0o600); err != nil {
				return fmt.Errorf("routing: grpc socket %s: chmod 0600: %w", path, err)
			}
			if err := unix.Renameat2(unix.AT_FDCWD, bind, unix.AT_FDCWD, path, unix.RENAME_NOREPLACE); err != nil {
				return fmt.Errorf("routing: grpc socket %s: move it into place: %w", path, err)
			}
			os.Remove(filepath.Dir(bind))
			binds.Delete(path)
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("routing: grpc socket %s was not created (see GoBGP's \"listen failed\" log line): %w", path, ctx.Err())
		case <-tick.C:
		}
	}
}
