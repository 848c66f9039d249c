package testbed

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/farmlb/farmlb/farm"
	"github.com/miekg/dns"
)

// How the lab observes the farm, all from the monitor host ("mon"), as a
// user's machine would: every pushd's /farm, each dnsd's _farm TXT asked
// directly, and the resolver's A and _farm TXT answers for the service.
const observeEvery = 100 * time.Millisecond

// listSample is one member's view of the farm at one moment.
type listSample struct {
	at       time.Time
	reporter string
	list     *farm.List // nil when the member did not answer
}

// dnsSample is one resolver answer.
type dnsSample struct {
	at    time.Time
	addrs []netip.Addr
	err   error
}

type recorder struct {
	start time.Time
	end   time.Time // end of the timeline, set by balanceNow

	mu       sync.Mutex
	lists    []listSample
	resolved []dnsSample // A records through the resolver
	txt      []dnsSample // _farm TXT through the resolver (addrs unused)
	faults   []timedStep
}

type timedStep struct {
	at time.Time
	st Step
}

func newRecorder(start time.Time) *recorder { return &recorder{start: start} }

func (rc *recorder) fault(at time.Time, st Step) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.faults = append(rc.faults, timedStep{at, st})
}

func (rc *recorder) addList(s listSample) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.lists = append(rc.lists, s)
}

// usersNow is the node's own latest report of its users, "?" if none.
func (rc *recorder) usersNow(node string) string {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	for i := len(rc.lists) - 1; i >= 0 && i > len(rc.lists)-200; i-- {
		s := rc.lists[i]
		if s.reporter == node {
			if s.list == nil {
				return "-"
			}
			if sv, ok := s.list.Find(node); ok {
				return strconv.Itoa(sv.Users)
			}
		}
	}
	return "?"
}

// balanceNow is each UP node's user count, from its own latest answer.
func (rc *recorder) balanceNow(p Plan) map[string]int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.end = time.Now()
	out := map[string]int{}
	seen := map[string]bool{}
	for i := len(rc.lists) - 1; i >= 0 && len(seen) < len(p.Nodes); i-- {
		s := rc.lists[i]
		if seen[s.reporter] || s.reporter == "ns1" || s.reporter == "ns2" {
			continue
		}
		seen[s.reporter] = true
		if s.list == nil {
			continue
		}
		if sv, ok := s.list.Find(s.reporter); ok && sv.Status == farm.StatusUp {
			out[s.reporter] = sv.Users
		}
	}
	return out
}

// startObservers starts one poller per member and per resolver question;
// each runs until ctx ends and is waited for through wg.
func (r *runner) startObservers(ctx context.Context, wg *sync.WaitGroup) {
	every := func(fn func(context.Context)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := time.NewTicker(observeEvery)
			defer t.Stop()
			for {
				fn(ctx)
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				}
			}
		}()
	}
	client := r.mon.HTTPClient(700 * time.Millisecond)
	for _, n := range r.plan.Nodes {
		every(func(ctx context.Context) {
			at := time.Now()
			l, _ := fetchList(ctx, client, NodeURL(n))
			r.rec.addList(listSample{at: at, reporter: n.Name, list: l})
		})
	}
	for _, o := range r.plan.NS {
		server := netip.AddrPortFrom(o.Addr, dnsPort).String()
		every(func(ctx context.Context) {
			at := time.Now()
			strs, err := queryTXT(ctx, r.mon, server, Service)
			var l *farm.List
			if err == nil {
				l, _ = farm.ParseTXT(strs)
			}
			r.rec.addList(listSample{at: at, reporter: o.Name, list: l})
		})
	}
	if r.s.DNS {
		resolver := netip.AddrPortFrom(r.plan.Resolver.Addr, dnsPort).String()
		every(func(ctx context.Context) {
			at := time.Now()
			addrs, err := queryA(ctx, r.mon, resolver, Service)
			if ctx.Err() != nil {
				return
			}
			r.rec.mu.Lock()
			r.rec.resolved = append(r.rec.resolved, dnsSample{at: at, addrs: addrs, err: err})
			r.rec.mu.Unlock()
		})
		every(func(ctx context.Context) {
			at := time.Now()
			_, err := queryTXT(ctx, r.mon, resolver, Service)
			if ctx.Err() != nil {
				return
			}
			r.rec.mu.Lock()
			r.rec.txt = append(r.rec.txt, dnsSample{at: at, err: err})
			r.rec.mu.Unlock()
		})
	}
}

// queryTimeout is how long a query may take: 3 s, a little under what a
// stub resolver waits (glibc: 5 s), so that a resolver working its way past
// a dead name server counts as slow, not failed.
const queryTimeout = 3 * time.Second

