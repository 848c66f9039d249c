package main

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/farmlb/farmlb/farm"
	"github.com/farmlb/farmlb/internal/farmtest"
	"github.com/miekg/dns"
)

// terminal collects the lines a process prints, as its user's terminal
// would show them, and lets a test wait for one.
type terminal struct {
	mu    sync.Mutex
	lines []string
	more  chan struct{} // closed and replaced on each new line
	done  chan struct{} // closed when the output ends
}

func newTerminal(t *testing.T, name string, r interface{ Read([]byte) (int, error) }) *terminal {
	term := &terminal{more: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(term.done)
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			t.Logf("%s| %s", name, sc.Text())
			term.mu.Lock()
			term.lines = append(term.lines, sc.Text())
			close(term.more)
			term.more = make(chan struct{})
			term.mu.Unlock()
		}
	}()
	return term
}

// wait returns the first line from line number *from on that matches re,
// and moves *from past it; it fails the test after timeout.
func (term *terminal) wait(t *testing.T, from *int, re string, timeout time.Duration) string {
	t.Helper()
	rx := regexp.MustCompile(re)
	deadline := time.After(timeout)
	for {
		term.mu.Lock()
		for i := *from; i < len(term.lines); i++ {
			if line := term.lines[i]; rx.MatchString(line) {
				*from = i + 1
				term.mu.Unlock()
				return line
			}
		}
		more := term.more
		term.mu.Unlock()
		select {
		case <-more:
		case <-term.done:
			t.Fatalf("output ended before a line matching %q", re)
		case <-deadline:
			t.Fatalf("no line matching %q within %v", re, timeout)
		}
	}
}

// absent fails the test if a line matching re shows up within d.
func (term *terminal) absent(t *testing.T, from int, re string, d time.Duration) {
	t.Helper()
	rx := regexp.MustCompile(re)
	deadline := time.After(d)
	for {
		term.mu.Lock()
		for _, l := range term.lines[from:] {
			if rx.MatchString(l) {
				term.mu.Unlock()
				t.Fatalf("unexpected line %q", l)
			}
		}
		more := term.more
		term.mu.Unlock()
		select {
		case <-more:
		case <-deadline:
			return
		}
	}
}

