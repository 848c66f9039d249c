package testbed

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/farmlb/farmlb/clientlib"
)

// AgentConfig configures the lab's recording client process (`testbed
// agent`), which runs inside a client host and holds many clientlib clients
// — the same client library `farmctl swarm` uses — but keeps, per client,
// every sequence number it received and every failover with its duration,
// so the report can count exactly what was lost and draw the distribution of
// reconnect times.
type AgentConfig struct {
	// Resolver is the DNS resolver (host:port) for discovery through the
	// zone's _farm TXT record. Either Resolver or Lists.
	Resolver string
	// Service is the service name and zone.
	Service string
	// HTTPPort is the port of /farm on the zone's A records.
	HTTPPort int
	// Lists are URLs of farm lists (…/farm).
	Lists []string
	// Topic is the topic every client streams.
	Topic string
	// Idle is clientlib's IdleTimeout; zero keeps clientlib's default.
	Idle time.Duration
	// Out receives one JSON line per client (AgentClient) when the agent
	// stops.
	Out io.Writer
	// Seed makes the clients' choices repeatable.
	Seed uint64
	// Logger, if nil slog.Default().
	Logger *slog.Logger
}

// AgentClient is one client's record, written when the agent stops.
type AgentClient struct {
	Kind   string `json:"kind"` // "client"
	Client int    `json:"client"`
	// Seqs are the sequence numbers received, as [first, last] ranges.
	Seqs [][2]int `json:"seqs"`
	// Duplicated counts sequence numbers received more than once.
	Duplicated int `json:"duplicated"`
	// Resets counts farmlb-reset events.
	Resets int `json:"resets"`
	// FirstConnectMS is when the client first received an event (Unix ms);
	// 0 never.
	FirstConnectMS int64  `json:"first_connect_ms"`
	Node           string `json:"node"`
	// Failovers are the client's moves: from, to, why and how long.
	Failovers []AgentFailover `json:"failovers"`
	// GapsMS are what the user felt of each new stream: from the last
	// event delivered by the old stream to the first from the new one.
	GapsMS []int64 `json:"gaps_ms"`
	// Visits are the nodes the client streamed from, each with the time
	// (Unix ms) of its first event from that node: where new clients went.
	Visits []AgentVisit `json:"visits"`
}

// AgentVisit is a client's first event from a node.
type AgentVisit struct {
	AtMS int64  `json:"at_ms"`
	Node string `json:"node"`
}

// AgentFailover is one failover as clientlib recorded it.
type AgentFailover struct {
	AtMS   int64  `json:"at_ms"`
	From   string `json:"from"`
	To     string `json:"to"`
	Reason string `json:"reason"`
	// TookMS is clientlib's own measure: from when it gave up the old
	// stream until the new one answered.
	TookMS int64 `json:"took_ms"`
}

// RunAgent runs clients until ctx ends or commands ends, then writes every
// client's record to Out. commands holds lines "arrive N OVER" (OVER a
// duration): N more clients start, spread evenly over OVER.
func RunAgent(ctx context.Context, cfg AgentConfig, commands io.Reader) error {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Resolver == "" && len(cfg.Lists) == 0 {
		return errors.New("agent: needs a resolver or list URLs")
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	a := &agent{cfg: cfg}
	var wg sync.WaitGroup
	next := 0
	sc := bufio.NewScanner(commands)
	var cmdErr error
	for sc.Scan() {
		n, over, err := parseArrive(sc.Text())
		if err != nil {
			cmdErr = err
			break
		}
		first := next
		next += n
		wg.Add(1)
		go func() {
			defer wg.Done()
			a.arrive(ctx, &wg, first, n, over)
		}()
	}
	cancel()
	wg.Wait()
	a.mu.Lock()
	defer a.mu.Unlock()
	enc := json.NewEncoder(cfg.Out)
	for _, c := range a.clients {
		if err := enc.Encode(c.record()); err != nil {
			return err
		}
	}
	return errors.Join(cmdErr, sc.Err())
}

func parseArrive(line string) (n int, over time.Duration, err error) {
	f := strings.Fields(line)
	if len(f) != 3 || f[0] != "arrive" {
		return 0, 0, fmt.Errorf("agent: bad command %q, want: arrive N OVER", line)
	}
	n, err = strconv.Atoi(f[1])
	if err != nil || n < 0 {
		return 0, 0, fmt.Errorf("agent: bad count in %q", line)
	}
	over, err = time.ParseDuration(f[2])
	if err != nil || over < 0 {
		return 0, 0, fmt.Errorf("agent: bad duration in %q", line)
	}
	return n, over, nil
}

type agent struct {
	cfg AgentConfig

	mu      sync.Mutex // guards clients
	clients []*client
}

func (a *agent) arrive(ctx context.Context, wg *sync.WaitGroup, first, n int, over time.Duration) {
	start := time.Now()
	for i := range n {
		at := start.Add(over * time.Duration(i) / time.Duration(max(n, 1)))
		t := time.NewTimer(time.Until(at))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		cl, err := clientlib.Subscribe(ctx, clientlib.Config{
			Zone: a.cfg.Service, Resolver: a.cfg.Resolver, HTTPPort: a.cfg.HTTPPort, ListURLs: a.cfg.Lists,
			Topics: []string{a.cfg.Topic}, IdleTimeout: a.cfg.Idle, Seed: a.cfg.Seed*1_000_003 + uint64(first+i) + 1,
		})
		if err != nil {
			a.cfg.Logger.Error("subscribe", "err", err)
			return
		}
		c := &client{id: first + i, cl: cl, seen: map[int]int{}}
		a.mu.Lock()
		a.clients = append(a.clients, c)
		a.mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.consume(ctx)
		}()
	}
}

