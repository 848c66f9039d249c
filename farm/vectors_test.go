package farm

import (
	"encoding/json"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"testing"
)

// The policy vectors are shared with farmlb.js (webclient/): for each list
// and policy, the probabilities and the servers picked for a given sequence
// of uniform random numbers. Go writes them (go test -update) and checks
// them; the JavaScript tests check farmlb.js against the same file.

// replay is a rand.Source that makes r.Float64() return the given numbers in
// turn (each a multiple of 2^-53, as every float64 in [0,1) from Float64 is).
type replay struct {
	u []float64
	i int
}

func (s *replay) Uint64() uint64 {
	v := s.u[s.i%len(s.u)]
	s.i++
	return uint64(v * (1 << 53))
}

type vectorCase struct {
	Name          string          `json:"name"`
	Policy        string          `json:"policy"`
	List          json.RawMessage `json:"list"`
	Uniforms      []float64       `json:"uniforms"`
	Probabilities []float64       `json:"probabilities,omitempty"`
	Picks         []string        `json:"picks"` // "" when the list offers no server
}

func vectorLists() map[string]*List {
	return map[string]*List{
		"patent":      patentList(),
		"groups":      farmOf([4]int{down, 0, 0, 0}, [4]int{up, 500, 1, 0}, [4]int{up, 10, 1, 0}, [4]int{up, 0, 2, 0}),
		"restarted":   farmOf([4]int{up, 1000, 0, 0}, [4]int{up, 990, 0, 0}, [4]int{up, 1012, 0, 0}, [4]int{up, 0, 0, 0}, [4]int{up, 1003, 0, 0}),
		"capacity":    farmOf([4]int{up, 100, 0, 100}, [4]int{up, 50, 0, 200}, [4]int{up, 30, 0, 100}, [4]int{draining, 1, 0, 0}),
		"ties":        farmOf([4]int{up, 7, 0, 0}, [4]int{up, 7, 0, 0}, [4]int{up, 9, 0, 0}),
		"none up":     farmOf([4]int{down, 0, 0, 0}, [4]int{draining, 3, 0, 0}),
		"single":      farmOf([4]int{up, 42, 3, 0}),
		"all zero":    farmOf([4]int{up, 0, 0, 0}, [4]int{up, 0, 0, 0}, [4]int{up, 0, 0, 0}),
		"big uneven":  farmOf([4]int{up, 5000, 0, 0}, [4]int{up, 20, 0, 0}, [4]int{up, 2500, 0, 0}, [4]int{up, 2480, 0, 0}),
		"one of many": bigList(30),
	}
}

var vectorUniforms = []float64{0, 1023.0 / 1024, 0.5, 0.25, 0.75, 102.0 / 1024, 922.0 / 1024, 341.0 / 1024, 683.0 / 1024, 0.0625, 0.875, 511.0 / 1024}

func makeVectors(t *testing.T) []vectorCase {
	lists := vectorLists()
	names := make([]string, 0, len(lists))
	for n := range lists {
		names = append(names, n)
	}
	sort.Strings(names)
	var out []vectorCase
	for _, ln := range names {
		l := lists[ln]
		js, err := json.Marshal(l)
		if err != nil {
			t.Fatal(err)
		}
		for _, pn := range PolicyNames() {
			pol, _ := NewPolicy(pn)
			vc := vectorCase{Name: ln, Policy: pn, List: js, Uniforms: vectorUniforms}
			if pr, ok := pol.(Prober); ok {
				if p, err := pr.Probabilities(l); err == nil {
					vc.Probabilities = p
				}
			}
			r := rand.New(&replay{u: vectorUniforms})
			for range 8 {
				s, err := pol.Pick(l, r)
				if err != nil {
					s.Name = ""
				}
				vc.Picks = append(vc.Picks, s.Name)
			}
			out = append(out, vc)
		}
	}
	return out
}

func TestPolicyVectors(t *testing.T) {
	got := makeVectors(t)
	path := filepath.Join("..", "testdata", "policy-vectors.json")
	if *update {
		b, err := json.MarshalIndent(got, "", " ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var want []vectorCase
	if err := json.Unmarshal(b, &want); err != nil {
		t.Fatal(err)
	}
	if len(want) != len(got) {
		t.Fatalf("%s has %d cases, the policies give %d (go test -update rewrites it)", path, len(want), len(got))
	}
	for i := range got {
		g, w := got[i], want[i]
		g.List, w.List = nil, nil
		if !reflect.DeepEqual(g, w) {
			t.Errorf("%s/%s: policies give\n%+v\nthe vectors say\n%+v", got[i].Name, got[i].Policy, g, w)
		}
	}
}
