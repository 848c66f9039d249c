package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/farmlb/farmlb/config"
	"github.com/farmlb/farmlb/internal/farmtest"
	"github.com/farmlb/farmlb/peerlink"
)

// serviceA asks dnsd for the service name's addresses.
func serviceA(addr, name string) ([]string, error) {
	m := new(dns.Msg)
	m.SetQuestion(name, dns.TypeA)
	c := &dns.Client{Timeout: time.Second}
	r, _, err := c.Exchange(m, addr)
	if err != nil {
		return nil, err
	}
	var got []string
	for _, rr := range r.Answer {
		got = append(got, rr.(*dns.A).A.String())
	}
	slices.Sort(got)
	return got, nil
}

// waitA asks dnsd every 20 ms until the service name resolves to want, or
// fails after timeout: dnsd is another process, with no callback to wait on.
func waitA(t *testing.T, addr, name string, want []string, timeout time.Duration) {
	t.Helper()
	slices.Sort(want)
	deadline := time.Now().Add(timeout)
	var got []string
	var err error
	for time.Now().Before(deadline) {
		if got, err = serviceA(addr, name); err == nil && slices.Equal(got, want) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("service A is %v (err %v), want %v within %v", got, err, want, timeout)
}

// member is a member of a test farm: its name and its own loopback address.
type member struct{ name, ip string }

// writeFarm writes into a fresh folder the farm's CA, a certificate for each
// member and farm.yaml, with free ports on each member's address and extra
// appended; it returns the folder and farm.yaml's text.
func writeFarm(t *testing.T, nodes, observers []member, extra string) (string, string) {
	t.Helper()
	dir := t.TempDir()
	caCert, caKey, err := peerlink.NewCA("test", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, b []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("ca.crt", caCert)
	for _, m := range append(slices.Clone(nodes), observers...) {
		c, k, err := peerlink.IssueCert(caCert, caKey, m.name, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		write(m.name+".crt", c)
		write(m.name+".key", k)
	}
	var y strings.Builder
	y.WriteString("service: stream.farmlb.test\ntls: {ca: ca.crt, cert: '{name}.crt', key: '{name}.key'}\ntokens: {publish: t}\nnodes:\n")
	for _, n := range nodes {
		fmt.Fprintf(&y, "  - {name: %s, url: 'http://%s:8080', peer: '%s:%d', priority: A}\n", n.name, n.ip, n.ip, farmtest.FreePort(t, n.ip))
	}
	y.WriteString("observers:\n")
	for _, o := range observers {
		dnsAddr := net.JoinHostPort(o.ip, fmt.Sprint(farmtest.FreePort(t, o.ip)))
		fmt.Fprintf(&y, "  - {name: %s, peer: '%s:%d', dns: '%s'}\n", o.name, o.ip, farmtest.FreePort(t, o.ip), dnsAddr)
	}
	y.WriteString(extra)
	write("farm.yaml", []byte(y.String()))
	return dir, y.String()
}

// startNodes runs the named nodes of f in this process, each with the
// farm file's timers as pushd would, until the test ends.
func startNodes(t *testing.T, f *config.Farm, names ...string) map[string]*peerlink.Mesh {
	t.Helper()
	meshes := map[string]*peerlink.Mesh{}
	for _, name := range names {
		m, err := peerlink.New(peerlink.FarmConfig(f, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Listen(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- m.Serve(context.Background()) }()
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = m.Shutdown(ctx)
			<-done
		})
		meshes[name] = m
	}
	return meshes
}

// TestMeshMode runs dnsd as a process following a real mesh (peerlink over
// QUIC with mutual TLS, the nodes in this test process on their own
// addresses): it answers from the live table, drops a node that leaves, and
// when the last node is gone keeps answering from the last table that had an
// UP server.
func TestMeshMode(t *testing.T) {
	obsIP := "127.0.0.43"
	dir, y := writeFarm(t, []member{{"serverA", "127.0.0.41"}, {"serverB", "127.0.0.42"}}, []member{{"ns1", obsIP}}, "dns:\n  ttl: {service: 2s}\n")
	write := func(name string, b []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	f, err := config.Load(filepath.Join(dir, "farm.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	obs, _ := f.Observer("ns1")
	dnsAddr := obs.DNS
	meshes := startNodes(t, f, "serverA", "serverB")

	p, addr := startDnsd(t, "--config", filepath.Join(dir, "farm.yaml"), "--name", "ns1")
	if addr != dnsAddr {
		t.Fatalf("dnsd serves on %s, want the observer's dns: address %s", addr, dnsAddr)
	}
	const service = "stream.farmlb.test."
	waitA(t, addr, service, []string{"127.0.0.41", "127.0.0.42"}, 20*time.Second)

	// TTLs come from the farm file's dns: section; NS and glue from its
	// observers.
	m := new(dns.Msg)
	m.SetQuestion(service, dns.TypeA)
	if r, err := dns.Exchange(m, addr); err != nil || r.Answer[0].Header().Ttl != 2 {
		t.Errorf("service A TTL: %v %v, want 2 from the farm file", r, err)
	}
	m.SetQuestion(service, dns.TypeNS)
	r, err := dns.Exchange(m, addr)
	if err != nil || len(r.Answer) != 1 || r.Answer[0].(*dns.NS).Ns != "ns1."+service ||
		len(r.Extra) != 1 || r.Extra[0].(*dns.A).A.String() != obsIP {
		t.Errorf("NS %v (err %v), want ns1.%s with glue %s", r, err, service, obsIP)
	}

	// SIGHUP reloads the farm file's dns: section.
	write("farm.yaml", []byte(strings.Replace(y, "ttl: {service: 2s}", "ttl: {service: 3s}", 1)))
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	p.waitLog(t, "msg=reloaded")
	m.SetQuestion(service, dns.TypeA)
	if r, err := dns.Exchange(m, addr); err != nil || len(r.Answer) == 0 || r.Answer[0].Header().Ttl != 3 {
		t.Errorf("service A after SIGHUP: %v %v, want TTL 3", r, err)
	}

	stop := func(name string) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := meshes[name].Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
	}
	stop("serverB")
	waitA(t, addr, service, []string{"127.0.0.41"}, 10*time.Second)

	// The last node goes: the observer sees no UP server, and dnsd holds
	// the last table that had one (from the observer, a dead farm and a
	// mesh out of sight look the same) and says so in its log.
	stop("serverA")
	p.waitLog(t, "no UP server")
	if got, err := serviceA(addr, service); err != nil || !slices.Equal(got, []string{"127.0.0.41"}) {
		t.Fatalf("after the last node left: A %v (err %v), want the held 127.0.0.41", got, err)
	}
	m.SetQuestion("_farm."+service, dns.TypeTXT)
	r, err = dns.Exchange(m, addr)
	if err != nil || len(r.Answer) != 1 || !strings.Contains(r.Answer[0].String(), "127.0.0.41:8080 UP") {
		t.Errorf("_farm %v (err %v): want the held table, with serverA UP", r, err)
	}
}

// TestMeshTimersFromFile: the farm file's mesh: section reaches a daemon's
// failure detection. dnsd ns1 follows a farm whose file says
// suspect_after: 2s, and a second dnsd, ns2, is stopped with SIGSTOP: ns1
// suspects ns2 only once it has been silent for 2 s (with the default it
// would after 350 ms), and then holds it DOWN. ns1's log says how long the
// silence was, so the check does not depend on how busy the machine is.
func TestMeshTimersFromFile(t *testing.T) {
	dir, _ := writeFarm(t, []member{{"serverA", "127.0.0.51"}, {"serverB", "127.0.0.52"}},
		[]member{{"ns1", "127.0.0.53"}, {"ns2", "127.0.0.54"}}, "mesh: {suspect_after: 2s}\n")
	path := filepath.Join(dir, "farm.yaml")
	f, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	startNodes(t, f, "serverA", "serverB")
	ns1, _ := startDnsd(t, "--config", path, "--name", "ns1")
	ns2, _ := startDnsd(t, "--config", path, "--name", "ns2")
	// The lines of peerlink's log "peer up", "peer suspect" and "peer down".
	heard := `peer=ns2 reason="heard`
	if !slices.ContainsFunc(ns1.seen, func(l string) bool { return strings.Contains(l, heard) }) {
		ns1.waitLog(t, heard)
	}

	if err := ns2.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	stopped := time.Now()
	line := ns1.waitLog(t, `peer=ns2 silent_ms=`)
	m := regexp.MustCompile(`silent_ms=(\d+)`).FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("no silent_ms in %q", line)
	}
	if silent, _ := strconv.Atoi(m[1]); silent < 2000 {
		t.Errorf("ns1 suspected ns2 after %d ms of silence, want at least the file's suspect_after 2000 ms: %s", silent, line)
	}
	ns1.waitLog(t, `peer=ns2 reason="silent for`)
	took := time.Since(stopped).Round(time.Millisecond)
	t.Logf("ns2 DOWN on ns1 %v after SIGSTOP", took)
	// suspect_after 2 s, then a probe round (probe_timeout 250 ms, the
	// vouch wait): measured 2.2 s under -race on a loaded 2-core machine.
	// The bound leaves room for load but not for a second suspicion period.
	if took > 4*time.Second {
		t.Errorf("ns2 DOWN on ns1 %v after SIGSTOP, want ≤ 4s (suspect_after 2s + probing)", took)
	}
}
