package main

import (
	"fmt"
	"regexp"
	"strings"
)

// debianRevision is the Debian revision of every package mkdeb builds: the
// packaging lives in this repository and changes with it, so there is
// never a second packaging of one upstream version. A revision (rather
// than a native version) is what makes the changelog changelog.Debian.gz.
const debianRevision = "1"

// describeAfterTag is git describe's "TAG-N-gHASH": N commits after TAG.
var describeAfterTag = regexp.MustCompile(`^(.+)-([0-9]+)-g([0-9a-f]+)$`)

// bareHash is git describe --always without a tag to describe from.
var bareHash = regexp.MustCompile(`^[0-9a-f]{7,40}$`)

// validUpstream is Debian policy 5.6.12 for an upstream version when a
// revision follows: a digit first, then alphanumerics and . + ~ -.
var validUpstream = regexp.MustCompile(`^[0-9][A-Za-z0-9.+~-]*$`)

// debVersion turns what git describe says (or "dev", or "" when there is
// no git) into a Debian version that sorts as the builds do:
//
//	v1.2.3             1.2.3-1
//	v1.2.3-rc1         1.2.3~rc1-1          (a pre-release sorts before 1.2.3)
//	v1.2.3-5-gabc1234  1.2.3+5.gabc1234-1   (after 1.2.3, before 1.2.4)
//	abc1234            0~gabc1234-1         (no tag yet: before any release)
//	... -dirty         ...+0.dirty or .dirty  (uncommitted changes)
//	dev, ""            0~dev-1
func debVersion(describe string) (string, error) {
	v := strings.TrimPrefix(strings.TrimSpace(describe), "v")
	if v == "" || v == "dev" {
		return "0~dev-" + debianRevision, nil
	}
	v, dirty := strings.CutSuffix(v, "-dirty")
	switch m := describeAfterTag.FindStringSubmatch(v); {
	case m != nil:
		v = preRelease(m[1]) + "+" + m[2] + ".g" + m[3]
	case bareHash.MatchString(v):
		v = "0~g" + v
	default:
		v = preRelease(v)
	}
	if dirty {
		if strings.Contains(v, "+") {
			v += ".dirty"
		} else {
			v += "+0.dirty" // after the commit, before the next one
		}
	}
	if !validUpstream.MatchString(v) {
		return "", fmt.Errorf("mkdeb: version %q (from %q) is not a valid Debian upstream version: a digit first, then letters, digits and . + ~", v, describe)
	}
	return v + "-" + debianRevision, nil
}

// preRelease turns a semantic version's pre-release hyphen (1.2.3-rc1) into
// Debian's tilde, which sorts before the release.
func preRelease(tag string) string {
	return strings.ReplaceAll(tag, "-", "~")
}
