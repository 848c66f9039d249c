// Package clientlib is the client side of farmlb: it finds the farm list
// (DNS TXT, SRV, A records, or a list URL), chooses a server with a farm
// policy, streams events from it over Server-Sent Events, and fails over as
// the patent's Figure 4 describes: retry the same server once, then fetch a
// fresh list, leave the failed server out and choose again — resuming from
// the last event it delivered, so nothing is lost or repeated.
//
// clientlib depends on farm and miekg/dns only, so any Go client can embed
// it.
package clientlib

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/farmlb/farmlb/farm"
)

// Config says how a Client finds the farm and how it behaves. The zero value
// of every field but the topics and a way to find the list is a sensible
// default.
type Config struct {
	// Zone is the farm's DNS zone (e.g. "stream.example.com"): the list is
	// looked up as _farm.<Zone> TXT, then _farmlb._tcp.<Zone> SRV, then
	// /farm on the addresses of <Zone>'s A records.
	Zone string
	// Resolver is the DNS server to ask, "host:port" (port 53 if omitted);
	// if empty, the first nameserver of /etc/resolv.conf.
	Resolver string
	// ListURLs are URLs of farm lists (e.g. "http://serverA:8080/farm"),
	// tried before DNS.
	ListURLs []string
	// HTTPPort is the port of /farm on the A-record addresses; if zero, 80.
	HTTPPort int
	// Policy chooses the server; if nil, farm's default policy.
	Policy farm.Policy
	// Seed seeds the client's random choices; if zero, a random seed.
	Seed uint64
	// Topics to subscribe to; at least one.
	Topics []string
	// Cursor resumes a stream from an event id a previous client delivered.
	Cursor string
	// HTTPClient makes the requests; if nil, a client whose connections
	// time out after ConnectTimeout (streams themselves have no deadline).
	HTTPClient *http.Client
	// Logger receives connects and failovers; if nil, nothing is logged.
	Logger *slog.Logger
	// DiscoveryTimeout bounds each way of fetching the list; if zero, 3 s.
	DiscoveryTimeout time.Duration
	// ConnectTimeout bounds connecting to a node and receiving its response
	// headers; if zero, 5 s.
	ConnectTimeout time.Duration
	// IdleTimeout ends a stream that has sent nothing, not even a
	// keep-alive, for this long; if zero, 45 s (three of pushd's default
	// 15 s keep-alives).
	IdleTimeout time.Duration
	// RetryDelay is the pause before the one retry of the same server, with
	// ±50% jitter; if zero, 250 ms.
	RetryDelay time.Duration
	// MaxBackoff caps the pause between rounds when no server can be
	// reached (exponential with full jitter); if zero, 10 s.
	MaxBackoff time.Duration
	// RelistAtOnce skips the retry of the same server and fetches a fresh
	// list at once (the patent's alternative).
	RelistAtOnce bool
	// RecheckInterval is how often a client on a lower priority group
	// fetches the list to see whether a higher group is back; if zero, 5 s.
	RecheckInterval time.Duration
	// MoveBackWindow spreads the move back to a higher group that is UP
	// again: each client waits a random time within it; if zero, 30 s.
	MoveBackWindow time.Duration
	// ExcludeFor is how long a failed server stays left out when no fresh
	// list has shown it DOWN and UP again; if zero, 30 s.
	ExcludeFor time.Duration
	// EventBuffer is the capacity of the Events channel; if zero, 256.
	EventBuffer int
}

func (c Config) withDefaults() Config {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.DiscoveryTimeout, 3*time.Second)
	def(&c.ConnectTimeout, 5*time.Second)
	def(&c.IdleTimeout, 45*time.Second)
	def(&c.RetryDelay, 250*time.Millisecond)
	def(&c.MaxBackoff, 10*time.Second)
	def(&c.RecheckInterval, 5*time.Second)
	def(&c.MoveBackWindow, 30*time.Second)
	def(&c.ExcludeFor, 30*time.Second)
	if c.HTTPPort == 0 {
		c.HTTPPort = 80
	}
	if c.EventBuffer <= 0 {
		c.EventBuffer = 256
	}
	if c.Policy == nil {
		c.Policy, _ = farm.NewPolicy("")
	}
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{Transport: &http.Transport{
			DialContext:           (&net.Dialer{Timeout: c.ConnectTimeout}).DialContext,
			ResponseHeaderTimeout: c.ConnectTimeout,
			MaxIdleConnsPerHost:   4,
			IdleConnTimeout:       30 * time.Second,
		}}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Event is one message from the farm.
