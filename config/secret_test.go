package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSecretsNotShown: the value of a password, of an unknown key whose
// name looks like a secret, and of a table or URL holding one is never in
// a message; the key and its line still are. The value of an unknown key
// that looks like nothing secret is shown as before.
func TestSecretsNotShown(t *testing.T) {
	const secret = "hunter2"
	for _, tc := range []struct {
		name string
		conf string
		want string
	}{
		{"misspelt password", bgpBase + neighbor0 + "pasword = \"hunter2\"\n",
			`test.toml:12: bgp.neighbor[0].pasword: unknown key; did you mean password?`},
		{"passwd", bgpBase + neighbor0 + "passwd = \"hunter2\"\n",
			`test.toml:12: bgp.neighbor[0].passwd: unknown key; did you mean password?`},
		{"password in the wrong section", bgpBase + "password = \"hunter2\"\n" + neighbor0,
			`test.toml:9: bgp.password: unknown key; accepted: local_as, router_id, listen_port, listen_addresses, grpc_socket, med, drain_med, communities, aggregates, neighbor`},
		{"md5_key", bgpBase + neighbor0 + "md5_key = \"hunter2\"\n",
			`test.toml:12: bgp.neighbor[0].md5_key: unknown key; accepted: address, peer_as, port, description, role, families, password, hold_time, keepalive_time, connect_retry, passive, multihop_ttl, ttl_security, max_prefixes, bfd, bfd_interval, bfd_multiplier, next_hop_ipv4, next_hop_ipv6`},
		{"auth_secret top level", "auth_secret = \"hunter2\"\n" + base,
			`test.toml:1: auth_secret: unknown section; accepted: translator, mapping, mappings, tun, metrics, log, fastpath, bgp, health, node, control`},
		{"password too short", bgpBase + neighbor0 + "password = \"\"\n",
			`test.toml:12: bgp.neighbor[0].password: must be 1 to 80 bytes long, not 0 (TCP-MD5 key, RFC 2385); to use none, leave the key out`},
		{"inline table holding a password", bgpBase + "neighbor = [1, {password = \"hunter2\"}]\n",
			`test.toml:9: bgp.neighbor: must be an array of tables ([[bgp.neighbor]]); element 0 is an integer`},
		{"[bgp.neighbor] holding a password", bgpBase + "[bgp.neighbor]\naddress = \"192.0.2.254\"\npassword = \"hunter2\"\n",
			`test.toml:9: bgp.neighbor: must be an array of tables ([[bgp.neighbor]]), not a table`},
		{"password unquoted", bgpBase + neighbor0 + "password = hunter2\n",
			`test.toml:12: invalid TOML: expected value but found <hidden> instead (text of the file hidden: the file holds a secret)`},
		{"misspelt password unquoted", bgpBase + neighbor0 + "  \"pasword\" = hunter2\n",
			`test.toml:12: invalid TOML: expected value but found <hidden> instead (text of the file hidden: the file holds a secret)`},
		{"password in an inline table, unquoted", bgpBase + "neighbor = [{ address = \"192.0.2.1\", password = hunter2value }]\n",
			`test.toml:9: invalid TOML: expected value but found <hidden> instead (text of the file hidden: the file holds a secret)`},
		{"multi-line basic string, bad escape", bgpBase + neighbor0 + "password = \"\"\"\nhunter2\nhun\\qter2\n\"\"\"\n",
			`test.toml:14: invalid TOML: invalid escape in string <hidden> (text of the file hidden: the file holds a secret)`},
		{"multi-line literal string, control character", bgpBase + neighbor0 + "password = '''\nhunter2\nhun\x01ter2\n'''\n",
			`test.toml:14: invalid TOML: TOML files cannot contain control characters: <hidden> (text of the file hidden: the file holds a secret)`},
		{"dotted key", "bgp.neighbor.password = hunter2 hunter2\n",
			`test.toml:1: invalid TOML: expected value but found <hidden> instead (text of the file hidden: the file holds a secret)`},
		{"unquoted after another key on the line", bgpBase + "[[bgp.neighbor]]\naddress = \"192.0.2.254\", password = hunter2\n",
			`test.toml:10: invalid TOML: expected a top-level item to end with a newline, comment, or EOF, but got <hidden> instead (text of the file hidden: the file holds a secret)`},
		{"number out of range", bgpBase + neighbor0 + "password = 123456789012345678901234567\n",
			`test.toml:12: invalid TOML: <hidden> is out of range for int64 (text of the file hidden: the file holds a secret)`},
		{"URL with a password, unquoted", base + "[health]\n[[health.check]]\ntarget = http://u:hunter2@[2001:db8:1::10]/\n",
			`test.toml:7: invalid TOML: expected value but found <hidden> instead (text of the file hidden: the file holds a secret)`},
		{"URL with a password", base + "[health]\n[[health.check]]\nname = \"web\"\ntype = \"http\"\ntarget = \"ftp://u:hunter2@[2001:db8:1::10]/\"\n",
			`test.toml:9: health.check[0].target: `},
		// Not secrets: shown as before.
		{"unknown key, not secret", bgpBase + neighbor0 + "remote_as = 64513\n",
			`test.toml:12: bgp.neighbor[0].remote_as = 64513: unknown key; accepted: address, peer_as, port, description, role, families, password, hold_time, keepalive_time, connect_retry, passive, multihop_ttl, ttl_security, max_prefixes, bfd, bfd_interval, bfd_multiplier, next_hop_ipv4, next_hop_ipv6`},
		{"known key passive", bgpBase + neighbor0 + "passive = \"yes\"\n",
			`test.toml:12: bgp.neighbor[0].passive = "yes": must be true or false, not a string`},
		{"syntax error, no secret in the file", bgpBase + neighbor0 + "description = plain words\n# password = \"x\"\n",
			`test.toml:12: invalid TOML: expected value but found "plain" instead`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, got := parse(t, tc.conf)
			if strings.HasSuffix(tc.want, ": ") {
				// The message is the health package's: only its start and
				// the missing secret are checked.
				if !strings.HasPrefix(got, tc.want) {
					t.Errorf("got:\n%s\nwant a line starting:\n%s", got, tc.want)
				}
			} else if got != tc.want {
				t.Errorf("config:\n%s\ngot:\n%s\nwant:\n%s", tc.conf, got, tc.want)
			}
			if strings.Contains(got, secret) || strings.Contains(got, "hunter") {
				t.Errorf("the message shows the secret: %s", got)
			}
		})
	}
}

