// Command peerlink measures the farm mesh with real member processes on
// loopback (each member its own process on its own 127.0.77.x address):
//
//	go run ./bench/peerlink detect    [-members 5] [-kills 20]   # SIGKILL/SIGSTOP detection time
//	go run ./bench/peerlink propagate [-members 5] [-changes 200] # status propagation latency
//	go run ./bench/peerlink idle      [-members 32] [-duration 30s] # CPU and bytes of an idle mesh
//	go run ./bench/peerlink soak      [-members 5] [-duration 10m] [-busy] # false DOWNs
//
// It prints its figures on standard output. The "member" and "burn"
// subcommands are the processes it starts.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/farmlb/farmlb/config"
	"github.com/farmlb/farmlb/farm"
	"github.com/farmlb/farmlb/peerlink"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: peerlink detect|propagate|idle|soak [flags]")
		os.Exit(2)
	}
	var err error
	switch cmd, args := os.Args[1], os.Args[2:]; cmd {
	case "member":
		err = runMember(args)
	case "burn":
		burn() // a CPU hog for the busy soak
	case "detect":
		err = runDetect(args)
	case "propagate":
		err = runPropagate(args)
	case "idle":
		err = runIdle(args)
	case "soak":
		err = runSoak(args)
	default:
		fmt.Fprintln(os.Stderr, "unknown command", cmd)
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "peerlink bench:", err)
		os.Exit(1)
	}
}

// ---- the member process ----

// countingConn counts the UDP payload bytes a member sends and receives.
// It hides the *net.UDPConn's batch methods, so that quic-go writes and
// reads packet by packet through it (a little slower than with recvmmsg and
// GSO, which makes the CPU figure a slight overestimate).
type countingConn struct {
	net.PacketConn
	uc      *net.UDPConn
	out, in atomic.Int64
}

func (c *countingConn) ReadFrom(b []byte) (int, net.Addr, error) {
	n, a, err := c.PacketConn.ReadFrom(b)
	c.in.Add(int64(n))
	return n, a, err
}

func (c *countingConn) WriteTo(b []byte, a net.Addr) (int, error) {
	n, err := c.PacketConn.WriteTo(b, a)
	c.out.Add(int64(n))
	return n, err
}

func (c *countingConn) SetReadBuffer(n int) error  { return c.uc.SetReadBuffer(n) }
func (c *countingConn) SetWriteBuffer(n int) error { return c.uc.SetWriteBuffer(n) }

// runMember runs one member. Stdout: "T <unixnano> name=STATUS/users ..." on
// every table change, "SET <unixnano> N" after "users N" on stdin, "STATS
// out=B in=B" after "stats".
func runMember(args []string) error {
	fs := flag.NewFlagSet("member", flag.ExitOnError)
	path := fs.String("config", "", "farm file")
	name := fs.String("name", "", "member name")
	suspect := fs.Duration("suspect", 0, "Config.SuspectAfter (0: the farm file's mesh.suspect_after, else the default)")
	probe := fs.Duration("probe", 0, "Config.ProbeTimeout (0: the farm file's mesh.probe_timeout, else the default)")
	vouch := fs.Duration("vouch", 0, "Config.VouchTimeout (0: the farm file's mesh.vouch_timeout, else the default)")
	lifetime := fs.Duration("lifetime", 0, "Config.VouchLifetime (0: the farm file's mesh.vouch_lifetime, else the default)")
	fs.Parse(args)
	f, err := config.Load(*path)
	if err != nil {
		return err
	}
	mem, ok := f.Member(*name)
	if !ok {
		return fmt.Errorf("%s is not a member", *name)
	}
	ua, err := net.ResolveUDPAddr("udp", mem.Peer)
	if err != nil {
		return err
	}
	uc, err := net.ListenUDP("udp", ua)
	if err != nil {
		return err
	}
	cc := &countingConn{PacketConn: uc, uc: uc}
	cfg := peerlink.FarmConfig(f, *name) // the farm file's mesh: timers; the flags below win
	cfg.PacketConn = cc
	if *suspect > 0 {
		cfg.SuspectAfter = *suspect
	}
	if *probe > 0 {
		cfg.ProbeTimeout = *probe
	}
	if *vouch > 0 {
		cfg.VouchTimeout = *vouch
	}
	if *lifetime > 0 {
		cfg.VouchLifetime = *lifetime
	}
	cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	m, err := peerlink.New(cfg)
	if err != nil {
		return err
	}
	if err := m.Listen(); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	var outMu sync.Mutex
	w := bufio.NewWriter(os.Stdout)
	emit := func(format string, a ...any) {
		outMu.Lock()
		fmt.Fprintf(w, format, a...)
		w.Flush()
		outMu.Unlock()
	}
	ch, cancel := m.Subscribe()
	defer cancel()
	go func() {
		for {
			var b strings.Builder
			for _, s := range m.Table().Servers {
				fmt.Fprintf(&b, " %s=%s/%d", s.Name, s.Status, s.Users)
			}
			emit("T %d%s\n", time.Now().UnixNano(), b.String())
			select {
			case <-ch:
			case <-ctx.Done():
				return
			}
		}
	}()
	go func() {
		sc := bufio.NewScanner(os.Stdin)
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			switch {
			case len(f) == 2 && f[0] == "users":
				n, _ := strconv.Atoi(f[1])
				now := time.Now().UnixNano()
				m.SetUsers(n)
				emit("SET %d %d\n", now, n)
			case len(f) == 1 && f[0] == "stats":
				emit("STATS %d %d\n", cc.out.Load(), cc.in.Load())
			}
		}
	}()
	return m.Serve(ctx)
}