type Event struct {
	Topic string // the topic it was published on
	ID    string // its event id: the cursor to resume after it
	Data  string // the payload
	Node  string // the node that delivered it
	// Reset is true for a farmlb-reset event: the node's history no longer
	// covered the cursor for Topic, so messages may have been missed
	// before this point. Data holds the node's explanation (JSON).
	Reset bool
}

// Failover records one move from a node to another.
type Failover struct {
	At     time.Time     // when the old stream failed or was told to move
	From   string        // the node it left ("" for the first connect)
	To     string        // the node it reached
	Reason string        // why it left
	Took   time.Duration // from At until the new stream answered
}

// Client is a subscription that survives the loss of nodes.
type Client struct {
	cfg    Config
	events chan Event
	cancel context.CancelFunc
	done   chan struct{}

	mu        sync.Mutex
	node      string
	cursor    string
	failovers []Failover
	err       error
}

// Subscribe starts a client: it finds the farm, chooses a node and streams
// the topics from it, failing over as needed, until ctx ends or Close is
// called. Events arrive on Events().
func Subscribe(ctx context.Context, cfg Config) (*Client, error) {
	if len(cfg.Topics) == 0 {
		return nil, errors.New("clientlib: no topics to subscribe to")
	}
	if cfg.Zone == "" && len(cfg.ListURLs) == 0 {
		return nil, errors.New("clientlib: set Zone or ListURLs to find the farm")
	}
	cfg = cfg.withDefaults()
	ctx, cancel := context.WithCancel(ctx)
	c := &Client{
		cfg:    cfg,
		events: make(chan Event, cfg.EventBuffer),
		cancel: cancel,
		done:   make(chan struct{}),
		cursor: cfg.Cursor,
	}
	go c.run(ctx)
	return c, nil
}

// Events returns the channel of events. It is closed when the client stops.
func (c *Client) Events() <-chan Event { return c.events }

// Node returns the name of the node the client streams from ("" while it
// has none).
func (c *Client) Node() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.node
}

// Cursor returns the id of the last event delivered: pass it as
// Config.Cursor to resume in another client.
func (c *Client) Cursor() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cursor
}

// Failovers returns a copy of every move between nodes so far.
func (c *Client) Failovers() []Failover {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Failover(nil), c.failovers...)
}

// Close stops the client and returns once everything it started has
// stopped.
func (c *Client) Close() error {
	c.cancel()
	<-c.done
	if t, ok := c.cfg.HTTPClient.Transport.(interface{ CloseIdleConnections() }); ok {
		t.CloseIdleConnections()
	}
	return nil
}

// endKind says why a stream ended.
type endKind int

const (
	endFailed   endKind = iota // could not connect, or the stream broke
	endRefused                 // the node answered 503 (full or draining)
	endMoved                   // the node told its clients to move
	endMoveBack                // a higher priority group is UP again
	endCanceled                // the client is closing
)

type streamEnd struct {
	kind    endKind
	reason  string
	hint    string        // a node URL the server suggested
	delay   time.Duration // wait before moving
	list    *farm.List    // a fresh list, when the stream ended because of one
	healthy bool          // the stream had been delivering
}

// exclusion tracks a server left out after it failed.
type exclusion struct {
	since   time.Time
	seenOut bool // a fresh list has shown it not UP since it failed
}

