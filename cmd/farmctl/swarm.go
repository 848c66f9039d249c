package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"sort"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/farmlb/farmlb/clientlib"
	"github.com/farmlb/farmlb/farm"
	"github.com/urfave/cli/v2"
)

func swarmCommand() *cli.Command {
	return &cli.Command{
		Name:      "swarm",
		Usage:     "run N concurrent clients, for load and balance tests",
		ArgsUsage: "[TOPIC...]",
		Description: `Starts N clients (each a full clientlib client: discovery, choice, failover,
resume), spread over --ramp, subscribed to the topics (default: "seq"). While
they run it prints the distribution of clients over nodes every --interval on
stderr; at the end (after --duration, or on Ctrl-C) a summary: clients per
node, max/mean, events, failovers and reconnect times.

With --check-seq every event's data must be an increasing integer per topic
(as a sequencer publishes 1, 2, 3 …): the summary then counts messages lost
(gaps) and duplicated across failovers. --expect-last N also counts as lost
what a client is missing at the end up to N.

A process may hold at most 20,000 file descriptors: run larger swarms as
several processes.`,
		Flags: append(farmFlags(),
			&cli.IntFlag{Name: "clients", Aliases: []string{"n"}, Usage: "`N` clients", Value: 100, EnvVars: []string{"FARMLB_SWARM_CLIENTS"}},
			&cli.StringFlag{Name: "policy", Usage: "selection policy `NAME`", Value: farm.DefaultPolicy, EnvVars: []string{"FARMLB_POLICY"}},
			&cli.DurationFlag{Name: "duration", Aliases: []string{"d"}, Usage: "run for `D`, then summarise (0: until interrupted)", EnvVars: []string{"FARMLB_SWARM_DURATION"}},
			&cli.DurationFlag{Name: "ramp", Usage: "start the clients evenly over `D`", Value: time.Second, EnvVars: []string{"FARMLB_SWARM_RAMP"}},
			&cli.DurationFlag{Name: "interval", Usage: "print the distribution every `D` (0: never)", Value: time.Second, EnvVars: []string{"FARMLB_SWARM_INTERVAL"}},
			&cli.BoolFlag{Name: "check-seq", Usage: "check that each topic's data is an increasing integer sequence", EnvVars: []string{"FARMLB_SWARM_CHECK_SEQ"}},
			&cli.Int64Flag{Name: "expect-last", Usage: "with --check-seq: the last number published, for a final count of what is missing", EnvVars: []string{"FARMLB_SWARM_EXPECT_LAST"}},
			&cli.DurationFlag{Name: "settle", Usage: "with --expect-last: wait up to `D` for clients to catch up before summarising", Value: 5 * time.Second, EnvVars: []string{"FARMLB_SWARM_SETTLE"}},
			&cli.BoolFlag{Name: "json", Usage: "print the summary as one line of JSON", EnvVars: []string{"FARMLB_JSON"}},
			&cli.Uint64Flag{Name: "seed", Usage: "seed of the clients' random choices (default: random)", EnvVars: []string{"FARMLB_SEED"}},
			&cli.BoolFlag{Name: "relist-at-once", Usage: "on failure fetch a fresh list at once instead of retrying the same node", EnvVars: []string{"FARMLB_RELIST_AT_ONCE"}},
		),
		Action: runSwarm,
	}
}

// swarmClient is one client of the swarm and what it has seen.
type swarmClient struct {
	cl *clientlib.Client

	mu         sync.Mutex
	events     int
	last       map[string]int64 // topic -> last number seen
	lost, dups int64
	resets     int
}

func (s *swarmClient) consume(checkSeq bool) {
	for ev := range s.cl.Events() {
		s.mu.Lock()
		s.events++
		if ev.Reset {
			s.resets++
		} else if checkSeq {
			n, err := strconv.ParseInt(strings.TrimSpace(ev.Data), 10, 64)
			if err == nil {
				prev, seen := s.last[ev.Topic]
				switch {
				case !seen:
					s.last[ev.Topic] = n
				case n <= prev:
					s.dups++
				default:
					s.lost += n - prev - 1
					s.last[ev.Topic] = n
				}
			}
		}
		s.mu.Unlock()
	}
}

// SwarmSummary is what `farmctl swarm --json` prints.
type SwarmSummary struct {
	Clients     int            `json:"clients"`
	Connected   int            `json:"connected"`
	Nodes       map[string]int `json:"nodes"`
	MaxOverMean float64        `json:"max_over_mean"`
	Events      int            `json:"events"`
	Lost        int64          `json:"lost"`
	Duplicated  int64          `json:"duplicated"`
	Resets      int            `json:"resets"`
	Failovers   int            `json:"failovers"`
	ReconnectMs struct {
		P50 float64 `json:"p50"`
		P99 float64 `json:"p99"`
		Max float64 `json:"max"`
	} `json:"reconnect_ms"`
	Seconds float64 `json:"seconds"`
}