func TestLooksSecret(t *testing.T) {
	for key, want := range map[string]bool{
		"password": true, "Password": true, "pasword": true, "passwrod": true, "passwd": true,
		"pssword": true, "passphrase": true, "md5_key": true, "secret": true, "api_token": true,
		"auth": true, "credentials": true, "pwd": true,
		"peer_as": false, "address": false, "hold_time": false, "remote_as": false, "description": false,
		"keepalive_time": false, "router_id": false,
	} {
		if got := looksSecret(key); got != want {
			t.Errorf("looksSecret(%q) = %v, want %v", key, got, want)
		}
	}
}

// TestExposure: Load warns about a configuration holding a password that
// others may read, and only then.
func TestExposure(t *testing.T) {
	dir := t.TempDir()
	withPassword := bgpBase + neighbor0 + "password = \"hunter2\"\n"
	for _, tc := range []struct {
		name string
		conf string
		mode os.FileMode
		want string
	}{
		{"0644", withPassword, 0o644, "DIR/map646.toml holds a BGP password and is readable by its group and all users (mode 0644); make it readable by its owner only: chmod go-rw DIR/map646.toml"},
		{"0640", withPassword, 0o640, "DIR/map646.toml holds a BGP password and is readable by its group (mode 0640); make it readable by its owner only: chmod go-rw DIR/map646.toml"},
		{"0604", withPassword, 0o604, "DIR/map646.toml holds a BGP password and is readable by all users (mode 0604); make it readable by its owner only: chmod go-rw DIR/map646.toml"},
		{"0600", withPassword, 0o600, ""},
		{"0400", withPassword, 0o400, ""},
		{"no password", bgpBase + neighbor0, 0o644, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, "map646.toml")
			os.Remove(path)
			if err := os.WriteFile(path, []byte(tc.conf), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(path, tc.mode); err != nil { // not subject to the umask
				t.Fatal(err)
			}
			c, err := Load(path)
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.ReplaceAll(c.Exposure(), dir, "DIR"); got != tc.want {
				t.Errorf("got  %q\nwant %q", got, tc.want)
			}
		})
	}
}

// TestParserMessage: in a file that holds a secret, every form in which the
// TOML library quotes the file is hidden, and only that; in a file without
// one the message is unchanged.
func TestParserMessage(t *testing.T) {
	secretFile := []byte("[[bgp.neighbor]]\npassword = x\n")
	const note = " (text of the file hidden: the file holds a secret)"
	for _, tc := range []struct{ msg, want string }{
		{`expected value but found "hunter2" instead`, `expected value but found <hidden> instead` + note},
		{`expected value but found "hun\"ter2" instead`, `expected value but found <hidden> instead` + note},
		{`expected '.' or '=', but got 'h' instead`, `expected <hidden> or <hidden>, but got <hidden> instead` + note},
		{`not a binary number: '0bhun'ter2'`, `not a binary number: <hidden>` + note},
		{`invalid escape in string '\q'`, `invalid escape in string <hidden>` + note},
		{`invalid UTF-8 byte: 0xff`, `invalid UTF-8 byte: <hidden>` + note},
		{`1234567890123456789012 is out of range for int64`, `<hidden> is out of range for int64` + note},
		{`newlines not allowed within inline tables`, `newlines not allowed within inline tables`},
	} {
		if got := parserMessage(secretFile, tc.msg); got != tc.want {
			t.Errorf("parserMessage(%q)\n got %q\nwant %q", tc.msg, got, tc.want)
		}
		if got := parserMessage([]byte("[bgp]\nlocal_as = x\n# password = \"x\"\n"), tc.msg); got != tc.msg {
			t.Errorf("no secret in the file: parserMessage(%q) = %q, want it unchanged", tc.msg, got)
		}
	}
}
