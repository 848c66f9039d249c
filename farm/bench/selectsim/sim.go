package main

import (
	"fmt"
	"math/rand/v2"

	"github.com/farmlb/farmlb/farm"
)

// coldFill is the number of clients of scenario 1.
const coldFill = 10000

// maxArrivals caps scenario 2a: random needs 19× the farm's population to
// bring an empty server to 95% with arrivals alone (it never catches up in
// users, only in ratio), 170,000 arrivals for 10 servers and 930,000 for 50;
// inverse-share needs nearly as many. The cap keeps the whole benchmark
// within a minute; a capped figure is printed as "> 300,000".
const maxArrivals = 300_000

// maxTurnovers caps scenario 2b.
const maxTurnovers = 50

// info says which farm list an arriving client decides on.
type info int

const (
	fresh   info = iota // the loads as they are at that moment
	stale1              // a snapshot refreshed every 10·n arrivals (1% of n × 1000)
	stale10             // a snapshot refreshed every 100·n arrivals (10%)
	shared              // one snapshot, taken when the scenario starts, for every client
)

var infos = []info{fresh, stale1, stale10, shared}

func (i info) String() string {
	return [...]string{"fresh", "stale 1%", "stale 10%", "shared"}[i]
}

// interval is how many arrivals share one list: 1 for fresh, 0 for never
// refreshed.
func (i info) interval(n int) int {
	switch i {
	case fresh:
		return 1
	case stale1:
		return 10 * n
	case stale10:
		return 100 * n
	}
	return 0
}

// sim is one farm of n servers and the clients arriving on it.
type sim struct {
	pol   farm.Policy
	r     *rand.Rand
	users []int
	total int
	live  *farm.List // the farm as it is; Users kept equal to users
	view  *farm.List // the list clients decide on (live itself when fresh)
	every int        // arrivals per list: 1 fresh, 0 never refreshed
	since int        // arrivals on the current view
	// cum holds the cumulative probabilities of view when the policy has a
	// closed form, so that a stale list costs one computation per refresh.
	prober farm.Prober
	cum    []float64
	index  map[string]int
	// perServer is the steady population of one server in scenarios 2, 3
	// and 4 ("a farm of 10 × 1000 users").
	perServer int
}

func newSim(pol farm.Policy, n, perServer int, mode info, r *rand.Rand) *sim {
	s := &sim{pol: pol, r: r, users: make([]int, n), perServer: perServer, every: mode.interval(n), index: make(map[string]int, n)}
	s.live = &farm.List{Service: "sim.farmlb.test"}
	for i := range n {
		name := fmt.Sprintf("s%02d", i)
		s.live.Servers = append(s.live.Servers, farm.Server{
			Name: name, URL: "http://" + name + ".sim.farmlb.test", Status: farm.StatusUp, Priority: farm.PriorityHighest,
		})
		s.index[name] = i
	}
	// RoundRobin's Probabilities are its long-run shares, not how it picks;
	// it must go through Pick.
	if p, ok := pol.(farm.Prober); ok && pol.Name() != "round-robin" {
		s.prober = p
	}
	s.view = s.live
	return s
}

// set gives server i u users.
func (s *sim) set(i, u int) {
	s.total += u - s.users[i]
	s.users[i] = u
	s.live.Servers[i].Users = u
}

// down marks server i DOWN on the live list.
func (s *sim) down(i int) { s.live.Servers[i].Status = farm.StatusDown }

// start begins a scenario: clients decide from now on on a snapshot of the
// live list, refreshed as the info mode says (fresh: the live list itself).
func (s *sim) start() error {
	if s.every == 1 {
		s.view = s.live
		return nil
	}
	return s.refresh()
}

// startFrom is start with a first snapshot that shows the given list
// instead of the live one: the list from the moment before an event.
func (s *sim) startFrom(before *farm.List) error {
	if s.every == 1 {
		s.view = s.live
		return nil
	}
	s.view = before.Clone()
	s.since = 0
	return s.cache()
}

func (s *sim) refresh() error {
	s.view = s.live.Clone()
	s.since = 0
	return s.cache()
}

