// Command mkdeb builds the Debian package of map646 (make deb):
//
//	go run ./cmd/map646/package/mkdeb -version "$(git describe --always --dirty)" -out bin
//
// It builds map646 (static, position-independent, stripped, stamped with
// -version), runs the built binary's -h texts through a roff renderer for
// map646(8) and its bash completion, renders config/example.toml as
// map646.toml(5), lays out the package tree with the files of
// cmd/map646/package (unit, packaged configuration, maintainer scripts,
// copyright) and builds map646_VERSION_ARCH.deb with dpkg-deb
// --root-owner-group: no debhelper, no fakeroot. It prints the package's
// path.
//
// Run it from the repository's root (make deb does).
package main

import (
	"bytes"
	"compress/gzip"
	"crypto/md5"
	"debug/buildinfo"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"
)

func main() {
	version := flag.String("version", "", "the version git describe gives (make deb passes it); \"\" or dev: 0~dev")
	out := flag.String("out", "bin", "the `DIR` to write the package to")
	flag.Parse()
	deb, err := build(".", *version, *out)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println(deb)
}

// debArch is the Debian architecture of each GOARCH the package is built
// for.
var debArch = map[string]string{"amd64": "amd64", "arm64": "arm64"}

// build builds the package from the repository at root into outDir and
// returns its path.
func build(root, describe, outDir string) (string, error) {
	version, err := debVersion(describe)
	if err != nil {
		return "", err
	}
	arch, ok := debArch[runtime.GOARCH]
	if !ok {
		return "", fmt.Errorf("mkdeb: no Debian architecture known for GOARCH %s", runtime.GOARCH)
	}
	date := commitTime(root)
	stage, err := os.MkdirTemp("", "map646-deb-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(stage)
	if err := os.Chmod(stage, 0o755); err != nil { // the package's root, /
		return "", err
	}

	binary := filepath.Join(stage, "usr/sbin/map646")
	if err := buildBinary(root, describe, binary); err != nil {
		return "", err
	}
	p, err := readHelp(binary)
	if err != nil {
		return "", err
	}
	example, err := os.ReadFile(filepath.Join(root, "config/example.toml"))
	if err != nil {
		return "", err
	}
	manDate := date.Format("2006-01-02")
	toml5, err := manPage5(example, manDate, version)
	if err != nil {
		return "", err
	}
	modules, err := linkedModules(root, binary)
	if err != nil {
		return "", err
	}
	pkg := filepath.Join(root, "cmd/map646/package")
	files := []struct {
		path string
		mode fs.FileMode
		data func() ([]byte, error)
	}{
		{"lib/systemd/system/map646.service", 0o644, read(pkg, "map646.service")},
		{"etc/map646/map646.toml", 0o644, read(pkg, "map646.toml")},
		{"usr/share/man/man8/map646.8.gz", 0o644, gzipped(constant(manPage8(p, manDate, version)))},
		{"usr/share/man/man5/map646.toml.5.gz", 0o644, gzipped(constant(toml5))},
		{"usr/share/bash-completion/completions/map646", 0o644, constant(bashCompletion(p))},
		{"usr/share/doc/map646/copyright", 0o644, copyright(pkg, modules)},
		{"usr/share/doc/map646/changelog.Debian.gz", 0o644, gzipped(constant(debianChangelog(version, describe, date)))},
		{"usr/share/doc/map646/changelog.gz", 0o644, gzipped(read(root, "CHANGELOG.md"))},
		{"usr/share/doc/map646/README.md.gz", 0o644, gzipped(read(root, "README.md"))},
		{"usr/share/doc/map646/examples/example.toml", 0o644, constant(string(example))},
		{"usr/share/lintian/overrides/map646", 0o644, read(pkg, "debian/lintian-overrides")},
		{"DEBIAN/conffiles", 0o644, constant("/etc/map646/map646.toml\n")},
		{"DEBIAN/postinst", 0o755, read(pkg, "debian/postinst")},
		{"DEBIAN/prerm", 0o755, read(pkg, "debian/prerm")},
		{"DEBIAN/postrm", 0o755, read(pkg, "debian/postrm")},
	}
	for _, f := range files {
		data, err := f.data()
		if err != nil {
			return "", err
		}
		if err := writeFile(filepath.Join(stage, f.path), data, f.mode); err != nil {
			return "", err
		}
	}
	size, err := installedSize(stage)
	if err != nil {
		return "", err
	}
	if err := writeFile(filepath.Join(stage, "DEBIAN/control"), []byte(control(version, arch, size)), 0o644); err != nil {
		return "", err
	}
	if err := writeMD5sums(stage); err != nil {
		return "", err
	}
	if err := setTimes(stage, date); err != nil {
		return "", err
	}
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return "", err
	}
	deb := filepath.Join(outDir, fmt.Sprintf("map646_%s_%s.deb", version, arch))
	if out, err := exec.Command("dpkg-deb", "--root-owner-group", "-Zxz", "--build", stage, deb).CombinedOutput(); err != nil {
		return "", fmt.Errorf("mkdeb: dpkg-deb --build: %v\n%s", err, out)
	}
	return deb, nil
}

