package main

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/farmlb/farmlb/farm"
	"github.com/farmlb/farmlb/internal/farmtest"
)

// TestSwarmSpread runs `farmctl swarm` with 1,000 clients against three real
// pushd processes and checks the spread the default policy promises. Within
// noise gap-fill places clients like a uniform random choice (BENCHMARKS.md,
// "Selection policies": cold fill 1.01–1.04 of the mean for 2–10 servers),
// so a node's count is about Binomial(1000, 1/3): 333 ± 15. The bound is
// that mean plus 3.3 standard deviations, which uniform placement exceeds
// about once in a thousand runs.
func TestSwarmSpread(t *testing.T) {
	f := farmtest.Start(t, farmtest.Options{Nodes: []farmtest.NodeSpec{{Name: "serverA"}, {Name: "serverB"}, {Name: "serverC"}}})
	f.WaitUp(15 * time.Second)
	const clients = 1000
	// 20 s: the nodes run with -race under go test -race, and on a loaded
	// 2-core machine 1,000 streams took longer than 8 s to open (622 had).
	args := []string{"swarm", "--clients", "1000", "--ramp", "3s", "--duration", "20s", "--interval", "0", "--json", "--seed", "7"}
	for _, u := range f.ListURLs() {
		args = append(args, "--url", u)
	}
	out, errOut, code := run(t, args...)
	if code != 0 {
		t.Fatalf("swarm exit %d: %s", code, errOut)
	}
	var sum SwarmSummary
	if err := json.Unmarshal([]byte(strings.TrimSpace(out)), &sum); err != nil {
		t.Fatalf("swarm printed %q: %v", out, err)
	}
	t.Logf("swarm: %+v", sum)
	if sum.Connected != clients || len(sum.Nodes) != 3 {
		t.Fatalf("%d of %d clients connected, over %d nodes: %v", sum.Connected, clients, len(sum.Nodes), sum.Nodes)
	}
	mean := float64(clients) / 3
	bound := (mean + 3.3*math.Sqrt(clients*(1.0/3)*(2.0/3))) / mean
	if sum.MaxOverMean > bound {
		t.Errorf("max/mean %.3f, want ≤ %.3f (nodes %v)", sum.MaxOverMean, bound, sum.Nodes)
	}
}

// TestFarmCommands drives status, publish, subscribe, drain and undrain
// against a real farm.
func TestFarmCommands(t *testing.T) {
	f := farmtest.Start(t, farmtest.Options{Nodes: []farmtest.NodeSpec{{Name: "serverA"}, {Name: "serverB", Priority: "B"}}})
	f.WaitUp(15 * time.Second)
	var flags []string
	for _, u := range f.ListURLs() {
		flags = append(flags, "--url", u)
	}
	// with puts the farm flags right after the command name: urfave/cli
	// stops reading flags at the first argument.
	with := func(name string, args ...string) []string {
		return append(append([]string{name}, flags...), args...)
	}
	cmd := func(name string, args ...string) string {
		t.Helper()
		out, errOut, code := run(t, with(name, args...)...)
		if code != 0 {
			t.Fatalf("farmctl %s %v: exit %d: %s", name, args, code, errOut)
		}
		return out
	}

	out := cmd("status")
	for _, want := range []string{"stream.farmlb.test: 2 nodes", "serverA  UP", "serverB  UP"} {
		if !strings.Contains(strings.Join(strings.Fields(out), " "), strings.Join(strings.Fields(want), " ")) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
	if js := cmd("status", "--json"); !strings.Contains(js, `"reporter"`) {
		t.Errorf("status --json: %s", js)
	}

	// A subscriber in the background, then a publish it must see.
	done := make(chan string)
	go func() {
		out, _, _ := run(t, with("subscribe", "--count", "1", "news")...)
		done <- out
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		l, err := f.List(t.Context(), "serverA")
		if err == nil {
			if s, _ := l.Find("serverA"); s.Users == 1 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("the subscriber never connected")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if id := cmd("publish", "--token", f.Token, "news", "hello farm"); !strings.Contains(id, `"id"`) {
		t.Errorf("publish printed %q", id)
	}
	select {
	case got := <-done:
		if !strings.HasPrefix(got, "news\t") || !strings.HasSuffix(strings.TrimSpace(got), "\thello farm") {
			t.Errorf("subscribe printed %q", got)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("subscriber saw nothing")
	}

	// A wrong token is refused with the node's reason.
	if _, errOut, code := run(t, with("publish", "--token", "wrong", "news", "x")...); code != 1 || !strings.Contains(errOut, "wrong token") {
		t.Errorf("publish with a wrong token: exit %d, %q", code, errOut)
	}

	cmd("drain", "--token", f.Token, "serverA")
	f.WaitStatus(5*time.Second, farm.StatusDraining, []string{"serverA"})
	cmd("undrain", "--token", f.Token, "serverA")
	f.WaitStatus(5*time.Second, farm.StatusUp, []string{"serverA"})
	if _, errOut, code := run(t, with("drain", "--token", f.Token, "serverZ")...); code != 1 || !strings.Contains(errOut, `no node "serverZ"`) {
		t.Errorf("drain of an unknown node: exit %d, %q", code, errOut)
	}
}
