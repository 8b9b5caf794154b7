package tun

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/map646/map646/translator"
	pt "github.com/map646/map646/translator/packettest"
)

// relay is the data plane in miniature, one goroutine per queue: read a
// batch, translate super-packets whole (TranslateGSO) or segment them when
// the translator declines, translate ordinary packets one by one, and write
// the results back to the same queue. It also segments every super-packet
// it sees and checks each segment with packettest, independently of what
// the translator does with it.
type relay struct {
	dev    Device
	tr     *translator.Translator
	verify bool // segment and check every super-packet

	mu        sync.Mutex
	supers    [2]int // super-packets read, from the IPv4 side and the IPv6 side
	packets   int
	fallbacks int
	maxLen    int
	maxSegs   int
	gsoSizes  map[int]int
	checked   int
	checkErr  error
	writeErr  error
	perQueue  []int
}

func (r *relay) run(q int, wg *sync.WaitGroup) {
	defer wg.Done()
	runtime.LockOSThread() // as the daemon's workers do
	defer runtime.UnlockOSThread()
	batch := NewBatch(32)
	o := translator.NewOut()
	segs := buffers(256, 1600)
	var out []Packet
	write := func(pkts ...Packet) {
		if err := r.dev.WriteBatch(q, pkts); err != nil && !errors.Is(err, os.ErrClosed) {
			r.mu.Lock()
			if r.writeErr == nil {
				r.writeErr = err
			}
			r.mu.Unlock()
		}
	}
	forward := func(res translator.Result) {
		if res.Verdict == translator.Drop {
			return
		}
		out = out[:0]
		for _, p := range o.Pkts {
			out = append(out, Packet{Buf: p, Len: len(p)})
		}
		write(out...)
	}
	for {
		n, err := r.dev.ReadBatch(q, batch)
		if err != nil {
			return
		}
		for _, p := range batch[:n] {
			r.count(q, p)
			if p.GSOSize == 0 {
				forward(r.tr.Translate(p.Bytes(), o))
				continue
			}
			k := -1
			if r.verify {
				var err error
				k, err = Segment(p, segs)
				r.check(segs[:k], err)
			}
			res, seg, ok := r.tr.TranslateGSO(p.Bytes(), p.GSOSize, o)
			switch {
			case ok && res.Verdict == translator.Forward:
				write(Packet{Buf: o.Pkts[0], Len: len(o.Pkts[0]), GSOSize: seg, Partial: true})
			case ok:
				// dropped whole
			default:
				r.mu.Lock()
				r.fallbacks++
				r.mu.Unlock()
				if k < 0 {
					k, _ = Segment(p, segs)
				}
				for _, s := range segs[:k] {
					forward(r.tr.Translate(s, o))
				}
			}
		}
	}
}

func (r *relay) count(q int, p Packet) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.packets++
	r.perQueue[q]++
	if p.GSOSize == 0 {
		return
	}
	if p.Buf[p.Off]>>4 == 4 {
		r.supers[0]++
	} else {
		r.supers[1]++
	}
	r.maxLen = max(r.maxLen, p.Len)
	r.gsoSizes[p.GSOSize]++
}

func (r *relay) check(segs [][]byte, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.maxSegs = max(r.maxSegs, len(segs))
	if err != nil && r.checkErr == nil {
		r.checkErr = err
	}
	for _, s := range segs {
		p, err := pt.Check(s)
		if err == nil && !p.ChecksumChecked {
			err = errors.New("checksum not verified: " + p.NotChecked)
		}
		if err != nil && r.checkErr == nil {
			r.checkErr = err
		}
		r.checked++
	}
}

