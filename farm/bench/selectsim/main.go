// Command selectsim is the balance benchmark of farmlb's selection policies
// (`make bench-select`). It simulates clients arriving on and leaving a farm
// of n servers, each client picking a server with a policy of package farm
// from a farm list that is fresh, stale, or one list shared by everyone, and
// prints, for every policy, a markdown table of four scenarios:
//
//  1. cold fill: 10,000 clients arrive on an empty farm; max/mean users.
//  2. one server restarts empty in a steady farm of n × 1000 users:
//     (a) clients only arrive: arrivals until it holds 95% of the mean;
//     (b) clients arrive and leave at equal rates: the same, in turnovers
//     of the population.
//  3. one server dies and its users reconnect at once, all deciding on the
//     list from the moment before (the dead server left out); max/mean.
//  4. every client of the farm reconnects at once; max/mean.
//
// Every figure is the mean over several seeds, with the standard deviation;
// a seed gives the same figures on every run. Progress goes to stderr.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/farmlb/farmlb/farm"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

type options struct {
	seeds    int
	seed     uint64
	sizes    []int
	policies []string
	workers  int
	users    int
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("selectsim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o options
	var sizes, policies string
	fs.IntVar(&o.seeds, "seeds", 5, "number of seeds; every figure is their mean ± standard deviation")
	fs.Uint64Var(&o.seed, "seed", 1, "first seed (seeds are seed, seed+1, ...)")
	fs.StringVar(&sizes, "n", "2,10,50", "farm sizes, comma-separated")
	fs.StringVar(&policies, "policy", strings.Join(farm.PolicyNames(), ","), "policies, comma-separated")
	fs.IntVar(&o.users, "users", 1000, "steady users per server in scenarios 2, 3 and 4")
	fs.IntVar(&o.workers, "workers", runtime.GOMAXPROCS(0), "simulations run in parallel")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: selectsim [flags]\n\nThe balance benchmark of farmlb's selection policies; prints markdown tables.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	for _, f := range strings.Split(sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 2 {
			fmt.Fprintf(stderr, "selectsim: -n: %q is not a farm size of 2 or more\n", f)
			return 2
		}
		o.sizes = append(o.sizes, n)
	}
	for _, p := range strings.Split(policies, ",") {
		p = strings.TrimSpace(p)
		if _, err := farm.NewPolicy(p); err != nil {
			fmt.Fprintf(stderr, "selectsim: -policy: %v\n", err)
			return 2
		}
		o.policies = append(o.policies, p)
	}
	if o.seeds < 1 || o.workers < 1 || o.users < 1 {
		fmt.Fprintln(stderr, "selectsim: -seeds, -workers and -users must be at least 1")
		return 2
	}
	tables, err := simulate(o, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "selectsim: %v\n", err)
		return 1
	}
	writeTables(stdout, o, tables)
	return 0
}

type key struct {
	policy string
	n      int
	mode   info
}

type job struct {
	key
	seed uint64
}

// simulate runs every (policy, n, info mode, seed) on o.workers goroutines
// and returns the results by key, in seed order.
func simulate(o options, progress io.Writer) (map[key][]result, error) {
	var jobs []job
	for s := range uint64(o.seeds) {
		for _, n := range o.sizes {
			for _, m := range infos {
				for _, p := range o.policies {
					jobs = append(jobs, job{key{p, n, m}, o.seed + s})
				}
			}
		}
	}
	// The biggest farms first, so that the last jobs are short.
	slices.SortStableFunc(jobs, func(a, b job) int { return b.n - a.n })
	results := make([]result, len(jobs))
	next := make(chan int)
	var (
		mu       sync.Mutex
		done     int
		firstErr error
		wg       sync.WaitGroup
	)
	began := time.Now()
	var shown time.Time
	for range o.workers {
		wg.Go(func() {
			for i := range next {
				j := jobs[i]
				res, err := runAll(func() farm.Policy { p, _ := farm.NewPolicy(j.policy); return p }, j.n, o.users, j.mode, j.seed)
				mu.Lock()
				results[i] = res
				if err != nil && firstErr == nil {
					firstErr = fmt.Errorf("%s, n=%d, %s lists, seed %d: %w", j.policy, j.n, j.mode, j.seed, err)
				}
				done++
				if now := time.Now(); now.Sub(shown) >= 250*time.Millisecond || done == len(jobs) {
					shown = now
					fmt.Fprintf(progress, "\rselectsim: %d/%d runs, %.1f s", done, len(jobs), time.Since(began).Seconds())
				}
				mu.Unlock()
			}
		})
	}
	for i := range jobs {
		next <- i
	}
	close(next)
	wg.Wait()
	fmt.Fprintln(progress)
	if firstErr != nil {
		return nil, firstErr
	}
	out := make(map[key][]result)
	order := make([]int, len(jobs))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return int(jobs[a].seed) - int(jobs[b].seed) })
	for _, i := range order {
		out[jobs[i].key] = append(out[jobs[i].key], results[i])
	}
	return out, nil
}

