package main

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

// root is the repository, seen from this package's directory.
const root = "../../../.."

func TestDebVersion(t *testing.T) {
	for _, tc := range []struct{ describe, want string }{
		{"v1.2.3", "1.2.3-1"},
		{"v1.2.3-rc1", "1.2.3~rc1-1"},
		{"v1.2.3-5-gabc1234", "1.2.3+5.gabc1234-1"},
		{"v1.2.3-rc1-5-gabc1234", "1.2.3~rc1+5.gabc1234-1"},
		{"v1.2.3-5-gabc1234-dirty", "1.2.3+5.gabc1234.dirty-1"},
		{"v1.2.3-dirty", "1.2.3+0.dirty-1"},
		{"b0be41d", "0~gb0be41d-1"},
		{"b0be41d-dirty", "0~gb0be41d+0.dirty-1"},
		{"dev", "0~dev-1"},
		{"", "0~dev-1"},
	} {
		got, err := debVersion(tc.describe)
		if err != nil || got != tc.want {
			t.Errorf("debVersion(%q) = %q, %v; want %q", tc.describe, got, err, tc.want)
		}
	}
	for _, bad := range []string{"release_1", "v1.2.3 beta", "vx"} {
		if got, err := debVersion(bad); err == nil {
			t.Errorf("debVersion(%q) = %q, want an error", bad, got)
		}
	}
}

// TestVersionsSort: dpkg orders the versions debVersion makes as the
// builds are ordered.
func TestVersionsSort(t *testing.T) {
	if _, err := exec.LookPath("dpkg"); err != nil {
		labreq.Unavailable(t, "no dpkg to compare versions with: %v", err)
	}
	order := []string{"dev", "b0be41d", "v1.2.3-rc1", "v1.2.3-rc1-2-gabc1234", "v1.2.3", "v1.2.3-dirty", "v1.2.3-2-gabc1234", "v1.2.3-10-gabc1234", "v1.2.4"}
	for i := 1; i < len(order); i++ {
		a, _ := debVersion(order[i-1])
		b, _ := debVersion(order[i])
		if err := exec.Command("dpkg", "--compare-versions", a, "lt", b).Run(); err != nil {
			t.Errorf("dpkg does not sort %s (%s) before %s (%s)", a, order[i-1], b, order[i])
		}
	}
}

// TestHelpList: the lists of the help texts keep their tags and become
// tagged paragraphs; an example stays a block of commands.
func TestHelpList(t *testing.T) {
	c := command{name: "status"}
	help := "Usage: map646 status [-json]\n\nShow it:\n" +
		"  node       the state,\n" +
		"             since when;\n" +
		"  health     each check.\n" +
		"  1. refuse, changing nothing,\n" +
		"     unless.\n\n" +
		"Example:\n  map646 status -json | jq .node\n\n" +
		"Flags:\n  -json\n    \tprint the status as JSON\n  -socket PATH\n    \tthe control PATH\n"
	if err := parseCommand(&c, help); err != nil {
		t.Fatal(err)
	}
	if c.usage != "map646 status [-json]" || len(c.flags) != 2 || c.flags[1] != (flagHelp{"socket", "PATH", "the control PATH"}) {
		t.Fatalf("parsed %+v", c)
	}
	var r roff
	for _, p := range c.body {
		renderHelpParagraph(&r, p)
	}
	for _, want := range []string{
		".TP 11\n\\&node\n\\&the state,\n\\&since when;\n",
		".TP 11\n\\&health\n\\&each check.\n",
		".TP 3\n\\&1.\n\\&refuse, changing nothing,\n\\&unless.\n",
		".nf\n\\&map646 status \\-json | jq .node\n.fi\n",
	} {
		if !strings.Contains(r.String(), want) {
			t.Errorf("rendered\n%s\nwithout\n%s", r.String(), want)
		}
	}
}