func runSwarm(c *cli.Context) error {
	n := c.Int("clients")
	if n <= 0 {
		return cli.Exit("swarm: --clients must be positive", 2)
	}
	pol, err := farm.NewPolicy(c.String("policy"))
	if err != nil {
		return cli.Exit(err.Error(), 2)
	}
	topics := c.Args().Slice()
	if len(topics) == 0 {
		topics = []string{"seq"}
	}
	ctx := c.Context
	if d := c.Duration("duration"); d > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d)
		defer cancel()
	}
	seed := c.Uint64("seed")
	if !c.IsSet("seed") {
		seed = rand.Uint64()
	}
	base := clientConfig(c)
	base.Topics = topics
	base.Policy = pol
	base.RelistAtOnce = c.Bool("relist-at-once")
	start := time.Now()

	var (
		mu      sync.Mutex
		clients []*swarmClient
		wg      sync.WaitGroup
	)
	defer func() {
		mu.Lock()
		defer mu.Unlock()
		for _, s := range clients {
			s.cl.Close()
		}
		wg.Wait()
	}()
	// Start the clients over --ramp.
	wg.Add(1)
	go func() {
		defer wg.Done()
		step := c.Duration("ramp") / time.Duration(n)
		for i := range n {
			cfg := base
			cfg.Seed = seed + uint64(i)*0x9e3779b97f4a7c15
			cl, err := clientlib.Subscribe(ctx, cfg)
			if err != nil {
				return
			}
			s := &swarmClient{cl: cl, last: map[string]int64{}}
			mu.Lock()
			clients = append(clients, s)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				s.consume(c.Bool("check-seq"))
			}()
			if step > 0 {
				select {
				case <-ctx.Done():
					return
				case <-time.After(step):
				}
			}
		}
	}()
	snapshot := func() []*swarmClient {
		mu.Lock()
		defer mu.Unlock()
		return append([]*swarmClient(nil), clients...)
	}
	var tick <-chan time.Time
	if iv := c.Duration("interval"); iv > 0 {
		t := time.NewTicker(iv)
		defer t.Stop()
		tick = t.C
	}
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-tick:
			printDistribution(c.App.ErrWriter, time.Since(start), snapshot(), n)
		}
	}
	cs := snapshot()
	if want := c.Int64("expect-last"); want > 0 && c.Bool("check-seq") {
		waitCaughtUp(c.Context, cs, topics, want, c.Duration("settle"))
		for _, s := range cs {
			s.mu.Lock()
			for _, t := range topics {
				if last, ok := s.last[t]; ok && last < want {
					s.lost += want - last
				}
			}
			s.mu.Unlock()
		}
	}
	sum := summarise(cs, n, time.Since(start))
	if c.Bool("json") {
		return jsonLine(c.App.Writer, sum)
	}
	printSummary(c.App.Writer, sum)
	return nil
}

// waitCaughtUp waits until every client has seen want on every topic it has
// seen anything on, or settle has passed.
func waitCaughtUp(ctx context.Context, cs []*swarmClient, topics []string, want int64, settle time.Duration) {
	deadline := time.Now().Add(settle)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		behind := 0
		for _, s := range cs {
			s.mu.Lock()
			for _, t := range topics {
				if last, ok := s.last[t]; !ok || last < want {
					behind++
				}
			}
			s.mu.Unlock()
		}
		if behind == 0 {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func nodeCounts(cs []*swarmClient) (map[string]int, int) {
	counts := map[string]int{}
	connected := 0
	for _, s := range cs {
		if node := s.cl.Node(); node != "" {
			counts[node]++
			connected++
		}
	}
	return counts, connected
}

func printDistribution(w io.Writer, since time.Duration, cs []*swarmClient, want int) {
	counts, connected := nodeCounts(cs)
	names := make([]string, 0, len(counts))
	for k := range counts {
		names = append(names, k)
	}
	sort.Strings(names)
	var b strings.Builder
	fmt.Fprintf(&b, "%6.1fs clients %d/%d connected %d", since.Seconds(), len(cs), want, connected)
	for _, k := range names {
		fmt.Fprintf(&b, "  %s=%d", k, counts[k])
	}
	fmt.Fprintln(w, b.String())
}

func summarise(cs []*swarmClient, n int, took time.Duration) SwarmSummary {
	var sum SwarmSummary
	sum.Clients = n
	sum.Nodes, sum.Connected = nodeCounts(cs)
	if len(sum.Nodes) > 0 {
		most := 0
		for _, v := range sum.Nodes {
			most = max(most, v)
		}
		sum.MaxOverMean = math.Round(float64(most)/(float64(sum.Connected)/float64(len(sum.Nodes)))*1000) / 1000
	}
	var took_ []float64
	for _, s := range cs {
		s.mu.Lock()
		sum.Events += s.events
		sum.Lost += s.lost
		sum.Duplicated += s.dups
		sum.Resets += s.resets
		s.mu.Unlock()
		for _, f := range s.cl.Failovers() {
			if f.From == "" {
				continue
			}
			sum.Failovers++
			took_ = append(took_, float64(f.Took.Microseconds())/1000)
		}
	}
	sort.Float64s(took_)
	if len(took_) > 0 {
		q := func(p float64) float64 { return took_[min(len(took_)-1, int(p*float64(len(took_))))] }
		sum.ReconnectMs.P50, sum.ReconnectMs.P99, sum.ReconnectMs.Max = q(0.5), q(0.99), took_[len(took_)-1]
	}
	sum.Seconds = math.Round(took.Seconds()*10) / 10
	return sum
}

func printSummary(w io.Writer, s SwarmSummary) {
	fmt.Fprintf(w, "swarm: %d clients, %d connected, after %.1fs\n", s.Clients, s.Connected, s.Seconds)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tCLIENTS")
	names := make([]string, 0, len(s.Nodes))
	for k := range s.Nodes {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		fmt.Fprintf(tw, "%s\t%d\n", k, s.Nodes[k])
	}
	tw.Flush()
	fmt.Fprintf(w, "max/mean %.3f  events %d  lost %d  duplicated %d  resets %d\n", s.MaxOverMean, s.Events, s.Lost, s.Duplicated, s.Resets)
	fmt.Fprintf(w, "failovers %d  reconnect ms p50 %.0f p99 %.0f max %.0f\n", s.Failovers, s.ReconnectMs.P50, s.ReconnectMs.P99, s.ReconnectMs.Max)
}
