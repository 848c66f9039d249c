package peerlink

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/farmlb/farmlb/config"
	"github.com/farmlb/farmlb/farm"
	"go.uber.org/goleak"
)

// The test binary doubles as a mesh member in its own process, so that the
// tests can SIGKILL and SIGSTOP real members.
const childEnv = "FARMLB_PEERLINK_TEST_CHILD"

func TestMain(m *testing.M) {
	if spec := os.Getenv(childEnv); spec != "" {
		os.Exit(childMain(spec))
	}
	goleak.VerifyTestMain(m)
}

// childMain runs one member: spec is "CONFIG-FILE NAME". It prints
// "TABLE a=UP b=DOWN ..." on every change of its table.
func childMain(spec string) int {
	path, self, _ := strings.Cut(spec, " ")
	f, err := config.Load(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	cfg := FarmConfig(f, self)
	cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	m, err := New(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := m.Listen(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	ch, cancel := m.Subscribe()
	defer cancel()
	go func() {
		for {
			fmt.Printf("TABLE %s\n", tableLine(m.Table()))
			select {
			case <-ch:
			case <-ctx.Done():
				return
			}
		}
	}()
	if err := m.Serve(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

func tableLine(l *farm.List) string {
	var parts []string
	for _, s := range l.Servers {
		parts = append(parts, s.Name+"="+s.Status.String())
	}
	return strings.Join(parts, " ")
}

// child is a member running in another process.
type child struct {
	name string
	cmd  *exec.Cmd
	mu   sync.Mutex
	last string        // last TABLE line
	seen chan struct{} // kicked on every line
	done chan struct{}
}

func startChild(t *testing.T, cfgPath, name string) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+cfgPath+" "+name)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr := &logBuf{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &child{name: name, cmd: cmd, seen: make(chan struct{}, 1), done: make(chan struct{})}
	go func() {
		defer close(c.done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if line, ok := strings.CutPrefix(sc.Text(), "TABLE "); ok {
				c.mu.Lock()
				c.last = line
				c.mu.Unlock()
				kick(c.seen)
			}
		}
		io.Copy(io.Discard, out)
	}()
	t.Cleanup(func() {
		c.cmd.Process.Signal(syscall.SIGCONT)
		c.cmd.Process.Signal(syscall.SIGTERM)
		<-c.done
		c.cmd.Wait()
		if t.Failed() {
			t.Logf("stderr of %s:\n%s", name, stderr)
		}
	})
	return c
}

// waitSees waits until the child's table has every "name=STATUS" of want.
func (c *child) waitSees(t *testing.T, timeout time.Duration, want ...string) {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		c.mu.Lock()
		fields := strings.Fields(c.last)
		c.mu.Unlock()
		ok := true
		for _, w := range want {
			ok = ok && contains(fields, w)
		}
		if ok {
			return
		}
		select {
		case <-c.seen:
		case <-deadline.C:
			t.Fatalf("child %s: table %q after %v, want %v", c.name, fields, timeout, want)
		}
	}
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// writeFarmFiles writes a CA, member certificates and a farm file (with
// relative paths) for the named nodes on fresh loopback addresses.
func writeFarmFiles(t *testing.T, names []string) string {
	t.Helper()
	dir := t.TempDir()
	caCrt, caKey, err := NewCA("test", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, b []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("ca.crt", caCrt)
	var b strings.Builder
	b.WriteString("service: s.farmlb.test\ntls: {ca: ca.crt, cert: '{name}.crt', key: '{name}.key'}\nnodes:\n")
	for _, n := range names {
		crt, key, err := IssueCert(caCrt, caKey, n, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		write(n+".crt", crt)
		write(n+".key", key)
		// A free port: bind, read it back, release it for the child.
		pc, err := net.ListenPacket("udp", nextHost()+":0")
		if err != nil {
			t.Fatal(err)
		}
		addr := pc.LocalAddr().String()
		pc.Close()
		fmt.Fprintf(&b, "  - {name: %s, url: 'http://%s', peer: '%s'}\n", n, addr, addr)
	}
	write("farm.yaml", []byte(b.String()))
	return filepath.Join(dir, "farm.yaml")
}

// TestProcesses runs members as separate processes and kills one with
// SIGKILL and hangs another with SIGSTOP: every other member sees each
// DOWN, and UP again when it returns.
func TestProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	names := []string{"a", "b", "c", "d"}
	path := writeFarmFiles(t, names)
	f, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	// a runs in this process, from the same files.
	cfg := DefaultConfig()
	cfg.Farm, cfg.Self = f, "a"
	logs := &logBuf{}
	cfg.Logger = slog.New(slog.NewTextHandler(logs, nil))
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Listen(); err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- a.Serve(context.Background()) }()
	t.Cleanup(func() {
		a.Shutdown(context.Background())
		<-served
	})
	kids := map[string]*child{}
	for _, n := range names[1:] {
		kids[n] = startChild(t, path, n)
	}
	waitTable(t, a, 10*time.Second, "all UP", allUp(names...))
	kids["b"].waitSees(t, 10*time.Second, "a=UP", "b=UP", "c=UP", "d=UP")

	steps := []struct {
		name string
		do   func(t *testing.T)
		want map[string]farm.Status // what a and b must see
	}{
		{"SIGKILL c", func(t *testing.T) { kids["c"].cmd.Process.Kill() }, map[string]farm.Status{"c": farm.StatusDown, "d": farm.StatusUp}},
		{"SIGSTOP d", func(t *testing.T) { kids["d"].cmd.Process.Signal(syscall.SIGSTOP) }, map[string]farm.Status{"c": farm.StatusDown, "d": farm.StatusDown}},
		{"SIGCONT d", func(t *testing.T) { kids["d"].cmd.Process.Signal(syscall.SIGCONT) }, map[string]farm.Status{"c": farm.StatusDown, "d": farm.StatusUp}},
		{"restart c", func(t *testing.T) { kids["c"] = startChild(t, path, "c") }, map[string]farm.Status{"c": farm.StatusUp, "d": farm.StatusUp}},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			s.do(t)
			var want []string
			for n, st := range s.want {
				want = append(want, n+"="+st.String())
			}
			waitTable(t, a, 5*time.Second, fmt.Sprint(want), func(l *farm.List) bool {
				for n, st := range s.want {
					if statusOf(l, n) != st {
						return false
					}
				}
				return true
			})
			kids["b"].waitSees(t, 5*time.Second, want...)
		})
	}
	if t.Failed() {
		t.Logf("a's logs:\n%s", logs)
	}
}