// client is one clientlib client and what it received. Its fields belong
// to its consume goroutine until that has returned.
type client struct {
	id     int
	cl     *clientlib.Client
	seen   map[int]int
	resets int
	first  time.Time
	node   string
	fos    []clientlib.Failover
	gaps   []int64
	visits []AgentVisit
}

// consume reads events until ctx ends, then closes the client and keeps
// where it was and its failovers.
func (c *client) consume(ctx context.Context) {
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		<-ctx.Done()
		c.node = c.cl.Node() // before Close forgets it
		c.cl.Close()
	}()
	defer func() { <-stopped }()
	var lastNode string
	var lastAt time.Time
	nfo := 0 // failovers seen so far
	for ev := range c.cl.Events() {
		now := time.Now()
		if c.first.IsZero() {
			c.first = now
		}
		// A new stream shows as a change of node, or — back on the same
		// node — as one more failover record; those are only looked up
		// after a pause, so the common case costs nothing.
		moved := lastNode != "" && ev.Node != lastNode
		if lastNode != "" && !moved && now.Sub(lastAt) > 500*time.Millisecond {
			moved = len(c.cl.Failovers()) > nfo
		}
		if moved {
			c.gaps = append(c.gaps, now.Sub(lastAt).Milliseconds())
			nfo = len(c.cl.Failovers())
		}
		if ev.Node != lastNode {
			c.visits = append(c.visits, AgentVisit{AtMS: now.UnixMilli(), Node: ev.Node})
		}
		lastNode, lastAt = ev.Node, now
		if ev.Reset {
			c.resets++
			continue
		}
		if n, err := strconv.Atoi(strings.TrimSpace(ev.Data)); err == nil {
			c.seen[n]++
		}
	}
	c.fos = c.cl.Failovers()
}

func (c *client) record() AgentClient {
	r := AgentClient{Kind: "client", Client: c.id, Resets: c.resets, Node: c.node, Seqs: [][2]int{}, Failovers: []AgentFailover{}, GapsMS: c.gaps, Visits: c.visits}
	if !c.first.IsZero() {
		r.FirstConnectMS = c.first.UnixMilli()
	}
	seqs := make([]int, 0, len(c.seen))
	for s, n := range c.seen {
		seqs = append(seqs, s)
		r.Duplicated += n - 1
	}
	r.Seqs = toRanges(seqs)
	for _, f := range c.fos {
		r.Failovers = append(r.Failovers, AgentFailover{AtMS: f.At.UnixMilli(), From: f.From, To: f.To, Reason: f.Reason, TookMS: f.Took.Milliseconds()})
	}
	return r
}

// toRanges turns a set of integers into sorted [first, last] ranges.
func toRanges(xs []int) [][2]int {
	slices.Sort(xs)
	out := [][2]int{}
	for _, x := range xs {
		if n := len(out); n > 0 && out[n-1][1]+1 == x {
			out[n-1][1] = x
			continue
		}
		out = append(out, [2]int{x, x})
	}
	return out
}

// AgentMain is `testbed agent`'s body: it reads commands from stdin until
// it closes, and writes its records to the file at out.
func AgentMain(ctx context.Context, cfg AgentConfig, out string, stdin io.Reader) error {
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	cfg.Out = f
	err = RunAgent(ctx, cfg, stdin)
	return errors.Join(err, f.Close())
}
