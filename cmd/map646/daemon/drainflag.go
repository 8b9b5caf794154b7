package daemon

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// drainFlag is the drained state kept in [node] state_dir, so that a node
// an operator drained stays drained across a restart or a reboot. The file
// holds the time of the drain (RFC 3339); its presence is what counts.
type drainFlag struct{ dir string }

const drainFlagName = "drained"

func (f drainFlag) path() string { return filepath.Join(f.dir, drainFlagName) }

// Load says whether the node is drained and since when. A flag whose time
// cannot be read still counts (the zero time): a damaged file must not
// put a drained node back in service.
func (f drainFlag) Load() (at time.Time, drained bool, err error) {
	b, err := os.ReadFile(f.path())
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return time.Time{}, false, nil
	case err != nil:
		return time.Time{}, false, fmt.Errorf("read the drained flag: %w", err)
	}
	at, _ = time.Parse(time.RFC3339Nano, strings.TrimSpace(string(b)))
	return at, true, nil
}

// Save records the drain, atomically: a temporary file written and synced,
// renamed over the flag, the directory synced; a crash leaves the old state
// or the new one, never a half-written file.
func (f drainFlag) Save(at time.Time) (err error) {
	if err := os.MkdirAll(f.dir, 0o755); err != nil {
		return fmt.Errorf("create state_dir: %w", err)
	}
	tmp, err := os.CreateTemp(f.dir, "."+drainFlagName+"-*")
	if err != nil {
		return fmt.Errorf("write the drained flag: %w", err)
	}
	defer func() {
		if err != nil {
			os.Remove(tmp.Name())
		}
	}()
	_, err = tmp.WriteString(at.UTC().Format(time.RFC3339Nano) + "\n")
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), f.path())
	}
	if err == nil {
		err = syncDir(f.dir)
	}
	if err != nil {
		return fmt.Errorf("write the drained flag %s: %w", f.path(), err)
	}
	return nil
}

// Remove clears the flag; a flag already gone is no error.
func (f drainFlag) Remove() error {
	if err := os.Remove(f.path()); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove the drained flag: %w", err)
	}
	if err := syncDir(f.dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove the drained flag: %w", err)
	}
	return nil
}

// syncDir makes a rename or removal in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	return errors.Join(err, d.Close())
}

// Writable checks that a drain could be recorded now: it writes a file as
// large as the flag into dir (created if missing, as Save would) and
// removes it. It does not sync: a full disk or a read-only mount fails the
// write itself.
func (f drainFlag) Writable() error {
	if err := os.MkdirAll(f.dir, 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(f.dir, ".writable-*")
	if err != nil {
		return err
	}
	_, err = tmp.WriteString(time.Now().UTC().Format(time.RFC3339Nano) + "\n")
	return errors.Join(err, tmp.Close(), os.Remove(tmp.Name()))
}
