package farm

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
)

// ErrNoServer is matched (with errors.Is) by the error every policy returns
// when the list has no server a client may pick.
var ErrNoServer = errors.New("no UP server with room in the farm list")

// NoServerError says why a list offered nothing to pick. errors.Is(err,
// ErrNoServer) is true for it.
type NoServerError struct {
	Servers, Down, Draining, Full int
}

func (e *NoServerError) Error() string {
	return fmt.Sprintf("%v (%d servers: %d down, %d draining, %d full)", ErrNoServer, e.Servers, e.Down, e.Draining, e.Full)
}

// Is makes errors.Is(err, ErrNoServer) true.
func (e *NoServerError) Is(target error) bool { return target == ErrNoServer }

// Candidates returns the indexes (into l.Servers) of the servers a client may
// choose between: the eligible (UP, not full) servers of the highest priority
// group that has one. It returns a *NoServerError when there are none.
func Candidates(l *List) ([]int, error) {
	best := Priority(255)
	for _, s := range l.Servers {
		if s.Eligible() && s.Priority < best {
			best = s.Priority
		}
	}
	var idx []int
	for i, s := range l.Servers {
		if s.Eligible() && s.Priority == best {
			idx = append(idx, i)
		}
	}
	if len(idx) == 0 {
		e := &NoServerError{Servers: len(l.Servers)}
		for _, s := range l.Servers {
			switch {
			case s.Status == StatusDown:
				e.Down++
			case s.Status == StatusDraining:
				e.Draining++
			case s.Full():
				e.Full++
			}
		}
		return nil, e
	}
	return idx, nil
}

// Policy chooses a server from a farm list. Pick never returns a DOWN,
// DRAINING or full server, and only returns a server of the highest priority
// group that has an eligible one. Randomness comes from r, so a seeded r
// repeats its choices. Implementations are safe for concurrent use when
// each goroutine passes its own r.
type Policy interface {
	Name() string
	Pick(l *List, r *rand.Rand) (Server, error)
}

// Prober is implemented by policies whose choice probabilities have a closed
// form. Probabilities returns one probability per server of l.Servers, in
// that order; ineligible servers get 0.
type Prober interface {
	Probabilities(l *List) ([]float64, error)
}

// DefaultPolicy is the name of the policy clients use unless told otherwise.
const DefaultPolicy = "gap-fill"

// PolicyNames lists the policies NewPolicy knows, the default first.
func PolicyNames() []string {
	return []string{DefaultPolicy, "inverse-share", "random", "round-robin", "p2c", "least-loaded"}
}

// NewPolicy returns the named policy; "" gives the default.
func NewPolicy(name string) (Policy, error) {
	switch strings.ToLower(name) {
	case "", DefaultPolicy:
		return GapFill{}, nil
	case "inverse-share":
		return InverseShare{}, nil
	case "random":
		return Random{}, nil
	case "round-robin":
		return &RoundRobin{}, nil
	case "p2c":
		return P2C{}, nil
	case "least-loaded":
		return LeastLoaded{}, nil
	}
	return nil, fmt.Errorf("unknown policy %q (want one of %s)", name, strings.Join(PolicyNames(), ", "))
}

// pickWeighted picks among the servers with the given weights (parallel to
// l.Servers); it falls back to uniform among idx when every weight is zero.
func pickWeighted(l *List, idx []int, w []float64, r *rand.Rand) Server {
	var sum float64
	for _, i := range idx {
		sum += w[i]
	}
	if !(sum > 0) {
		return l.Servers[idx[randIndex(r, len(idx))]]
	}
	x := r.Float64() * sum
	for _, i := range idx {
		x -= w[i]
		if x < 0 {
			return l.Servers[i]
		}
	}
	return l.Servers[idx[len(idx)-1]] // rounding
}

func pickByProbabilities(p Prober, l *List, r *rand.Rand) (Server, error) {
	idx, err := Candidates(l)
	if err != nil {
		return Server{}, err
	}
	w, err := p.Probabilities(l)
	if err != nil {
		return Server{}, err
	}
	return pickWeighted(l, idx, w, r), nil
}