// ---- the orchestrator ----

type change struct {
	ts     time.Time
	status farm.Status
	users  int
}

// proc is a member process and what it reported.
type proc struct {
	name   string
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	mu     sync.Mutex
	hist   map[string][]change // per peer, every change of status or users
	sets   map[int]time.Time   // SET reports
	stats2 chan []int64
	stderr *os.File
}

type bench struct {
	dir, path string
	names     []string
	exe       string
	procs     map[string]*proc
	timers    []string // -suspect/-probe/-vouch/-lifetime passed to every member
}

// timerFlags adds the detector timer flags to a benchmark's flag set.
func timerFlags(fs *flag.FlagSet) func() []string {
	suspect := fs.Duration("suspect", 0, "members' SuspectAfter (0: default)")
	probe := fs.Duration("probe", 0, "members' ProbeTimeout (0: default)")
	vouch := fs.Duration("vouch", 0, "members' VouchTimeout (0: default)")
	lifetime := fs.Duration("lifetime", 0, "members' VouchLifetime (0: default)")
	return func() []string {
		return []string{"-suspect", suspect.String(), "-probe", probe.String(), "-vouch", vouch.String(), "-lifetime", lifetime.String()}
	}
}

func setup(n int) (*bench, error) {
	dir, err := os.MkdirTemp("", "peerlink-bench-")
	if err != nil {
		return nil, err
	}
	caCrt, caKey, err := peerlink.NewCA("bench", 24*time.Hour)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "ca.crt"), caCrt, 0o600); err != nil {
		return nil, err
	}
	var b strings.Builder
	b.WriteString("service: bench.farmlb.test\ntls: {ca: ca.crt, cert: '{name}.crt', key: '{name}.key'}\nnodes:\n")
	var names []string
	for i := range n {
		name := fmt.Sprintf("m%02d", i)
		names = append(names, name)
		crt, key, err := peerlink.IssueCert(caCrt, caKey, name, 24*time.Hour)
		if err != nil {
			return nil, err
		}
		os.WriteFile(filepath.Join(dir, name+".crt"), crt, 0o600)
		os.WriteFile(filepath.Join(dir, name+".key"), key, 0o600)
		pc, err := net.ListenPacket("udp", fmt.Sprintf("127.0.77.%d:0", i+1))
		if err != nil {
			return nil, err
		}
		addr := pc.LocalAddr().String()
		pc.Close()
		fmt.Fprintf(&b, "  - {name: %s, url: 'http://%s', peer: '%s'}\n", name, addr, addr)
	}
	path := filepath.Join(dir, "farm.yaml")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		return nil, err
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	return &bench{dir: dir, path: path, names: names, exe: exe, procs: map[string]*proc{}}, nil
}

