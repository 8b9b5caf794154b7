package config

import (
	"bytes"
	"fmt"
	"io/fs"
	"net/url"
	"regexp"
	"slices"
	"strings"
)

// secretKeys are the keys whose values are secrets: [[bgp.neighbor]]
// password (the TCP-MD5 key). No message, log line or description ever
// shows their values.
var secretKeys = []string{"password"}

// secretWords are parts of key names that say "secret" in the usual
// spellings: an unknown key that contains one is taken for a secret too.
var secretWords = []string{"pass", "pwd", "secret", "token", "key", "cred", "auth"}

// looksSecret reports whether the value of key (the last part of a dotted
// name) must not be shown: a secret key, a misspelling of one (up to three
// edits: "pasword", "passwd", "pssword"), or a name containing one of
// secretWords. It errs on the side of hiding: an unknown key the rule
// takes for a secret loses only its value in the message, never its name
// or line.
func looksSecret(key string) bool {
	k := strings.ToLower(key)
	for _, s := range secretKeys {
		if editDistance(k, s) <= 3 {
			return true
		}
	}
	for _, w := range secretWords {
		if strings.Contains(k, w) {
			return true
		}
	}
	return false
}

// holdsSecret reports whether a decoded value shows a secret: a table (or
// an array holding one) with a key that looks secret, or a URL with a
// password in it.
func holdsSecret(v any) bool {
	switch v := v.(type) {
	case string:
		u, err := url.Parse(v)
		if err != nil || u.User == nil {
			return false
		}
		_, has := u.User.Password()
		return has
	case []any:
		for _, e := range v {
			if holdsSecret(e) {
				return true
			}
		}
	case []map[string]any:
		for _, e := range v {
			if holdsSecret(e) {
				return true
			}
		}
	case map[string]any:
		for k, e := range v {
			if looksSecret(k) || holdsSecret(e) {
				return true
			}
		}
	}
	return false
}

// shown is the value v of key as a message may show it: "" (not shown)
// for a secret key, for an unknown key that looks secret, and for a value
// that holds a secret. A known key is judged by its name alone: the value
// of passive = "yes" is shown, that of pasive = "yes" is not.
func (s *section) shown(key string, v any) string {
	name := lastPart(s.path(key))
	switch {
	case v == nil, holdsSecret(v), slices.Contains(secretKeys, name):
		return ""
	case !slices.Contains(s.asked, key) && looksSecret(name):
		return ""
	}
	return tomlString(v)
}

// lastPart returns the last part of a dotted key: "password" of
// "bgp.neighbor[0].password".
func lastPart(key string) string {
	return key[strings.LastIndexByte(key, '.')+1:]
}

// assignedKey matches every key of a key = value pair, wherever it stands:
// at the start of a line, after a dot of a dotted key, inside an inline
// table or after another pair on the same line. A "=" inside a string may
// match too, which only hides more.
var assignedKey = regexp.MustCompile(`([A-Za-z0-9_-]+|"(?:[^"\\]|\\.)*"|'[^']*')\s*=`)

// urlPassword matches the user information of a URL with a password in it.
var urlPassword = regexp.MustCompile(`://[^/@\s]*:[^/@\s]*@`)

// holdsSecretText reports whether the text of a configuration file that
// the TOML library failed to parse may hold a secret: a key anywhere that
// looks secret, or a URL with a password. Lines that are all comment do
// not count: the example file's "# password = ..." is no secret.
func holdsSecretText(data []byte) bool {
	for line := range bytes.SplitSeq(data, []byte("\n")) {
		if t := bytes.TrimSpace(line); len(t) == 0 || t[0] == '#' {
			continue
		}
		if urlPassword.Match(line) {
			return true
		}
		for _, m := range assignedKey.FindAllSubmatch(line, -1) {
			if looksSecret(strings.Trim(string(m[1]), `"'`)) {
				return true
			}
		}
	}
	return false
}

// quotedText matches what the TOML library (v1.6.0) quotes from the file in
// its syntax errors: "..." (%q), '...' (%q of a rune, and '%s', whose text
// may itself hold a ' followed by more text), a number it could not read
// ("99999999999999999999 is out of range for int64") and a byte ("invalid
// UTF-8 byte: 0xff").
var quotedText = regexp.MustCompile(`"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.|'[^\s,.:;)'])*'|^\S+( is out of)|\b0x[0-9a-fA-F]+\b`)

// hidden stands for text of the file that a message does not show.
const hidden = "<hidden>"

// parserMessage returns msg, a syntax error of the TOML library about data,
// as a message may show it. The library quotes the text it chokes on, and
// the position of an error inside a value does not tell whose value it is
// (a multi-line string, an inline table with a password after another key),
// so in a file that may hold a secret every text quoted from the file is
// replaced with <hidden>; the kind of error and its line remain.
func parserMessage(data []byte, msg string) string {
	if !holdsSecretText(data) {
		return msg
	}
	shown := quotedText.ReplaceAllStringFunc(msg, func(q string) string {
		if strings.HasSuffix(q, " is out of") {
			return hidden + " is out of"
		}
		return hidden
	})
	if shown == msg {
		return msg
	}
	return shown + " (text of the file hidden: the file holds a secret)"
}

// HasSecrets reports whether the configuration holds a secret: a BGP
// neighbor's password.
func (c *Config) HasSecrets() bool {
	for _, n := range c.BGP.Neighbors {
		if n.Password != "" {
			return true
		}
	}
	return false
}

// Exposure returns a warning when the configuration file holds a secret and
// users other than its owner may read it (mode bits 044), "" otherwise.
// Load records the file's mode; a Config from Parse has none and never
// warns.
func (c *Config) Exposure() string {
	if !c.HasSecrets() || c.mode&0o044 == 0 {
		return ""
	}
	who := "its group and all users"
	switch c.mode & 0o044 {
	case 0o040:
		who = "its group"
	case 0o004:
		who = "all users"
	}
	return fmt.Sprintf("%s holds a BGP password and is readable by %s (mode %04o); make it readable by its owner only: chmod go-rw %s",
		c.File, who, c.mode&fs.ModePerm, c.File)
}
