package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/map646/map646/lab/etcdlab"
	"github.com/map646/map646/lab/netlab"
	"github.com/map646/map646/lab/topo"
)

// The lab's addresses beyond lab/topo's drawing (doc.go).
const (
	prefix     = "/iaas"           // the etcd key prefix of the cluster
	vmNet6     = "2001:db8:2::"    // the VMs' /96: VM of IPv4 a is vmNet6 + a
	vmLink     = "2001:db8:200::1" // the backend's end of the link to the VMs
	vmLinkPeer = "2001:db8:200::2" // the VMs' end
	probePort  = 9646
)

// established are the mappings that carry the stream through every change:
// 198.51.100.32-39, each to its VM; marker is the one the delete probes
// pair with.
var established = func() []netip.Addr {
	var a []netip.Addr
	for i := range 8 {
		a = append(a, netip.AddrFrom4([4]byte{198, 51, 100, byte(32 + i)}))
	}
	return a
}()

// sixOf is the IPv6 address of the VM behind IPv4 address a: every mapping
// of the lab is a -> vmNet6+a, so that the receiver can check any packet.
func sixOf(a netip.Addr) netip.Addr {
	b := netip.MustParseAddr(vmNet6).As16()
	v4 := a.As4()
	copy(b[12:], v4[:])
	return netip.AddrFrom16(b)
}

// vmAddr is the IPv4 side of the controller's VM in pool slot slot: the
// lab sends packets to documentation addresses only, so the VMs it probes
// take their addresses from 198.51.100.64-254 (vmPool of them), reused as
// VMs are deleted. The churn keeps at most churnWindow of them at once;
// the slots past it are the later phases'.
func vmAddr(slot int) netip.Addr {
	return netip.AddrFrom4([4]byte{198, 51, 100, byte(vmPoolFirst + slot%vmPool)})
}

const (
	vmPoolFirst = 64
	vmPool      = 191 // 198.51.100.64 to .254
	churnWindow = 128
	cycleSlot   = vmPool - 1 // the add/del cycles' one mapping
)

// millionAddr is the IPv4 side of the million's i-th mapping: 100.80.0.0
// onwards (shared address space: a million do not fit in the
// documentation ranges). No packet is ever sent to one: whether a node
// serves it is asked of its control socket (lookup).
func millionAddr(i int) netip.Addr {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], millionBase+uint32(i))
	return netip.AddrFrom4(b)
}

const millionBase = 100<<24 | 80<<16 // 100.80.0.0 .. 100.95.66.63

// probeSrc is the upstream's source address for probes through node i:
// a policy rule sends what it sends from there to that node alone.
func probeSrc(i int) netip.Addr { return netip.AddrFrom4([4]byte{192, 0, 2, byte(40 + i)}) }

func mappingKey(a netip.Addr) string { return prefix + "/mappings/" + a.String() }

// Lab is lab/topo's lab with three nodes reading their table from a
// three-member etcd cluster.
type Lab struct {
	*topo.Lab
	Etcd   *etcdlab.Cluster
	Admin  *clientv3.Client  // the controller's client, from its own namespace
	Links  []*etcdlab.Client // each node's link to the cluster
	VMs    *netlab.NS        // answers on every address of vmNet6/96
	probes []*net.UDPConn    // in the upstream, bound to probeSrc(i)
	recv   *receiver
}

// NewLab builds the lab, writes the established mappings into etcd and
// starts the three nodes, then waits until the routers route over all
// three.
func NewLab(t netlab.TB, bin string) *Lab {
	t.Helper()
	l := &Lab{}
	l.Etcd = etcdlab.Start(t, 3)
	l.Admin = l.Etcd.NewEtcdClient(t, l.Etcd.NewClient(t, "ctrl"))
	l.Lab = topo.New(t, topo.Options{Bin: bin, Nodes: 3, NoStart: true})
	for _, n := range l.Nodes {
		l.Links = append(l.Links, l.Etcd.Attach(t, n.NS, n.Name))
		n.Config.Mappings = nil
		n.Config.Extra = l.etcdSection()
	}
	l.buildVMs(t)
	l.buildProbes(t)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, m := range []struct{ v4, v6 string }{{topo.Public10, topo.Server10}, {topo.Public11, topo.Server11}} {
		if _, err := l.Admin.Put(ctx, prefix+"/mappings/"+m.v4, m.v6); err != nil {
			t.Fatalf("iaas: put %s: %v", m.v4, err)
		}
	}
	for _, a := range established {
		if _, err := l.Admin.Put(ctx, mappingKey(a), sixOf(a).String()); err != nil {
			t.Fatalf("iaas: put %s: %v", a, err)
		}
	}
	for _, n := range l.Nodes {
		n.Start(t)
	}
	l.WaitConverged(t, 60*time.Second)
	return l
}

// etcdSection is a node's [mappings] section: the lab cluster, TLS with
// the client certificate, short timeouts (the lab cuts links on purpose).
func (l *Lab) etcdSection() string {
	e := l.Etcd.Etcd(prefix)
	q := make([]string, len(e.Endpoints))
	for i, ep := range e.Endpoints {
		q[i] = fmt.Sprintf("%q", ep)
	}
	return fmt.Sprintf(`[mappings]
source = "etcd"

[mappings.etcd]
endpoints = [%s]
prefix = %q
cert_file = %q
key_file = %q
ca_file = %q
dial_timeout = "1s"
request_timeout = "1s"
lease_ttl = "3s"
`, strings.Join(q, ", "), prefix, e.CertFile, e.KeyFile, e.CAFile)
}

// buildVMs makes the VMs' namespace behind the backend: one link, and
// vmNet6/96 routed locally there, so that one socket receives for every
// VM address without a neighbour entry per VM.
func (l *Lab) buildVMs(t netlab.TB) {
	t.Helper()
	l.VMs = netlab.NewNS(t, "vms")
	l.VMs.Sysctl(t, "net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0")
	netlab.Veth(t, l.Backend, "b-vm", l.VMs, "v0")
	l.Backend.AddAddr(t, "b-vm", vmLink+"/64")
	l.VMs.AddAddr(t, "v0", vmLinkPeer+"/64")
	l.VMs.AddRoute(t, "default", vmLink)
	l.VMs.IP(t, "-6", "route", "add", "local", vmNet6+"/96", "dev", "lo")
	l.Backend.IP(t, "-6", "route", "add", vmNet6+"/96", "via", vmLinkPeer)
}

// buildProbes gives the upstream one source address per node and a policy
// rule that routes what leaves from it (iif lo: its own packets only) to
// that node, whatever BGP says: a probe tests one node.
func (l *Lab) buildProbes(t netlab.TB) {
	t.Helper()
	for i, n := range l.Nodes {
		src := probeSrc(i).String()
		table := fmt.Sprint(100 + i)
		l.Upstream.AddAddr(t, "lo", src+"/32")
		l.Upstream.IP(t, "route", "add", "default", "via", n.Addr4, "dev", "u-sw", "table", table)
		l.Upstream.IP(t, "rule", "add", "from", src, "iif", "lo", "table", table, "priority", fmt.Sprint(1000+i))
		var c net.PacketConn
		err := l.Upstream.Do(func() (err error) {
			c, err = net.ListenPacket("udp4", src+":0")
			return err
		})
		if err != nil {
			t.Fatalf("iaas: probe socket: %v", err)
		}
		t.Cleanup(func() { c.Close() })
		l.probes = append(l.probes, c.(*net.UDPConn))
	}
}