// exchange sends m to server from host h: over UDP, and again over TCP when
// the answer is truncated.
func exchange(ctx context.Context, h *Host, server string, m *dns.Msg) (*dns.Msg, error) {
	ctx, cancel := context.WithTimeout(ctx, queryTimeout)
	defer cancel()
	for _, network := range []string{"udp", "tcp"} {
		c, err := h.DialContext(ctx, network, server)
		if err != nil {
			return nil, err
		}
		co := &dns.Conn{Conn: c}
		if dl, ok := ctx.Deadline(); ok {
			_ = c.SetDeadline(dl)
		}
		in, _, err := (&dns.Client{Net: network}).ExchangeWithConnContext(ctx, m, co)
		c.Close()
		if err != nil {
			return nil, err
		}
		if !in.Truncated {
			if in.Rcode != dns.RcodeSuccess {
				return nil, fmt.Errorf("%s: %s", m.Question[0].Name, dns.RcodeToString[in.Rcode])
			}
			return in, nil
		}
	}
	return nil, fmt.Errorf("%s: truncated over TCP", m.Question[0].Name)
}

func queryA(ctx context.Context, h *Host, server, name string) ([]netip.Addr, error) {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), dns.TypeA)
	m.SetEdns0(1232, false)
	in, err := exchange(ctx, h, server, m)
	if err != nil {
		return nil, err
	}
	var out []netip.Addr
	for _, rr := range in.Answer {
		if a, ok := rr.(*dns.A); ok {
			if ip, ok := netip.AddrFromSlice(a.A); ok {
				out = append(out, ip.Unmap())
			}
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no A records", name)
	}
	return out, nil
}

func queryTXT(ctx context.Context, h *Host, server, service string) ([]string, error) {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn("_farm."+service), dns.TypeTXT)
	m.SetEdns0(1232, false)
	in, err := exchange(ctx, h, server, m)
	if err != nil {
		return nil, err
	}
	var strs []string
	for _, rr := range in.Answer {
		if t, ok := rr.(*dns.TXT); ok {
			strs = append(strs, t.Txt...)
		}
	}
	if len(strs) == 0 {
		return nil, fmt.Errorf("_farm.%s: no TXT records", service)
	}
	return strs, nil
}

// publisher publishes the sequence 1, 2, 3, ... on the scenario's topic at
// its rate, from the monitor host. A message is retried (same
// Idempotency-Key) on the next node until one acknowledges it, and the next
// number waits for that, so the acknowledged numbers are gap-free.
type publisher struct {
	r      *runner
	rnd    *rand.Rand
	client *http.Client

	next   atomic.Int64 // the number being published
	failed atomic.Int64 // attempts that failed

	mu    sync.Mutex
	acked map[int]time.Time
}

func newPublisher(r *runner, rnd *rand.Rand) *publisher {
	return &publisher{r: r, rnd: rnd, client: r.mon.HTTPClient(2 * time.Second), acked: map[int]time.Time{}}
}

func (p *publisher) sent() int64 { return p.next.Load() }

func (p *publisher) failedCount() int64 { return p.failed.Load() }

func (p *publisher) ackedCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.acked)
}

func (p *publisher) ackedSet() map[int]time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[int]time.Time, len(p.acked))
	for k, v := range p.acked {
		out[k] = v
	}
	return out
}

func (p *publisher) run(ctx context.Context) {
	nodes := p.r.plan.Nodes
	interval := time.Duration(float64(time.Second) / p.r.s.Publish.Rate)
	t := time.NewTicker(interval)
	defer t.Stop()
	at := p.rnd.IntN(len(nodes))
	for i, n := range nodes {
		if n.Name == p.r.s.Publish.Via {
			at = i
		}
	}
	for seq := 1; ; seq++ {
		p.next.Store(int64(seq))
		for ctx.Err() == nil {
			err := p.publish(ctx, nodes[at], seq)
			if err == nil {
				p.mu.Lock()
				p.acked[seq] = time.Now()
				p.mu.Unlock()
				break
			}
			p.failed.Add(1)
			at = (at + 1) % len(nodes)
			select {
			case <-ctx.Done():
			case <-time.After(50 * time.Millisecond):
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (p *publisher) publish(ctx context.Context, n HostConfig, seq int) error {
	body := strconv.Itoa(seq)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, NodeURL(n)+"/publish/"+p.r.s.Publish.Topic, strings.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+publishToken)
	req.Header.Set("Idempotency-Key", fmt.Sprintf("testbed-%s-%d", p.r.s.Name, seq))
	resp, err := p.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("publish %d to %s: %s", seq, n.Name, resp.Status)
	}
	return nil
}

// fetchList gets base's /farm.
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
