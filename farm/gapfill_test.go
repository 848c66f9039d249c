package farm_test

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/farmlb/farmlb/farm"
)

// gfList builds a list of servers s00, s01, ... with the given users, all UP
// in group A.
func gfList(users ...int) *farm.List {
	l := &farm.List{Service: "stream.farmlb.test"}
	for i, u := range users {
		name := fmt.Sprintf("s%02d", i)
		l.Servers = append(l.Servers, farm.Server{
			Name: name, URL: "http://" + name + ".farmlb.test", Status: farm.StatusUp, Users: u,
		})
	}
	return l
}

// gfNoisy returns n loads around mean, spread as random arrivals spread
// them (each within about ±1.5σ, σ = √mean), in a fixed order.
func gfNoisy(n, mean int, seed uint64) []int {
	r := rand.New(rand.NewPCG(seed, 7))
	u := make([]int, n)
	for i := range u {
		u[i] = mean + int(math.Round(math.Max(-1.5, math.Min(1.5, r.NormFloat64()))*math.Sqrt(float64(mean))))
	}
	return u
}

func gfProbs(t *testing.T, l *farm.List) []float64 {
	t.Helper()
	p, err := farm.GapFill{}.Probabilities(l)
	if err != nil {
		t.Fatalf("Probabilities: %v", err)
	}
	if len(p) != len(l.Servers) {
		t.Fatalf("%d probabilities for %d servers", len(p), len(l.Servers))
	}
	var sum float64
	for i, x := range p {
		if math.IsNaN(x) || x < 0 || x > 1 {
			t.Fatalf("p[%d] = %v", i, x)
		}
		sum += x
	}
	if math.Abs(sum-1) > 1e-9 {
		t.Fatalf("probabilities sum to %v: %v", sum, p)
	}
	return p
}

func TestGapFillNeverPicksIneligible(t *testing.T) {
	l := gfList(0, 0, 500, 5, 2000, 3000, 10)
	l.Servers[0].Status = farm.StatusDown
	l.Servers[1].Status = farm.StatusDraining
	l.Servers[2].Capacity = 500 // full
	l.Servers[3].Priority = 1   // group B: A has servers
	l.Servers[4].Capacity = 4000
	l.Servers[5].Capacity = 4000
	l.Servers[6].Capacity = 4000
	p := gfProbs(t, l)
	for i, want0 := range []bool{true, true, true, true, false, false, false} {
		if want0 && p[i] != 0 {
			t.Errorf("%s (%v, %d users, capacity %d, group %v): p = %v, want 0",
				l.Servers[i].Name, l.Servers[i].Status, l.Servers[i].Users, l.Servers[i].Capacity, l.Servers[i].Priority, p[i])
		}
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		s, err := farm.GapFill{}.Pick(l, r)
		if err != nil {
			t.Fatal(err)
		}
		if !s.Eligible() || s.Priority != 0 {
			t.Fatalf("picked %+v", s)
		}
	}
}

func TestGapFillNoServer(t *testing.T) {
	l := gfList(1, 2)
	l.Servers[0].Status = farm.StatusDown
	l.Servers[1].Status = farm.StatusDraining
	if _, err := (farm.GapFill{}).Probabilities(l); !errors.Is(err, farm.ErrNoServer) {
		t.Errorf("Probabilities: %v, want ErrNoServer", err)
	}
	if _, err := (farm.GapFill{}).Pick(l, rand.New(rand.NewPCG(1, 1))); !errors.Is(err, farm.ErrNoServer) {
		t.Errorf("Pick: %v, want ErrNoServer", err)
	}
}

// Equal loads, and loads that differ only by noise, give (nearly) every
// server the same share: a farm that reconnects at once on one such list
// stays balanced.
func TestGapFillUniformWithinNoise(t *testing.T) {
	tests := []struct {
		name  string
		users []int
		slack float64 // largest p·n allowed
	}{
		{"one server", []int{7}, 1},
		{"two empty", []int{0, 0}, 1},
		{"ten empty", make([]int, 10), 1},
		{"ten equal", slices.Repeat([]int{1000}, 10), 1},
		{"fifty equal small", slices.Repeat([]int{3}, 50), 1},
		{"two noisy", []int{1000, 1050}, 1.0001},
		{"ten noisy", gfNoisy(10, 1000, 1), 1.0001},
		{"ten noisy, another draw", gfNoisy(10, 1000, 2), 1.0001},
		{"fifty noisy", gfNoisy(50, 1000, 3), 1.0001},
		{"ten noisy, large", gfNoisy(10, 100000, 4), 1.0001},
		{"one slightly low among ten", []int{1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 950}, 1.0001},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := gfProbs(t, gfList(tt.users...))
			n := float64(len(tt.users))
			for i, x := range p {
				if x*n > tt.slack {
					t.Errorf("server %d (%d users): p = %.4f, more than %.4f of the uniform share (all: %.4f)", i, tt.users[i], x, tt.slack, p)
				}
			}
		})
	}
}

// A server clearly below the others — restarted, empty — gets most of the
// weight, however many servers the farm has.
func TestGapFillEmptyServerGetsMost(t *testing.T) {
	tests := []struct {
		name  string
		users []int
		least float64
	}{
		{"two", []int{0, 1000}, 0.95},
		{"three", []int{1000, 0, 1000}, 0.9},
		{"ten", append([]int{0}, gfNoisy(9, 1000, 5)...), 0.85},
		{"fifty", append(gfNoisy(49, 1000, 6), 0), 0.6},
		{"ten, half refilled", append([]int{500}, gfNoisy(9, 1000, 7)...), 0.75},
		{"ten of 20", append([]int{0}, slices.Repeat([]int{20}, 9)...), 0.5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := gfProbs(t, gfList(tt.users...))
			low := slices.Index(tt.users, slices.Min(tt.users))
			if p[low] < tt.least {
				t.Errorf("the low server gets %.3f, want at least %.3f (all: %.3f)", p[low], tt.least, p)
			}
		})
	}
}