func (s *sim) cache() error {
	if s.prober == nil {
		s.cum = nil
		return nil
	}
	p, err := s.prober.Probabilities(s.view)
	if err != nil {
		return err
	}
	s.cum = s.cum[:0]
	var c float64
	for _, x := range p {
		c += x
		s.cum = append(s.cum, c)
	}
	return nil
}

// intervalDone reports whether every client of the current list has arrived.
func (s *sim) intervalDone() bool { return s.every == 1 || (s.every > 1 && s.since >= s.every) }

// arrive places one client.
func (s *sim) arrive() error {
	if s.every > 1 && s.since >= s.every {
		if err := s.refresh(); err != nil {
			return err
		}
	}
	s.since++
	var i int
	if s.prober != nil {
		if s.view == s.live { // fresh: the loads changed since the last arrival
			if err := s.cache(); err != nil {
				return err
			}
		}
		x := s.r.Float64() * s.cum[len(s.cum)-1]
		for i = 0; i < len(s.cum)-1 && x >= s.cum[i]; i++ {
		}
		for s.view.Servers[i].Status != farm.StatusUp { // rounding onto a zero-probability tail
			i--
		}
	} else {
		srv, err := s.pol.Pick(s.view, s.r)
		if err != nil {
			return err
		}
		i = s.index[srv.Name]
	}
	s.set(i, s.users[i]+1)
	return nil
}

// arriveAll places n clients and returns the spread they leave
// (maxOverMean).
func (s *sim) arriveAll(n int) (float64, error) {
	for range n {
		if err := s.arrive(); err != nil {
			return 0, err
		}
	}
	return s.maxOverMean(), nil
}

// depart removes one client, every connected client equally likely.
func (s *sim) depart() {
	x := s.r.IntN(s.total)
	for i, u := range s.users {
		if x < u {
			s.set(i, u-1)
			return
		}
		x -= u
	}
}

// maxOverMean is the largest load over the mean, among the servers not DOWN.
func (s *sim) maxOverMean() float64 {
	most, sum, k := 0, 0, 0
	for i, u := range s.users {
		if s.live.Servers[i].Status == farm.StatusDown {
			continue
		}
		most = max(most, u)
		sum += u
		k++
	}
	if sum == 0 {
		return 0
	}
	return float64(most) * float64(k) / float64(sum)
}

// steadyFarm returns the loads of n servers with perServer users each on
// average, spread as uniform random arrivals and departures leave them
// (each server's count is Binomial(n·perServer, 1/n), standard deviation
// about √1000 ≈ 32 for 1000): the farm "before" scenarios 2, 3 and 4. It
// depends on the seed, n and perServer only, so every policy and info mode
// starts from the same farm.
func steadyFarm(n, perServer int, r *rand.Rand) []int {
	u := make([]int, n)
	for range n * perServer {
		u[r.IntN(n)]++
	}
	return u
}

// result is what one run of every scenario measured; capped values are
// flagged. Scenario 2 is not run on shared lists (see BENCHMARKS.md).
type result struct {
	cold      float64 // 1: max/mean after the cold fill
	refill    float64 // 2a: arrivals until the restarted server holds 95% of the mean
	refillCap bool
	lands     float64 // 2a: restarted/mean once the clients of that last list have arrived
	turnovers float64 // 2b: departures / (n·1000) until 95%
	turnCap   bool
	dies      float64 // 3: max/mean over the survivors
	reconnect float64 // 4: max/mean
}

// newPolicy returns a fresh instance per scenario: round-robin's counter
// must not carry over from one scenario to the next.
type policyMaker func() farm.Policy

