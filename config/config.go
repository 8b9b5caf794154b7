package config

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/map646/map646/translator"
)

// Config is a validated configuration. Build one with Load or Parse; treat
// it as read-only (a reload builds a new one).
type Config struct {
	// File is the configuration file's name as given to Load or Parse.
	File string

	// Translator is the [translator] section.
	Translator Translator

	// Mappings says where the table comes from: the file (Table) or etcd.
	Mappings Mappings

	// Tun, Metrics and Log are the daemon's sections, read by `map646 run`.
	Tun     Tun
	Metrics Metrics
	Log     Log
	// FastPath is [fastpath]: the kernel fast path, attached by `map646 run`.
	FastPath FastPath

	// BGP, Health, Node and Control are the sections of the node's life
	// cycle: the speaker, the checks that gate its announcements, drain and
	// linger, and the control socket.
	BGP     BGP
	Health  Health
	Node    Node
	Control Control

	// table holds the explicit address mappings (RFC 7757): the [[mapping]]
	// entries in order, then the mapping file's lines in order. It is built
	// once, by Parse, and is the only copy: a million mappings are kept in
	// the table's compact form, not also as a slice of netip.Prefix pairs.
	table   *translator.Table
	origins origins // where each mapping of the table was written

	mode fs.FileMode // the file's permissions, as Load found them (Exposure); 0 from Parse
}

// Translator is the [translator] section.
type Translator struct {
	// Config holds the parameters of the translator package, ready for
	// translator.New (NewTranslator passes it on).
	translator.Config

	// ICMPErrorRate and ICMPErrorBurst bound the ICMP errors this node
	// sends: a token bucket of ICMPErrorBurst tokens refilled at
	// ICMPErrorRate per second (RFC 7915 leaves the limit to the
	// implementation; RFC 4443 §2.4(f) asks for one). The data plane applies
	// it; the translator package only builds the errors.
	ICMPErrorRate  int
	ICMPErrorBurst int
	// ICMPPMTUErrorRate and ICMPPMTUErrorBurst are the bucket of the path
	// MTU signals (Fragmentation Needed, Packet Too Big), kept apart so
	// that a flood of packets earning other errors (TTL 1, no mapping)
	// cannot starve path MTU discovery.
	ICMPPMTUErrorRate  int
	ICMPPMTUErrorBurst int

	// MappingFile is the path of the mapping file, resolved against the
	// configuration file's directory; "" if there is none.
	MappingFile string

	// MaxMappingFileBytes and MaxMappings bound what a configuration may
	// ask of memory: a mapping file larger than MaxMappingFileBytes, or
	// more than MaxMappings mappings in all, is refused before the file is
	// read whole or the table allocated. A stray file named on a reload
	// must not take the daemon's memory.
	MaxMappingFileBytes int
	MaxMappings         int
}

// Defaults of the optional keys.
const (
	DefaultLowestIPv6MTU  = translator.MinIPv6MTU
	DefaultIPv6MTU        = 1500
	DefaultIPv4MTU        = 1500
	DefaultICMPErrorRate  = 100
	DefaultICMPErrorBurst = 50
	// The path MTU signals get Linux's own global ICMP budget
	// (net.ipv4.icmp_msgs_per_sec = 1000): each one lost costs a client a
	// retransmission timeout, where another error lost costs a diagnostic.
	DefaultICMPPMTUErrorRate  = 1000
	DefaultICMPPMTUErrorBurst = 100
	MaxICMPErrorRate          = 1000000

	// A million mappings written out in full ("198.51.100.100/32
	// 2001:db8:ffff:ffff:ffff:ffff:ffff:ffff/128") take 63 MB; the default
	// leaves room for comments.
	DefaultMaxMappingFileBytes = 128 << 20
	MaxMappingFileBytes        = 4 << 30
	DefaultMaxMappings         = 1 << 20
	MaxMappings                = 1<<24 - 1 // translator.NewTable's own bound
)

// Load reads and checks the configuration file at path; a relative
// mapping_file is looked up in the file's directory.
func Load(path string) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	// The mode of the file read, not of whatever the path names a moment
	// later.
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	data, err := io.ReadAll(f)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	c, err := Parse(data, path, filepath.Dir(path))
	if c != nil {
		c.mode = fi.Mode().Perm()
	}
	return c, err
}

// Parse checks the configuration data, read from the file called name (used
// in messages; "config" if empty); a relative mapping_file is looked up in
// dir. The error, if any, is an *Error listing every problem found.
func Parse(data []byte, name, dir string) (*Config, error) {
	if name == "" {
		name = "config"
	}
	c := &Config{File: name}
	d, root := newDecoder(data, name)
	if root == nil {
		return nil, d.err(name)
	}
	// Sections are decoded in order: a later one may depend on an earlier
	// one (the mappings are checked against the pseudo prefix).
	ts := root.table("translator")
	c.decodeTranslator(ts, dir)
	entries := root.tables("mapping")
	c.decodeMappingSource(mappingsSection(root), len(entries), dir)
	c.decodeMappings(ts, entries)
	c.decodeTun(root.table("tun"))
	c.decodeMetrics(root.table("metrics"))
	c.decodeLog(root.table("log"))
	c.decodeFastPath(root.table("fastpath"))
	// [bgp] needs the translator's addresses and the table; [health] the
	// neighbors; [control] the gRPC socket.
	neighbors := c.decodeBGP(root)
	c.decodeHealth(root, neighbors)
	c.decodeNode(root.table("node"))
	c.decodeControl(root.table("control"))
	root.done()

	if d.len() == 0 {
		// Belt and braces: translator.New has its own checks, and a Config
		// that passed ours must not fail there.
		if _, err := c.NewTranslator(); err != nil {
			d.add(Problem{File: name, Msg: err.Error()})
		}
	}
	if err := d.err(name); err != nil {
		return nil, err
	}
	return c, nil
}

// Table returns the mapping table: Len mappings, each one given back by
// Mapping(i) in the order written, its location by MappingSource(i).
func (c *Config) Table() *translator.Table { return c.table }

// NewTranslator returns a translator for the configuration. It shares the
// Config's table.
func (c *Config) NewTranslator() (*translator.Translator, error) {
	return translator.New(c.Translator.Config, c.table)
}