func (c *Client) run(ctx context.Context) {
	defer close(c.done)
	defer close(c.events)
	seed := c.cfg.Seed
	if seed == 0 {
		var b [8]byte
		_, _ = rand.Read(b[:])
		seed = binary.LittleEndian.Uint64(b[:])
	}
	rng := mrand.New(mrand.NewPCG(seed, seed>>1|1))
	log := c.cfg.Logger

	var (
		list     *farm.List
		excluded = map[string]*exclusion{}
		hint     string
		pending  *Failover    // a failover waiting for its new stream
		retry    *farm.Server // the server to try once more
		fails    int          // attempts in a row that delivered nothing
	)
	sleep := func(d time.Duration) bool {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
			return true
		}
	}
	// backoff pauses between rounds that reach nothing: exponential with
	// full jitter and a cap, so that the clients of a dead farm do not all
	// come back in the same instant.
	backoff := func() bool {
		ceil := min(c.cfg.MaxBackoff, c.cfg.RetryDelay<<min(fails, 16))
		return sleep(time.Duration(rng.Int64N(int64(ceil))) + time.Millisecond)
	}
	for ctx.Err() == nil {
		var srv farm.Server
		isRetry := retry != nil
		if isRetry {
			srv, retry = *retry, nil
		} else {
			if list == nil {
				l, err := Discover(ctx, c.cfg)
				if err != nil {
					if ctx.Err() != nil {
						return
					}
					log.Warn("no farm list", "err", err)
					c.setErr(err)
					fails++
					if !backoff() {
						return
					}
					continue
				}
				list = l
				noteList(list, excluded, c.cfg.ExcludeFor)
			}
			s, err := c.choose(list, excluded, hint, rng)
			hint = ""
			if err != nil {
				log.Warn("no server to choose", "err", err)
				c.setErr(err)
				list = nil // fetch a fresh one after the pause
				fails++
				if !backoff() {
					return
				}
				continue
			}
			srv = s
		}
		end := c.stream(ctx, srv, list, &pending, rng)
		if end.kind == endCanceled {
			return
		}
		if end.healthy {
			fails = 0
		} else {
			fails++
		}
		if pending == nil {
			pending = &Failover{At: time.Now(), From: srv.Name, Reason: end.reason}
		}
		c.setNode("")
		log.Info("stream ended", "node", srv.Name, "reason", end.reason)
		switch end.kind {
		case endFailed:
			if !c.cfg.RelistAtOnce && !isRetry {
				// Figure 4: try the same server once more after a short,
				// jittered pause.
				d := c.cfg.RetryDelay/2 + time.Duration(rng.Int64N(int64(c.cfg.RetryDelay)+1))
				if !sleep(d) {
					return
				}
				retry = &srv
				continue
			}
			excluded[srv.Name] = &exclusion{since: time.Now()}
			list = nil
			if fails > len(excluded)+1 && !backoff() {
				return
			}
		case endRefused, endMoved:
			excluded[srv.Name] = &exclusion{since: time.Now()}
			hint = end.hint
			list = nil
			if end.delay > 0 && !sleep(min(end.delay, c.cfg.MaxBackoff)) {
				return
			}
		case endMoveBack:
			list = end.list
			// The list that called the client back shows the higher group
			// UP after a wait of at least RecheckInterval: that is the fresh
			// news an exclusion waits for, so the servers it shows UP there
			// may be chosen again (else the client would come back to srv).
			for _, s := range list.Servers {
				if s.Status == farm.StatusUp && s.Priority < srv.Priority {
					delete(excluded, s.Name)
				}
			}
			noteList(list, excluded, c.cfg.ExcludeFor)
		}
	}
}

// noteList lifts the exclusion of failed servers that a fresh list shows UP
// again after it showed them out (or after ExcludeFor).
func noteList(l *farm.List, excluded map[string]*exclusion, excludeFor time.Duration) {
	for name, ex := range excluded {
		s, ok := l.Find(name)
		switch {
		case !ok || s.Status != farm.StatusUp:
			ex.seenOut = true
		case ex.seenOut || time.Since(ex.since) >= excludeFor:
			delete(excluded, name)
		}
	}
}

// choose picks a server from the list, leaving out excluded servers and
// preferring a hinted one when it is eligible and in the best group.
func (c *Client) choose(l *farm.List, excluded map[string]*exclusion, hint string, rng *mrand.Rand) (farm.Server, error) {
	view := l
	if len(excluded) > 0 {
		view = l.Clone()
		kept := view.Servers[:0]
		for _, s := range view.Servers {
			if excluded[s.Name] == nil {
				kept = append(kept, s)
			}
		}
		view.Servers = kept
	}
	if hint != "" {
		if idx, err := farm.Candidates(view); err == nil {
			for _, i := range idx {
				if sameURL(view.Servers[i].URL, hint) {
					return view.Servers[i], nil
				}
			}
		}
	}
	return c.cfg.Policy.Pick(view, rng)
}