// runAll runs the four scenarios for one policy, farm size, info mode and
// seed.
func runAll(mk policyMaker, n, perServer int, mode info, seed uint64) (result, error) {
	var res result
	pre := steadyFarm(n, perServer, rand.New(rand.NewPCG(seed, uint64(n)<<32|uint64(perServer))))
	rng := func(scenario uint64) *rand.Rand {
		return rand.New(rand.NewPCG(seed, uint64(n)<<16|uint64(mode)<<8|scenario))
	}
	var err error
	if res.cold, err = scenarioCold(newSim(mk(), n, perServer, mode, rng(1))); err != nil {
		return res, fmt.Errorf("scenario 1: %w", err)
	}
	if mode != shared {
		if res.refill, res.lands, res.refillCap, err = scenarioRefill(newSim(mk(), n, perServer, mode, rng(2)), pre); err != nil {
			return res, fmt.Errorf("scenario 2a: %w", err)
		}
		if res.turnovers, res.turnCap, err = scenarioChurn(newSim(mk(), n, perServer, mode, rng(3)), pre); err != nil {
			return res, fmt.Errorf("scenario 2b: %w", err)
		}
	}
	if res.dies, err = scenarioDies(newSim(mk(), n, perServer, mode, rng(4)), pre); err != nil {
		return res, fmt.Errorf("scenario 3: %w", err)
	}
	if res.reconnect, err = scenarioReconnect(newSim(mk(), n, perServer, mode, rng(5)), pre); err != nil {
		return res, fmt.Errorf("scenario 4: %w", err)
	}
	return res, nil
}

// scenarioCold: 10,000 clients arrive on an empty farm.
func scenarioCold(s *sim) (float64, error) {
	if err := s.start(); err != nil {
		return 0, err
	}
	return s.arriveAll(coldFill)
}

// reached reports whether server 0 holds 95% of the mean load.
func (s *sim) reached() bool {
	return float64(s.users[0]) >= 0.95*float64(s.total)/float64(len(s.users))
}

// scenarioRefill (2a): server 0 restarts empty in the steady farm; clients
// only arrive. It returns the arrivals until server 0 holds 95% of the mean,
// and where server 0 stands (over the mean) once every client that decided
// on that last list has arrived.
func scenarioRefill(s *sim, pre []int) (arrivals, lands float64, capped bool, err error) {
	for i, u := range pre {
		s.set(i, u)
	}
	s.set(0, 0)
	if err := s.start(); err != nil {
		return 0, 0, false, err
	}
	k := 0
	for ; !s.reached(); k++ {
		if k == maxArrivals {
			return float64(k), float64(s.users[0]) * float64(len(s.users)) / float64(s.total), true, nil
		}
		if err := s.arrive(); err != nil {
			return 0, 0, false, err
		}
	}
	for !s.intervalDone() {
		if err := s.arrive(); err != nil {
			return 0, 0, false, err
		}
	}
	return float64(k), float64(s.users[0]) * float64(len(s.users)) / float64(s.total), false, nil
}

// scenarioChurn (2b): as 2a, but every arrival is followed by a departure
// (equal rates, population constant on average). It returns the departures
// until server 0 holds 95% of the mean, in turnovers of the population.
func scenarioChurn(s *sim, pre []int) (float64, bool, error) {
	for i, u := range pre {
		s.set(i, u)
	}
	s.set(0, 0)
	if err := s.start(); err != nil {
		return 0, false, err
	}
	pop := float64(len(s.users) * s.perServer)
	limit := int(maxTurnovers * pop)
	departures := 0
	for !s.reached() {
		if departures == limit {
			return maxTurnovers, true, nil
		}
		if err := s.arrive(); err != nil {
			return 0, false, err
		}
		if s.reached() {
			break
		}
		s.depart()
		departures++
	}
	return float64(departures) / pop, false, nil
}

// scenarioDies (3): server 0 dies; its users reconnect at once. The first
// list they decide on is the one from the moment before, with server 0
// DOWN (a client leaves out the server that failed it).
func scenarioDies(s *sim, pre []int) (float64, error) {
	for i, u := range pre {
		s.set(i, u)
	}
	before := s.live.Clone()
	before.Servers[0].Status = farm.StatusDown
	orphans := s.users[0]
	s.set(0, 0)
	s.down(0)
	if err := s.startFrom(before); err != nil {
		return 0, err
	}
	return s.arriveAll(orphans)
}

// scenarioReconnect (4): every client of the steady farm drops and
// reconnects at once; the first list is the one from the moment before.
func scenarioReconnect(s *sim, pre []int) (float64, error) {
	for i, u := range pre {
		s.set(i, u)
	}
	before := s.live.Clone()
	clients := s.total
	for i := range pre {
		s.set(i, 0)
	}
	if err := s.startFrom(before); err != nil {
		return 0, err
	}
	return s.arriveAll(clients)
}
