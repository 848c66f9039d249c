package main

import (
	"bytes"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/farmlb/farmlb/farm"
)

// TestOrientation checks the simulator against what can be worked out by
// hand for a farm of 10 × 1000 users with fresh lists: least-loaded sends
// every arrival to the restarted server (945 arrivals to 95%), p2c one in
// five (about 8,100), and every policy herds or not on one shared list as
// its formula says.
func TestOrientation(t *testing.T) {
	mk := func(name string) policyMaker {
		return func() farm.Policy { p, _ := farm.NewPolicy(name); return p }
	}
	pre := steadyFarm(10, 1000, rand.New(rand.NewPCG(1, 10)))
	tests := []struct {
		name     string
		policy   string
		run      func(*sim) (float64, error)
		mode     info
		min, max float64
	}{
		{"least-loaded refills at once", "least-loaded", func(s *sim) (float64, error) {
			a, _, _, err := scenarioRefill(s, pre)
			return a, err
		}, fresh, 900, 1000},
		{"p2c refills one arrival in five", "p2c", func(s *sim) (float64, error) {
			a, _, _, err := scenarioRefill(s, pre)
			return a, err
		}, fresh, 7000, 9500},
		{"least-loaded herds on a shared list", "least-loaded", func(s *sim) (float64, error) { return scenarioReconnect(s, pre) }, shared, 9.99, 10.01},
		{"p2c sends twice the mean to the lightest", "p2c", func(s *sim) (float64, error) { return scenarioReconnect(s, pre) }, shared, 1.85, 2.15},
		{"random stays within noise", "random", func(s *sim) (float64, error) { return scenarioReconnect(s, pre) }, shared, 1.0, 1.12},
		{"gap-fill stays within 1.1 on a shared list", "gap-fill", func(s *sim) (float64, error) { return scenarioReconnect(s, pre) }, shared, 1.0, 1.1},
		{"gap-fill refills within 4× least-loaded", "gap-fill", func(s *sim) (float64, error) {
			a, _, _, err := scenarioRefill(s, pre)
			return a, err
		}, fresh, 900, 4000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.run(newSim(mk(tt.policy)(), 10, 1000, tt.mode, rand.New(rand.NewPCG(2, 3))))
			if err != nil {
				t.Fatal(err)
			}
			if got < tt.min || got > tt.max {
				t.Errorf("got %.2f, want between %.2f and %.2f", got, tt.min, tt.max)
			}
		})
	}
}

// TestRepeatable runs a small benchmark twice: the same seeds print the
// same tables.
func TestRepeatable(t *testing.T) {
	args := []string{"-seeds", "2", "-n", "2", "-policy", "gap-fill,p2c", "-users", "100"}
	var a, b, errs bytes.Buffer
	if code := run(args, &a, &errs); code != 0 {
		t.Fatalf("exit %d: %s", code, errs.String())
	}
	if code := run(args, &b, &errs); code != 0 {
		t.Fatalf("exit %d: %s", code, errs.String())
	}
	if a.String() != b.String() {
		t.Errorf("two runs differ:\n%s\n%s", a.String(), b.String())
	}
	if !strings.Contains(a.String(), "### gap-fill") || !strings.Contains(a.String(), "| 2 | shared |") {
		t.Errorf("tables missing:\n%s", a.String())
	}
}

func TestUsage(t *testing.T) {
	for _, args := range [][]string{{"-n", "1"}, {"-policy", "nope"}, {"-seeds", "0"}, {"-bogus"}} {
		var out, errs bytes.Buffer
		if code := run(args, &out, &errs); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
	}
}
