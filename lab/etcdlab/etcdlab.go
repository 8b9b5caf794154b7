// Package etcdlab runs a real etcd cluster for the lab: Debian's etcd
// (etcd-server, 3.4) members, each in a network namespace of its own, with
// client and peer TLS and client certificates that the lab generates, and
// clients in namespaces of their own on the same segment:
//
//	etcd1 203.0.113.11 ─┐                  ┌─ client A 203.0.113.101
//	etcd2 203.0.113.12 ─┼─ switch (br0) ───┼─ client B 203.0.113.102
//	etcd3 203.0.113.13 ─┘                  └─ ...
//
// Each member and client hangs off a port of one bridge in a switch
// namespace; Cut and Heal take a port down and up (a member or a client
// cut off), Kill and Restart a member's process. Everything is registered
// for cleanup on the test: processes are stopped by PID, namespaces
// deleted (lab/netlab).
package etcdlab

import (
	"context"
	"fmt"
	"net"

	"path/filepath"
	"strings"
	"syscall"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/map646/map646/config"
	"github.com/map646/map646/config/etcdsource"
	"github.com/map646/map646/lab/netlab"
)

// Cluster is a running etcd cluster and its switch.
type Cluster struct {
	t          netlab.TB // Start's: the members live as long as it
	dir        string
	pki        *pki
	sw         *netlab.NS
	Members    []*Member
	ClientCert string
	ClientKey  string
	CAFile     string
	ports      int
	serial     int64
}

// Member is one etcd member.
type Member struct {
	Name    string // etcd1...
	IP      string
	NS      *netlab.NS
	Proc    *netlab.Proc
	port    string // its port on the switch
	args    []string
	dataDir string
}

// Client is a namespace on the switch from which map646's source dials.
type Client struct {
	Name string
	IP   string
	NS   *netlab.NS
	port string
}

// Start starts a cluster of n members (1 or 3, usually) and waits until it
// answers a linearizable read through TLS with the client certificate.
func Start(t netlab.TB, n int) *Cluster {
	t.Helper()
	netlab.RequireRoot(t)
	netlab.Need(t, "ip", "etcd")
	c := &Cluster{t: t, dir: t.TempDir(), serial: 10}
	var err error
	if c.pki, err = newPKI(c.dir); err != nil {
		t.Fatalf("etcdlab: CA: %v", err)
	}
	c.CAFile = c.pki.CAFile
	if c.ClientCert, c.ClientKey, err = c.pki.issue("client", 2); err != nil {
		t.Fatalf("etcdlab: client certificate: %v", err)
	}
	c.sw = netlab.NewNS(t, "etcdsw")
	c.sw.IP(t, "link", "add", "br0", "type", "bridge")
	c.sw.IP(t, "link", "set", "br0", "up")

	var initial []string
	for i := range n {
		m := &Member{Name: fmt.Sprintf("etcd%d", i+1), IP: fmt.Sprintf("203.0.113.%d", 11+i)}
		m.NS = netlab.NewNS(t, m.Name)
		m.port = c.plug(t, m.NS, m.IP)
		initial = append(initial, fmt.Sprintf("%s=https://%s:2380", m.Name, m.IP))
		c.Members = append(c.Members, m)
	}
	for _, m := range c.Members {
		cert, key, err := c.pki.issue(m.Name, c.nextSerial(), m.IP)
		if err != nil {
			t.Fatalf("etcdlab: certificate of %s: %v", m.Name, err)
		}
		m.dataDir = filepath.Join(c.dir, m.Name+".etcd")
		m.args = []string{"etcd", "--name", m.Name, "--data-dir", m.dataDir,
			"--listen-client-urls", "https://" + m.IP + ":2379", "--advertise-client-urls", "https://" + m.IP + ":2379",
			"--listen-peer-urls", "https://" + m.IP + ":2380", "--initial-advertise-peer-urls", "https://" + m.IP + ":2380",
			"--initial-cluster", strings.Join(initial, ","), "--initial-cluster-token", "map646-lab",
			"--cert-file", cert, "--key-file", key, "--trusted-ca-file", c.CAFile, "--client-cert-auth",
			"--peer-cert-file", cert, "--peer-key-file", key, "--peer-trusted-ca-file", c.CAFile, "--peer-client-cert-auth",
			// Elections in a fraction of a second: the members share one
			// machine with the tests, and the lab kills them on purpose.
			"--heartbeat-interval", "100", "--election-timeout", "1000",
			"--quota-backend-bytes", fmt.Sprint(4 << 30),
			"--logger", "zap", "--log-level", "warn"}
		c.startMember(t, m, "new")
	}
	cl := c.NewClient(t, "probe")
	cli := c.NewEtcdClient(t, cl)
	c.waitReady(t, cli, 30*time.Second)
	return c
}

func (c *Cluster) nextSerial() int64 { c.serial++; return c.serial }

