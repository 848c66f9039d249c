package testbed

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/farmlb/farmlb/farm"
	"github.com/miekg/dns"
)

// AgentConfig configures the lab's client process (`testbed agent`), which
// runs inside a client host and holds many streaming clients. It is a
// stand-in for `farmctl swarm` until that exists on main: each client follows
// the patent's Figure 4 — discover the list, pick with the farm policy,
// stream, on a drop retry the same node once after a jittered backoff, then
// re-list and pick again leaving the failed node out — and resumes from its
// cursor (Last-Event-ID) wherever it lands.
type AgentConfig struct {
	// Resolver is the DNS resolver (host:port) for discovery through the
	// _farm TXT record. Either Resolver or Lists.
	Resolver string
	// Service is the service name; the list is at _farm.<Service>.
	Service string
	// Lists are node URLs whose /farm the client may ask.
	Lists []string
	// Topic is the topic every client streams.
	Topic string
	// Idle is how long a stream may stay silent before it counts as hung.
	// If zero, 3 s.
	Idle time.Duration
	// Out receives one JSON line per connect (AgentEvent) as it happens, and
	// then one line per client (AgentClient) when the agent stops.
	Out io.Writer
	// Seed makes the clients' choices repeatable.
	Seed uint64
	// Logger, if nil slog.Default().
	Logger *slog.Logger
}

// AgentEvent is one connect of one client.
type AgentEvent struct {
	Kind   string `json:"kind"` // "connect"
	Client int    `json:"client"`
	Node   string `json:"node"`
	AtMS   int64  `json:"at_ms"` // Unix milliseconds
	// ReconnectMS is, for a connect after a drop, the time from noticing the
	// drop to the new stream's response; -1 for a first connect.
	ReconnectMS int64  `json:"reconnect_ms"`
	From        string `json:"from,omitempty"`
	Why         string `json:"why,omitempty"`
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
	// FirstConnectMS is when the client first streamed (Unix ms); 0 never.
	FirstConnectMS int64  `json:"first_connect_ms"`
	Node           string `json:"node"`
	Connects       int    `json:"connects"`
	Failures       int    `json:"failures"`
}

// RunAgent runs clients until ctx ends or commands ends, then writes every
// client's record to Out. commands holds lines "arrive N OVER" (OVER a
// duration): N more clients start, spread evenly over OVER.
func RunAgent(ctx context.Context, cfg AgentConfig, commands io.Reader) error {
	if cfg.Idle == 0 {
		cfg.Idle = 3 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Resolver == "" && len(cfg.Lists) == 0 {
		return errors.New("agent: needs a resolver or list URLs")
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	a := &agent{cfg: cfg, http: &http.Client{Transport: &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 2 * time.Second}).DialContext,
		MaxIdleConnsPerHost: 64,
	}}}
	var wg sync.WaitGroup
	next := 0
	sc := bufio.NewScanner(commands)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 3 || f[0] != "arrive" {
			return fmt.Errorf("agent: bad command %q, want: arrive N OVER", sc.Text())
		}
		n, err := strconv.Atoi(f[1])
		if err != nil || n < 0 {
			return fmt.Errorf("agent: bad count in %q", sc.Text())
		}
		over, err := time.ParseDuration(f[2])
		if err != nil {
			return fmt.Errorf("agent: bad duration in %q", sc.Text())
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
	return sc.Err()
}

type agent struct {
	cfg  AgentConfig
	http *http.Client

	mu      sync.Mutex // guards clients and writes to Out
	clients []*client
}

func (a *agent) arrive(ctx context.Context, wg *sync.WaitGroup, first, n int, over time.Duration) {
	start := time.Now()
	for i := range n {
		if n > 1 {
			at := start.Add(over * time.Duration(i) / time.Duration(n))
			t := time.NewTimer(time.Until(at))
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
		}
		c := &client{a: a, id: first + i, seen: map[int]int{},
			rnd: rand.New(rand.NewPCG(a.cfg.Seed, uint64(first+i)))}
		a.mu.Lock()
		a.clients = append(a.clients, c)
		a.mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.run(ctx)
		}()
	}
}

func (a *agent) emit(ev AgentEvent) {
	a.mu.Lock()
	defer a.mu.Unlock()
	_ = json.NewEncoder(a.cfg.Out).Encode(ev)
}

