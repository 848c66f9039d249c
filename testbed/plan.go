package testbed

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
)

// Service is the service name every lab farm serves.
const Service = "stream.farmlb.test"

// Ports the lab's daemons use. Every host has its own address, so each
// daemon can have the same well-known port.
const (
	httpPort     = 8080
	peerPort     = 7946
	observerPort = 7950
	dnsPort      = 53
	// dnsMetricsPort serves dnsd's /metrics on the ns hosts.
	dnsMetricsPort = 9153
)

// Plan is where every host of a scenario lives.
type Plan struct {
	Nodes    []HostConfig // pushd hosts, in scenario order
	NS       []HostConfig // ns1, ns2 (empty without DNS)
	Resolver HostConfig   // Unbound (zero without DNS)
	Clients  []HostConfig // c1, c2, ...
	Monitor  HostConfig   // "mon": the lab's observer and publisher
}

// PlanFor lays out the hosts: pushd nodes in 198.18.1.0/24, name servers in
// 198.18.2.0/24, the resolver at 198.18.3.1, clients in 198.18.4.0/24 and
// the monitor at 198.18.5.1.
func PlanFor(s *Scenario) Plan {
	var p Plan
	for i, n := range s.Nodes {
		p.Nodes = append(p.Nodes, HostConfig{Name: n.Name, Addr: netip.AddrFrom4([4]byte{198, 18, 1, byte(i + 1)})})
	}
	if s.DNS {
		p.NS = []HostConfig{
			{Name: "ns1", Addr: netip.MustParseAddr("198.18.2.1")},
			{Name: "ns2", Addr: netip.MustParseAddr("198.18.2.2")},
		}
		p.Resolver = HostConfig{Name: "res", Addr: netip.MustParseAddr("198.18.3.1")}
	}
	for i := range s.Clients.Hosts {
		p.Clients = append(p.Clients, HostConfig{Name: fmt.Sprintf("c%d", i+1), Addr: netip.AddrFrom4([4]byte{198, 18, 4, byte(i + 1)})})
	}
	p.Monitor = HostConfig{Name: "mon", Addr: netip.MustParseAddr("198.18.5.1")}
	return p
}

// Hosts lists every host of the plan.
func (p Plan) Hosts() []HostConfig {
	hs := append([]HostConfig(nil), p.Nodes...)
	hs = append(hs, p.NS...)
	if p.Resolver.Name != "" {
		hs = append(hs, p.Resolver)
	}
	hs = append(hs, p.Clients...)
	return append(hs, p.Monitor)
}

// NodeURL is a node's public URL.
func NodeURL(h HostConfig) string {
	return fmt.Sprintf("http://%s", netip.AddrPortFrom(h.Addr, httpPort))
}

// Tokens the lab's farm uses; the lab is private, so fixed tokens will do.
const (
	publishToken = "testbed-publish"
	adminToken   = "testbed-admin"
)

// writeFarm writes the farm file (the shared config contract) into dir.
// Certificates are expected in dir/pki as written by `farmctl ca`.
func writeFarm(dir string, s *Scenario, p Plan) (string, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "# written by testbed for scenario %s\n", s.Name)
	fmt.Fprintf(&b, "service: %s\nzone: %s\n", Service, Service)
	fmt.Fprintf(&b, "tls:\n  ca: pki/ca.crt\n  cert: pki/{name}.crt\n  key: pki/{name}.key\n")
	fmt.Fprintf(&b, "tokens:\n  publish: %q\n  admin: %q\n", publishToken, adminToken)
	b.WriteString("nodes:\n")
	for i, n := range p.Nodes {
		spec := s.Nodes[i]
		fmt.Fprintf(&b, "  - name: %s\n    url: %s\n    addrs: [%s]\n    peer: %s\n    priority: %s\n",
			n.Name, NodeURL(n), n.Addr, netip.AddrPortFrom(n.Addr, peerPort), spec.Priority)
		if spec.Capacity > 0 {
			fmt.Fprintf(&b, "    capacity: %d\n", spec.Capacity)
		}
		if h := spec.Health; h != nil {
			fmt.Fprintf(&b, "    health:\n")
			if h.OnFail != "" {
				fmt.Fprintf(&b, "      on_fail: %s\n", h.OnFail)
			}
			fmt.Fprintf(&b, "      checks:\n        - name: feed\n          command: [test, '!', -e, %q]\n", healthFile(dir, n.Name))
			for _, kv := range []struct {
				k   string
				v   any
				set bool
			}{{"interval", h.Interval, h.Interval > 0}, {"timeout", h.Timeout, h.Timeout > 0}, {"rise", h.Rise, h.Rise > 0}, {"fall", h.Fall, h.Fall > 0}} {
				if kv.set {
					fmt.Fprintf(&b, "          %s: %v\n", kv.k, kv.v)
				}
			}
		}
	}
	if len(p.NS) > 0 {
		b.WriteString("observers:\n")
		for _, o := range p.NS {
			fmt.Fprintf(&b, "  - name: %s\n    peer: %s\n    dns: %s\n", o.Name, netip.AddrPortFrom(o.Addr, observerPort), netip.AddrPortFrom(o.Addr, dnsPort))
		}
	}
	b.WriteString(s.FarmExtra)
	if err := os.MkdirAll(filepath.Join(dir, "health"), 0o755); err != nil {
		return "", err
	}
	path := filepath.Join(dir, "farm.yaml")
	return path, os.WriteFile(path, []byte(b.String()), 0o644)
}

// healthFile is the file whose presence fails a node's lab health check
// (its command is `test ! -e FILE`): the check-fail fault creates it.
func healthFile(farmDir, node string) string {
	return filepath.Join(farmDir, "health", node+".fail")
}

// writeUnbound writes the resolver host's unbound.conf: it listens on the
// resolver's address, answers the lab, and sends the service zone to ns1
// and ns2 as a stub zone (the lab has no root to recurse from). No DNSSEC
// validation: the lab zone is unsigned. Caching is capped at the zone's own
// short TTLs; a failed server is retried after a short time so that an ns
// host coming back is used again within the scenario.
func writeUnbound(dir string, p Plan) (string, error) {
	var b strings.Builder
	fmt.Fprintf(&b, `server:
  interface: %s
  port: 53
  do-daemonize: no
  chroot: ""
  username: ""
  directory: %q
  pidfile: ""
  use-syslog: no
  logfile: ""
  verbosity: 1
  access-control: 198.18.0.0/15 allow
  do-not-query-localhost: no
  module-config: "iterator"
  num-threads: 1
  infra-host-ttl: 10
  cache-max-ttl: 30
  cache-max-negative-ttl: 2
  prefetch: no
  serve-expired: no
  domain-insecure: %q
  local-zone: "test." nodefault
stub-zone:
  name: %q
`, p.Resolver.Addr, dir, Service, Service)
	for _, o := range p.NS {
		fmt.Fprintf(&b, "  stub-addr: %s\n", o.Addr)
	}
	path := filepath.Join(dir, "unbound.conf")
	return path, os.WriteFile(path, []byte(b.String()), 0o644)
}