// plug connects ns to the switch with address ip/24 and returns the
// switch's end.
func (c *Cluster) plug(t netlab.TB, ns *netlab.NS, ip string) string {
	t.Helper()
	c.ports++
	port := fmt.Sprintf("p%d", c.ports)
	netlab.Veth(t, c.sw, port, ns, "eth0")
	c.sw.IP(t, "link", "set", port, "master", "br0")
	ns.AddAddr(t, "eth0", ip+"/24")
	return port
}

func (c *Cluster) startMember(t netlab.TB, m *Member, state string) {
	t.Helper()
	args := append(append([]string{}, m.args...), "--initial-cluster-state", state)
	m.Proc = m.NS.Start(t, args...)
	m.Proc.LogOnFailure(t, m.Name)
}

// NewClient makes a client namespace on the switch.
func (c *Cluster) NewClient(t netlab.TB, name string) *Client {
	t.Helper()
	cl := &Client{Name: name, IP: fmt.Sprintf("203.0.113.%d", 100+c.ports+1)}
	cl.NS = netlab.NewNS(t, name)
	cl.port = c.plug(t, cl.NS, cl.IP)
	return cl
}

// Dial opens a TCP connection from the client's namespace.
func (cl *Client) Dial(ctx context.Context, addr string) (net.Conn, error) {
	timeout := 5 * time.Second
	if d, ok := ctx.Deadline(); ok {
		timeout = time.Until(d)
	}
	return cl.NS.Dial("tcp", "", addr, timeout)
}

// Endpoints are the members' client URLs.
func (c *Cluster) Endpoints() []string {
	var eps []string
	for _, m := range c.Members {
		eps = append(eps, "https://"+m.IP+":2379")
	}
	return eps
}

// Etcd is the [mappings.etcd] section for a node of the lab, with short
// timeouts: the lab cuts links on purpose and wants it noticed quickly.
func (c *Cluster) Etcd(prefix string) config.Etcd {
	return config.Etcd{Endpoints: c.Endpoints(), Prefix: prefix,
		CertFile: c.ClientCert, KeyFile: c.ClientKey, CAFile: c.CAFile,
		DialTimeout: time.Second, RequestTimeout: time.Second, LeaseTTL: 3 * time.Second}
}

// NewEtcdClient is an etcd client dialling from cl, closed with the test.
func (c *Cluster) NewEtcdClient(t netlab.TB, cl *Client) *clientv3.Client {
	t.Helper()
	cli, err := etcdsource.NewClient(etcdsource.Config{Etcd: c.Etcd("/unused"), Dial: cl.Dial})
	if err != nil {
		t.Fatalf("etcdlab: client: %v", err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

func (c *Cluster) waitReady(t netlab.TB, cli *clientv3.Client, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var err error
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err = cli.Get(ctx, "/ready")
		cancel()
		if err == nil {
			return
		}
		for _, m := range c.Members {
			if isExited(m.Proc) {
				t.Fatalf("etcdlab: %s exited: %v\n%s", m.Name, m.Proc.Err(), m.Proc.Output())
			}
		}
		time.Sleep(100 * time.Millisecond) // etcd offers nothing to wait on before it answers
	}
	t.Fatalf("etcdlab: the cluster does not answer after %v: %v", timeout, err)
}

func isExited(p *netlab.Proc) bool {
	select {
	case <-p.Done():
		return true
	default:
		return false
	}
}

// Kill kills member m (SIGKILL, by PID) and waits for it to be gone.
func (c *Cluster) Kill(t netlab.TB, m *Member) {
	t.Helper()
	if err := m.Proc.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("etcdlab: kill %s: %v", m.Name, err)
	}
	<-m.Proc.Done()
}

// Restart starts a killed member again on its data. The process is
// registered for cleanup on the cluster's test, not on t: a subtest that
// restarts a member must not take it down when it ends.
func (c *Cluster) Restart(t netlab.TB, m *Member) {
	t.Helper()
	if !isExited(m.Proc) {
		t.Fatalf("etcdlab: restart %s: it is running", m.Name)
	}
	c.startMember(c.t, m, "existing")
}

// CutClient takes the client's port down (its link to the cluster) and
// HealClient brings it back.
func (c *Cluster) CutClient(t netlab.TB, cl *Client) {
	t.Helper()
	c.sw.IP(t, "link", "set", cl.port, "down")
}

func (c *Cluster) HealClient(t netlab.TB, cl *Client) {
	t.Helper()
	c.sw.IP(t, "link", "set", cl.port, "up")
}

// Compact compacts the cluster's history up to its current revision and
// returns that revision.
func Compact(t netlab.TB, cli *clientv3.Client) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := cli.Get(ctx, "/compact-probe")
	if err != nil {
		t.Fatalf("etcdlab: compact: %v", err)
	}
	if _, err := cli.Compact(ctx, r.Header.Revision, clientv3.WithCompactPhysical()); err != nil {
		t.Fatalf("etcdlab: compact %d: %v", r.Header.Revision, err)
	}
	return r.Header.Revision
}