// With capacities, load is measured against capacity: a server with twice
// the room of the others counts as less loaded at the same users.
func TestGapFillCapacityAware(t *testing.T) {
	l := gfList(slices.Repeat([]int{1000}, 10)...)
	for i := range l.Servers {
		l.Servers[i].Capacity = 2000
	}
	l.Servers[3].Capacity = 4000
	p := gfProbs(t, l)
	if p[3] < 0.5 {
		t.Errorf("the big server gets %.3f, want most of the weight (all: %.3f)", p[3], p)
	}
	// Without capacities the same users are equal.
	p = gfProbs(t, gfList(slices.Repeat([]int{1000}, 10)...))
	if math.Abs(p[3]-0.1) > 1e-9 {
		t.Errorf("p = %.3f, want uniform", p)
	}
}

// A less loaded server never gets less than a more loaded one, and the
// policy leaves the list as it found it. (A server's probability may still
// grow with its own load: a busier server widens the others' spread, the
// noise band, and so can take the weight off a server below it.)
func TestGapFillOrderAndPure(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for trial := range 500 {
		n := 1 + r.IntN(20)
		users := make([]int, n)
		for i := range users {
			users[i] = r.IntN(2000)
			if trial%2 == 0 {
				users[i] = 1000 + r.IntN(100) - 50
			}
		}
		users[r.IntN(n)] = r.IntN(200)
		l := gfList(users...)
		before := l.Clone()
		p := gfProbs(t, l)
		if !slices.EqualFunc(l.Servers, before.Servers, func(a, b farm.Server) bool { return a.Users == b.Users && a.Name == b.Name }) {
			t.Fatalf("trial %d: the list changed", trial)
		}
		if again := gfProbs(t, l); !slices.Equal(p, again) {
			t.Fatalf("trial %d: two calls differ: %v %v", trial, p, again)
		}
		for i := range users {
			for j := range users {
				if users[i] < users[j] && p[i] < p[j]-1e-12 {
					t.Fatalf("trial %d: server %d (%d users) gets %.6f, less than server %d (%d users) with %.6f (users %v)",
						trial, i, users[i], p[i], j, users[j], p[j], users)
				}
			}
		}
	}
}

// Pick follows Probabilities.
func TestGapFillPickFollowsProbabilities(t *testing.T) {
	l := gfList(append([]int{0}, gfNoisy(9, 1000, 8)...)...)
	p := gfProbs(t, l)
	r := rand.New(rand.NewPCG(5, 6))
	const picks = 20000
	counts := map[string]int{}
	for range picks {
		s, err := farm.GapFill{}.Pick(l, r)
		if err != nil {
			t.Fatal(err)
		}
		counts[s.Name]++
	}
	for i, s := range l.Servers {
		got := float64(counts[s.Name]) / picks
		if sd := math.Sqrt(p[i] * (1 - p[i]) / picks); math.Abs(got-p[i]) > 5*sd+1e-9 {
			t.Errorf("%s: picked %.4f of the time, p = %.4f", s.Name, got, p[i])
		}
	}
}

// FuzzGapFillProbabilities feeds arbitrary loads, statuses and capacities:
// the probabilities are always a distribution over the eligible servers of
// the best group, or the error is ErrNoServer.
func FuzzGapFillProbabilities(f *testing.F) {
	f.Add([]byte{0, 0, 0, 1, 3, 0xe8, 0, 1, 3, 0xe8, 0, 1})
	f.Add([]byte{1, 0, 0, 0, 2, 0, 0, 2, 0xff, 0xff, 0, 1})
	f.Add(make([]byte, 60))
	f.Fuzz(func(t *testing.T, data []byte) {
		l := &farm.List{}
		for i := 0; i+4 <= len(data) && len(l.Servers) < 64; i += 4 {
			u := int(binary.BigEndian.Uint16(data[i:]))
			capacity := 0
			if data[i+2]&0x80 != 0 {
				capacity = int(data[i+2]&0x7f) * 100
			}
			l.Servers = append(l.Servers, farm.Server{
				Name: fmt.Sprintf("s%d", i), Users: u, Capacity: capacity,
				Status: farm.Status(data[i+3] % 3), Priority: farm.Priority(data[i+3] / 3 % 3),
			})
		}
		p, err := farm.GapFill{}.Probabilities(l)
		idx, cerr := farm.Candidates(l)
		if cerr != nil {
			if err == nil {
				t.Fatalf("no candidates but no error")
			}
			return
		}
		if err != nil {
			t.Fatalf("Probabilities: %v", err)
		}
		var sum float64
		for i, x := range p {
			if math.IsNaN(x) || x < 0 {
				t.Fatalf("p[%d] = %v", i, x)
			}
			if x > 0 && !slices.Contains(idx, i) {
				t.Fatalf("p[%d] = %v for a server that is not a candidate", i, x)
			}
			sum += x
		}
		if math.Abs(sum-1) > 1e-9 {
			t.Fatalf("sum %v", sum)
		}
	})
}