// TestManPage5 renders config/example.toml: every key of the example, set
// or commented out, is on the page, and a line the renderer does not
// understand is an error rather than a gap in the page.
func TestManPage5(t *testing.T) {
	example, err := os.ReadFile(filepath.Join(root, "config/example.toml"))
	if err != nil {
		t.Fatal(err)
	}
	page, err := manPage5(example, "2026-01-01", "1.0-1")
	if err != nil {
		t.Fatal(err)
	}
	keys := regexp.MustCompile(`(?m)^(?:# ?)?([a-z0-9_]+) = ("[^"]*"|\[.*\]|-?[0-9][0-9_.]*|true|false)$`).FindAllStringSubmatch(string(example), -1)
	if len(keys) < 60 {
		t.Fatalf("found %d keys in config/example.toml, expected every key of it (over 60)", len(keys))
	}
	for _, k := range keys {
		if !strings.Contains(page, `\fB`+k[1]+`\fR = `) {
			t.Errorf("key %s of config/example.toml is not on map646.toml(5)", k[1])
		}
	}
	for _, table := range regexp.MustCompile(`(?m)^\[\[?[a-z.]+\]\]?$`).FindAllString(string(example), -1) {
		if !strings.Contains(page, ".SS "+table+"\n") {
			t.Errorf("table %s is not a subsection of map646.toml(5)", table)
		}
	}
	if _, err := manPage5([]byte("[a]\nx = [\n  1,\n]\n"), "2026-01-01", "1.0-1"); err == nil || !strings.Contains(err.Error(), ":2:") {
		t.Errorf("a value over several lines: err = %v, want an error naming line 2", err)
	}
}

// needTools makes sure the commands are installed, installing their
// Debian packages as root; without root it ends the test through labreq.
func needTools(t *testing.T, commands ...string) {
	t.Helper()
	for _, c := range commands {
		if _, err := exec.LookPath(c); err != nil && os.Geteuid() != 0 {
			labreq.Unavailable(t, "%s is not installed, and only root can install it (Debian package %s)", c, netlab.Packages[c])
		}
	}
	netlab.Need(t, commands...)
}

