// Package farmtest starts real farms for tests: the project's binaries, built
// once per test process, run as separate processes on their own loopback
// addresses with a CA and a farm file generated for the test. Tests can then
// kill, stop, continue and restart nodes as a user's machine would.
package farmtest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/farmlb/farmlb/farm"
	"github.com/farmlb/farmlb/internal/proc"
	"github.com/farmlb/farmlb/internal/racebuild"
	"github.com/farmlb/farmlb/peerlink"
)

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

// Main runs a package's tests and then removes the binaries Bin built; a
// package whose tests use farmtest calls it from TestMain:
//
//	func TestMain(m *testing.M) { farmtest.Main(m) }
func Main(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// Bin returns the path of one of the project's binaries (pushd, dnsd,
// farmctl, …), building them all the first time it is called.
func Bin(t testing.TB, name string) string {
	t.Helper()
	buildOnce.Do(func() {
		out, err := exec.Command("go", "env", "GOMOD").Output()
		if err != nil {
			buildErr = fmt.Errorf("go env GOMOD: %w", err)
			return
		}
		root := filepath.Dir(strings.TrimSpace(string(out)))
		binDir, buildErr = os.MkdirTemp("", "farmlb-bin-")
		if buildErr != nil {
			return
		}
		// Built as the test is: with -race under go test -race, so that
		// the race detector watches the daemons too (Close fails the test
		// on its report).
		args := append(append([]string{"build"}, racebuild.Flags()...), "-o", binDir+"/", "./cmd/...")
		cmd := exec.Command("go", args...)
		cmd.Dir = root
		if b, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, b)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	p := filepath.Join(binDir, name)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("binary %s: %v", name, err)
	}
	return p
}

// NodeSpec describes one pushd node of a test farm.
type NodeSpec struct {
	Name     string
	Priority string // "A" if empty
	Capacity int
	// Health is the node's health: section, YAML without its key (e.g.
	// "on_fail: down\nchecks:\n  - {tcp: ...}"), indented for the node.
	Health string
}

// Options describe a test farm.
type Options struct {
	Nodes []NodeSpec
	// Observers are dnsd instances following the mesh (names like "ns1").
	Observers []string
	// Extra YAML appended to the farm file (e.g. a pushd: section).
	Extra string
	// Env is added to every process's environment.
	Env []string
}

// Proc is one process of the farm.
type Proc struct {
	Name    string
	URL     string // http://addr:port for nodes; "" for observers
	HTTP    string // host:port of the node's HTTP listener
	DNS     string // host:port of an observer's DNS listener
	args    []string
	cmd     *exec.Cmd
	log     *os.File
	exited  chan struct{}
	stopped bool
}

// Farm is a running test farm.
type Farm struct {
	t      testing.TB
	Dir    string
	Config string
	Token  string
	Zone   string
	Procs  map[string]*Proc
	order  []string
	env    []string
	// hc is the farm's own client, so that Close can drop its idle
	// connections and leave no goroutine behind.
	hc *http.Client
}

// FreePort returns a port that was free for both UDP and TCP on ip a moment
// ago, for a farm file that must name every member's address before any of
// them starts. Each member has its own loopback address, so a collision needs
// another process to take the same port on the same address in between.
func FreePort(t testing.TB, ip string) int {
	t.Helper()
	for {
		c, err := net.ListenPacket("udp", net.JoinHostPort(ip, "0"))
		if err != nil {
			t.Fatal(err)
		}
		port := c.LocalAddr().(*net.UDPAddr).Port
		l, err := net.Listen("tcp", net.JoinHostPort(ip, fmt.Sprint(port)))
		c.Close()
		if err == nil {
			l.Close()
			return port
		}
	}
}

var addrMu sync.Mutex
var nextAddr = 40

// nextIP hands each member of each farm in this process its own 127.0.x.y.
func nextIP() string {
	addrMu.Lock()
	defer addrMu.Unlock()
	nextAddr++
	return fmt.Sprintf("127.0.%d.%d", 100+os.Getpid()%100, nextAddr%250+2)
}

// IP returns a loopback address of its own for a process a test starts by
// other means (scripts/run.sh), as Start gives each member.
func IP() string { return nextIP() }

// Start writes a CA and farm file for opts and starts every member. It does
// not wait for the mesh: call WaitUp.
func Start(t testing.TB, opts Options) *Farm {
	t.Helper()
	dir := t.TempDir()
	f := &Farm{t: t, Dir: dir, Token: "test-token", Zone: "stream.farmlb.test", Procs: map[string]*Proc{}, env: opts.Env,
		hc: &http.Client{Transport: &http.Transport{}}}
	caCert, caKey, err := peerlink.NewCA("test", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, b []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("ca.crt", caCert)
	var y bytes.Buffer
	fmt.Fprintf(&y, "service: %s\ntls:\n  ca: ca.crt\n  cert: '{name}.crt'\n  key: '{name}.key'\ntokens:\n  publish: %s\nnodes:\n", f.Zone, f.Token)
	issue := func(name string) {
		c, k, err := peerlink.IssueCert(caCert, caKey, name, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		write(name+".crt", c)
		write(name+".key", k)
	}
	for _, n := range opts.Nodes {
		ip := nextIP()
		prio := n.Priority
		if prio == "" {
			prio = "A"
		}
		p := &Proc{Name: n.Name, HTTP: net.JoinHostPort(ip, fmt.Sprint(FreePort(t, ip)))}
		p.URL = "http://" + p.HTTP
		fmt.Fprintf(&y, "  - name: %s\n    url: %s\n    peer: %s:%d\n    priority: %s\n", n.Name, p.URL, ip, FreePort(t, ip), prio)
		if n.Capacity > 0 {
			fmt.Fprintf(&y, "    capacity: %d\n", n.Capacity)
		}
		if n.Health != "" {
			y.WriteString("    health:\n")
			for _, ln := range strings.Split(strings.TrimRight(n.Health, "\n"), "\n") {
				y.WriteString("      " + ln + "\n")
			}
		}
		p.args = []string{Bin(t, "pushd"), "--config", filepath.Join(dir, "farm.yaml"), "--node", n.Name}
		issue(n.Name)
		f.Procs[n.Name] = p
		f.order = append(f.order, n.Name)
	}
	if len(opts.Observers) > 0 {
		y.WriteString("observers:\n")
	}
	for _, name := range opts.Observers {
		ip := nextIP()
		p := &Proc{Name: name, DNS: net.JoinHostPort(ip, fmt.Sprint(FreePort(t, ip)))}
		fmt.Fprintf(&y, "  - name: %s\n    peer: %s:%d\n    dns: %s\n", name, ip, FreePort(t, ip), p.DNS)
		p.args = []string{Bin(t, "dnsd"), "--config", filepath.Join(dir, "farm.yaml"), "--name", name}
		issue(name)
		f.Procs[name] = p
		f.order = append(f.order, name)
	}
	y.WriteString(opts.Extra)
	write("farm.yaml", y.Bytes())
	f.Config = filepath.Join(dir, "farm.yaml")
	for _, name := range f.order {
		f.start(f.Procs[name])
	}
	t.Cleanup(f.Close)
	return f
}

func (f *Farm) start(p *Proc) {
	f.t.Helper()
	log, err := os.OpenFile(filepath.Join(f.Dir, p.Name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		f.t.Fatal(err)
	}
	cmd := exec.Command(p.args[0], p.args[1:]...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.Env = append(os.Environ(), f.env...)
	if err := cmd.Start(); err != nil {
		f.t.Fatal(err)
	}
	p.cmd, p.log, p.exited, p.stopped = cmd, log, make(chan struct{}), false
	go func(exited chan struct{}) {
		cmd.Wait()
		close(exited)
	}(p.exited)
}

// Close ends every process (SIGCONT first, for stopped ones), fails the test
// when the race detector reported a data race in one of them, and, when the
// test failed, prints their logs.
func (f *Farm) Close() {
	defer f.hc.CloseIdleConnections()
	for _, name := range f.order {
		p := f.Procs[name]
		if p.cmd == nil {
			continue
		}
		p.cmd.Process.Signal(syscall.SIGCONT)
		p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.exited:
		case <-time.After(10 * time.Second):
			p.cmd.Process.Kill()
			<-p.exited
		}
		p.log.Close()
	}
	for _, name := range f.order {
		// The log holds every life of the member (Restart appends).
		b, _ := os.ReadFile(filepath.Join(f.Dir, name+".log"))
		if i := bytes.Index(b, []byte(racebuild.Report)); i >= 0 {
			f.t.Errorf("the race detector reported a data race in %s:\n%s", name, b[i:min(len(b), i+6000)])
		}
	}
	if f.t.Failed() {
		for _, name := range f.order {
			b, _ := os.ReadFile(filepath.Join(f.Dir, name+".log"))
			if len(b) > 8000 {
				b = b[len(b)-8000:]
			}
			f.t.Logf("--- log of %s (tail) ---\n%s", name, b)
		}
	}
}

// Kill ends a member with SIGKILL, as a crash would.
func (f *Farm) Kill(name string) {
	p := f.Procs[name]
	p.cmd.Process.Kill()
	<-p.exited
}

// Stop freezes a member with SIGSTOP, as a hang would; Cont resumes it.
// It returns once every thread of the process is stopped (see proc.Freeze).
func (f *Farm) Stop(name string) {
	f.t.Helper()
	if err := proc.Freeze(f.Procs[name].cmd.Process.Pid, 5*time.Second); err != nil {
		f.t.Fatalf("stop %s: %v", name, err)
	}
}

// Cont resumes a member frozen by Stop.
func (f *Farm) Cont(name string) { f.Procs[name].cmd.Process.Signal(syscall.SIGCONT) }

// Signal sends sig to a member.
func (f *Farm) Signal(name string, sig os.Signal) { f.Procs[name].cmd.Process.Signal(sig) }

// Exited returns a channel closed when the member's process has exited.
func (f *Farm) Exited(name string) <-chan struct{} { return f.Procs[name].exited }

// Restart starts a member again after Kill (or after it exited).
func (f *Farm) Restart(name string) {
	p := f.Procs[name]
	<-p.exited
	p.log.Close()
	f.start(p)
}

// URL returns a node's base URL.
func (f *Farm) URL(name string) string { return f.Procs[name].URL }

// ListURLs returns every node's /farm URL.
func (f *Farm) ListURLs() []string {
	var out []string
	for _, name := range f.order {
		if u := f.Procs[name].URL; u != "" {
			out = append(out, u+"/farm")
		}
	}
	return out
}

// List fetches /farm from one node.
func (f *Farm) List(ctx context.Context, name string) (*farm.List, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, f.URL(name)+"/farm", nil)
	resp, err := f.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s /farm: %s", name, resp.Status)
	}
	return farm.ParseJSON(b)
}

// WaitStatus waits until every node in from (every running node if empty)
// reports each of the named members with the given status, or fails the
// test after timeout. It polls: the farm is other processes, so there is no
// callback to wait on.
func (f *Farm) WaitStatus(timeout time.Duration, want farm.Status, names []string, from ...string) {
	f.t.Helper()
	if len(from) == 0 {
		for _, n := range f.order {
			if f.Procs[n].URL != "" && !f.exitedNow(n) {
				from = append(from, n)
			}
		}
	}
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		ok := true
		for _, obs := range from {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			l, err := f.List(ctx, obs)
			cancel()
			if err != nil {
				ok, last = false, err.Error()
				break
			}
			for _, n := range names {
				s, found := l.Find(n)
				if !found || s.Status != want {
					ok, last = false, fmt.Sprintf("%s sees %s as %v", obs, n, s.Status)
					break
				}
			}
			if !ok {
				break
			}
		}
		if ok {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	f.t.Fatalf("farm did not reach %v for %v within %v: %s", want, names, timeout, last)
}

// WaitUp waits until every node sees every node UP.
func (f *Farm) WaitUp(timeout time.Duration) {
	f.t.Helper()
	var nodes []string
	for _, n := range f.order {
		if f.Procs[n].URL != "" {
			nodes = append(nodes, n)
		}
	}
	f.WaitStatus(timeout, farm.StatusUp, nodes)
}

func (f *Farm) exitedNow(name string) bool {
	select {
	case <-f.Procs[name].exited:
		return true
	default:
		return false
	}
}

// Publish posts data on topic to a node and returns the event id.
func (f *Farm) Publish(ctx context.Context, node, topic, data string) (string, error) {
	return f.PublishKey(ctx, node, topic, data, "")
}

// PublishKey publishes with an Idempotency-Key, so that a retry on another
// node does not publish twice.
func (f *Farm) PublishKey(ctx context.Context, node, topic, data, key string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, f.URL(node)+"/publish/"+topic, strings.NewReader(data))
	req.Header.Set("Authorization", "Bearer "+f.Token)
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	resp, err := f.hc.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("publish to %s: %s %s", node, resp.Status, b)
	}
	var r struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return "", fmt.Errorf("publish to %s: %w: %s", node, err, b)
	}
	return r.ID, nil
}

// Post sends an authenticated POST (the farm's token) to a node's path, such
// as /admin/drain, and returns the status and body.
func (f *Farm) Post(ctx context.Context, node, path string) (int, string) {
	f.t.Helper()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, f.URL(node)+path, nil)
	req.Header.Set("Authorization", "Bearer "+f.Token)
	resp, err := f.hc.Do(req)
	if err != nil {
		f.t.Fatalf("POST %s%s: %v", node, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	return resp.StatusCode, string(b)
}
