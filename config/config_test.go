package config

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/farmlb/farmlb/farm"
)

func TestLoadExample(t *testing.T) {
	f, err := Load("testdata/farm.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dir, _ := filepath.Abs("testdata")
	if f.Dir != dir {
		t.Errorf("Dir = %q, want %q", f.Dir, dir)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"zone defaults to service", f.Zone, "stream.farmlb.test"},
		{"admin token defaults to publish", f.Tokens.Admin, "secret1"},
		{"relative ca is under the file's dir", f.TLS.CA, filepath.Join(dir, "tls/ca.crt")},
		{"cert {name} substituted", f.TLS.CertFile("serverB"), filepath.Join(dir, "tls/serverB.crt")},
		{"absolute key kept", f.TLS.KeyFile("ns1"), "/etc/farmlb/ns1.key"},
		{"listen defaults to url host:port", f.Nodes[0].Listen, "127.0.0.11:8080"},
		{"listen given", f.Nodes[1].Listen, "127.0.0.12:8443"},
		{"listen default port by scheme", f.Nodes[2].Listen, "127.0.0.13:8080"},
		{"addrs default to url IP", f.Nodes[0].Addrs, []netip.Addr{netip.MustParseAddr("127.0.0.11")}},
		{"addrs given", f.Nodes[1].Addrs, []netip.Addr{netip.MustParseAddr("127.0.0.12"), netip.MustParseAddr("::1")}},
		{"priority lower case", f.Nodes[1].Priority, farm.Priority(1)},
		{"priority default A", f.Nodes[2].Priority, farm.Priority(0)},
		{"capacity", f.Nodes[0].Capacity, 19000},
		{"peer by name", f.Nodes[2].Peer, "serverC.stream.farmlb.test:7946"},
		{"observer dns", f.Observers[0].DNS, "127.0.0.1:5354"},
		{"members", len(f.Members()), 4},
		{"mesh suspect_after", f.Mesh.SuspectAfter, 700 * time.Millisecond},
		{"mesh vouch_timeout follows probe_timeout", f.Mesh.VouchTimeout, 200 * time.Millisecond},
		{"mesh heartbeat default", f.Mesh.Heartbeat, 50 * time.Millisecond},
	}
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) {
			if !equal(c.got, c.want) {
				t.Errorf("got %v, want %v", c.got, c.want)
			}
		})
	}
	t.Run("lookups", func(t *testing.T) {
		if n, ok := f.Node("SERVERB"); !ok || n.Name != "serverB" {
			t.Errorf("Node(SERVERB) = %v, %v", n, ok)
		}
		if _, ok := f.Node("ns1"); ok {
			t.Error("Node(ns1) found an observer")
		}
		if o, ok := f.Observer("ns1"); !ok || o.Peer != "127.0.0.1:7950" {
			t.Errorf("Observer(ns1) = %v, %v", o, ok)
		}
		if m, ok := f.Member("ns1"); !ok || m.Observer == nil || m.Node != nil {
			t.Errorf("Member(ns1) = %+v, %v", m, ok)
		}
		if m, ok := f.Member("serverC"); !ok || m.Node == nil || m.Peer != "serverC.stream.farmlb.test:7946" {
			t.Errorf("Member(serverC) = %+v, %v", m, ok)
		}
		if _, ok := f.Member("nobody"); ok {
			t.Error("Member(nobody) found")
		}
	})
	t.Run("initial list", func(t *testing.T) {
		l := f.InitialList()
		if err := l.Validate(); err != nil {
			t.Fatal(err)
		}
		if l.Service != f.Service || len(l.Servers) != 3 {
			t.Fatalf("list = %+v", l)
		}
		for _, s := range l.Servers {
			if s.Status != farm.StatusDown || s.Users != 0 {
				t.Errorf("%s: %v %d users, want DOWN 0", s.Name, s.Status, s.Users)
			}
		}
		l.Servers[0].Addrs[0] = netip.MustParseAddr("10.0.0.1")
		if f.Nodes[0].Addrs[0] == l.Servers[0].Addrs[0] {
			t.Error("InitialList shares its addresses with the config")
		}
	})
}

