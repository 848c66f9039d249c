package testbed

// Stand-ins for pushd and dnsd, run as real processes from this test binary
// (FARMLB_TESTBED_HELPER=pushd / dnsd), so the runner's whole path — lab,
// start-up, publisher, observers, client processes, faults, report — is
// tested before and independently of the real daemons. They speak the
// contract's HTTP and DNS surface in the simplest way that works: HTTP
// fan-out instead of the QUIC mesh, the published number as the event id.
// They are not the product; `make testbed` runs the real binaries.

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/farmlb/farmlb/config"
	"github.com/farmlb/farmlb/farm"
	"github.com/miekg/dns"
)

func flagValue(args []string, name string) string {
	for i, a := range args {
		if a == name && i+1 < len(args) {
			return args[i+1]
		}
	}
	return ""
}

// standIn runs a stand-in daemon if the environment asks for one; it
// returns false otherwise.
func standIn() bool {
	kind := os.Getenv("FARMLB_TESTBED_HELPER")
	if kind != "pushd" && kind != "dnsd" {
		return false
	}
	f, err := config.Load(flagValue(os.Args, "--config"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if kind == "pushd" {
		err = standInPushd(ctx, f, flagValue(os.Args, "--node"))
	} else {
		err = standInDNSd(ctx, f, flagValue(os.Args, "--name"))
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	return true
}

type standInNode struct {
	f    *config.Farm
	self *config.Node
	hc   *http.Client

	mu      sync.Mutex
	history []int
	have    map[int]bool
	subs    map[chan int]bool
	fails   map[string]int // peer -> consecutive failed checks
	users   map[string]int
}

func standInPushd(ctx context.Context, f *config.Farm, name string) error {
	self, ok := f.Node(name)
	if !ok {
		return fmt.Errorf("no node %q", name)
	}
	n := &standInNode{f: f, self: self, hc: &http.Client{Timeout: 400 * time.Millisecond},
		have: map[int]bool{}, subs: map[chan int]bool{}, fails: map[string]int{}, users: map[string]int{}}
	ln, err := net.Listen("tcp", self.Listen)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		n.mu.Lock()
		defer n.mu.Unlock()
		fmt.Fprint(w, len(n.subs))
	})
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		n.mu.Lock()
		defer n.mu.Unlock()
		fmt.Fprintf(w, "standin_streams %d\n", len(n.subs))
	})
	mux.HandleFunc("GET /farm", func(w http.ResponseWriter, r *http.Request) {
		b, _ := farm.MarshalJSON(n.list())
		w.Write(b)
	})
	mux.HandleFunc("POST /replicate/{seq}", func(w http.ResponseWriter, r *http.Request) {
		seq, _ := strconv.Atoi(r.PathValue("seq"))
		n.add(seq)
	})
	mux.HandleFunc("POST /publish/{topic}", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		seq, err := strconv.Atoi(string(body))
		if err != nil {
			http.Error(w, "not a number", http.StatusBadRequest)
			return
		}
		n.add(seq)
		held, up := 1, 1
		for _, p := range n.f.Nodes {
			if p.Name == n.self.Name || !n.peerUp(p.Name) {
				continue
			}
			up++
			resp, err := n.hc.Post(p.URL+"/replicate/"+strconv.Itoa(seq), "text/plain", nil)
			if err == nil {
				resp.Body.Close()
				held++
			}
		}
		if held < min(2, up) {
			http.Error(w, "not replicated", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintf(w, `{"id":"%d","topic":%q}`, seq, r.PathValue("topic"))
	})
	mux.HandleFunc("GET /stream", func(w http.ResponseWriter, r *http.Request) {
		cursor, _ := strconv.Atoi(r.Header.Get("Last-Event-ID"))
		topic := r.URL.Query().Get("topic")
		ch := make(chan int, 1024)
		n.mu.Lock()
		var backlog []int
		for _, s := range n.history {
			if s > cursor {
				backlog = append(backlog, s)
			}
		}
		n.subs[ch] = true
		n.mu.Unlock()
		defer func() {
			n.mu.Lock()
			delete(n.subs, ch)
			n.mu.Unlock()
		}()
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("Farmlb-Node", n.self.Name)
		w.WriteHeader(200)
		fl := w.(http.Flusher)
		send := func(s int) { fmt.Fprintf(w, "id: %d\nevent: %s\ndata: %d\n\n", s, topic, s) }
		for _, s := range backlog {
			send(s)
		}
		fl.Flush()
		last := cursor
		if len(backlog) > 0 {
			last = backlog[len(backlog)-1]
		}
		keep := time.NewTicker(time.Second)
		defer keep.Stop()
		for {
			select {
			case <-r.Context().Done():
				return
			case <-ctx.Done():
				return
			case s := <-ch:
				if s > last {
					send(s)
					last = s
					fl.Flush()
				}
			case <-keep.C:
				fmt.Fprint(w, ": keepalive\n\n")
				fl.Flush()
			}
		}
	})
	srv := &http.Server{Handler: mux}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(150 * time.Millisecond)
		defer t.Stop()
		for {
			n.check()
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	go func() { <-ctx.Done(); srv.Close() }()
	err = srv.Serve(ln)
	wg.Wait()
	if err == http.ErrServerClosed {
		return nil
	}
	return err
}

func (n *standInNode) add(seq int) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.have[seq] {
		return
	}
	n.have[seq] = true
	n.history = append(n.history, seq)
	slices.Sort(n.history)
	for ch := range n.subs {
		select {
		case ch <- seq:
		default:
		}
	}
}