// stat is the mean and standard deviation of one figure over the seeds;
// capped says a run hit the simulation's limit (the mean is then a lower
// bound).
type stat struct {
	mean, sd float64
	capped   bool
	none     bool
}

func summarize(rs []result, get func(result) (float64, bool)) stat {
	var xs []float64
	var st stat
	for _, r := range rs {
		x, capped := get(r)
		st.capped = st.capped || capped
		xs = append(xs, x)
	}
	if len(xs) == 0 || math.IsNaN(xs[0]) {
		return stat{none: true}
	}
	for _, x := range xs {
		st.mean += x
	}
	st.mean /= float64(len(xs))
	if len(xs) > 1 {
		for _, x := range xs {
			st.sd += (x - st.mean) * (x - st.mean)
		}
		st.sd = math.Sqrt(st.sd / float64(len(xs)-1))
	}
	return st
}

// column is one figure of the tables.
type column struct {
	head   string
	get    func(result, info) (float64, bool)
	format func(stat) string
}

func ratio(s stat) string {
	if s.none {
		return "—"
	}
	return fmt.Sprintf("%.2f ± %.2f", s.mean, s.sd)
}

func count(s stat) string {
	if s.none {
		return "—"
	}
	if s.capped {
		return fmt.Sprintf("> %s", thousands(s.mean))
	}
	return fmt.Sprintf("%s ± %s", thousands(s.mean), thousands(s.sd))
}

func thousands(x float64) string {
	s := strconv.FormatFloat(math.Round(x), 'f', 0, 64)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

func turnovers(s stat) string {
	if s.none {
		return "—"
	}
	if s.capped {
		return fmt.Sprintf("> %.0f", s.mean)
	}
	return fmt.Sprintf("%.2f ± %.2f", s.mean, s.sd)
}

func refillApplies(m info) bool { return m != shared }

var columns = []column{
	{"1 cold fill max/mean", func(r result, _ info) (float64, bool) { return r.cold, false }, ratio},
	{"2a arrivals to 95%", func(r result, m info) (float64, bool) {
		if !refillApplies(m) {
			return math.NaN(), false
		}
		return r.refill, r.refillCap
	}, count},
	{"2a lands at", func(r result, m info) (float64, bool) {
		if !refillApplies(m) {
			return math.NaN(), false
		}
		return r.lands, false
	}, ratio},
	{"2b turnovers to 95%", func(r result, m info) (float64, bool) {
		if !refillApplies(m) {
			return math.NaN(), false
		}
		return r.turnovers, r.turnCap
	}, turnovers},
	{"3 one dies max/mean", func(r result, _ info) (float64, bool) { return r.dies, false }, ratio},
	{"4 all reconnect max/mean", func(r result, _ info) (float64, bool) { return r.reconnect, false }, ratio},
}

func cell(rs []result, m info, c column) string {
	return c.format(summarize(rs, func(r result) (float64, bool) { return c.get(r, m) }))
}

func writeTables(w io.Writer, o options, t map[key][]result) {
	fmt.Fprintf(w, "Seeds %d–%d (%d runs per cell; mean ± standard deviation); %d users per server in scenarios 2–4.\n\n", o.seed, o.seed+uint64(o.seeds)-1, o.seeds, o.users)
	// Summary: the issue's own definitions at n = 10.
	if slices.Contains(o.sizes, 10) {
		fmt.Fprintf(w, "### Summary, n = 10: fresh lists for 1 and 2, the list from the moment before for 3 and 4\n\n")
		fmt.Fprintf(w, "| policy | %s |\n|---|%s\n", strings.Join(heads(), " | "), strings.Repeat("---:|", len(columns)))
		for _, p := range o.policies {
			fmt.Fprintf(w, "| %s |", p)
			for i, c := range columns {
				m := fresh
				if i >= 4 {
					m = shared
				}
				fmt.Fprintf(w, " %s |", cell(t[key{p, 10, m}], m, c))
			}
			fmt.Fprintln(w)
		}
		fmt.Fprintln(w)
	}
	for _, p := range o.policies {
		fmt.Fprintf(w, "### %s\n\n", p)
		fmt.Fprintf(w, "| n | lists | %s |\n|---:|---|%s\n", strings.Join(heads(), " | "), strings.Repeat("---:|", len(columns)))
		for _, n := range o.sizes {
			for _, m := range infos {
				fmt.Fprintf(w, "| %d | %s |", n, m)
				for _, c := range columns {
					fmt.Fprintf(w, " %s |", cell(t[key{p, n, m}], m, c))
				}
				fmt.Fprintln(w)
			}
		}
		fmt.Fprintln(w)
	}
}

func heads() []string {
	var h []string
	for _, c := range columns {
		h = append(h, c.head)
	}
	return h
}