// randIndex returns a random index below n. Every policy draws its
// randomness as r.Float64() values, one at a time, so that another
// implementation (farmlb.js) given the same numbers makes the same choice;
// testdata/policy-vectors.json holds the shared cases.
func randIndex(r *rand.Rand, n int) int {
	return min(int(r.Float64()*float64(n)), n-1)
}

// InverseShare is the patent's method: within the best group, server i is
// picked with probability p_i = (1 − u_i/U) / (n − 1), where u_i is its
// users, U their sum and n the number of candidates; n = 1 gives that server
// and U = 0 gives uniform.
type InverseShare struct{}

// Name implements Policy.
func (InverseShare) Name() string { return "inverse-share" }

// Pick implements Policy.
func (p InverseShare) Pick(l *List, r *rand.Rand) (Server, error) {
	return pickByProbabilities(p, l, r)
}

// Probabilities implements Prober.
func (InverseShare) Probabilities(l *List) ([]float64, error) {
	idx, err := Candidates(l)
	if err != nil {
		return nil, err
	}
	p := make([]float64, len(l.Servers))
	n := float64(len(idx))
	var total float64
	for _, i := range idx {
		total += float64(l.Servers[i].Users)
	}
	for _, i := range idx {
		switch {
		case len(idx) == 1:
			p[i] = 1
		case total == 0:
			p[i] = 1 / n
		default:
			p[i] = (1 - float64(l.Servers[i].Users)/total) / (n - 1)
		}
	}
	return p, nil
}

// Random picks uniformly among the candidates.
type Random struct{}

// Name implements Policy.
func (Random) Name() string { return "random" }

// Pick implements Policy.
func (p Random) Pick(l *List, r *rand.Rand) (Server, error) { return pickByProbabilities(p, l, r) }

// Probabilities implements Prober.
func (Random) Probabilities(l *List) ([]float64, error) {
	idx, err := Candidates(l)
	if err != nil {
		return nil, err
	}
	p := make([]float64, len(l.Servers))
	for _, i := range idx {
		p[i] = 1 / float64(len(idx))
	}
	return p, nil
}

// RoundRobin takes the candidates in turn. Its state is a counter, so one
// RoundRobin shared by many goroutines still takes each in turn.
type RoundRobin struct{ next atomic.Uint64 }

// Name implements Policy.
func (*RoundRobin) Name() string { return "round-robin" }

// Pick implements Policy; r is not used.
func (p *RoundRobin) Pick(l *List, _ *rand.Rand) (Server, error) {
	idx, err := Candidates(l)
	if err != nil {
		return Server{}, err
	}
	n := p.next.Add(1) - 1
	return l.Servers[idx[n%uint64(len(idx))]], nil
}

// Probabilities implements Prober: over many picks each candidate gets an
// equal share.
func (*RoundRobin) Probabilities(l *List) ([]float64, error) { return Random{}.Probabilities(l) }

// P2C is the power of two choices: draw two distinct candidates at random
// and take the one with fewer users (either, at random, on a tie).
type P2C struct{}

// Name implements Policy.
func (P2C) Name() string { return "p2c" }

// Pick implements Policy.
func (P2C) Pick(l *List, r *rand.Rand) (Server, error) {
	idx, err := Candidates(l)
	if err != nil {
		return Server{}, err
	}
	if len(idx) == 1 {
		return l.Servers[idx[0]], nil
	}
	a := randIndex(r, len(idx))
	b := randIndex(r, len(idx)-1)
	if b >= a {
		b++
	}
	sa, sb := l.Servers[idx[a]], l.Servers[idx[b]]
	switch {
	case sa.Users < sb.Users:
		return sa, nil
	case sb.Users < sa.Users:
		return sb, nil
	case r.Float64() < 0.5:
		return sa, nil
	}
	return sb, nil
}