func (n *standInNode) peerUp(name string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.fails[name] < 3
}

func (n *standInNode) check() {
	var wg sync.WaitGroup
	for _, p := range n.f.Nodes {
		if p.Name == n.self.Name {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := n.hc.Get(p.URL + "/healthz")
			users := 0
			if err == nil {
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				users, _ = strconv.Atoi(strings.TrimSpace(string(b)))
			}
			n.mu.Lock()
			defer n.mu.Unlock()
			if err != nil {
				n.fails[p.Name]++
			} else {
				n.fails[p.Name] = 0
				n.users[p.Name] = users
			}
		}()
	}
	wg.Wait()
}

func (n *standInNode) list() *farm.List {
	l := n.f.InitialList()
	n.mu.Lock()
	defer n.mu.Unlock()
	l.Reporter, l.GeneratedAt = n.self.Name, time.Now()
	for i := range l.Servers {
		s := &l.Servers[i]
		switch {
		case s.Name == n.self.Name:
			s.Status, s.Users = farm.StatusUp, len(n.subs)
		case n.fails[s.Name] < 3:
			s.Status, s.Users = farm.StatusUp, n.users[s.Name]
		}
	}
	return l
}

func standInDNSd(ctx context.Context, f *config.Farm, name string) error {
	obs, ok := f.Observer(name)
	if !ok {
		return fmt.Errorf("no observer %q", name)
	}
	hc := &http.Client{Timeout: 400 * time.Millisecond}
	var mu sync.Mutex
	var list *farm.List
	go func() {
		t := time.NewTicker(150 * time.Millisecond)
		defer t.Stop()
		for ctx.Err() == nil {
			for _, nd := range f.Nodes {
				if l, err := fetchList(ctx, hc, nd.URL); err == nil {
					mu.Lock()
					list = l
					mu.Unlock()
					break
				}
			}
			select {
			case <-ctx.Done():
			case <-t.C:
			}
		}
	}()
	zone := dns.Fqdn(f.Zone)
	service := dns.Fqdn(f.Service)
	handler := dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(q)
		m.Authoritative = true
		mu.Lock()
		l := list
		mu.Unlock()
		qn := strings.ToLower(q.Question[0].Name)
		hdr := func(t uint16) dns.RR_Header {
			return dns.RR_Header{Name: q.Question[0].Name, Rrtype: t, Class: dns.ClassINET, Ttl: 1}
		}
		switch {
		case qn == service && q.Question[0].Qtype == dns.TypeA && l != nil:
			for _, s := range l.Servers {
				if s.Status == farm.StatusUp {
					for _, a := range s.Addrs {
						m.Answer = append(m.Answer, &dns.A{Hdr: hdr(dns.TypeA), A: a.AsSlice()})
					}
				}
			}
		case qn == "_farm."+service && q.Question[0].Qtype == dns.TypeTXT && l != nil:
			strs, _ := farm.MarshalTXT(l)
			m.Answer = append(m.Answer, &dns.TXT{Hdr: hdr(dns.TypeTXT), Txt: strs})
		case !dns.IsSubDomain(zone, qn):
			m.Rcode = dns.RcodeRefused
		}
		if len(m.Answer) == 0 && m.Rcode == 0 {
			m.Ns = append(m.Ns, &dns.SOA{Hdr: dns.RR_Header{Name: zone, Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: 1},
				Ns: "ns1." + zone, Mbox: "hostmaster." + zone, Serial: 1, Refresh: 60, Retry: 60, Expire: 600, Minttl: 1})
		}
		w.WriteMsg(m)
	})
	udp := &dns.Server{Addr: obs.DNS, Net: "udp", Handler: handler}
	tcp := &dns.Server{Addr: obs.DNS, Net: "tcp", Handler: handler}
	errs := make(chan error, 2)
	go func() { errs <- udp.ListenAndServe() }()
	go func() { errs <- tcp.ListenAndServe() }()
	select {
	case <-ctx.Done():
		udp.Shutdown()
		tcp.Shutdown()
		return nil
	case err := <-errs:
		return err
	}
}