func (b *bench) start(name string) (*proc, error) {
	cmd := exec.Command(b.exe, append([]string{"member", "-config", b.path, "-name", name}, b.timers...)...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	errf, err := os.Create(filepath.Join(b.dir, fmt.Sprintf("%s-%d.log", name, time.Now().UnixNano())))
	if err != nil {
		return nil, err
	}
	cmd.Stderr = errf
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &proc{name: name, cmd: cmd, stdin: stdin, hist: map[string][]change{}, sets: map[int]time.Time{}, stats2: make(chan []int64, 1), stderr: errf}
	go p.read(out)
	b.procs[name] = p
	return p, nil
}

func (p *proc) read(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<16), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 {
			continue
		}
		ns, _ := strconv.ParseInt(f[1], 10, 64)
		ts := time.Unix(0, ns)
		p.mu.Lock()
		switch f[0] {
		case "T":
			for _, kv := range f[2:] {
				name, v, _ := strings.Cut(kv, "=")
				st, u, _ := strings.Cut(v, "/")
				status, _ := farm.ParseStatus(st)
				users, _ := strconv.Atoi(u)
				h := p.hist[name]
				if len(h) == 0 || h[len(h)-1].status != status || h[len(h)-1].users != users {
					p.hist[name] = append(h, change{ts, status, users})
				}
			}
		case "SET":
			n, _ := strconv.Atoi(f[2])
			p.sets[n] = ts
		case "STATS":
			a, _ := strconv.ParseInt(f[1], 10, 64)
			c, _ := strconv.ParseInt(f[2], 10, 64)
			select {
			case p.stats2 <- []int64{a, c}:
			default:
			}
		}
		p.mu.Unlock()
	}
}

// status returns what p sees of name now.
func (p *proc) status(name string) farm.Status {
	p.mu.Lock()
	defer p.mu.Unlock()
	h := p.hist[name]
	if len(h) == 0 {
		return farm.StatusDown
	}
	return h[len(h)-1].status
}

// firstAfter returns when p first saw name with status st after t.
func (p *proc) firstAfter(name string, st farm.Status, t time.Time) (time.Time, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.hist[name] {
		if c.ts.After(t) && c.status == st {
			return c.ts, true
		}
	}
	return time.Time{}, false
}

// downsAfter counts p's transitions of any peer to DOWN after t, except
// for the peers in except.
func (p *proc) downsAfter(t time.Time, except ...string) []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for name, h := range p.hist {
		if slices.Contains(except, name) {
			continue
		}
		for i, c := range h {
			if i > 0 && c.ts.After(t) && c.status == farm.StatusDown && h[i-1].status != farm.StatusDown {
				out = append(out, fmt.Sprintf("%s saw %s DOWN at %s", p.name, name, c.ts.Format(time.RFC3339Nano)))
			}
		}
	}
	return out
}