func equal(a, b any) bool {
	as, aok := a.([]netip.Addr)
	bs, bok := b.([]netip.Addr)
	if aok && bok {
		if len(as) != len(bs) {
			return false
		}
		for i := range as {
			if as[i] != bs[i] {
				return false
			}
		}
		return true
	}
	return a == b
}

const minimal = `
service: s.test
nodes:
  - name: a
    url: http://127.0.0.1:80
    peer: 127.0.0.1:7000
`

func TestParseBad(t *testing.T) {
	node := func(extra string) string {
		return "service: s.test\nnodes:\n  - name: a\n    url: http://127.0.0.1:80\n    peer: 127.0.0.1:7000\n" + extra
	}
	cases := []struct {
		name string
		in   string
		want string // substring of the error
		path string // KeyError.Path
	}{
		{"empty", "", "empty file", ""},
		{"comment only", "# nothing\n", "empty file", ""},
		{"not yaml", "service: [unclosed", "not valid YAML", ""},
		{"two documents", minimal + "---\nservice: x\n", "more than one YAML document", ""},
		{"top level list", "- a\n- b\n", "want a mapping", ""},
		{"unknown top key", minimal + "servce: x\n", "unknown key", "servce"},
		{"unknown node key", node("    prio: A\n"), "unknown key", "nodes[0].prio"},
		{"unknown tls key", minimal + "tls:\n  cacert: x\n", "unknown key", "tls.cacert"},
		{"unknown pushd key", minimal + "pushd:\n  foo: 1\n", "unknown key", "pushd.foo"},
		{"unknown dns key", minimal + "dns:\n  foo: 1\n", "unknown key", "dns.foo"},
		{"repeated key", minimal + "service: t.test\n", "key repeats", "service"},
		{"anchor", "service: &s s.test\nzone: *s\nnodes: []\n", "aliases", "service"},
		{"missing service", "nodes:\n  - name: a\n    url: http://127.0.0.1\n    peer: 127.0.0.1:7000\n", "missing", "service"},
		{"bad service", strings.Replace(minimal, "s.test", "s_x.test", 1), "not a domain name", "service"},
		{"zone not containing service", minimal + "zone: other.test\n", "does not contain", "zone"},
		{"no nodes", "service: s.test\n", "at least one node", "nodes"},
		{"nodes not a list", "service: s.test\nnodes: a\n", "want a list", "nodes"},
		{"node not a mapping", "service: s.test\nnodes: [a]\n", "want a mapping", "nodes[0]"},
		{"bad priority", node("    priority: AA\n"), `"AA"`, "nodes[0].priority"},
		{"numeric priority", node("    priority: 1\n"), "priority group", "nodes[0].priority"},
		{"priority list", node("    priority: [A]\n"), "want a single value", "nodes[0].priority"},
		{"capacity not int", node("    capacity: lots\n"), "not an integer", "nodes[0].capacity"},
		{"capacity negative", node("    capacity: -1\n"), "out of range", "nodes[0].capacity"},
		{"bad addr", node("    addrs: [300.1.1.1]\n"), "ParseAddr", "nodes[0].addrs[0]"},
		{"too many addrs", node("    addrs: [1.1.1.1, 1.1.1.2, 1.1.1.3, 1.1.1.4, 1.1.1.5]\n"), "at most 4", "nodes[0].addrs"},
		{"addrs not list", node("    addrs: 1.1.1.1\n"), "want a list", "nodes[0].addrs"},
		{"bad listen", node("    listen: nowhere\n"), "not host:port", "nodes[0].listen"},
		{"listen bad port", node("    listen: 127.0.0.1:99999\n"), "port", "nodes[0].listen"},
		{"missing name", "service: s.test\nnodes:\n  - url: http://127.0.0.1\n    peer: 127.0.0.1:7000\n", "missing", "nodes[0].name"},
		{"name not a label", "service: s.test\nnodes:\n  - name: a.b\n    url: http://127.0.0.1\n    peer: 127.0.0.1:7000\n", "not a DNS label", "nodes[0].name"},
		{"name with dash at end", "service: s.test\nnodes:\n  - name: a-\n    url: http://127.0.0.1\n    peer: 127.0.0.1:7000\n", "not a DNS label", "nodes[0].name"},
		{"name too long", "service: s.test\nnodes:\n  - name: " + strings.Repeat("a", 64) + "\n    url: http://127.0.0.1\n    peer: 127.0.0.1:7000\n", "at most 63", "nodes[0].name"},
		{"missing url", "service: s.test\nnodes:\n  - name: a\n    peer: 127.0.0.1:7000\n", "missing", "nodes[0].url"},
		{"url scheme", strings.Replace(minimal, "http://", "ftp://", 1), "scheme", "nodes[0].url"},
		{"url no host", strings.Replace(minimal, "http://127.0.0.1:80", "http://:80", 1), "no host", "nodes[0].url"},
		{"url bad port", strings.Replace(minimal, ":80", ":0", 1), "port", "nodes[0].url"},
		{"url query", strings.Replace(minimal, ":80", ":80/?x=1", 1), "query", "nodes[0].url"},
		{"missing peer", "service: s.test\nnodes:\n  - name: a\n    url: http://127.0.0.1\n", "missing", "nodes[0].peer"},
		{"peer port 0", strings.Replace(minimal, ":7000", ":0", 1), "port", "nodes[0].peer"},
		{"peer no port", strings.Replace(minimal, "127.0.0.1:7000", "127.0.0.1", 1), "host:port", "nodes[0].peer"},
		{"peer no host", strings.Replace(minimal, "127.0.0.1:7000", ":7000", 1), "no host", "nodes[0].peer"},
		{"peer bad host", strings.Replace(minimal, "127.0.0.1:7000", "a_b:7000", 1), "neither", "nodes[0].peer"},
		{"duplicate node name", node("  - name: A\n    url: http://127.0.0.2\n    peer: 127.0.0.2:7000\n"), "already the name of nodes[0]", "nodes[1].name"},
		{"duplicate peer", node("  - name: b\n    url: http://127.0.0.2\n    peer: 127.0.0.1:7000\n"), "already the peer address of nodes[0]", "nodes[1].peer"},
		{"observer shares node name", minimal + "observers:\n  - name: a\n    peer: 127.0.0.3:7000\n    dns: 127.0.0.3:53\n", "already the name of nodes[0]", "observers[0].name"},
		{"observer shares peer", minimal + "observers:\n  - name: ns1\n    peer: 127.0.0.1:7000\n    dns: 127.0.0.3:53\n", "already the peer address", "observers[0].peer"},
		{"observer missing dns", minimal + "observers:\n  - name: ns1\n    peer: 127.0.0.3:7000\n", "missing", "observers[0].dns"},
		{"observer bad dns", minimal + "observers:\n  - name: ns1\n    peer: 127.0.0.3:7000\n    dns: x\n", "host:port", "observers[0].dns"},
		{"observer missing peer", minimal + "observers:\n  - name: ns1\n    dns: 127.0.0.3:53\n", "missing", "observers[0].peer"},
		{"observer unknown key", minimal + "observers:\n  - name: ns1\n    url: http://x\n", "unknown key", "observers[0].url"},
		{"tokens not mapping", minimal + "tokens: abc\n", "want a mapping", "tokens"},
		{"non-string key", minimal + "? [a]\n: b\n", "plain strings", ""},
		{"too large", minimal + "#" + strings.Repeat("x", MaxFileBytes), "larger than", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f, err := Parse([]byte(c.in))
			if err == nil {
				t.Fatalf("no error; parsed %+v", f)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q does not contain %q", err, c.want)
			}
			var ke *KeyError
			if !errors.As(err, &ke) {
				t.Fatalf("error %T is not a *KeyError", err)
			}
			if ke.Path != c.path {
				t.Errorf("path %q, want %q (error: %v)", ke.Path, c.path, err)
			}
			if c.path != "" && !strings.HasPrefix(err.Error(), c.path+": ") {
				t.Errorf("error %q does not start with its key path", err)
			}
		})
	}
}