// TestMakeRunKeepsTheFarmGoing runs scripts/run.sh (what make run runs) as a
// user would, on addresses of its own, and breaks and mends its farm with
// farmctl local: a node killed under a subscriber is reported, the farm goes
// on (the subscriber gets what is published meanwhile from another node) and
// the node comes back; a hang is seen as DOWN and a resume as UP; a dnsd
// held down stays down until started; Ctrl-C, with a node hung, ends
// run.sh with status 0 and leaves no process, port or file behind.
func TestMakeRunKeepsTheFarmGoing(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("run.sh needs curl (make run installs it)")
	}
	bin := filepath.Dir(farmtest.Bin(t, "pushd"))
	farmctlBin := farmtest.Bin(t, "farmctl")
	farmtest.Bin(t, "dnsd")
	ips := []string{farmtest.IP(), farmtest.IP(), farmtest.IP(), farmtest.IP()}
	port := commonPort(t, ips[:3])
	dnsAddr := net.JoinHostPort(ips[3], fmt.Sprint(farmtest.FreePort(t, ips[3])))
	tmp := t.TempDir()
	const token = "local-test-token"
	env := append(os.Environ(), "TMPDIR="+tmp, "FARMLB_BIN="+bin, "FARMLB_TOKEN="+token)

	run := exec.Command("bash", "../../scripts/run.sh", "--addrs", strings.Join(ips[:3], ","), "--port", fmt.Sprint(port),
		"--dns", dnsAddr, "--restart", "5", "--interval", "200ms")
	run.Env = env
	run.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // a terminal's process group
	out, err := run.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	run.Stderr = run.Stdout
	if err := run.Start(); err != nil {
		t.Fatal(err)
	}
	pgid := run.Process.Pid
	exited := make(chan error, 1)
	term := newTerminal(t, "make run", out)
	go func() { <-term.done; exited <- run.Wait() }()
	t.Cleanup(func() {
		syscall.Kill(-pgid, syscall.SIGKILL) // only when the test failed before Ctrl-C
	})

	farmctl := func(args ...string) (string, error) {
		t.Helper()
		cmd := exec.Command(farmctlBin, args...)
		cmd.Env = env
		b, err := cmd.CombinedOutput()
		t.Logf("$ farmctl %s\n%s", strings.Join(args, " "), b)
		return string(b), err
	}
	urlFlags := func() []string {
		var f []string
		for _, ip := range ips[:3] {
			f = append(f, "--url", fmt.Sprintf("http://%s:%d/farm", ip, port))
		}
		return f
	}

	at := 0
	term.wait(t, &at, `^farmlb is running`, 60*time.Second)
	term.wait(t, &at, `farm: serverA UP .*serverB UP .*serverC UP`, 30*time.Second)

	// A subscriber, as the README's first screen suggests.
	sub := exec.Command(farmctlBin, append(append([]string{"subscribe", "-v"}, urlFlags()...), "news")...)
	sub.Env = env
	subOut, _ := sub.StdoutPipe()
	subErr, _ := sub.StderrPipe()
	if err := sub.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sub.Process.Kill(); sub.Wait() })
	events := newTerminal(t, "subscribe", subOut)
	logs := newTerminal(t, "subscribe log", subErr)
	lat := 0
	line := logs.wait(t, &lat, `msg=streaming node=server`, 30*time.Second)
	victim := regexp.MustCompile(`node=(server[A-C])`).FindStringSubmatch(line)[1]

	publish := func(data string) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			_, err := farmctl(append(append([]string{"publish"}, urlFlags()...), "news", data)...)
			if err == nil {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("publish %s: %v", data, err)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	eat := 0
	publish("before")
	events.wait(t, &eat, `^news\t\S+\tbefore$`, 20*time.Second)

	// Kill the node the subscriber streams from.
	if _, err := farmctl("local", "kill", victim); err != nil {
		t.Fatal(err)
	}
	// The watcher may see it DOWN before run.sh sees it exit: look for
	// both from here.
	down := at
	term.wait(t, &at, victim+` exited \(killed by SIGKILL\); starting it again in 5s`, 10*time.Second)
	term.wait(t, &down, `farm: `+victim+` UP → DOWN`, 10*time.Second)
	publish("while-down")
	events.wait(t, &eat, `^news\t\S+\twhile-down$`, 30*time.Second)
	logs.wait(t, &lat, `msg=streaming node=server`, 10*time.Second) // it moved
	term.wait(t, &at, victim+` started again \(pid \d+\)`, 10*time.Second)
	term.wait(t, &at, `farm: `+victim+` DOWN → UP`, 20*time.Second)

	// A hang: alive, silent, DOWN; resumed, UP.
	if _, err := farmctl("local", "hang", "serverC"); err != nil {
		t.Fatal(err)
	}
	term.wait(t, &at, `farm: serverC UP → DOWN`, 10*time.Second)
	if st, _ := farmctl("local", "status"); !regexp.MustCompile(`serverC\s+\d+\s+hung`).MatchString(st) {
		t.Errorf("local status does not show serverC hung:\n%s", st)
	}
	if _, err := farmctl("local", "resume", "serverC"); err != nil {
		t.Fatal(err)
	}
	term.wait(t, &at, `farm: serverC DOWN → UP`, 10*time.Second)

	// dnsd held down stays down past the restart delay, then starts.
	query := func() error {
		m := new(dns.Msg)
		m.SetQuestion("stream.farmlb.test.", dns.TypeA)
		c := &dns.Client{Timeout: 300 * time.Millisecond}
		r, _, err := c.Exchange(m, dnsAddr)
		if err == nil && len(r.Answer) == 0 {
			err = fmt.Errorf("no answer: %v", r)
		}
		return err
	}
	if _, err := farmctl("local", "kill", "--hold", "ns1"); err != nil {
		t.Fatal(err)
	}
	term.wait(t, &at, `ns1 exited \(killed by SIGKILL\); held down`, 10*time.Second)
	term.absent(t, at, `ns1 start`, 2500*time.Millisecond)
	if err := query(); err == nil {
		t.Fatal("dnsd answers while held down")
	}
	if st, _ := farmctl("local", "status"); !regexp.MustCompile(`ns1\s+-\s+down, held`).MatchString(st) {
		t.Errorf("local status does not show ns1 held down:\n%s", st)
	}
	if _, err := farmctl("local", "start", "ns1"); err != nil {
		t.Fatal(err)
	}
	term.wait(t, &at, `ns1 started \(pid \d+\)`, 10*time.Second)
	deadline := time.Now().Add(20 * time.Second)
	for err := query(); err != nil; err = query() {
		if time.Now().After(deadline) {
			t.Fatalf("dnsd does not answer after local start: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// Unknown names are a usage error.
	if out, err := farmctl("local", "kill", "serverZ"); exitCode(err) != 2 || !strings.Contains(out, `no process "serverZ"`) {
		t.Errorf("local kill serverZ: %v, %q; want exit 2 naming it", err, out)
	}

	// Ctrl-C with a node hung: everything goes.
	if _, err := farmctl("local", "hang", "serverB"); err != nil {
		t.Fatal(err)
	}
	runDir, err := filepath.EvalSymlinks(filepath.Join(tmp, fmt.Sprintf("farmlb-run-%d", os.Getuid())))
	if err != nil {
		t.Fatal(err)
	}
	sub.Process.Kill()
	syscall.Kill(-pgid, syscall.SIGINT)
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("run.sh after Ctrl-C: %v, want exit status 0", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("run.sh still runs 60 s after Ctrl-C")
	}
	if err := syscall.Kill(-pgid, 0); !errors.Is(err, syscall.ESRCH) {
		ps, _ := exec.Command("ps", "-o", "pid,stat,cmd", "-g", fmt.Sprint(pgid)).CombinedOutput()
		t.Errorf("processes of make run left after Ctrl-C (kill: %v):\n%s", err, ps)
	}
	for _, p := range []string{runDir, filepath.Join(tmp, fmt.Sprintf("farmlb-run-%d", os.Getuid()))} {
		if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s left after Ctrl-C", p)
		}
	}
	for _, ip := range ips[:3] {
		l, err := net.Listen("tcp", net.JoinHostPort(ip, fmt.Sprint(port)))
		if err != nil {
			t.Errorf("port of a node still taken after Ctrl-C: %v", err)
			continue
		}
		l.Close()
	}
}

// commonPort finds a TCP and UDP port free on every address (run.sh gives
// every node the same port).
func commonPort(t *testing.T, ips []string) int {
	t.Helper()
	for {
		p := farmtest.FreePort(t, ips[0])
		ok := true
		for _, ip := range ips[1:] {
			l, err := net.Listen("tcp", net.JoinHostPort(ip, fmt.Sprint(p)))
			if err != nil {
				ok = false
				break
			}
			l.Close()
		}
		if ok {
			return p
		}
	}
}

func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

func TestListChanges(t *testing.T) {
	srv := func(name string, st farm.Status, prio farm.Priority) farm.Server {
		return farm.Server{Name: name, Status: st, Priority: prio}
	}
	l := func(s ...farm.Server) *farm.List { return &farm.List{Servers: s} }
	tests := []struct {
		name string
		a, b *farm.List
		want string
	}{
		{"no change", l(srv("a", farm.StatusUp, 0)), l(srv("a", farm.StatusUp, 0)), ""},
		{"down", l(srv("a", farm.StatusUp, 0), srv("b", farm.StatusUp, 0)), l(srv("a", farm.StatusUp, 0), srv("b", farm.StatusDown, 0)), "b UP → DOWN"},
		{"two at once", l(srv("a", farm.StatusDown, 0), srv("b", farm.StatusUp, 0)), l(srv("a", farm.StatusUp, 0), srv("b", farm.StatusDraining, 0)), "a DOWN → UP, b UP → DRAINING"},
		{"group", l(srv("a", farm.StatusUp, 0)), l(srv("a", farm.StatusUp, 1)), "a group A → B"},
		{"joined and left", l(srv("a", farm.StatusUp, 0)), l(srv("b", farm.StatusUp, 0)), "b joined UP, a left the list"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := listChanges(tc.a, tc.b); got != tc.want {
				t.Errorf("listChanges = %q, want %q", got, tc.want)
			}
		})
	}
}