// waitAll polls until cond holds for every running member but skip.
func (b *bench) waitAll(timeout time.Duration, skip string, cond func(p *proc) bool) error {
	deadline := time.Now().Add(timeout)
	for {
		ok := true
		for name, p := range b.procs {
			if name != skip && !cond(p) {
				ok = false
				break
			}
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %v", timeout)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func (b *bench) allUp(timeout time.Duration) error {
	return b.waitAll(timeout, "", func(p *proc) bool {
		for _, n := range b.names {
			if p.status(n) != farm.StatusUp {
				return false
			}
		}
		return true
	})
}

// startBench sets up a farm of n members, starts them with the timer flags
// and waits until every member sees every other UP.
func startBench(n int, timers []string) (*bench, error) {
	b, err := setup(n)
	if err != nil {
		return nil, err
	}
	b.timers = timers
	if err := b.startAll(); err != nil {
		b.stopAll()
		return nil, err
	}
	return b, nil
}

func (b *bench) startAll() error {
	for _, n := range b.names {
		if _, err := b.start(n); err != nil {
			return err
		}
	}
	return b.allUp(60 * time.Second)
}

func (b *bench) stopAll() {
	for _, p := range b.procs {
		p.cmd.Process.Signal(syscall.SIGCONT)
		p.cmd.Process.Signal(syscall.SIGTERM)
	}
	for _, p := range b.procs {
		p.cmd.Wait()
		p.stderr.Close()
	}
	if os.Getenv("PEERLINK_BENCH_KEEP") != "" {
		fmt.Fprintln(os.Stderr, "member logs kept in", b.dir)
		return
	}
	os.RemoveAll(b.dir)
}

func percentile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(q*float64(len(s))+0.5) - 1
	return s[max(0, min(i, len(s)-1))]
}

func summary(ds []time.Duration) string {
	return fmt.Sprintf("n=%d p50=%v p99=%v max=%v", len(ds), percentile(ds, .5).Round(time.Millisecond),
		percentile(ds, .99).Round(time.Millisecond), slices.Max(ds).Round(time.Millisecond))
}

func runDetect(args []string) error {
	fs := flag.NewFlagSet("detect", flag.ExitOnError)
	n := fs.Int("members", 5, "member processes")
	kills := fs.Int("kills", 20, "kills of each kind (SIGKILL and SIGSTOP)")
	timers := timerFlags(fs)
	fs.Parse(args)
	b, err := startBench(*n, timers())
	if err != nil {
		return err
	}
	defer b.stopAll()
	start := time.Now()
	results := map[string][]time.Duration{}
	var falseDowns []string
	for i := range 2 * *kills {
		victim := b.names[i%len(b.names)]
		kind := "SIGKILL"
		if i%2 == 1 {
			kind = "SIGSTOP"
		}
		time.Sleep(300 * time.Millisecond) // let the mesh settle
		vp := b.procs[victim]
		t0 := time.Now()
		if kind == "SIGKILL" {
			vp.cmd.Process.Kill()
		} else {
			vp.cmd.Process.Signal(syscall.SIGSTOP)
		}
		if err := b.waitAll(5*time.Second, victim, func(p *proc) bool { return p.status(victim) == farm.StatusDown }); err != nil {
			return fmt.Errorf("%s of %s: not DOWN everywhere: %w", kind, victim, err)
		}
		var worst time.Duration
		for name, p := range b.procs {
			if name == victim {
				continue
			}
			ts, _ := p.firstAfter(victim, farm.StatusDown, t0)
			d := ts.Sub(t0)
			results[kind+" each"] = append(results[kind+" each"], d)
			worst = max(worst, d)
		}
		results[kind+" everywhere"] = append(results[kind+" everywhere"], worst)
		// Bring it back and time its return.
		t1 := time.Now()
		if kind == "SIGKILL" {
			vp.cmd.Wait()
			vp.stderr.Close()
			if _, err := b.start(victim); err != nil {
				return err
			}
		} else {
			vp.cmd.Process.Signal(syscall.SIGCONT)
		}
		if err := b.waitAll(5*time.Second, victim, func(p *proc) bool { return p.status(victim) == farm.StatusUp }); err != nil {
			return fmt.Errorf("%s of %s: not UP again: %w", kind, victim, err)
		}
		var back time.Duration
		for name, p := range b.procs {
			if name != victim {
				ts, _ := p.firstAfter(victim, farm.StatusUp, t1)
				back = max(back, ts.Sub(t1))
			}
		}
		results[kind+" return"] = append(results[kind+" return"], back)
		if err := b.allUp(5 * time.Second); err != nil {
			return fmt.Errorf("after %s of %s: %w", kind, victim, err)
		}
		for name, p := range b.procs {
			if name != victim {
				falseDowns = append(falseDowns, p.downsAfter(t0, victim)...)
			}
		}
	}
	fmt.Printf("detection (timers %v), %d members on loopback, %d kills of each kind (%v):\n", b.timers, *n, *kills, time.Since(start).Round(time.Second))
	for _, k := range []string{"SIGKILL each", "SIGKILL everywhere", "SIGKILL return", "SIGSTOP each", "SIGSTOP everywhere", "SIGSTOP return"} {
		fmt.Printf("  %-19s %s\n", k, summary(results[k]))
	}
	fmt.Printf("  false DOWNs of other members: %d %v\n", len(falseDowns), falseDowns)
	fmt.Println("(each: kill to DOWN at one member; everywhere: kill to DOWN at the last member; return: restart or SIGCONT to UP at the last member, restart time included)")
	return nil
}

func runPropagate(args []string) error {
	fs := flag.NewFlagSet("propagate", flag.ExitOnError)
	n := fs.Int("members", 5, "member processes")
	changes := fs.Int("changes", 200, "user count changes, 50 ms apart")
	fs.Parse(args)
	b, err := startBench(*n, nil)
	if err != nil {
		return err
	}
	defer b.stopAll()
	src := b.procs[b.names[0]]
	var lat []time.Duration
	for i := 1; i <= *changes; i++ {
		fmt.Fprintf(src.stdin, "users %d\n", i)
		want := i
		if err := b.waitAll(2*time.Second, src.name, func(p *proc) bool {
			p.mu.Lock()
			defer p.mu.Unlock()
			h := p.hist[src.name]
			return len(h) > 0 && h[len(h)-1].users == want
		}); err != nil {
			return fmt.Errorf("change %d: %w", i, err)
		}
		var set time.Time
		for deadline := time.Now().Add(2 * time.Second); set.IsZero(); time.Sleep(time.Millisecond) {
			src.mu.Lock()
			set = src.sets[i]
			src.mu.Unlock()
			if time.Now().After(deadline) {
				return fmt.Errorf("change %d: no SET report", i)
			}
		}
		for name, p := range b.procs {
			if name == src.name {
				continue
			}
			p.mu.Lock()
			for _, c := range p.hist[src.name] {
				if c.users == i {
					lat = append(lat, c.ts.Sub(set))
					break
				}
			}
			p.mu.Unlock()
		}
		time.Sleep(50 * time.Millisecond)
	}
	fmt.Printf("status propagation, %d members, %d changes of one member's users, seen by each other member:\n  %s\n", *n, *changes, summary(lat))
	return nil
}

// cpuTicks returns a process's user+system CPU time in clock ticks (1/100 s).
func cpuTicks(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	u, _ := strconv.ParseInt(f[11], 10, 64)
	k, _ := strconv.ParseInt(f[12], 10, 64)
	return u + k, nil
}

func (b *bench) snapshot() (ticks, out, in int64, err error) {
	for _, p := range b.procs {
		t, err := cpuTicks(p.cmd.Process.Pid)
		if err != nil {
			return 0, 0, 0, err
		}
		ticks += t
		fmt.Fprintln(p.stdin, "stats")
		select {
		case s := <-p.stats2:
			out += s[0]
			in += s[1]
		case <-time.After(5 * time.Second):
			return 0, 0, 0, errors.New("no stats from " + p.name)
		}
	}
	return ticks, out, in, nil
}

func runIdle(args []string) error {
	fs := flag.NewFlagSet("idle", flag.ExitOnError)
	n := fs.Int("members", 32, "member processes")
	d := fs.Duration("duration", 30*time.Second, "measurement period")
	fs.Parse(args)
	b, err := startBench(*n, nil)
	if err != nil {
		return err
	}
	defer b.stopAll()
	time.Sleep(2 * time.Second)
	t0, o0, i0, err := b.snapshot()
	if err != nil {
		return err
	}
	start := time.Now()
	time.Sleep(*d)
	t1, o1, i1, err := b.snapshot()
	if err != nil {
		return err
	}
	secs := time.Since(start).Seconds()
	cpu := float64(t1-t0) / 100 / secs
	fmt.Printf("idle mesh, %d members, %v:\n", *n, *d)
	fmt.Printf("  CPU: %.3f cores in all, %.2f%% of a core per member\n", cpu, 100*cpu/float64(*n))
	fmt.Printf("  UDP payload sent: %.0f B/s in all, %.0f B/s per member (%.0f B/s per peer link and direction)\n",
		float64(o1-o0)/secs, float64(o1-o0)/secs/float64(*n), float64(o1-o0)/secs/float64(*n)/float64(*n-1))
	fmt.Printf("  UDP payload received: %.0f B/s in all\n", float64(i1-i0)/secs)
	var downs []string
	for _, p := range b.procs {
		downs = append(downs, p.downsAfter(start)...)
	}
	fmt.Printf("  false DOWNs seen during the measurement: %d\n", len(downs))
	return nil
}

func runSoak(args []string) error {
	fs := flag.NewFlagSet("soak", flag.ExitOnError)
	n := fs.Int("members", 5, "member processes")
	d := fs.Duration("duration", 10*time.Minute, "soak time")
	busy := fs.Bool("busy", false, "keep both cores busy with two CPU hogs")
	timers := timerFlags(fs)
	fs.Parse(args)
	b, err := startBench(*n, timers())
	if err != nil {
		return err
	}
	defer b.stopAll()
	if *busy {
		for range 2 {
			hog := exec.Command(b.exe, "burn")
			if err := hog.Start(); err != nil {
				return err
			}
			defer func() { hog.Process.Kill(); hog.Wait() }()
		}
	}
	start := time.Now()
	t0, _, _, err := b.snapshot()
	if err != nil {
		return err
	}
	time.Sleep(*d)
	t1, _, _, err := b.snapshot()
	if err != nil {
		return err
	}
	var downs []string
	for _, p := range b.procs {
		downs = append(downs, p.downsAfter(start)...)
	}
	suspects := 0
	for _, p := range b.procs {
		data, _ := os.ReadFile(p.stderr.Name())
		suspects += strings.Count(string(data), `msg="peer suspect"`)
	}
	fmt.Printf("soak (timers %v), %d members, %v, busy=%v: false DOWNs %d %v; suspicions %d; mesh CPU %.2f cores\n",
		b.timers, *n, *d, *busy, len(downs), downs, suspects, float64(t1-t0)/100/time.Since(start).Seconds())
	return nil
}

// burn spins forever: the busy soak runs two of these to keep both cores
// busy while the mesh is watched for false DOWNs.
func burn() {
	x := 0
	for {
		x++
		if x == 0 {
			fmt.Fprint(io.Discard, x) // keeps the loop from being optimised away
		}
	}
}