// TestTCPStreamThroughTranslator runs map646's packet path inside one
// namespace: an IPv4 client (192.0.2.7) connects to the mapped address
// 198.51.100.10, routed into the device; the relay translates to IPv6
// (64:ff9b::192.0.2.7 -> 2001:db8:1::10) and writes back; the IPv6 server
// on the same host echoes 4 MB, whose packets come back out of the device
// (route 64:ff9b::/96) and are translated to IPv4 for the client. The data
// must come back intact; on the offload device, super-packets must arrive
// from both sides and every one of them segments into packets whose
// checksums verify.
func TestTCPStreamThroughTranslator(t *testing.T) {
	forKinds(t, func(t *testing.T, k kind, dev Device) {
		r, c := translatedConn(t, dev, true, func(c net.Conn) { io.Copy(c, c) })
		c.SetDeadline(time.Now().Add(60 * time.Second))
		data := make([]byte, 4<<20)
		rng := rand.NewChaCha8([32]byte{1})
		rng.Read(data)
		start := time.Now()
		go func() {
			c.Write(data)
			c.(*net.TCPConn).CloseWrite()
		}()
		got, err := io.ReadAll(c)
		elapsed := time.Since(start)
		if err != nil {
			t.Fatalf("echo: %v after %d of %d bytes", err, len(got), len(data))
		}
		if sha256.Sum256(got) != sha256.Sum256(data) || !bytes.Equal(got, data) {
			t.Fatalf("echo differs: %d bytes back of %d", len(got), len(data))
		}

		r.mu.Lock()
		defer r.mu.Unlock()
		t.Logf("%s: 2 x %d MB in %v; %d packets read (per queue %v), super-packets %d from IPv4 and %d from IPv6, largest %d bytes, at most %d segments, segment sizes %v, %d segments checked, %d declined by TranslateGSO",
			k.name, len(data)>>20, elapsed.Round(time.Millisecond), r.packets, r.perQueue, r.supers[0], r.supers[1], r.maxLen, r.maxSegs, r.gsoSizes, r.checked, r.fallbacks)
		if r.checkErr != nil {
			t.Errorf("a segment of a super-packet: %v", r.checkErr)
		}
		if r.writeErr != nil {
			t.Errorf("write: %v", r.writeErr)
		}
		if k.offload && (r.supers[0] == 0 || r.supers[1] == 0) {
			t.Errorf("offload device: super-packets %v from IPv4/IPv6, want some from both", r.supers)
		}
		if !k.offload && r.supers != [2]int{} {
			t.Errorf("plain device read super-packets: %v", r.supers)
		}
	})
}

// translatedConn routes the mapped IPv4 address and the pseudo prefix into
// dev, starts a relay per queue, and returns a TCP connection from the IPv4
// client to the mapped address, whose server end (on the IPv6 address)
// runs serve.
func translatedConn(t testing.TB, dev Device, verify bool, serve func(net.Conn)) (*relay, net.Conn) {
	name := dev.Name()
	ip(t, "addr", "add", client4.String()+"/32", "dev", name)
	addr6(t, dev, server6.String()+"/128")
	ip(t, "route", "add", server4.String()+"/32", "dev", name, "src", client4.String())
	ip(t, "-6", "route", "add", "64:ff9b::/96", "dev", name)

	r := &relay{dev: dev, tr: newTestTranslator(t, 1500), verify: verify, gsoSizes: map[int]int{}, perQueue: make([]int, dev.Queues())}
	var wg sync.WaitGroup
	for q := range dev.Queues() {
		wg.Add(1)
		go r.run(q, &wg)
	}
	// Cleanups run last-registered first: close the device, then wait for
	// the relays to see it.
	t.Cleanup(wg.Wait)
	t.Cleanup(func() { dev.Close() })

	ln, err := net.Listen("tcp6", "["+server6.String()+"]:8080")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		serve(c)
	}()
	c, err := net.DialTimeout("tcp4", server4.String()+":8080", 5*time.Second)
	if err != nil {
		t.Fatalf("connect through the translator: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	if got := c.LocalAddr().(*net.TCPAddr).IP.String(); got != client4.String() {
		t.Fatalf("client address %s, want %s", got, client4)
	}
	return r, c
}

// BenchmarkTCPThroughTranslator: bulk TCP from the IPv4 client to the IPv6
// server through the relay (one direction; the server discards), per
// back-end. It measures this package and the translator together with the
// kernel's TCP on both ends, all on this machine's cores.
func BenchmarkTCPThroughTranslator(b *testing.B) {
	for _, k := range kinds {
		b.Run(k.name, func(b *testing.B) {
			newNetns(b)
			dev, err := k.open(testName())
			if err != nil {
				b.Fatal(err)
			}
			t := time.AfterFunc(5*time.Minute, func() { dev.Close() })
			b.Cleanup(func() { t.Stop() })
			r, c := translatedConn(b, dev, false, func(c net.Conn) { io.Copy(io.Discard, c) })
			buf := make([]byte, 1<<20)
			b.SetBytes(int64(len(buf)))
			b.ResetTimer()
			for range b.N {
				if _, err := c.Write(buf); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			r.mu.Lock()
			b.ReportMetric(float64(r.packets)/float64(b.N), "reads/MB")
			r.mu.Unlock()
		})
	}
}