func sameURL(a, b string) bool {
	ua, err1 := url.Parse(a)
	ub, err2 := url.Parse(b)
	return err1 == nil && err2 == nil && strings.EqualFold(ua.Host, ub.Host) && ua.Scheme == ub.Scheme
}

func (c *Client) setErr(err error) {
	c.mu.Lock()
	c.err = err
	c.mu.Unlock()
}

func (c *Client) setNode(n string) {
	c.mu.Lock()
	c.node = n
	c.mu.Unlock()
}

// Err returns the last error the client met while finding a server (nil
// once it streams).
func (c *Client) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// moveHint is the data of a farmlb-move event.
type moveHint struct {
	Reason  string `json:"reason"`
	URL     string `json:"url"`
	DelayMs int    `json:"delay_ms"`
}

// stream connects to srv and delivers its events until the stream ends.
func (c *Client) stream(ctx context.Context, srv farm.Server, list *farm.List, pending **Failover, rng *mrand.Rand) streamEnd {
	sctx, cancel := context.WithCancelCause(ctx)
	// The watchdog below runs until sctx ends: cancel it before waiting for
	// it, or every failover would stall until the idle timeout.
	var wg sync.WaitGroup
	defer func() {
		cancel(nil)
		wg.Wait()
	}()

	u, err := streamURL(srv.URL, c.cfg.Topics)
	if err != nil {
		return streamEnd{kind: endFailed, reason: err.Error()}
	}
	req, _ := http.NewRequestWithContext(sctx, http.MethodGet, u, nil)
	req.Header.Set("Accept", "text/event-stream")
	if cur := c.Cursor(); cur != "" {
		req.Header.Set("Last-Event-ID", cur)
	}
	resp, err := c.cfg.HTTPClient.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return streamEnd{kind: endCanceled}
		}
		return streamEnd{kind: endFailed, reason: "connect: " + err.Error()}
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusServiceUnavailable:
		io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		d, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
		return streamEnd{kind: endRefused, reason: "refused: 503 " + srv.Name + " is full or draining",
			hint: resp.Header.Get("Location"), delay: time.Duration(max(d, 0)) * time.Second}
	case resp.StatusCode != http.StatusOK:
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return streamEnd{kind: endFailed, reason: fmt.Sprintf("%s: %s", resp.Status, strings.TrimSpace(string(body)))}
	}
	node := resp.Header.Get("Farmlb-Node")
	if node == "" {
		node = srv.Name
	}
	c.setNode(node)
	c.mu.Lock()
	if p := *pending; p != nil {
		p.To, p.Took = node, time.Since(p.At)
		c.failovers = append(c.failovers, *p)
		*pending = nil
	}
	c.err = nil
	c.mu.Unlock()
	c.cfg.Logger.Info("streaming", "node", node, "url", srv.URL)

	// Watchdog: a stream silent for IdleTimeout is dead.
	alive := make(chan struct{}, 1)
	touch := func() {
		select {
		case alive <- struct{}{}:
		default:
		}
	}
	moveBack := make(chan *farm.List, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		c.watch(sctx, cancel, alive, srv, list, moveBack, rng.Uint64())
	}()

	r := newSSEReader(resp.Body)
	r.OnComment = touch
	healthy := false
	for {
		ev, err := r.Next()
		touch()
		if err != nil {
			select {
			case l := <-moveBack:
				return streamEnd{kind: endMoveBack, reason: "a higher priority group is UP", list: l, healthy: true}
			default:
			}
			if ctx.Err() != nil {
				return streamEnd{kind: endCanceled}
			}
			reason := "stream ended: " + err.Error()
			if cause := context.Cause(sctx); cause != nil && !errors.Is(cause, context.Canceled) {
				reason = cause.Error()
			}
			return streamEnd{kind: endFailed, reason: reason, healthy: healthy}
		}
		switch {
		case ev.Event == "farmlb-move":
			var h moveHint
			_ = json.Unmarshal([]byte(ev.Data), &h)
			return streamEnd{kind: endMoved, reason: "told to move: " + h.Reason, hint: h.URL,
				delay: time.Duration(max(h.DelayMs, 0)) * time.Millisecond, healthy: true}
		case ev.Event == "farmlb-reset":
			var h struct {
				Topic string `json:"topic"`
			}
			_ = json.Unmarshal([]byte(ev.Data), &h)
			if !c.deliver(ctx, Event{Topic: h.Topic, ID: ev.ID, Data: ev.Data, Node: node, Reset: true}, ev.HasID) {
				return streamEnd{kind: endCanceled}
			}
		case strings.HasPrefix(ev.Event, "farmlb-"):
			// Control events this version does not know.
		default:
			topic := ev.Event
			if topic == "" {
				topic = "message"
			}
			if !c.deliver(ctx, Event{Topic: topic, ID: ev.ID, Data: ev.Data, Node: node}, ev.HasID) {
				return streamEnd{kind: endCanceled}
			}
			healthy = true
		}
	}
}

