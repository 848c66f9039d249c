package testbed

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/farmlb/farmlb/farm"
)

// RunConfig says how to run a scenario.
type RunConfig struct {
	Scenario *Scenario
	// BinDir holds pushd, dnsd and farmctl. If empty, "bin".
	BinDir string
	// Agent is the argv prefix that starts the lab's client process (it is
	// given "agent" flags after it). If empty, this executable with "agent".
	Agent []string
	// Flood is the argv prefix that starts a dns-flood process (it is given
	// "flood" flags after it). If empty, this executable with "flood".
	Flood []string
	// Unbound is the unbound binary. If empty, "unbound" on PATH.
	Unbound string
	// OutDir receives the report, the charts, one log per host and the
	// farm's files. It is created if missing.
	OutDir string
	// Prefix names the lab's objects. If empty, DefaultPrefix.
	Prefix string
	// Progress receives a line per step and a status line every 2 s. If
	// nil, io.Discard.
	Progress io.Writer
	// Logger, if nil slog.Default().
	Logger *slog.Logger
	// Seed makes the clients' and publisher's choices repeatable.
	Seed uint64
	// ReadyTimeout bounds the farm's start-up. If zero, 60 s.
	ReadyTimeout time.Duration
}

// daemon is one long-running process of the farm and how to start it again.
type daemon struct {
	name string
	host *Host
	argv []string
	proc *Proc
}

type runner struct {
	cfg     RunConfig
	s       *Scenario
	plan    Plan
	lab     *Lab
	farmDir string
	log     *slog.Logger
	out     io.Writer
	start   time.Time

	daemons map[string]*daemon // by host name: nodes, ns1, ns2, resolver
	mon     *Host
	monHTTP *http.Client
	rec     *recorder
	pub     *publisher
	agents  []*agentProc
	floods  map[string]*Proc // dns-flood processes on the monitor host, by target
	faults  []faultRecord
	starved map[string]*starver // by node, while starve holds it
}

// agentProc is one client process: a `testbed agent` (fed arrivals on
// stdin) or a `farmctl swarm` (started per arrival, ends by itself).
type agentProc struct {
	proc  *Proc
	stdin *os.File // agent only
	out   string
}

type faultRecord struct {
	AtMS   int64  `json:"at_ms"`
	Fault  string `json:"fault"`
	Target string `json:"target"`
	Peer   string `json:"peer,omitempty"`
	Err    string `json:"error,omitempty"`
}