// client is one streaming client. Its fields are its own goroutine's,
// except what record reads after that goroutine ended.
type client struct {
	a      *agent
	id     int
	rnd    *rand.Rand
	cursor string
	seen   map[int]int
	resets int

	firstConnect time.Time
	node         string
	connects     int
	failures     int
}

func (c *client) record() AgentClient {
	r := AgentClient{Kind: "client", Client: c.id, Resets: c.resets, Node: c.node, Connects: c.connects, Failures: c.failures, Seqs: [][2]int{}}
	if !c.firstConnect.IsZero() {
		r.FirstConnectMS = c.firstConnect.UnixMilli()
	}
	seqs := make([]int, 0, len(c.seen))
	for s, n := range c.seen {
		seqs = append(seqs, s)
		r.Duplicated += n - 1
	}
	r.Seqs = toRanges(seqs)
	return r
}

// errMove is a stream's end because the server told the client to move.
type errMove struct {
	url   string
	delay time.Duration
}

func (e *errMove) Error() string { return "told to move to " + e.url }

func (c *client) run(ctx context.Context) {
	excluded := map[string]time.Time{} // node URL → until when it is left out
	var target string                  // URL to connect to next; "" means pick
	var dropAt time.Time               // when the last stream dropped; zero at first
	var from, why string
	retried := false
	for ctx.Err() == nil {
		if target == "" {
			list, err := c.discover(ctx)
			if err == nil {
				target, err = c.pick(list, excluded)
			}
			if err != nil {
				c.failures++
				c.sleep(ctx, 200*time.Millisecond, 500*time.Millisecond)
				continue
			}
			retried = false
		}
		connected := func(node string) {
			ev := AgentEvent{Kind: "connect", Client: c.id, Node: node, AtMS: time.Now().UnixMilli(), ReconnectMS: -1, From: from, Why: why}
			if !dropAt.IsZero() {
				ev.ReconnectMS = time.Since(dropAt).Milliseconds()
			}
			if c.firstConnect.IsZero() {
				c.firstConnect = time.Now()
			}
			c.node, c.connects = node, c.connects+1
			dropAt = time.Time{}
			c.a.emit(ev)
		}
		err := c.stream(ctx, target, connected)
		if ctx.Err() != nil {
			return
		}
		if c.node != "" { // a stream that was up has dropped
			dropAt = time.Now()
		}
		from, why = c.node, err.Error()
		c.node = ""
		c.failures++
		var mv *errMove
		var full *errFull
		switch {
		case errors.As(err, &mv):
			// Drained: leave this node out, wait as told, go where told
			// (or pick again).
			excluded[target] = time.Now().Add(10 * time.Second)
			c.sleepFor(ctx, mv.delay)
			target, retried = mv.url, false
		case errors.As(err, &full) && full.try != "":
			target = full.try
		case !retried:
			// Figure 4: the same server once more, after a short jittered backoff.
			retried = true
			c.sleep(ctx, 50*time.Millisecond, 250*time.Millisecond)
		default:
			excluded[target] = time.Now().Add(10 * time.Second)
			target = ""
		}
	}
}

func (c *client) sleep(ctx context.Context, lo, hi time.Duration) {
	c.sleepFor(ctx, lo+time.Duration(c.rnd.Int64N(int64(hi-lo))))
}

func (c *client) sleepFor(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

func (c *client) discover(ctx context.Context) (*farm.List, error) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if c.a.cfg.Resolver != "" {
		return discoverDNS(ctx, c.a.cfg.Resolver, c.a.cfg.Service)
	}
	urls := c.a.cfg.Lists
	start := c.rnd.IntN(len(urls))
	var errs []error
	for i := range urls {
		l, err := fetchList(ctx, c.a.http, urls[(start+i)%len(urls)])
		if err == nil {
			return l, nil
		}
		errs = append(errs, err)
	}
	return nil, errors.Join(errs...)
}

// discoverDNS reads the _farm TXT record through resolver, over TCP when the
// UDP answer is truncated.
func discoverDNS(ctx context.Context, resolver, service string) (*farm.List, error) {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn("_farm."+service), dns.TypeTXT)
	m.SetEdns0(1232, false)
	in, _, err := (&dns.Client{Net: "udp", Timeout: 2 * time.Second}).ExchangeContext(ctx, m, resolver)
	if err == nil && in.Truncated {
		in, _, err = (&dns.Client{Net: "tcp", Timeout: 2 * time.Second}).ExchangeContext(ctx, m, resolver)
	}
	if err != nil {
		return nil, err
	}
	if in.Rcode != dns.RcodeSuccess {
		return nil, fmt.Errorf("_farm.%s: %s", service, dns.RcodeToString[in.Rcode])
	}
	var strs []string
	for _, rr := range in.Answer {
		if t, ok := rr.(*dns.TXT); ok {
			strs = append(strs, t.Txt...)
		}
	}
	return farm.ParseTXT(strs)
}