// deliver hands an event to the caller and only then advances the cursor,
// so a failover resumes after the last event the caller actually got.
func (c *Client) deliver(ctx context.Context, ev Event, hasID bool) bool {
	select {
	case c.events <- ev:
	case <-ctx.Done():
		return false
	}
	if hasID {
		c.mu.Lock()
		c.cursor = ev.ID
		c.mu.Unlock()
	}
	return true
}

var errIdle = errors.New("stream silent for too long")

// watch ends the stream when it goes silent for IdleTimeout, and, while the
// client is on a lower priority group than the farm has, re-lists every
// RecheckInterval and moves back to a higher group that is UP again, after
// a random wait within MoveBackWindow.
func (c *Client) watch(ctx context.Context, cancel context.CancelCauseFunc, alive <-chan struct{}, srv farm.Server, list *farm.List, moveBack chan<- *farm.List, seed uint64) {
	rng := mrand.New(mrand.NewPCG(seed, 7))
	idle := time.NewTimer(c.cfg.IdleTimeout)
	defer idle.Stop()
	var recheck <-chan time.Time
	if list != nil && onLowerGroup(list, srv) {
		t := time.NewTicker(c.cfg.RecheckInterval)
		defer t.Stop()
		recheck = t.C
	}
	var move <-chan time.Time
	var fresh *farm.List
	for {
		select {
		case <-ctx.Done():
			return
		case <-alive:
			if !idle.Stop() {
				select {
				case <-idle.C:
				default:
				}
			}
			idle.Reset(c.cfg.IdleTimeout)
		case <-idle.C:
			cancel(errIdle)
			return
		case <-recheck:
			if move != nil {
				continue
			}
			l, err := Discover(ctx, c.cfg)
			if err != nil {
				continue
			}
			if idx, err := farm.Candidates(l); err == nil && l.Servers[idx[0]].Priority < srv.Priority {
				fresh = l
				wait := time.Duration(rng.Int64N(int64(c.cfg.MoveBackWindow)) + 1)
				c.cfg.Logger.Info("a higher priority group is UP; moving back", "node", srv.Name, "in", wait)
				move = time.After(wait)
			}
		case <-move:
			moveBack <- fresh
			cancel(errors.New("moving back to a higher priority group"))
			return
		}
	}
}

// onLowerGroup reports whether the list has servers of a higher priority
// group than srv's, whatever their status.
func onLowerGroup(l *farm.List, srv farm.Server) bool {
	for _, s := range l.Servers {
		if s.Priority < srv.Priority {
			return true
		}
	}
	return false
}

func streamURL(base string, topics []string) (string, error) {
	u, err := url.Parse(base)
	if err != nil {
		return "", fmt.Errorf("server URL %q: %w", base, err)
	}
	u.Path = strings.TrimSuffix(u.Path, "/") + "/stream"
	q := url.Values{}
	for _, t := range topics {
		q.Add("topic", t)
	}
	// Events named by their topic, payload as data: what this reader
	// expects (a node older than this parameter sends them so anyway).
	q.Set("event", "topic")
	u.RawQuery = q.Encode()
	return u.String(), nil
}