// LeastLoaded takes the candidate with the fewest users (at random among
// ties). It refills an empty server fastest and herds worst: every client
// that decides on the same list goes to the same server.
type LeastLoaded struct{}

// Name implements Policy.
func (LeastLoaded) Name() string { return "least-loaded" }

// Pick implements Policy.
func (p LeastLoaded) Pick(l *List, r *rand.Rand) (Server, error) { return pickByProbabilities(p, l, r) }

// Probabilities implements Prober.
func (LeastLoaded) Probabilities(l *List) ([]float64, error) {
	idx, err := Candidates(l)
	if err != nil {
		return nil, err
	}
	least := math.MaxInt
	for _, i := range idx {
		least = min(least, l.Servers[i].Users)
	}
	var tied []int
	for _, i := range idx {
		if l.Servers[i].Users == least {
			tied = append(tied, i)
		}
	}
	p := make([]float64, len(l.Servers))
	for _, i := range tied {
		p[i] = 1 / float64(len(tied))
	}
	return p, nil
}

// GapFill is farmlb's default policy. It steers new clients hard towards a
// server whose load lies clearly below the rest of its group (a restarted,
// empty server refills about as fast as with least-loaded), and spreads them
// evenly when the loads differ only by the noise that random arrivals and
// departures make (so that many clients deciding on one stale list do not
// herd onto the server that happened to be lightest).
//
// With u_i the users of candidate i (scaled by capacity when every candidate
// has one), med their median and MAD their median absolute deviation:
//
//	band  = max(3.7·MAD, √med)          loads inside it are noise
//	gap_i = max(0, med − u_i − band)    how far i is clearly below the rest
//	w_i   = GapFillBase·max(mean, 1) + gap_i
//	p_i   = w_i / Σ w
//
// See BENCHMARKS.md for how it compares with the other policies.
type GapFill struct{}

// GapFillBase is the share of the mean load every candidate gets as a floor
// weight. Smaller refills faster but leans harder on a single list.
const GapFillBase = 0.02

// Name implements Policy.
func (GapFill) Name() string { return DefaultPolicy }

// Pick implements Policy.
func (p GapFill) Pick(l *List, r *rand.Rand) (Server, error) { return pickByProbabilities(p, l, r) }

// Probabilities implements Prober.
func (GapFill) Probabilities(l *List) ([]float64, error) {
	idx, err := Candidates(l)
	if err != nil {
		return nil, err
	}
	loads := effectiveLoads(l, idx)
	sorted := slices.Clone(loads)
	sort.Float64s(sorted)
	med := median(sorted)
	dev := make([]float64, len(sorted))
	var mean float64
	for i, u := range sorted {
		dev[i] = math.Abs(u - med)
		mean += u
	}
	mean /= float64(len(sorted))
	sort.Float64s(dev)
	band := max(3.7*median(dev), math.Sqrt(med))
	base := GapFillBase * max(mean, 1)
	p := make([]float64, len(l.Servers))
	var sum float64
	for k, i := range idx {
		w := base + max(0, med-loads[k]-band)
		p[i] = w
		sum += w
	}
	for _, i := range idx {
		p[i] /= sum
	}
	return p, nil
}

// effectiveLoads returns the candidates' loads, parallel to idx: their users,
// or, when every candidate states a capacity, their users scaled to the mean
// capacity so that a bigger server counts as less loaded.
func effectiveLoads(l *List, idx []int) []float64 {
	out := make([]float64, len(idx))
	var capSum float64
	allCap := true
	for k, i := range idx {
		s := l.Servers[i]
		out[k] = float64(s.Users)
		capSum += float64(s.Capacity)
		allCap = allCap && s.Capacity > 0
	}
	if allCap {
		meanCap := capSum / float64(len(idx))
		for k, i := range idx {
			out[k] *= meanCap / float64(l.Servers[i].Capacity)
		}
	}
	return out
}

func median(sorted []float64) float64 {
	n := len(sorted)
	if n%2 == 1 {
		return sorted[n/2]
	}
	return (sorted[n/2-1] + sorted[n/2]) / 2
}