// buildBinary builds map646 as Debian wants an executable: position
// independent (ASLR), stripped; static (CGO_ENABLED=0: no libc to depend
// on, the pure Go resolver); the version stamped as make build does.
func buildBinary(root, describe, binary string) error {
	if describe == "" {
		describe = "dev"
	}
	cmd := exec.Command("go", "build", "-trimpath", "-buildmode=pie",
		"-ldflags", "-s -w -X main.version="+describe, "-o", binary, "./cmd/map646")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("mkdeb: go build ./cmd/map646: %v\n%s", err, out)
	}
	return nil
}

// commitTime is the time of the commit built (so that two builds of it are
// the same package), or now outside a git checkout.
func commitTime(root string) time.Time {
	out, err := exec.Command("git", "-C", root, "log", "-1", "--format=%ct").Output()
	if err == nil {
		if s, err := strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64); err == nil {
			return time.Unix(s, 0).UTC()
		}
	}
	return time.Now().UTC().Truncate(time.Second)
}

func read(dir, name string) func() ([]byte, error) {
	return func() ([]byte, error) { return os.ReadFile(filepath.Join(dir, name)) }
}

func constant(s string) func() ([]byte, error) {
	return func() ([]byte, error) { return []byte(s), nil }
}

// gzipped compresses as gzip -9n does: no name, no time in the header.
func gzipped(data func() ([]byte, error)) func() ([]byte, error) {
	return func() ([]byte, error) {
		raw, err := data()
		if err != nil {
			return nil, err
		}
		var b bytes.Buffer
		w, _ := gzip.NewWriterLevel(&b, gzip.BestCompression)
		if _, err := w.Write(raw); err != nil {
			return nil, err
		}
		if err := w.Close(); err != nil {
			return nil, err
		}
		return b.Bytes(), nil
	}
}

func writeFile(path string, data []byte, mode fs.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(path, data, mode); err != nil {
		return err
	}
	return os.Chmod(path, mode) // WriteFile's mode is masked by the umask
}

// linkedModules lists the modules linked into the binary with their
// licenses, "path version (license)", from each module's own LICENSE
// file in the module cache: a module under a license not recognized
// (one not yet in the copyright file) stops the build.
func linkedModules(root, binary string) ([]string, error) {
	info, err := buildinfo.ReadFile(binary)
	if err != nil {
		return nil, fmt.Errorf("mkdeb: %s: %v", binary, err)
	}
	args := []string{"list", "-m", "-f", "{{.Path}} {{.Dir}}"}
	for _, d := range info.Deps {
		args = append(args, d.Path)
	}
	cmd := exec.Command("go", args...)
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("mkdeb: go list -m: %v", err)
	}
	dirs := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		path, dir, _ := strings.Cut(l, " ")
		dirs[path] = dir
	}
	var mods []string
	for _, d := range info.Deps {
		license, err := moduleLicense(dirs[d.Path])
		if err != nil {
			return nil, fmt.Errorf("mkdeb: module %s %s: %v", d.Path, d.Version, err)
		}
		if d.Replace != nil {
			d = d.Replace
		}
		mods = append(mods, fmt.Sprintf("%s %s (%s)", d.Path, d.Version, license))
	}
	return mods, nil
}

// licenseMarks tell the licenses of the linked modules apart by a phrase
// of their text.
var licenseMarks = []struct{ phrase, license string }{
	{"Apache License", "Apache-2.0"},
	{"Permission is hereby granted, free of charge", "MIT"},
	{"Neither the name", "BSD-3-Clause"},
}