// TestDeb builds the package as make deb does, and checks it as the issue
// asks: lintian finds no error; extracted, the binary checks the packaged
// configuration; both man pages render without a warning; the bash
// completion completes the commands and the flags the binary has.
func TestDeb(t *testing.T) {
	needTools(t, "dpkg-deb", "lintian", "man", "groff", "bash")
	const describe = "v1.2.3-4-gabcdef0"
	deb, err := build(root, describe, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Base(deb) != "map646_1.2.3+4.gabcdef0-1_amd64.deb" {
		t.Errorf("package %s, want map646_1.2.3+4.gabcdef0-1_amd64.deb", filepath.Base(deb))
	}
	t.Run("contents", func(t *testing.T) { checkContents(t, deb) })
	t.Run("lintian", func(t *testing.T) { checkLintian(t, deb) })
	t.Run("maintainer-scripts", func(t *testing.T) { checkScripts(t, deb) })
	t.Run("install", func(t *testing.T) { checkInstall(t, deb) })

	x := t.TempDir()
	run(t, "dpkg-deb", "-x", deb, x)
	binary := filepath.Join(x, "usr/sbin/map646")
	t.Run("check", func(t *testing.T) {
		out := run(t, binary, "check", "-config", filepath.Join(x, "etc/map646/map646.toml"))
		for _, want := range []string{"valid", "/run/map646/map646.sock", "/var/lib/map646"} {
			if !strings.Contains(out, want) {
				t.Errorf("map646 check of the packaged configuration says\n%s\nwithout %q", out, want)
			}
		}
		// Its commented-out examples ([[mapping]], [bgp]) are valid too.
		packaged, err := os.ReadFile(filepath.Join(x, "etc/map646/map646.toml"))
		if err != nil {
			t.Fatal(err)
		}
		examples := regexp.MustCompile(`(?m)^# (\[\[?[a-z.]+\]\]?|[a-z0-9_]+ = .+)$`)
		if n := len(examples.FindAll(packaged, -1)); n < 8 {
			t.Errorf("%d commented-out lines of TOML in the packaged configuration, want the [[mapping]] and [bgp] examples (8 or more)", n)
		}
		uncommented := filepath.Join(t.TempDir(), "uncommented.toml")
		if err := os.WriteFile(uncommented, examples.ReplaceAll(packaged, []byte("$1")), 0o600); err != nil {
			t.Fatal(err)
		}
		if out := run(t, binary, "check", "-config", uncommented); !strings.Contains(out, "bgp") || !strings.Contains(out, "mappings: 1") {
			t.Errorf("map646 check of the packaged configuration, uncommented, says\n%s\nwithout its [bgp] and its mapping", out)
		}
		// The commit follows when the go command stamped it (-buildvcs).
		if out := run(t, binary, "version"); !regexp.MustCompile(`^map646 ` + regexp.QuoteMeta(describe) + `[+ ]`).MatchString(out) {
			t.Errorf("the packaged map646 says %q, want the version it was built as, %s", out, describe)
		}
	})
	t.Run("unit", func(t *testing.T) {
		want, err := os.ReadFile(filepath.Join(root, "cmd/map646/package/map646.service"))
		if err != nil {
			t.Fatal(err)
		}
		if got, err := os.ReadFile(filepath.Join(x, "lib/systemd/system/map646.service")); err != nil || !bytes.Equal(got, want) {
			t.Errorf("the packaged unit is not cmd/map646/package/map646.service (err %v)", err)
		}
	})
	t.Run("man", func(t *testing.T) {
		for _, page := range []string{"usr/share/man/man8/map646.8.gz", "usr/share/man/man5/map646.toml.5.gz"} {
			checkManPage(t, filepath.Join(x, page))
		}
	})
	t.Run("completion", func(t *testing.T) {
		checkCompletion(t, binary, filepath.Join(x, "usr/share/bash-completion/completions/map646"))
	})
}

func checkContents(t *testing.T, deb string) {
	listing := run(t, "dpkg-deb", "-c", deb)
	for _, want := range []string{
		"-rwxr-xr-x root/root .* ./usr/sbin/map646$",
		"-rw-r--r-- root/root .* ./lib/systemd/system/map646.service$",
		"-rw-r--r-- root/root .* ./etc/map646/map646.toml$",
		"-rw-r--r-- root/root .* ./usr/share/man/man8/map646.8.gz$",
		"-rw-r--r-- root/root .* ./usr/share/man/man5/map646.toml.5.gz$",
		"-rw-r--r-- root/root .* ./usr/share/bash-completion/completions/map646$",
		"-rw-r--r-- root/root .* ./usr/share/doc/map646/copyright$",
		"-rw-r--r-- root/root .* ./usr/share/doc/map646/changelog.Debian.gz$",
	} {
		if !regexp.MustCompile("(?m)^" + want).MatchString(listing) {
			t.Errorf("dpkg-deb -c has no line matching %q:\n%s", want, listing)
		}
	}
	if got := run(t, "dpkg-deb", "-f", deb, "Package", "Version", "Architecture"); got != "Package: map646\nVersion: 1.2.3+4.gabcdef0-1\nArchitecture: amd64\n" {
		t.Errorf("control fields:\n%s", got)
	}
	ctl := t.TempDir()
	run(t, "dpkg-deb", "-e", deb, ctl)
	if got, _ := os.ReadFile(filepath.Join(ctl, "conffiles")); string(got) != "/etc/map646/map646.toml\n" {
		t.Errorf("conffiles %q, want the packaged configuration", got)
	}
	postinst, _ := os.ReadFile(filepath.Join(ctl, "postinst"))
	if !strings.Contains(string(postinst), "adduser --quiet --system --group --no-create-home --home /var/lib/map646 map646") {
		t.Errorf("postinst does not create the map646 system user:\n%s", postinst)
	}
}

// stub stands for every command the maintainer scripts run: it logs its
// arguments, and answers getent passwd and dpkg-statoverride --list as the
// test says (not found: 2 and 1).
const stub = `#!/bin/sh
name=${0##*/}
echo "$name $*" >>"$STUB_LOG"
case "$name $1" in
"getent passwd") exit ${STUB_GETENT:-0} ;;
"dpkg-statoverride --list") exit ${STUB_LIST:-0} ;;
esac
exit 0
`

// checkScripts runs the maintainer scripts as dpkg would, with a PATH of
// stubs only (nothing is installed, no user made, nothing removed), and
// checks what they ask: a first install creates the user, sets the
// configuration's owner and mode, enables and starts the unit; an upgrade
// restarts it and keeps the user and an administrator's statoverrides; a
// purge removes the user, the statoverrides and the state.
func checkScripts(t *testing.T, deb string) {
	ctl, bin := t.TempDir(), t.TempDir()
	run(t, "dpkg-deb", "-e", deb, ctl)
	for _, c := range []string{"getent", "adduser", "deluser", "dpkg-statoverride", "deb-systemd-helper", "deb-systemd-invoke", "systemctl", "rm"} {
		if err := os.WriteFile(filepath.Join(bin, c), []byte(stub), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// dh_installsystemd's part runs only where systemd runs.
	_, err := os.Stat("/run/systemd/system")
	systemd := err == nil
	script := func(env []string, name string, args ...string) string {
		t.Helper()
		log := filepath.Join(t.TempDir(), "log")
		cmd := exec.Command("/bin/sh", append([]string{"-e", filepath.Join(ctl, name)}, args...)...)
		cmd.Env = append([]string{"PATH=" + bin, "STUB_LOG=" + log}, env...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
		}
		got, _ := os.ReadFile(log)
		return string(got)
	}
	expect := func(what, log string, want, wantNot []string) {
		t.Helper()
		for _, w := range want {
			if !strings.Contains(log, w+"\n") {
				t.Errorf("%s: ran\n%s\nwithout %q", what, log, w)
			}
		}
		for _, w := range wantNot {
			if strings.Contains(log, w) {
				t.Errorf("%s: ran\n%s\nwith %q", what, log, w)
			}
		}
	}
	started, restarted := []string{}, []string{}
	if systemd {
		started = []string{"deb-systemd-invoke start map646.service"}
		restarted = []string{"deb-systemd-invoke restart map646.service"}
	}
	expect("postinst configure (first install)", script([]string{"STUB_GETENT=2", "STUB_LIST=1"}, "postinst", "configure"),
		append([]string{
			"adduser --quiet --system --group --no-create-home --home /var/lib/map646 map646",
			"dpkg-statoverride --update --add root map646 0750 /etc/map646",
			"dpkg-statoverride --update --add map646 map646 0600 /etc/map646/map646.toml",
			"deb-systemd-helper enable map646.service",
		}, started...), []string{"restart"})
	expect("postinst configure 1.0 (upgrade)", script(nil, "postinst", "configure", "1.0-1"),
		restarted, []string{"adduser", "--add", "invoke start"})
	expect("prerm remove", script(nil, "prerm", "remove"), nil, []string{"adduser", "deluser", "rm "})
	expect("postrm purge", script(nil, "postrm", "purge"), []string{
		"deb-systemd-helper purge map646.service",
		"dpkg-statoverride --remove /etc/map646/map646.toml",
		"dpkg-statoverride --remove /etc/map646",
		"rm -rf /var/lib/map646",
		"deluser --quiet --system map646",
	}, nil)
	expect("postrm remove", script(nil, "postrm", "remove"), nil, []string{"deluser", "rm ", "--remove"})
}

// installScript installs the package ($1) with dpkg in a chroot of an
// overlay of / in a mount namespace of its own (every write lands in a
// tmpfs under $2, dropped at the end: the machine gets no user, file or
// package), installs it again (an upgrade), purges it, and prints what it
// finds on the way as "WHAT: ANSWER" lines.
const installScript = `set -e
d=$(mktemp -d -p "$2")
mount -t tmpfs tmpfs "$d"
mkdir "$d/upper" "$d/work" "$d/root"
mount -t overlay overlay -o "lowerdir=/,upperdir=$d/upper,workdir=$d/work" "$d/root"
mount --bind /proc "$d/root/proc"
mount --bind /dev "$d/root/dev"
cp "$1" "$d/root/tmp/map646.deb"
chroot "$d/root" /bin/sh -c '
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
dpkg -i /tmp/map646.deb >/tmp/dpkg.log 2>&1 || { cat /tmp/dpkg.log; exit 1; }
echo "user: $(getent passwd map646 | cut -d: -f1,6,7)"
echo "directory: $(stat -c "%U:%G %a" /etc/map646)"
echo "config: $(stat -c "%U:%G %a" /etc/map646/map646.toml)"
echo "enabled: $(readlink /etc/systemd/system/multi-user.target.wants/map646.service)"
echo "check as map646: $(setpriv --reuid map646 --regid map646 --clear-groups /usr/sbin/map646 check -config /etc/map646/map646.toml 2>&1 | head -1)"
dpkg -i /tmp/map646.deb >/tmp/dpkg.log 2>&1 || { cat /tmp/dpkg.log; exit 1; }
echo "upgraded: $(dpkg-query -W -f "\${db:Status-Status}" map646)"
dpkg --purge map646 >/tmp/dpkg.log 2>&1 || { cat /tmp/dpkg.log; exit 1; }
echo "purged user: $(getent passwd map646 || echo none)"
echo "purged files: $(ls -d /etc/map646 /var/lib/map646 /etc/systemd/system/multi-user.target.wants/map646.service 2>/dev/null || echo none)"
echo "purged statoverrides: $(dpkg-statoverride --list | grep map646 || echo none)"
'
`

// checkInstall installs, upgrades and purges the package for real, in a
// throwaway overlay of the machine (installScript).
func checkInstall(t *testing.T, deb string) {
	labreq.Root(t, "install the package in a chroot of an overlay of /")
	needTools(t, "adduser", "unshare", "chroot", "setpriv")
	out := run(t, "unshare", "--mount", "--propagation", "private", "sh", "-c", installScript, "sh", deb, t.TempDir())
	for _, want := range []string{
		"user: map646:/var/lib/map646:/usr/sbin/nologin",
		"directory: root:map646 750",
		"config: map646:map646 600",
		"enabled: /lib/systemd/system/map646.service",
		"check as map646: /etc/map646/map646.toml: valid",
		"upgraded: installed",
		"purged user: none",
		"purged files: none",
		"purged statoverrides: none",
	} {
		if !strings.Contains(out, want+"\n") {
			t.Errorf("install, upgrade and purge in a chroot:\n%s\nwithout %q", out, want)
		}
	}
}

// checkLintian fails on any error lintian reports; its warnings are
// logged.
func checkLintian(t *testing.T, deb string) {
	cmd := exec.Command("lintian", "--fail-on", "error", "--tag-display-limit", "0", deb)
	out, err := cmd.CombinedOutput()
	t.Logf("lintian %s:\n%s", filepath.Base(deb), out)
	if err != nil {
		t.Errorf("lintian: %v", err)
	}
	if regexp.MustCompile(`(?m)^E: `).Match(out) {
		t.Errorf("lintian reports errors")
	}
}

// checkManPage renders a page as man does at 80 columns and as groff does
// with every warning on: neither may say anything on stderr.
func checkManPage(t *testing.T, page string) {
	for _, c := range [][]string{
		{"man", "--warnings", "-l", "-Tutf8", page},
		{"sh", "-c", `zcat "$1" | groff -man -ww -z -Tutf8`, "sh", page},
	} {
		var stdout, stderr bytes.Buffer
		cmd := exec.Command(c[0], c[1:]...)
		cmd.Env = append(os.Environ(), "MANWIDTH=80", "LC_ALL=C.UTF-8")
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil || stderr.Len() > 0 {
			t.Errorf("%s: %v\n%s", strings.Join(c, " "), err, stderr.Bytes())
		}
		// man writes bold as X\bX to a pipe.
		if c[0] == "man" && !strings.Contains(regexp.MustCompile(".\b").ReplaceAllString(stdout.String(), ""), "\nNAME\n") {
			t.Errorf("man -l %s rendered no NAME section:\n%s", page, stdout.Bytes())
		}
	}
}

// checkCompletion runs the completion function as bash would at a TAB and
// compares what it offers with what the binary's help says.
func checkCompletion(t *testing.T, binary, script string) {
	complete := func(words ...string) []string {
		t.Helper()
		// COMP_WORDS and COMP_CWORD as bash sets them for the last word.
		sh := `source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _map646; printf '%s\n' "${COMPREPLY[@]}"`
		out := run(t, "bash", append([]string{"-c", sh, "bash", script}, words...)...)
		return strings.Fields(out)
	}
	top := run(t, binary, "-h")
	p, err := parseProgram(top)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, c := range p.commands {
		names = append(names, c.name)
	}
	if got := strings.Join(complete("map646", ""), " "); got != strings.Join(names, " ")+" -h" {
		t.Errorf("map646 <TAB>: %q, want the commands of map646 -h: %q", got, names)
	}
	if got := strings.Join(complete("map646", "dr"), " "); got != "drain" {
		t.Errorf("map646 dr<TAB>: %q, want drain", got)
	}
	if got := strings.Join(complete("map646", "translate", "-"), " "); got != "-config -h -in -json -out" {
		t.Errorf("map646 translate -<TAB>: %q, want -config -h -in -json -out", got)
	}
	if got := complete("map646", "check", "-config", ""); len(got) != 0 {
		t.Errorf("map646 check -config <TAB>: %q, want nothing (bash completes file names)", got)
	}
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}
