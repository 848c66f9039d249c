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
// empty server takes most new clients until it is within noise of the
// others; with thousands of users per server it refills about as fast as
// with least-loaded), and spreads them
// evenly when the loads differ only by the noise that random arrivals and
// departures make, so that many clients deciding on one stale list do not
// herd onto the server that happened to be the lightest when it was taken.
//
// With u_i the load of candidate i (its users, scaled by capacity when every
// candidate has one) and n the number of candidates:
//
//	ref_i = median of the other candidates' loads     what i is compared with
//	σ_i   = max(1.4826·MAD of the others, √ref_i, 1)   their noise
//	        × √(1 + π/2(n−1))                          and that of their median
//	band  = max(GapFillBandMin, Φ⁻¹(1 − 1/2n))         noise depth, in σ
//	g_i   = ref_i − u_i − band·σ_i                     how far i lies beyond it
//	w_i   = 1 + min(GapFillKnee·(g_i/σ_i)^GapFillPower, g_i/(GapFillBatch·ref_i))   if g_i > 0
//	w_i   = 1                                          otherwise
//	p_i   = w_i / Σ w
//
// Comparing each server with the others (not with a median that includes
// it) keeps a two-server farm working: there the restarted server is its own
// group's median absolute deviation. The knee term makes the steering fade
// in smoothly just past the noise band, where a dip may still be noise; the
// batch term bounds it far past the band, where a server is certainly short,
// so that the clients of one stale list fill the gap rather than pile onto
// it. BENCHMARKS.md ("Selection policies") has the figures behind every
// constant, and the trade-off they make.
type GapFill struct{}

// The constants of GapFill; each was chosen with `make bench-select`.
const (
	// GapFillBandMin is the narrowest noise band, in standard deviations of
	// the others' loads. The band is otherwise Φ⁻¹(1 − 1/2n), about as deep
	// as the lowest of n servers dips below the rest when their loads differ
	// only by noise (1.64σ for 10 servers, 2.33σ for 50); for two servers
	// that would be 0.67σ, too narrow to tell noise from a real gap.
	GapFillBandMin = 1.2
	// GapFillKnee and GapFillPower shape the steering just past the band:
	// a server z standard deviations beyond it gains the weight
	// GapFillKnee·z^GapFillPower (every server has 1). The fourth power
	// keeps the dips that noise makes now and then light (z = 0.5 gains
	// 1/8), so that a whole farm reconnecting on one list stays within 1.1
	// of the mean, while a server 2σ beyond the band already weighs as
	// much as 32 others. Over 16 seeds, a knee of 4 refilled a server among
	// 10 about a tenth faster but a farm of 50 reconnecting on one list
	// reached 1.15 ± 0.26 of the mean (knee 2: 1.11 ± 0.12); a knee of 1
	// was a tenth slower for 1.09 ± 0.06.
	GapFillKnee  = 2.0
	GapFillPower = 4.0
	// GapFillBatch bounds the steering far past the band: a server g users
	// short gains at most g/(GapFillBatch·ref) — as if GapFillBatch of each
	// server's load (1%, so 10 clients per server of 1000) decided on one
	// list. Smaller refills faster with fresh lists but sends more clients
	// of one stale list to the same server; 2% took a third longer to
	// refill a server among 10 and overfilled one among 50 on 10%-stale
	// lists by 2.3× the mean instead of 3× (least-loaded: 5×).
	GapFillBatch = 0.01
)

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
	n := len(idx)
	loads := effectiveLoads(l, idx)
	sorted := slices.Clone(loads)
	sort.Float64s(sorted)
	band := gapFillBand(n)
	// The median of n−1 noisy loads is itself off by about σ·√(π/2(n−1)):
	// for two servers the reference is one noisy server, not a group.
	refNoise := math.Sqrt(1 + math.Pi/(2*float64(max(n-1, 1))))
	w := make([]float64, n)
	var sum float64
	var dev []float64
	for k, u := range loads {
		w[k] = 1
		if n > 1 {
			// The others, in order: sorted without one element equal to u.
			pos := sort.SearchFloat64s(sorted, u)
			other := func(j int) float64 {
				if j >= pos {
					return sorted[j+1]
				}
				return sorted[j]
			}
			m := n - 1
			ref := other(m / 2)
			if m%2 == 0 {
				ref = (other(m/2-1) + other(m/2)) / 2
			}
			// σ ≥ √ref, so most servers are ruled out before the others'
			// deviations need sorting.
			if ref-u > band*max(math.Sqrt(ref), 1)*refNoise {
				dev = dev[:0]
				for j := range m {
					dev = append(dev, math.Abs(other(j)-ref))
				}
				sort.Float64s(dev)
				sigma := max(1.4826*median(dev), math.Sqrt(ref), 1) * refNoise
				if g := ref - u - band*sigma; g > 0 {
					w[k] += min(GapFillKnee*math.Pow(g/sigma, GapFillPower), g/(GapFillBatch*max(ref, 1)))
				}
			}
		}
		sum += w[k]
	}
	p := make([]float64, len(l.Servers))
	for k, i := range idx {
		p[i] = w[k] / sum
	}
	return p, nil
}

// gapFillBand is GapFill's noise band for n candidates, in standard
// deviations: max(GapFillBandMin, Φ⁻¹(1 − 1/2n)), the normal quantile by
// Abramowitz and Stegun 26.2.23 (error below 4.5·10⁻⁴, far finer than a noise
// band needs; simple enough for farmlb.js to compute the same number).
func gapFillBand(n int) float64 {
	t := math.Sqrt(-2 * math.Log(1/(2*float64(n))))
	q := t - (2.515517+0.802853*t+0.010328*t*t)/(1+1.432788*t+0.189269*t*t+0.001308*t*t*t)
	return max(GapFillBandMin, q)
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
