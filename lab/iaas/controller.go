package main

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Change is one write of the controller and what it took to reach each
// node: from just before the Put (or Delete) was sent until a probe
// through that node proved it translated (an add) or no longer translated
// (a delete) the mapping.
type Change struct {
	N       int
	Phase   string // the experiment's phase that made it
	Add     bool
	Addr    netip.Addr
	At      time.Time       // just before the write
	Commit  time.Duration   // the write's round trip to etcd
	Latency []time.Duration // per node (lab order); 0 where not measured
	Err     error           // the write failed, or a node never got there
}

// probeRound is how often the probes of one change go out through each
// node still to prove it.
const probeRound = time.Millisecond

// controller is the cloud controller: one write at a time, each followed
// by probes through the nodes it must reach.
type controller struct {
	l       *Lab
	seq     uint64 // probe rounds, one sequence for the whole run
	marker  netip.Addr
	timeout time.Duration
}

func newController(l *Lab) *controller {
	return &controller{l: l, marker: established[0], timeout: 10 * time.Second}
}

// apply writes the change and probes through the nodes of which (indexes
// into l.Nodes) until each proves it; the others are not probed (a node
// cut off from etcd).
func (c *controller) apply(n int, add bool, a netip.Addr, which []int) Change {
	ch := Change{N: n, Add: add, Addr: a, Latency: make([]time.Duration, len(c.l.Nodes))}
	c.drain()
	ch.At = time.Now()
	if err := c.write(add, a); err != nil {
		ch.Err = err
		return ch
	}
	ch.Commit = time.Since(ch.At)
	ch.Err = c.prove(&ch, which)
	return ch
}

// write puts or deletes a's key, trying again for up to 20 s as a
// controller would: a write during an election (the leader killed) times
// out; writing the same thing twice changes nothing.
func (c *controller) write(add bool, a netip.Addr) error {
	deadline := time.Now().Add(20 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		var err error
		if add {
			_, err = c.l.Admin.Put(ctx, mappingKey(a), sixOf(a).String())
		} else {
			_, err = c.l.Admin.Delete(ctx, mappingKey(a))
		}
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("write %s: %w", mappingKey(a), err)
		}
	}
}

// drain empties the receiver's queue of arrivals from earlier changes.
func (c *controller) drain() {
	for {
		select {
		case <-c.l.recv.probes:
		default:
			return
		}
	}
}

// prove sends a round of probes every probeRound through each node of
// which not yet proven: for an add, a probe to the mapping (its arrival
// proves it); for a delete, a probe to it then a marker to an established
// mapping along the same path (the marker arriving without its probe
// proves that the node dropped it: the two follow one path in order).
func (c *controller) prove(ch *Change, which []int) error {
	first := c.seq
	pending := map[int]bool{}
	for _, i := range which {
		pending[i] = true
	}
	probeSeen := map[[2]uint64]bool{} // (node, seq) of a delete's probes that arrived
	tick := time.NewTicker(probeRound)
	defer tick.Stop()
	deadline := time.After(c.timeout)
	for len(pending) > 0 {
		select {
		case <-tick.C:
			for i := range pending {
				c.send(i, kindProbe, ch.Addr)
				if !ch.Add {
					c.send(i, kindMarker, c.marker)
				}
			}
			c.seq++
		case a := <-c.l.recv.probes:
			i := int(a.node)
			if a.seq < first || !pending[i] {
				continue
			}
			switch {
			case ch.Add && a.kind == kindProbe && a.dst == ch.Addr:
				ch.Latency[i] = a.at.Sub(ch.At)
				delete(pending, i)
			case !ch.Add && a.kind == kindProbe && a.dst == ch.Addr:
				probeSeen[[2]uint64{uint64(i), a.seq}] = true
			case !ch.Add && a.kind == kindMarker && !probeSeen[[2]uint64{uint64(i), a.seq}]:
				ch.Latency[i] = a.at.Sub(ch.At)
				delete(pending, i)
			}
		case <-deadline:
			var names []string
			for i := range pending {
				names = append(names, c.l.Nodes[i].Name)
			}
			return fmt.Errorf("not proven on %v after %v", names, c.timeout)
		}
	}
	return nil
}

// send sends one probe of kind to dst into node i.
func (c *controller) send(i int, kind byte, dst netip.Addr) {
	d := datagram{kind: kind, node: byte(i), seq: c.seq, dst: dst, src: probeSrc(i)}
	c.l.probes[i].WriteToUDP(d.encode(), &net.UDPAddr{IP: dst.AsSlice(), Port: probePort})
}

// translates tells whether node i translates a now: probes for up to
// timeout.
func (c *controller) translates(i int, a netip.Addr, timeout time.Duration) bool {
	ch := Change{Add: true, Addr: a, At: time.Now(), Latency: make([]time.Duration, len(c.l.Nodes))}
	saved := c.timeout
	c.timeout = timeout
	defer func() { c.timeout = saved }()
	c.drain()
	return c.prove(&ch, []int{i}) == nil
}

// etcdCount returns how many mappings etcd holds and its revision.
func etcdCount(cli *clientv3.Client) (int64, int64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, err := cli.Get(ctx, prefix+"/mappings/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		return 0, 0, err
	}
	return r.Count, r.Header.Revision, nil
}

// absent tells whether node i no longer translates a: a marker arrives
// without the probe before it, within timeout.
func (c *controller) absent(i int, a netip.Addr, timeout time.Duration) bool {
	ch := Change{Add: false, Addr: a, At: time.Now(), Latency: make([]time.Duration, len(c.l.Nodes))}
	saved := c.timeout
	c.timeout = timeout
	defer func() { c.timeout = saved }()
	c.drain()
	return c.prove(&ch, []int{i}) == nil
}
