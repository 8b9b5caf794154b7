package health

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
)

// prober returns the probe of a check (validated).
func (m *Monitor) prober(c Check) probeFunc {
	switch c.Kind {
	case DataPlane:
		return m.dp.Probe
	case ICMPv6:
		return newEcho6(c.Addr).probe
	case TCP:
		return func(ctx context.Context) error { return probeTCP(ctx, c) }
	case HTTP:
		return newHTTPProbe(c.URL)
	case BGP:
		return func(context.Context) error { return probeBGP(m.bgp, c) }
	}
	return func(context.Context) error { return fmt.Errorf("health: check %s: unknown kind %v", c.Name, c.Kind) }
}

// probeTCP connects to the target and closes the connection at once.
func probeTCP(ctx context.Context, c Check) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", c.AddrPort.String())
	if err != nil {
		return err // "dial tcp [2001:db8::1]:80: connect: connection refused"
	}
	return conn.Close()
}

// newHTTPProbe returns a probe that GETs url: 2xx and 3xx pass.
func newHTTPProbe(url string) probeFunc {
	client := &http.Client{
		Transport: &http.Transport{
			// A fresh connection each time: a kept-alive one could outlive
			// the server process and hide its death, or hang on it.
			DisableKeepAlives: true,
			Proxy:             nil, // never an environment proxy
		},
		// 3xx passes as is: the redirect's target is not what is checked.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		req.Header.Set("User-Agent", "map646-health")
		resp, err := client.Do(req)
		if err != nil {
			return err // names the method, URL (net/http strips its password) and cause
		}
		defer resp.Body.Close()
		io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		if resp.StatusCode < 200 || resp.StatusCode > 399 {
			return fmt.Errorf("GET %s: status %s", redactURL(url), resp.Status)
		}
		return nil
	}
}

// probeBGP passes when any of the check's neighbors is established.
func probeBGP(s Sessions, c Check) error {
	for _, n := range c.Neighbors {
		if s.Established(n) {
			return nil
		}
	}
	if len(c.Neighbors) == 1 {
		return fmt.Errorf("the BGP session with %s is not established", c.Neighbors[0])
	}
	return fmt.Errorf("no BGP session established among %s", strings.ReplaceAll(c.Target(), ",", ", "))
}