func fetchList(ctx context.Context, hc *http.Client, base string) (*farm.List, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(base, "/")+"/farm", nil)
	if err != nil {
		return nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s/farm: %s", base, resp.Status)
	}
	return farm.ParseJSON(body)
}

func (c *client) pick(list *farm.List, excluded map[string]time.Time) (string, error) {
	l := list.Clone()
	now := time.Now()
	for i := range l.Servers {
		if until, ok := excluded[l.Servers[i].URL]; ok && now.Before(until) {
			l.Servers[i].Status = farm.StatusDown
		}
	}
	p, _ := farm.NewPolicy(farm.DefaultPolicy)
	s, err := p.Pick(l, c.rnd)
	if err != nil {
		return "", err
	}
	return s.URL, nil
}

// errFull is a 503 from a node at capacity or draining.
type errFull struct{ try string }

func (e *errFull) Error() string { return "503, try " + e.try }

// stream opens base's /stream and reads events until it fails, goes silent
// for longer than Idle, or is told to move. It always returns an error.
func (c *client) stream(ctx context.Context, base string, connected func(node string)) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	u := strings.TrimRight(base, "/") + "/stream?topic=" + c.a.cfg.Topic
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "text/event-stream")
	if c.cursor != "" {
		req.Header.Set("Last-Event-ID", c.cursor)
	}
	idle := time.AfterFunc(c.a.cfg.Idle, cancel)
	defer idle.Stop()
	resp, err := c.a.http.Do(req)
	if err != nil {
		if !idle.Stop() {
			return fmt.Errorf("no answer within %v", c.a.cfg.Idle)
		}
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusServiceUnavailable {
		var body struct {
			Try string `json:"try"`
		}
		_ = json.NewDecoder(io.LimitReader(resp.Body, 4096)).Decode(&body)
		if body.Try == "" {
			body.Try = resp.Header.Get("Location")
		}
		return &errFull{try: body.Try}
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("stream: %s", resp.Status)
	}
	node := resp.Header.Get("Farmlb-Node")
	if node == "" {
		node = base
	}
	connected(node)
	idle.Reset(c.a.cfg.Idle)
	br := bufio.NewReaderSize(resp.Body, 4096)
	var id, event string
	var data []string
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("silent for %v", c.a.cfg.Idle)
			}
			return fmt.Errorf("stream from %s ended: %w", node, err)
		}
		idle.Reset(c.a.cfg.Idle)
		line = strings.TrimRight(line, "\r\n")
		switch {
		case line == "":
			if event != "" || len(data) > 0 {
				if mv := c.handle(id, event, strings.Join(data, "\n")); mv != nil {
					return mv
				}
			}
			id, event, data = "", "", nil
		case strings.HasPrefix(line, ":"):
		default:
			field, value, _ := strings.Cut(line, ":")
			value = strings.TrimPrefix(value, " ")
			switch field {
			case "id":
				id = value
			case "event":
				event = value
			case "data":
				data = append(data, value)
			}
		}
	}
}

// handle takes one event; it returns non-nil when the client must move.
func (c *client) handle(id, event, data string) *errMove {
	if id != "" {
		c.cursor = id
	}
	switch event {
	case "farmlb-reset":
		c.resets++
	case "farmlb-move":
		var mv struct {
			URL     string `json:"url"`
			DelayMS int    `json:"delay_ms"`
		}
		_ = json.Unmarshal([]byte(data), &mv)
		return &errMove{url: mv.URL, delay: time.Duration(mv.DelayMS) * time.Millisecond}
	case "", c.a.cfg.Topic:
		if n, err := strconv.Atoi(strings.TrimSpace(data)); err == nil {
			c.seen[n]++
		}
	}
	return nil
}

// toRanges turns a set of integers into sorted [first, last] ranges.
func toRanges(xs []int) [][2]int {
	slices.Sort(xs)
	var out [][2]int
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