// Run builds the lab for the scenario, starts the farm in it, plays the
// timeline, and writes report.json and report.md into OutDir. The lab is
// removed when Run returns, also when ctx is cancelled (Ctrl-C).
func Run(ctx context.Context, cfg RunConfig) (*Report, error) {
	f, err := StartFarm(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return f.r.play(ctx)
}

// Farm is a scenario's lab with the farm running in it and whole.
type Farm struct{ r *runner }

// Close stops every process and removes the lab.
func (f *Farm) Close() error { return f.r.lab.Close() }

// Describe writes where everything is, for someone who wants to poke at it.
func (f *Farm) Describe(w io.Writer) {
	for _, h := range f.r.lab.Hosts() {
		what := "client host"
		if d, ok := f.r.daemons[h.Name]; ok {
			what = d.name
			if d.name == "pushd" {
				what += " " + NodeURL(HostConfig{Addr: h.Addr})
			}
		} else if h.Name == "mon" {
			what = "monitor"
		}
		fmt.Fprintf(w, "%-8s %-14s %-12s %s\n", h.Name, h.NS, h.Addr, what)
	}
	fmt.Fprintf(w, "logs: %s\nfarm file: %s\n", f.r.lab.LogDir(), filepath.Join(f.r.farmDir, "farm.yaml"))
}

// StartFarm builds the scenario's lab and starts the farm in it, and
// returns once every node lists every node UP (and the resolver answers).
func StartFarm(ctx context.Context, cfg RunConfig) (_ *Farm, err error) {
	if err := RequireRoot(); err != nil {
		return nil, err
	}
	if cfg.BinDir == "" {
		cfg.BinDir = "bin"
	}
	if cfg.Unbound == "" {
		cfg.Unbound = "unbound"
	}
	if cfg.Progress == nil {
		cfg.Progress = io.Discard
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.ReadyTimeout == 0 {
		cfg.ReadyTimeout = 60 * time.Second
	}
	if len(cfg.Agent) == 0 {
		self, err := os.Executable()
		if err != nil {
			return nil, err
		}
		cfg.Agent = []string{self, "agent"}
	}
	if len(cfg.Flood) == 0 {
		self, err := os.Executable()
		if err != nil {
			return nil, err
		}
		cfg.Flood = []string{self, "flood"}
	}
	s := cfg.Scenario
	bins := []string{"pushd", "farmctl"}
	if s.DNS {
		bins = append(bins, "dnsd")
	}
	for _, b := range bins {
		if _, err := os.Stat(filepath.Join(cfg.BinDir, b)); err != nil {
			return nil, fmt.Errorf("scenario %s needs %s: %w (run make build)", s.Name, filepath.Join(cfg.BinDir, b), err)
		}
	}
	if s.DNS {
		if _, err := exec.LookPath(cfg.Unbound); err != nil {
			return nil, fmt.Errorf("scenario %s needs unbound on the resolver host: %w (apt-get install unbound)", s.Name, err)
		}
	}
	binDir, err := filepath.Abs(cfg.BinDir)
	if err != nil {
		return nil, err
	}
	cfg.BinDir = binDir
	out, err := filepath.Abs(cfg.OutDir)
	if err != nil {
		return nil, err
	}
	cfg.OutDir = out
	for _, d := range []string{"logs", "farm", "clients", "metrics"} {
		if err := os.MkdirAll(filepath.Join(cfg.OutDir, d), 0o755); err != nil {
			return nil, err
		}
	}
	r := &runner{cfg: cfg, s: s, plan: PlanFor(s), log: cfg.Logger, out: cfg.Progress,
		farmDir: filepath.Join(cfg.OutDir, "farm"), daemons: map[string]*daemon{}}
	r.lab, err = Up(LabConfig{Prefix: cfg.Prefix, Hosts: r.plan.Hosts(), LogDir: filepath.Join(cfg.OutDir, "logs"), Logger: cfg.Logger})
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			if cerr := r.lab.Close(); cerr != nil {
				r.log.Error("lab teardown", "err", cerr)
			}
		}
	}()
	r.mon, _ = r.lab.Host("mon")
	r.monHTTP = r.mon.HTTPClient(time.Second)
	r.progress("lab up: %d hosts, logs in %s", len(r.lab.Hosts()), r.lab.LogDir())
	if err := r.startFarm(ctx); err != nil {
		return nil, err
	}
	return &Farm{r: r}, nil
}

func (r *runner) progress(format string, args ...any) {
	prefix := "  "
	if !r.start.IsZero() {
		prefix = fmt.Sprintf("%6.1fs ", time.Since(r.start).Seconds())
	}
	fmt.Fprintf(r.out, "[%s] %s"+format+"\n", append([]any{r.s.Name, prefix}, args...)...)
}

