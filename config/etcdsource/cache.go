package etcdsource

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"time"
)

// The cache is the last table applied, kept in the state directory so
// that a node restarted while etcd is unreachable serves it. Its format is
// made to load a million entries fast (22 bytes each, no parsing):
//
//	magic "map646-etcd-cache-v1\n" (21 bytes)
//	prefix length uint16, prefix
//	revision int64, written at (Unix nanoseconds) int64, count uint32
//	count records: IPv4 (4 bytes), IPv4 length, IPv6 (16 bytes), IPv6 length
//	CRC-32C of everything above, uint32
//
// Integers are big-endian. It is written to a temporary file, synced and
// renamed over the old one: a crash leaves the old cache or the new one.
const (
	cacheFile   = "etcd-mappings.cache"
	cacheMagic  = "map646-etcd-cache-v1\n"
	cacheRecord = 4 + 1 + 16 + 1
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// cached is a cache file's content.
type cached struct {
	prefix   string
	revision int64
	written  time.Time
	recs     []record
}

// writeCache writes the records of x in IPv4 order.
func writeCache(dir string, prefix string, revision int64, x *index) error {
	tmp, err := os.CreateTemp(dir, cacheFile+".tmp*")
	if err != nil {
		return fmt.Errorf("etcdsource: cache: %w", err)
	}
	defer os.Remove(tmp.Name()) // after the rename: nothing to remove
	h := crc32.New(castagnoli)
	w := bufio.NewWriterSize(tmp, 1<<20)
	out := func(b []byte) { w.Write(b); h.Write(b) } // w's error is kept and returned by Flush

	out([]byte(cacheMagic))
	var hdr [2 + 8 + 8 + 4]byte
	binary.BigEndian.PutUint16(hdr[:], uint16(len(prefix)))
	out(hdr[:2])
	out([]byte(prefix))
	binary.BigEndian.PutUint64(hdr[2:], uint64(revision))
	binary.BigEndian.PutUint64(hdr[10:], uint64(time.Now().UnixNano()))
	binary.BigEndian.PutUint32(hdr[18:], uint32(x.len()))
	out(hdr[2:])
	var b [cacheRecord]byte
	for at := range x.by4.all() {
		r := x.rec(at)
		binary.BigEndian.PutUint32(b[0:], r.v4)
		b[4] = r.len4
		binary.BigEndian.PutUint64(b[5:], r.hi)
		binary.BigEndian.PutUint64(b[13:], r.lo)
		b[21] = r.len6
		out(b[:])
	}
	w.Write(binary.BigEndian.AppendUint32(nil, h.Sum32()))
	err = errors.Join(w.Flush(), tmp.Sync(), tmp.Close())
	if err == nil {
		err = os.Rename(tmp.Name(), filepath.Join(dir, cacheFile))
	}
	if err == nil {
		err = syncDir(dir)
	}
	if err != nil {
		return fmt.Errorf("etcdsource: cache: %w", err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// readCache reads the cache in dir; os.ErrNotExist if there is none.
func readCache(dir string) (*cached, error) {
	data, err := os.ReadFile(filepath.Join(dir, cacheFile))
	if err != nil {
		return nil, err
	}
	bad := func(what string) error {
		return fmt.Errorf("etcdsource: cache %s: %s", filepath.Join(dir, cacheFile), what)
	}
	if len(data) < len(cacheMagic)+2+4 || string(data[:len(cacheMagic)]) != cacheMagic {
		return nil, bad("not a map646 etcd cache (version 1)")
	}
	body, sum := data[:len(data)-4], binary.BigEndian.Uint32(data[len(data)-4:])
	if crc32.Checksum(body, castagnoli) != sum {
		return nil, bad("checksum mismatch (a torn or damaged file)")
	}
	p := body[len(cacheMagic):]
	n := int(binary.BigEndian.Uint16(p))
	if len(p) < 2+n+20 {
		return nil, bad("truncated header")
	}
	c := &cached{prefix: string(p[2 : 2+n])}
	p = p[2+n:]
	c.revision = int64(binary.BigEndian.Uint64(p))
	c.written = time.Unix(0, int64(binary.BigEndian.Uint64(p[8:])))
	count := int(binary.BigEndian.Uint32(p[16:]))
	p = p[20:]
	if len(p) != count*cacheRecord {
		return nil, bad(fmt.Sprintf("%d bytes of records for %d mappings", len(p), count))
	}
	c.recs = make([]record, count)
	for i := range c.recs {
		b := p[i*cacheRecord:]
		c.recs[i] = record{v4: binary.BigEndian.Uint32(b), len4: b[4],
			hi: binary.BigEndian.Uint64(b[5:]), lo: binary.BigEndian.Uint64(b[13:]), len6: b[21]}
		if c.recs[i].len4 > 32 || c.recs[i].len6 > 128 {
			return nil, bad(fmt.Sprintf("record %d has a prefix length out of range", i))
		}
	}
	return c, nil
}
