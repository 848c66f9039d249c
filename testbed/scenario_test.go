package testbed

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/farmlb/farmlb/config"
)

func TestShippedScenariosParse(t *testing.T) {
	files, err := filepath.Glob("scenarios/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"dns-failover", "dns-flood", "failover", "flash-crowd", "hang", "health", "overload", "partition", "rejoin", "rolling-restart"}
	if len(files) != len(want) {
		t.Fatalf("scenario files %v, want %v", files, want)
	}
	for i, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			s, err := LoadScenario(f)
			if err != nil {
				t.Fatal(err)
			}
			if s.Name != want[i] || s.Name+".yaml" != filepath.Base(f) {
				t.Errorf("name %q in %s", s.Name, f)
			}
			if s.TotalClients() == 0 {
				t.Error("no clients arrive")
			}
			if s.Expect.Lost == nil || *s.Expect.Lost != 0 || s.Expect.Duplicated == nil || *s.Expect.Duplicated != 0 {
				t.Error("every scenario must expect lost: 0 and duplicated: 0")
			}
		})
	}
}

const minimal = `
name: tiny
nodes: [{name: serverA}]
duration: 10s
timeline:
  - {at: 0s, arrive: 5, over: 1s}
`

func TestParseScenarioDefaults(t *testing.T) {
	s, err := ParseScenario([]byte(minimal))
	if err != nil {
		t.Fatal(err)
	}
	switch {
	case !s.DNS, s.Clients.Discovery != "dns", s.Clients.Hosts != 1, s.Clients.Kind != "agent":
		t.Errorf("dns defaults: %+v %+v", s.DNS, s.Clients)
	case s.Publish.Topic != "seq", s.Publish.Rate != 10:
		t.Errorf("publish defaults: %+v", s.Publish)
	case s.Settle != 5*time.Second, s.Clients.IdleTimeout != 0:
		t.Errorf("durations: settle %v idle %v", s.Settle, s.Clients.IdleTimeout)
	case s.Nodes[0].Priority.String() != "A":
		t.Errorf("priority %v", s.Nodes[0].Priority)
	}
	if _, ok := s.Victim(); ok {
		t.Error("a scenario without faults has a victim")
	}
}

func TestParseScenarioErrorsNameTheKey(t *testing.T) {
	for _, tc := range []struct {
		name, yaml, want string
	}{
		{"empty", ``, "empty scenario"},
		{"unknown key", minimal + "bogus: 1\n", "field bogus not found"},
		{"unknown step key", strings.Replace(minimal, "over: 1s", "over: 1s, when: 3s", 1), "field when not found"},
		{"bad name", strings.Replace(minimal, "name: tiny", "name: Tiny Farm", 1), `name: "Tiny Farm" is not a short lower-case name`},
		{"no nodes", strings.Replace(minimal, "nodes: [{name: serverA}]", "nodes: []", 1), "nodes: a scenario needs at least one node"},
		{"bad priority", strings.Replace(minimal, "{name: serverA}", "{name: serverA, priority: AA}", 1), `nodes[0].priority: "AA" is not a letter A–Z`},
		{"long node name", strings.Replace(minimal, "serverA", "serverAlpha1", 1), `nodes[0].name: "serverAlpha1" is not a node name`},
		{"node named ns1", strings.Replace(minimal, "serverA", "ns1", 1), `nodes[0].name: "ns1" is not a node name`},
		{"bad duration", strings.Replace(minimal, "duration: 10s", "duration: ten", 1), `duration: "ten" is not a duration`},
		{"bad over", strings.Replace(minimal, "over: 1s", "over: soon", 1), `timeline[0].over: "soon" is not a duration`},
		{"bad fault", minimal + "  - {at: 2s, fault: explode, target: serverA}\n", `timeline[1].fault: "explode" is not one of check-fail, check-ok, cont, cut, `},
		{"check on a node without health", minimal + "  - {at: 2s, fault: check-fail, target: serverA}\n", `timeline[1].target: check-fail needs a node with health:, not "serverA"`},
		{"starve a dnsd", minimal + "  - {at: 2s, fault: starve, target: ns1}\n", `starve needs a pushd node`},
		{"unknown target", minimal + "  - {at: 2s, fault: kill, target: serverZ}\n", `timeline[1].target: "serverZ" is not a node of this scenario`},
		{"cut without peer", minimal + "  - {at: 2s, fault: cut, target: serverA}\n", `timeline[1].peer: "" is not another node`},
		{"squeeze without rate", minimal + "  - {at: 2s, fault: squeeze, target: serverA}\n", "timeline[1].rate: squeeze needs a rate"},
		{"dns-down on a node", minimal + "  - {at: 2s, fault: dns-down, target: serverA}\n", `timeline[1].target: dns-down needs ns1 or ns2, not "serverA"`},
		{"out of order", minimal + "  - {at: 5s, fault: kill, target: serverA}\n  - {at: 3s, fault: restart, target: serverA}\n", "timeline[2].at: 3s is before the step above it (5s)"},
		{"after the end", minimal + "  - {at: 11s, fault: kill, target: serverA}\n", "timeline[1].at: 11s is after the end"},
		{"neither", minimal + "  - {at: 2s}\n", "timeline[1]: a step needs arrive or fault"},
		{"both", minimal + "  - {at: 2s, arrive: 3, fault: kill, target: serverA}\n", "timeline[1]: a step is either an arrival or a fault"},
		{"dns discovery without dns", minimal + "dns: false\nclients: {discovery: dns}\n", `clients.discovery: "dns" needs dns: true`},
		{"bad topic", minimal + "publish: {topic: farmlb-x}\n", `publish.topic: "farmlb-x" is not a topic name`},
		{"bad rate", minimal + "publish: {rate: -1}\n", "publish.rate: -1 is not between"},
		{"bad client kind", minimal + "clients: {kind: robots}\n", `clients.kind: "robots" is not swarm or agent`},
		{"farm section not a mapping", minimal + "farm: {pushd: 3}\n", "farm.pushd: must be a mapping"},
		{"farm unknown section", minimal + "farm: {peerlink: {}}\n", "field peerlink not found"},
		{"wrong type", minimal + "clients: {hosts: many}\n", "cannot unmarshal !!str `many` into int"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := ParseScenario([]byte(tc.yaml))
			if err == nil {
				t.Fatalf("parsed %+v, want an error containing %q", s, tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q\nwant it to contain %q", err, tc.want)
			}
		})
	}
}