// moduleLicense names the license of the module in dir by its LICENSE
// (or COPYING) file.
func moduleLicense(dir string) (string, error) {
	var files []string
	for _, name := range []string{"LICENSE*", "LICENCE*", "COPYING*"} {
		more, _ := filepath.Glob(filepath.Join(dir, name))
		files = append(files, more...)
	}
	if len(files) == 0 {
		return "", fmt.Errorf("no LICENSE or COPYING file in %s", dir)
	}
	text, err := os.ReadFile(files[0])
	if err != nil {
		return "", err
	}
	var licenses []string // several: a module under two licenses
	for _, m := range licenseMarks {
		if bytes.Contains(text, []byte(m.phrase)) {
			licenses = append(licenses, m.license)
		}
	}
	if len(licenses) > 0 {
		return strings.Join(licenses, " and "), nil
	}
	return "", fmt.Errorf("%s: a license mkdeb does not know (licenseMarks); add it to the copyright file", files[0])
}

// copyright is debian/copyright.in with the linked modules listed.
func copyright(pkg string, modules []string) func() ([]byte, error) {
	return func() ([]byte, error) {
		in, err := os.ReadFile(filepath.Join(pkg, "debian/copyright.in"))
		if err != nil {
			return nil, err
		}
		list := " " + strings.Join(modules, ",\n ") + "."
		return bytes.Replace(in, []byte("@MODULES@"), []byte(list), 1), nil
	}
}

// debianChangelog is the package's changelog.Debian: one entry, this
// build. What changed is in changelog.gz (CHANGELOG.md).
func debianChangelog(version, describe string, date time.Time) string {
	if describe == "" {
		describe = "dev"
	}
	return fmt.Sprintf(`map646 (%s) unstable; urgency=medium

  * Built from map646 %s by make deb (cmd/map646/package/mkdeb). The
    changes are in /usr/share/doc/map646/changelog.gz.

 -- %s  %s
`, version, describe, maintainer, date.Format(time.RFC1123Z))
}

const maintainer = "map646 maintainers <maintainers@users.noreply.r-seed-94f1b677.example>"

// control is DEBIAN/control. Depends: adduser for the postinst;
// deb-systemd-helper and deb-systemd-invoke come from init-system-helpers,
// which dh_installsystemd makes a Pre-Depends too.
func control(version, arch string, installedKiB int64) string {
	return fmt.Sprintf(`Package: map646
Version: %s
Architecture: %s
Maintainer: %s
Installed-Size: %d
Pre-Depends: init-system-helpers (>= 1.54~)
Depends: adduser
Section: net
Priority: optional
Homepage: https://github.com/map646/map646
Description: stateless IPv4/IPv6 translator (SIIT-DC) with a BGP speaker
 map646 translates between IPv4 and IPv6 without per-flow state (RFC 7915
 SIIT with RFC 7757 explicit address mappings, the SIIT-DC model of RFC
 7755) on a tun device, and announces the mapped prefixes with an embedded
 BGP speaker (GoBGP) while its health checks pass. It drains without
 losing a packet, reloads its mappings without restarting, and exports
 Prometheus metrics.
 .
 The package runs it as the systemd service map646, as the unprivileged
 user map646 with the capabilities it needs.
`, version, arch, maintainer, installedKiB)
}

// installedSize is the size of the tree in KiB, as dpkg-gencontrol counts
// it: each file rounded up to a KiB, each directory one.
func installedSize(stage string) (int64, error) {
	var kib int64
	err := filepath.WalkDir(stage, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && d.Name() == "DEBIAN" {
			return filepath.SkipDir
		}
		if d.IsDir() {
			kib++
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		kib += (fi.Size() + 1023) / 1024
		return nil
	})
	return kib, err
}

// writeMD5sums writes DEBIAN/md5sums of every file outside DEBIAN, in
// path order.
func writeMD5sums(stage string) error {
	var b bytes.Buffer
	err := filepath.WalkDir(stage, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(stage, path)
		if d.IsDir() && rel == "DEBIAN" {
			return filepath.SkipDir
		}
		if d.IsDir() {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		fmt.Fprintf(&b, "%x  %s\n", md5.Sum(data), rel)
		return nil
	})
	if err != nil {
		return err
	}
	return writeFile(filepath.Join(stage, "DEBIAN/md5sums"), b.Bytes(), 0o644)
}

// setTimes gives every file and directory the commit's time.
func setTimes(stage string, t time.Time) error {
	return filepath.WalkDir(stage, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Chtimes(path, t, t)
	})
}
