package farm

import (
	"errors"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

func patentList() *List {
	l, err := ParseText([]byte("http://serverA.caplin.com UP 2963 A\nhttp://serverB.caplin.com DOWN 0 B\nhttp://serverN.caplin.com UP 2979 A\n"))
	if err != nil {
		panic(err)
	}
	return l
}

func TestInverseSharePatentExample(t *testing.T) {
	p, err := InverseShare{}.Probabilities(patentList())
	if err != nil {
		t.Fatal(err)
	}
	want := []float64{0.501, 0, 0.499}
	for i := range want {
		if math.Abs(p[i]-want[i]) > 0.0005 {
			t.Errorf("server %d: p = %.4f, want %.3f", i, p[i], want[i])
		}
	}
}

func TestInverseShareFormula(t *testing.T) {
	tests := []struct {
		name  string
		users []int
		want  []float64
	}{
		{"one server", []int{50}, []float64{1}},
		{"no users", []int{0, 0, 0, 0}, []float64{0.25, 0.25, 0.25, 0.25}},
		{"three", []int{100, 200, 700}, []float64{0.45, 0.4, 0.15}},
		{"all on one", []int{0, 90}, []float64{1, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := &List{}
			for i, u := range tt.users {
				l.Servers = append(l.Servers, Server{Name: string(rune('a' + i)), URL: "http://x", Status: StatusUp, Users: u})
			}
			p, err := InverseShare{}.Probabilities(l)
			if err != nil {
				t.Fatal(err)
			}
			for i := range tt.want {
				if math.Abs(p[i]-tt.want[i]) > 1e-9 {
					t.Errorf("p = %v, want %v", p, tt.want)
				}
			}
		})
	}
}

// farmOf builds a list from (status, users, priority, capacity) rows.
func farmOf(rows ...[4]int) *List {
	l := &List{}
	for i, r := range rows {
		l.Servers = append(l.Servers, Server{Name: string(rune('a' + i)), URL: "http://x", Status: Status(r[0]), Users: r[1], Priority: Priority(r[2]), Capacity: r[3]})
	}
	return l
}

const up, down, draining = int(StatusUp), int(StatusDown), int(StatusDraining)

// TestEveryPolicyRules checks, for every policy, the rules no policy may
// break: never a DOWN, DRAINING or full server; only the best group with an
// eligible server; a typed error when there is none.
func TestEveryPolicyRules(t *testing.T) {
	tests := []struct {
		name    string
		list    *List
		allowed string // names that may be picked; "" means ErrNoServer
	}{
		{"patent", patentList(), "serverA serverN"},
		{"skip down and draining", farmOf([4]int{down, 0, 0, 0}, [4]int{draining, 0, 0, 0}, [4]int{up, 900, 0, 0}), "c"},
		{"group B when A is down", farmOf([4]int{down, 0, 0, 0}, [4]int{up, 500, 1, 0}, [4]int{up, 10, 2, 0}), "b"},
		{"group B when A is draining", farmOf([4]int{draining, 0, 0, 0}, [4]int{up, 500, 1, 0}, [4]int{up, 510, 1, 0}), "b c"},
		{"full server skipped", farmOf([4]int{up, 100, 0, 100}, [4]int{up, 5000, 0, 0}), "b"},
		{"all of A full falls to B", farmOf([4]int{up, 100, 0, 100}, [4]int{up, 7, 1, 10}), "b"},
		{"nothing up", farmOf([4]int{down, 0, 0, 0}, [4]int{draining, 3, 0, 0}, [4]int{up, 5, 0, 5}), ""},
		{"empty list", &List{}, ""},
	}
	for _, name := range PolicyNames() {
		for _, tt := range tests {
			t.Run(name+"/"+tt.name, func(t *testing.T) {
				pol, err := NewPolicy(name)
				if err != nil {
					t.Fatal(err)
				}
				r := rand.New(rand.NewPCG(1, 2))
				allowed := map[string]bool{}
				for _, n := range strings.Fields(tt.allowed) {
					allowed[n] = true
				}
				for range 500 {
					s, err := pol.Pick(tt.list, r)
					if tt.allowed == "" {
						var nse *NoServerError
						if !errors.Is(err, ErrNoServer) || !errors.As(err, &nse) {
							t.Fatalf("err = %v, want ErrNoServer", err)
						}
						return
					}
					if err != nil {
						t.Fatal(err)
					}
					if !allowed[s.Name] {
						t.Fatalf("picked %s, allowed %q", s.Name, tt.allowed)
					}
				}
				if pr, ok := pol.(Prober); ok {
					p, err := pr.Probabilities(tt.list)
					if err != nil {
						t.Fatal(err)
					}
					var sum float64
					for i, v := range p {
						if v < 0 || (v > 0 && !allowed[tt.list.Servers[i].Name]) {
							t.Errorf("p[%d] = %v", i, v)
						}
						sum += v
					}
					if math.Abs(sum-1) > 1e-9 {
						t.Errorf("probabilities sum to %v", sum)
					}
				}
			})
		}
	}
}

// TestPickMatchesProbabilities checks, with a fixed seed, that each Prober's
// Pick draws according to its own Probabilities.
func TestPickMatchesProbabilities(t *testing.T) {
	l := farmOf([4]int{up, 100, 0, 0}, [4]int{up, 300, 0, 0}, [4]int{up, 600, 0, 0}, [4]int{down, 0, 0, 0}, [4]int{up, 0, 1, 0})
	const n = 200000
	for _, name := range PolicyNames() {
		pol, _ := NewPolicy(name)
		pr, ok := pol.(Prober)
		if !ok {
			continue
		}
		t.Run(name, func(t *testing.T) {
			want, err := pr.Probabilities(l)
			if err != nil {
				t.Fatal(err)
			}
			r := rand.New(rand.NewPCG(7, 7))
			counts := map[string]float64{}
			for range n {
				s, err := pol.Pick(l, r)
				if err != nil {
					t.Fatal(err)
				}
				counts[s.Name]++
			}
			for i, s := range l.Servers {
				got := counts[s.Name] / n
				// 5 standard deviations of a binomial proportion.
				tol := 5*math.Sqrt(want[i]*(1-want[i])/n) + 1e-9
				if math.Abs(got-want[i]) > tol {
					t.Errorf("%s: picked %.4f of the time, want %.4f", s.Name, got, want[i])
				}
			}
		})
	}
}

func TestSeedRepeats(t *testing.T) {
	l := patentList()
	for _, name := range PolicyNames() {
		a, _ := NewPolicy(name)
		b, _ := NewPolicy(name)
		ra, rb := rand.New(rand.NewPCG(3, 4)), rand.New(rand.NewPCG(3, 4))
		for i := range 100 {
			x, _ := a.Pick(l, ra)
			y, _ := b.Pick(l, rb)
			if x.Name != y.Name {
				t.Fatalf("%s: pick %d differs with the same seed: %s, %s", name, i, x.Name, y.Name)
			}
		}
	}
}

func TestP2CPrefersLighter(t *testing.T) {
	l := farmOf([4]int{up, 10, 0, 0}, [4]int{up, 1000, 0, 0})
	r := rand.New(rand.NewPCG(1, 1))
	for range 100 {
		if s, _ := (P2C{}).Pick(l, r); s.Name != "a" {
			t.Fatalf("p2c picked the heavier of two servers")
		}
	}
}

func TestRoundRobinTakesTurns(t *testing.T) {
	l := farmOf([4]int{up, 10, 0, 0}, [4]int{down, 0, 0, 0}, [4]int{up, 1000, 0, 0})
	rr := &RoundRobin{}
	var got string
	for range 4 {
		s, _ := rr.Pick(l, nil)
		got += s.Name
	}
	if got != "acac" {
		t.Errorf("turns %q, want acac", got)
	}
}

func TestNewPolicyUnknown(t *testing.T) {
	if _, err := NewPolicy("fastest"); err == nil {
		t.Fatal("unknown policy accepted")
	}
	p, err := NewPolicy("")
	if err != nil || p.Name() != DefaultPolicy {
		t.Fatalf("default: %v %v", p, err)
	}
}