func TestFarmExtraReachesTheFarmFile(t *testing.T) {
	s, err := ParseScenario([]byte(minimal + "farm:\n  pushd: {drain_window: 5s, keepalive: 1s}\n  dns: {ttl: {service: 1s}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	path, err := writeFarm(dir, s, PlanFor(s))
	if err != nil {
		t.Fatal(err)
	}
	f, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if f.Pushd.DrainWindow != 5*time.Second || f.Pushd.KeepAlive != time.Second || f.DNS.TTL.Service != time.Second {
		t.Errorf("farm file sections: %+v %+v", f.Pushd, f.DNS)
	}
}

func FuzzParseScenario(f *testing.F) {
	f.Add([]byte(minimal))
	files, _ := filepath.Glob("scenarios/*.yaml")
	for _, file := range files {
		if s, err := os.ReadFile(file); err == nil {
			f.Add(s)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := ParseScenario(data)
		if err == nil && (s == nil || s.Duration <= 0 || len(s.Nodes) == 0) {
			t.Fatalf("accepted an unusable scenario: %+v", s)
		}
	})
}

// TestHealthReachesTheFarmFile: a node's health: becomes a command check on
// the lab's fault file, and the mesh: section passes through.
func TestHealthReachesTheFarmFile(t *testing.T) {
	y := strings.Replace(minimal, "nodes: [{name: serverA}]", "nodes: [{name: serverA, health: {on_fail: down, interval: 500ms, fall: 2}}, {name: serverB}]", 1) +
		"  - {at: 1s, fault: check-fail, target: serverA}\n  - {at: 2s, fault: check-ok, target: serverA}\nexpect: {window_share_max: 0.1, window_kept_max: {serverA: 0.1}}\nfarm:\n  mesh: {suspect_after: 2s}\n"
	s, err := ParseScenario([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	path, err := writeFarm(dir, s, PlanFor(s))
	if err != nil {
		t.Fatal(err)
	}
	f, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	h := f.Nodes[0].Health
	if h == nil || h.OnFail != "down" || len(h.Checks) != 1 || h.Checks[0].Interval != 500*time.Millisecond || h.Checks[0].Fall != 2 ||
		strings.Join(h.Checks[0].Command, " ") != "test ! -e "+healthFile(dir, "serverA") {
		t.Errorf("health %+v", h)
	}
	if f.Nodes[1].Health != nil || f.Mesh.SuspectAfter != 2*time.Second {
		t.Errorf("serverB's health %+v, mesh %+v", f.Nodes[1].Health, f.Mesh)
	}
	if _, err := ParseScenario([]byte(y + "  dns: {}\nexpect: {window_kept_min: {nobody: 1}}\n")); err == nil {
		t.Error("a repeated expect or an unknown node in window_kept_min was accepted")
	}
}

// TestFloodSteps checks the dns-flood steps: on ns1 or ns2 only.
func TestFloodSteps(t *testing.T) {
	s, err := LoadScenario(filepath.Join("scenarios", "dns-flood.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	floods := 0
	for _, st := range s.Timeline {
		if st.Fault == "dns-flood" {
			floods++
			if st.Rate != 5000 {
				t.Errorf("flood of %s at %d q/s, want 5000", st.Target, st.Rate)
			}
		}
	}
	if floods != 2 {
		t.Errorf("%d floods, want ns1 and ns2", floods)
	}
	bad := strings.Replace(string(must(os.ReadFile(filepath.Join("scenarios", "dns-flood.yaml")))), "target: ns1, rate", "target: serverA, rate", 1)
	if _, err := ParseScenario([]byte(bad)); err == nil || !strings.Contains(err.Error(), "dns-flood needs ns1 or ns2") {
		t.Errorf("a flood of a pushd node: %v, want refused", err)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