func TestParseGood(t *testing.T) {
	cases := []struct {
		name  string
		in    string
		check func(*Farm) bool
	}{
		{"minimal", minimal, func(f *Farm) bool { return f.Zone == "s.test" && len(f.Nodes) == 1 }},
		{"service normalised", strings.Replace(minimal, "s.test", "S.Test.", 1), func(f *Farm) bool { return f.Service == "s.test" }},
		{"service below zone", minimal + "zone: test\n", func(f *Farm) bool { return f.Zone == "test" }},
		{"https default port", strings.Replace(minimal, "http://127.0.0.1:80", "https://a.s.test", 1), func(f *Farm) bool {
			return f.Nodes[0].Listen == "a.s.test:443" && len(f.Nodes[0].Addrs) == 0
		}},
		{"ipv6 url", strings.Replace(minimal, "http://127.0.0.1:80", "http://[::1]:8080", 1), func(f *Farm) bool {
			return f.Nodes[0].Listen == "[::1]:8080" && f.Nodes[0].Addrs[0] == netip.MustParseAddr("::1")
		}},
		{"empty addrs list means none", minimal + "    addrs: []\n", func(f *Farm) bool { return len(f.Nodes[0].Addrs) == 0 }},
		{"null sections", minimal + "pushd:\ndns:\ntokens:\n", func(f *Farm) bool { return true }},
		{"relative paths stay relative in Parse", minimal + "tls: {ca: ca.crt}\n", func(f *Farm) bool { return f.TLS.CA == "ca.crt" }},
		{"admin token kept", minimal + "tokens: {publish: p, admin: a}\n", func(f *Farm) bool { return f.Tokens.Admin == "a" }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f, err := Parse([]byte(c.in))
			if err != nil {
				t.Fatal(err)
			}
			if !c.check(f) {
				t.Errorf("unexpected result: %+v", f)
			}
		})
	}
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte(minimal+"    priority: AA\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, path, want string
	}{
		{"missing file", filepath.Join(dir, "none.yaml"), "no such file"},
		{"bad value names file, key and line", bad, "bad.yaml: nodes[0].priority: invalid priority group \"AA\" (want a letter A to Z) (line 7)"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Load(c.path)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %v, want it to contain %q", err, c.want)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	example, err := os.ReadFile("testdata/farm.yaml")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(example)
	f.Add([]byte(minimal))
	f.Add([]byte(minimal + "observers:\n  - {name: ns1, peer: '127.0.0.3:7000', dns: '127.0.0.3:53'}\n"))
	f.Add([]byte("service: &a x\nzone: *a\n"))
	f.Add([]byte(minimal + "mesh: {heartbeat: 100ms, suspect_after: 2s, probe_timeout: 1s, vouch_timeout: 600ms, vouch_lifetime: 3s, probe_fanout: 2}\n"))
	f.Add([]byte(minimal + "mesh:\n  suspect_after: 2s\n"))
	f.Add([]byte(minimal + "mesh:\n  heartbeat: 200ms\n"))
	f.Add([]byte(minimal + "pushd: {overload: {fanout_delay: 300ms, cpu: 0.9, streams: 10, over_for: 2s}}\n"))
	f.Add([]byte(minimal + "    health: {on_fail: down, checks: [{name: f, http: 'http://x/', expect: 204}, {tcp: 'x:1', rise: 1}, {command: [a, b]}]}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		f, err := Parse(data)
		if err != nil {
			var ke *KeyError
			if !errors.As(err, &ke) {
				t.Fatalf("error %T is not a *KeyError: %v", err, err)
			}
			return
		}
		if err := f.InitialList().Validate(); err != nil {
			t.Fatalf("accepted a farm whose list is invalid: %v", err)
		}
		// The timers peerlink.New checks: an accepted file starts the mesh.
		if m := f.Mesh; m.Heartbeat <= 0 || m.SuspectAfter < 2*m.Heartbeat || m.VouchTimeout <= 0 ||
			m.VouchTimeout >= m.ProbeTimeout || m.VouchLifetime < m.ProbeTimeout+m.VouchTimeout || m.ProbeFanout <= 0 {
			t.Fatalf("accepted mesh timers peerlink refuses: %+v", m)
		}
		for _, n := range f.Nodes {
			if h := n.Health; h != nil {
				for _, c := range h.Checks {
					if c.Name == "" || c.Interval <= 0 || c.Timeout <= 0 || c.Timeout > c.Interval || c.Rise < 1 || c.Fall < 1 {
						t.Fatalf("accepted a check pushd cannot run: %+v", c)
					}
				}
			}
		}
		seen := map[string]bool{}
		for _, m := range f.Members() {
			if seen[strings.ToLower(m.Name)] {
				t.Fatalf("name %q twice", m.Name)
			}
			seen[strings.ToLower(m.Name)] = true
		}
	})
}
