package etcdlab

import (
	"fmt"

	"github.com/map646/map646/lab/netlab"
)

// Attach plugs an existing namespace (a map646 node of lab/topo) into the
// cluster's switch as a client named name: its device eth0 gets the next
// client address. CutClient and HealClient then cut that namespace off the
// cluster and back, its other links untouched.
func (c *Cluster) Attach(t netlab.TB, ns *netlab.NS, name string) *Client {
	t.Helper()
	cl := &Client{Name: name, IP: fmt.Sprintf("203.0.113.%d", 100+c.ports+1), NS: ns}
	cl.port = c.plug(t, ns, cl.IP)
	return cl
}