// startFarm issues the certificates, writes the farm file and the resolver's
// config, starts every daemon, and waits until the farm is whole: every
// node answers /healthz and lists every node UP, and the resolver answers
// for the service.
func (r *runner) startFarm(ctx context.Context) error {
	farmctl := filepath.Join(r.cfg.BinDir, "farmctl")
	pki := filepath.Join(r.farmDir, "pki")
	members := []string{}
	for _, n := range r.plan.Nodes {
		members = append(members, n.Name)
	}
	for _, n := range r.plan.NS {
		members = append(members, n.Name)
	}
	cmds := [][]string{{farmctl, "ca", "init", "--force", pki}}
	for _, m := range members {
		cmds = append(cmds, []string{farmctl, "ca", "issue", "--force", pki, m})
	}
	for _, c := range cmds {
		if out, err := exec.CommandContext(ctx, c[0], c[1:]...).CombinedOutput(); err != nil {
			return fmt.Errorf("%s: %w\n%s", strings.Join(c, " "), err, out)
		}
	}
	farmFile, err := writeFarm(r.farmDir, r.s, r.plan)
	if err != nil {
		return err
	}
	add := func(hostName, name string, argv ...string) {
		h, _ := r.lab.Host(hostName)
		r.daemons[hostName] = &daemon{name: name, host: h, argv: argv}
	}
	for _, o := range r.plan.NS {
		add(o.Name, "dnsd", filepath.Join(r.cfg.BinDir, "dnsd"), "--config", farmFile, "--name", o.Name,
			"--metrics", netip.AddrPortFrom(o.Addr, dnsMetricsPort).String())
	}
	for _, n := range r.plan.Nodes {
		add(n.Name, "pushd", filepath.Join(r.cfg.BinDir, "pushd"), "--config", farmFile, "--node", n.Name)
	}
	if r.s.DNS {
		conf, err := writeUnbound(r.farmDir, r.plan)
		if err != nil {
			return err
		}
		add(r.plan.Resolver.Name, "unbound", r.cfg.Unbound, "-d", "-c", conf)
	}
	for _, h := range r.plan.Hosts() {
		d, ok := r.daemons[h.Name]
		if !ok {
			continue
		}
		if err := r.startDaemon(d); err != nil {
			return err
		}
	}
	r.progress("farm started: %d pushd, %d dnsd; waiting until it is whole", len(r.plan.Nodes), len(r.plan.NS))
	ctx, cancel := context.WithTimeout(ctx, r.cfg.ReadyTimeout)
	defer cancel()
	for _, n := range r.plan.Nodes {
		err := poll(ctx, 200*time.Millisecond, func() error {
			if d := r.daemons[n.Name]; d.proc != nil {
				select {
				case <-d.proc.Done():
					return errStop{fmt.Errorf("pushd on %s exited: %v (see %s)", n.Name, d.proc.Err(), d.host.LogPath())}
				default:
				}
			}
			l, err := fetchList(ctx, r.monHTTP, NodeURL(n))
			if err != nil {
				return err
			}
			for _, want := range r.plan.Nodes {
				if s, ok := l.Find(want.Name); !ok || s.Status.String() != "UP" {
					return fmt.Errorf("%s does not list %s UP yet", n.Name, want.Name)
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("farm not whole within %v: %w", r.cfg.ReadyTimeout, err)
		}
	}
	// Each dnsd too: the resolver may ask either, and one that has not
	// yet heard every node hands out a list without them (clients then
	// all pick the others, and the run counts a false DOWN at 0 s).
	for _, o := range r.plan.NS {
		server := netip.AddrPortFrom(o.Addr, dnsPort).String()
		err := poll(ctx, 200*time.Millisecond, func() error {
			strs, err := queryTXT(ctx, r.mon, server, Service)
			if err != nil {
				return err
			}
			l, err := farm.ParseTXT(strs)
			if err != nil {
				return err
			}
			for _, want := range r.plan.Nodes {
				if s, ok := l.Find(want.Name); !ok || s.Status != farm.StatusUp {
					return fmt.Errorf("%s does not list %s UP yet", o.Name, want.Name)
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("farm not whole within %v: %w", r.cfg.ReadyTimeout, err)
		}
	}
	if r.s.DNS {
		resolver := netip.AddrPortFrom(r.plan.Resolver.Addr, dnsPort).String()
		err := poll(ctx, 300*time.Millisecond, func() error {
			addrs, err := queryA(ctx, r.mon, resolver, Service)
			if err != nil {
				return err
			}
			if len(addrs) != len(r.plan.Nodes) {
				return fmt.Errorf("resolver gives %v for %s", addrs, Service)
			}
			_, err = queryTXT(ctx, r.mon, resolver, Service)
			return err
		})
		if err != nil {
			return fmt.Errorf("resolver not answering for %s within %v: %w", Service, r.cfg.ReadyTimeout, err)
		}
	}
	r.progress("farm whole: every node UP%s", map[bool]string{true: ", the resolver answers", false: ""}[r.s.DNS])
	return nil
}

func (r *runner) startDaemon(d *daemon) error {
	p, err := d.host.Start(d.name, d.argv, []string{"FARMLB_TOKEN=" + publishToken})
	if err != nil {
		return err
	}
	d.proc = p
	return nil
}

// errStop ends poll at once.
type errStop struct{ error }

// poll calls fn every interval until it succeeds, returns errStop, or ctx
// ends. It is for readiness of separate processes, seen from outside.
func poll(ctx context.Context, interval time.Duration, fn func() error) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		err := fn()
		if err == nil {
			return nil
		}
		var stop errStop
		if errors.As(err, &stop) {
			return stop.error
		}
		select {
		case <-ctx.Done():
			return err
		case <-t.C:
		}
	}
}

// play runs the timeline: observers and the publisher start, clients arrive
// and faults happen on time, then everything stops and the report is made.
func (r *runner) play(ctx context.Context) (*Report, error) {
	r.start = time.Now()
	obsCtx, stopObs := context.WithCancel(context.WithoutCancel(ctx))
	r.rec = newRecorder(r.start)
	var wg sync.WaitGroup
	r.startObservers(obsCtx, &wg)
	pubCtx, stopPub := context.WithCancel(context.WithoutCancel(ctx))
	r.pub = newPublisher(r, rand.New(rand.NewPCG(r.cfg.Seed, 0xfa)))
	wg.Add(1)
	go func() {
		defer wg.Done()
		r.pub.run(pubCtx)
	}()
	stopAll := func() {
		for name, sv := range r.starved {
			sv.stop()
			delete(r.starved, name)
		}
		stopPub()
		for _, a := range r.agents {
			if a.stdin != nil {
				a.stdin.Close()
			} else {
				_ = a.proc.Signal(syscall.SIGINT) // a swarm summarises on SIGINT
			}
		}
		for _, a := range r.agents {
			select {
			case <-a.proc.Done():
			case <-time.After(30 * time.Second):
				_ = a.proc.Signal(syscall.SIGKILL)
				<-a.proc.Done()
			}
		}
		stopObs()
		wg.Wait()
	}
	if err := r.startAgents(); err != nil {
		stopAll()
		return nil, err
	}
	status := time.NewTicker(2 * time.Second)
	defer status.Stop()
	steps := r.s.Timeline
	end := r.s.Duration + r.s.Settle
	timer := time.NewTimer(0)
	defer timer.Stop()
	<-timer.C
	for {
		next := end
		if len(steps) > 0 {
			next = steps[0].At
		}
		timer.Reset(time.Until(r.start.Add(next)))
		select {
		case <-ctx.Done():
			r.progress("interrupted: stopping")
			stopAll()
			return nil, ctx.Err()
		case <-status.C:
			timer.Stop()
			r.progress("%s", r.statusLine())
			continue
		case <-timer.C:
		}
		if len(steps) == 0 {
			break
		}
		r.apply(steps[0])
		steps = steps[1:]
	}
	balance := r.rec.balanceNow(r.plan)
	r.progress("timeline over: stopping the publisher, then the clients")
	stopPub()
	// The last published messages need a moment to reach every client.
	time.Sleep(2 * time.Second)
	stopAll()
	r.saveMetrics()
	rep, err := r.report(balance)
	if err != nil {
		return nil, err
	}
	if err := writeReport(r.cfg.OutDir, r.s, rep, r.rec); err != nil {
		return nil, err
	}
	return rep, nil
}

func (r *runner) startAgents() error {
	if r.s.Clients.Kind != "agent" {
		return nil // swarms start at each arrival
	}
	for i, c := range r.plan.Clients {
		h, _ := r.lab.Host(c.Name)
		argv := append([]string(nil), r.cfg.Agent...)
		out := filepath.Join(r.cfg.OutDir, "clients", c.Name+".jsonl")
		argv = append(argv, "--topic", r.s.Publish.Topic, "--idle", r.s.Clients.IdleTimeout.String(),
			"--out", out, "--seed", fmt.Sprint(r.cfg.Seed+uint64(i)*7919))
		if r.s.Clients.Discovery == "dns" {
			argv = append(argv, "--resolver", netip.AddrPortFrom(r.plan.Resolver.Addr, dnsPort).String(), "--service", Service,
				"--http-port", fmt.Sprint(httpPort))
		} else {
			for _, n := range r.plan.Nodes {
				argv = append(argv, "--list", NodeURL(n)+"/farm")
			}
		}
		rd, wr, err := os.Pipe()
		if err != nil {
			return err
		}
		p, err := h.StartIO("agent", argv, nil, rd, nil)
		rd.Close()
		if err != nil {
			wr.Close()
			return err
		}
		r.agents = append(r.agents, &agentProc{proc: p, stdin: wr, out: out})
	}
	return nil
}

// startSwarm starts `farmctl swarm` on client host c for n of the step's
// clients: spread over the step's ramp, checking the published sequence, a
// JSON summary on stdout when it is interrupted at the end.
func (r *runner) startSwarm(c HostConfig, st Step, n int) error {
	h, _ := r.lab.Host(c.Name)
	ramp := st.Over
	if ramp <= 0 {
		ramp = time.Millisecond
	}
	argv := []string{filepath.Join(r.cfg.BinDir, "farmctl"), "swarm", "--clients", fmt.Sprint(n), "--ramp", ramp.String(),
		"--interval", "0", "--check-seq", "--json", "--seed", fmt.Sprint(r.cfg.Seed*1000 + uint64(len(r.agents)))}
	if r.s.Clients.Discovery == "dns" {
		argv = append(argv, "--dns", netip.AddrPortFrom(r.plan.Resolver.Addr, dnsPort).String(), "--zone", Service, "--http-port", fmt.Sprint(httpPort))
	} else {
		for _, n := range r.plan.Nodes {
			argv = append(argv, "--url", NodeURL(n)+"/farm")
		}
	}
	argv = append(argv, r.s.Publish.Topic)
	out := filepath.Join(r.cfg.OutDir, "clients", fmt.Sprintf("%s-%d.json", c.Name, len(r.agents)))
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	defer f.Close()
	p, err := h.StartIO("swarm", argv, nil, nil, f)
	if err != nil {
		return err
	}
	r.agents = append(r.agents, &agentProc{proc: p, out: out})
	return nil
}

// apply carries out one step of the timeline.
func (r *runner) apply(st Step) {
	if st.Arrive > 0 {
		n := len(r.plan.Clients)
		for i, c := range r.plan.Clients {
			share := st.Arrive / n
			if i < st.Arrive%n {
				share++
			}
			if share == 0 {
				continue
			}
			if r.s.Clients.Kind == "agent" {
				fmt.Fprintf(r.agents[i].stdin, "arrive %d %s\n", share, st.Over)
				continue
			}
			if err := r.startSwarm(c, st, share); err != nil {
				r.progress("clients on %s: %v", c.Name, err)
			}
		}
		r.progress("%d clients arrive over %v", st.Arrive, st.Over)
		return
	}
	// The fault's time is when it began: a restart returns only once the
	// node has drained, exited and started again.
	began := time.Now()
	r.rec.fault(began, st)
	err := r.fault(st)
	rec := faultRecord{AtMS: began.Sub(r.start).Milliseconds(), Fault: st.Fault, Target: st.Target, Peer: st.Peer}
	if err != nil {
		rec.Err = err.Error()
		r.progress("FAULT %s %s %s failed: %v", st.Fault, st.Target, st.Peer, err)
	} else {
		r.progress("fault: %s %s %s", st.Fault, st.Target, st.Peer)
	}
	r.faults = append(r.faults, rec)
}

func (r *runner) fault(st Step) error {
	d := r.daemons[st.Target]
	h, _ := r.lab.Host(st.Target)
	switch st.Fault {
	case "kill":
		return d.proc.Signal(syscall.SIGKILL)
	case "stop":
		return d.proc.Freeze()
	case "cont":
		return d.proc.Signal(syscall.SIGCONT)
	case "term":
		return d.proc.Signal(syscall.SIGTERM)
	case "restart":
		select {
		case <-d.proc.Done():
		default:
			// SIGTERM drains: the node turns DRAINING, moves its clients
			// over its drain window, then exits.
			d.proc.Stop(syscall.SIGTERM, 30*time.Second)
		}
		return r.startDaemon(d)
	case "link-down", "dns-down":
		return h.LinkDown()
	case "dns-flood":
		if r.floods == nil {
			r.floods = map[string]*Proc{}
		}
		if r.floods[st.Target] != nil {
			return fmt.Errorf("%s is already flooded", st.Target)
		}
		argv := append(append([]string(nil), r.cfg.Flood...), "--target", netip.AddrPortFrom(h.Addr, dnsPort).String(), "--rate", fmt.Sprint(st.Rate))
		p, err := r.mon.Start("flood-"+st.Target, argv, nil)
		if err != nil {
			return err
		}
		r.floods[st.Target] = p
		return nil
	case "dns-unflood":
		p := r.floods[st.Target]
		if p == nil {
			return fmt.Errorf("%s is not flooded", st.Target)
		}
		delete(r.floods, st.Target)
		p.Stop(syscall.SIGTERM, 5*time.Second) // it writes its figures to the monitor's log
		return nil
	case "link-up", "dns-up":
		return h.LinkUp()
	case "cut", "heal":
		p, _ := r.lab.Host(st.Peer)
		op := (*Host).Cut
		if st.Fault == "heal" {
			op = (*Host).Heal
		}
		if err := op(h, p); err != nil {
			return err
		}
		if st.OneWay {
			return nil
		}
		return op(p, h)
	case "squeeze":
		return h.Squeeze(st.Rate, 16<<10, 256<<10)
	case "unsqueeze":
		return h.Unsqueeze()
	case "check-fail":
		return os.WriteFile(healthFile(r.farmDir, st.Target), []byte("made to fail by the testbed\n"), 0o644)
	case "check-ok":
		if err := os.Remove(healthFile(r.farmDir, st.Target)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		return nil
	case "starve":
		if r.starved == nil {
			r.starved = map[string]*starver{}
		}
		if r.starved[st.Target] != nil {
			return nil
		}
		r.starved[st.Target] = startStarving(d.proc, 700*time.Millisecond, 150*time.Millisecond)
		return nil
	case "unstarve":
		if sv := r.starved[st.Target]; sv != nil {
			sv.stop()
			delete(r.starved, st.Target)
		}
		return nil
	case "drain", "undrain":
		req, err := http.NewRequest(http.MethodPost, NodeURL(HostConfig{Addr: h.Addr})+"/admin/"+st.Fault, nil)
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+adminToken)
		resp, err := r.monHTTP.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			return fmt.Errorf("%s: %s", st.Fault, resp.Status)
		}
		return nil
	}
	return fmt.Errorf("unknown fault %q", st.Fault)
}

func (r *runner) statusLine() string {
	var b strings.Builder
	b.WriteString("users")
	for _, n := range r.plan.Nodes {
		fmt.Fprintf(&b, " %s=%s", n.Name, r.rec.usersNow(n.Name))
	}
	fmt.Fprintf(&b, " | published %d (acked %d, failed %d)", r.pub.sent(), r.pub.ackedCount(), r.pub.failedCount())
	return b.String()
}

// saveMetrics keeps each node's last /metrics in the output folder.
func (r *runner) saveMetrics() {
	for _, n := range r.plan.Nodes {
		resp, err := r.monHTTP.Get(NodeURL(n) + "/metrics")
		if err != nil {
			continue
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
		resp.Body.Close()
		_ = os.WriteFile(filepath.Join(r.cfg.OutDir, "metrics", n.Name+".txt"), body, 0o644)
	}
	// dnsd's: what response rate limiting and cookies did.
	for _, n := range r.plan.NS {
		resp, err := r.monHTTP.Get("http://" + netip.AddrPortFrom(n.Addr, dnsMetricsPort).String() + "/metrics")
		if err != nil {
			continue
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
		resp.Body.Close()
		_ = os.WriteFile(filepath.Join(r.cfg.OutDir, "metrics", n.Name+".txt"), body, 0o644)
		for _, line := range strings.Split(string(body), "\n") {
			if strings.HasPrefix(line, "farmlb_dnsd_rrl_dropped_total ") || strings.HasPrefix(line, "farmlb_dnsd_rrl_slipped_total ") {
				r.progress("%s: %s", n.Name, line)
			}
		}
	}
}

// starver keeps a process short of CPU: stopped (SIGSTOP) for off, then
// running (SIGCONT) for on, in turn, until stop. It is how the lab starves
// a node without cgroups: the node runs on/(on+off) of the time, in slices
// short enough for the mesh (with a scenario's longer mesh timers) to keep
// it UP.
type starver struct {
	cancel context.CancelFunc
	done   chan struct{}
}

func startStarving(p *Proc, off, on time.Duration) *starver {
	ctx, cancel := context.WithCancel(context.Background())
	sv := &starver{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(sv.done)
		defer p.Signal(syscall.SIGCONT)
		t := time.NewTimer(0)
		defer t.Stop()
		stopped := false
		for {
			select {
			case <-ctx.Done():
				return
			case <-p.Done():
				return
			case <-t.C:
			}
			if stopped {
				_ = p.Signal(syscall.SIGCONT)
				t.Reset(on)
			} else {
				_ = p.Signal(syscall.SIGSTOP)
				t.Reset(off)
			}
			stopped = !stopped
		}
	}()
	return sv
}

// stop ends the starving and leaves the process running.
func (sv *starver) stop() {
	sv.cancel()
	<-sv.done
}
