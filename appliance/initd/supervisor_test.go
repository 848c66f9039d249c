package initd

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/farmlb/farmlb/appliance"
	"go.uber.org/goleak"
	"golang.org/x/sys/unix"
)

func TestMain(m *testing.M) {
	// The tests' children are reaped by our Reaper, as they are under the
	// real /init; orphans (grandchildren) come to us too.
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		panic(err)
	}
	goleak.VerifyTestMain(m)
}

// lines is an io.Writer that hands each line written to it to the test.
type lines chan string

func (l lines) Write(p []byte) (int, error) {
	l <- string(p)
	return len(p), nil
}

// await reads lines until one contains want, failing the test after a
// generous limit (a failure bound, not a readiness wait).
func (l lines) await(t *testing.T, want string) {
	t.Helper()
	limit := time.After(20 * time.Second)
	for {
		select {
		case s := <-l:
			if strings.Contains(s, want) {
				return
			}
		case <-limit:
			t.Fatalf("no line containing %q", want)
		}
	}
}

// harness runs a Reaper and a Supervisor with one service and records its
// events.
type harness struct {
	sup    *Supervisor
	out    lines
	events chan Event
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func start(t *testing.T, svc appliance.Service, tune func(*SupervisorConfig)) *harness {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	h := &harness{out: make(lines, 1000), events: make(chan Event, 1000), cancel: cancel}
	reaper := NewReaper()
	cfg := SupervisorConfig{
		Services:   []appliance.Service{svc},
		Reaper:     reaper,
		Output:     h.out,
		MinBackoff: time.Millisecond,
		MaxBackoff: 4 * time.Millisecond,
		OnEvent:    func(e Event) { h.events <- e },
	}
	if tune != nil {
		tune(&cfg)
	}
	sup, err := NewSupervisor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h.sup = sup
	reaperCtx, stopReaper := context.WithCancel(context.Background())
	h.wg.Go(func() { reaper.Run(reaperCtx) })
	h.wg.Go(func() {
		sup.Run(ctx)
		stopReaper()
	})
	t.Cleanup(h.stop)
	return h
}

func (h *harness) stop() {
	h.cancel()
	h.wg.Wait()
}

func (h *harness) next(t *testing.T, kind EventKind) Event {
	t.Helper()
	limit := time.After(20 * time.Second)
	for {
		select {
		case e := <-h.events:
			if e.Kind == kind {
				return e
			}
		case <-limit:
			t.Fatalf("no %v event", kind)
		}
	}
}

func TestSupervisorRestartsWithBackoff(t *testing.T) {
	h := start(t, appliance.Service{Name: "crashy", Path: "/bin/sh", Args: []string{"-c", "echo hello; exit 3"}}, nil)
	var waits []time.Duration
	for range 5 {
		if e := h.next(t, Exited); e.Err == nil || e.Err.Error() != "exit status 3" {
			t.Errorf("exit = %v, want exit status 3", e.Err)
		}
		waits = append(waits, h.next(t, Restarting).Backoff)
	}
	want := []time.Duration{time.Millisecond, 2 * time.Millisecond, 4 * time.Millisecond, 4 * time.Millisecond, 4 * time.Millisecond}
	for i := range want {
		if waits[i] != want[i] {
			t.Fatalf("backoffs = %v, want %v", waits, want)
		}
	}
	h.out.await(t, "crashy: hello\n")
	h.stop()
	st := h.sup.Status()[0]
	if st.State != "stopped" || st.Starts < 5 || st.LastExit != "exit status 3" {
		t.Errorf("status = %+v, want stopped after ≥5 starts, last exit status 3", st)
	}
}

func TestSupervisorStableRunResetsBackoff(t *testing.T) {
	// Stable of 1ns: every run counts as stable, so the wait never grows.
	h := start(t, appliance.Service{Name: "s", Path: "/bin/sh", Args: []string{"-c", "exit 1"}},
		func(c *SupervisorConfig) { c.Stable = time.Nanosecond })
	for range 3 {
		if got := h.next(t, Restarting).Backoff; got != time.Millisecond {
			t.Fatalf("backoff = %v, want the minimum 1ms each time", got)
		}
	}
}

func TestSupervisorStopsOnShutdown(t *testing.T) {
	for _, tc := range []struct {
		name, script, exit string
		// The stop timeout: long for a service that exits on SIGTERM
		// (sh runs its trap only once the sleep in hand is over, which a
		// loaded host can stretch past 200 ms), short for one that
		// ignores it, so that the test is quick.
		timeout time.Duration
	}{
		{"terminates on SIGTERM", `trap 'echo bye; exit 0' TERM; echo ready; while :; do sleep 0.05; done`, "exit status 0", 10 * time.Second},
		{"killed when it ignores SIGTERM", `trap '' TERM; echo ready; while :; do sleep 0.05; done`, "killed by signal killed", 200 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := start(t, appliance.Service{Name: "d", Path: "/bin/sh", Args: []string{"-c", tc.script}},
				func(c *SupervisorConfig) { c.StopTimeout = tc.timeout })
			pid := h.next(t, Started).Pid
			h.out.await(t, "d: ready")
			h.stop()
			st := h.sup.Status()[0]
			if st.State != "stopped" || st.LastExit != tc.exit {
				t.Errorf("status = %+v, want stopped with %q", st, tc.exit)
			}
			// No process of its group is left running (a killed child
			// may linger as a zombie until the next reap).
			// SIGKILL takes effect asynchronously: allow the kernel a
			// moment (a failure bound, not a readiness wait).
			deadline := time.Now().Add(5 * time.Second)
			live := liveInGroup(t, pid)
			for len(live) > 0 && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
				live = liveInGroup(t, pid)
			}
			if len(live) > 0 {
				t.Errorf("processes %v of group %d still run", live, pid)
			}
		})
	}
}

func TestSupervisorMissingBinary(t *testing.T) {
	h := start(t, appliance.Service{Name: "ghost", Path: "/nonexistent/ghost"}, nil)
	e := h.next(t, Exited)
	if e.Err == nil || !strings.Contains(e.Err.Error(), "no such file") {
		t.Errorf("exit = %v, want no such file", e.Err)
	}
	h.next(t, Restarting)
}

func TestReaperReapsOrphans(t *testing.T) {
	reaped := make(chan int, 10)
	start(t, appliance.Service{Name: "parent", Path: "/bin/sh", Args: []string{"-c", "sleep 0.1 & exit 0"}},
		func(c *SupervisorConfig) { c.Reaper.OnOrphan = func(pid int) { reaped <- pid } })
	select {
	case <-reaped:
	case <-time.After(20 * time.Second):
		t.Fatal("the orphaned sleep was not reaped")
	}
}

func TestBackoff(t *testing.T) {
	for _, tc := range []struct {
		failures int
		want     time.Duration
	}{
		{1, time.Second}, {2, 2 * time.Second}, {3, 4 * time.Second}, {5, 16 * time.Second}, {6, 30 * time.Second}, {100, 30 * time.Second},
	} {
		t.Run(tc.want.String(), func(t *testing.T) {
			if got := Backoff(tc.failures, time.Second, 30*time.Second); got != tc.want {
				t.Errorf("Backoff(%d) = %v, want %v", tc.failures, got, tc.want)
			}
		})
	}
}

// liveInGroup lists the processes of process group pgid that are not
// zombies, from /proc.
func liveInGroup(t *testing.T, pgid int) []string {
	t.Helper()
	stats, err := filepath.Glob("/proc/[0-9]*/stat")
	if err != nil {
		t.Fatal(err)
	}
	var live []string
	for _, p := range stats {
		b, err := os.ReadFile(p)
		if err != nil {
			continue // gone meanwhile
		}
		// pid (comm) state ppid pgrp ...; comm may hold spaces.
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) > 2 && f[2] == strconv.Itoa(pgid) && f[0] != "Z" {
			live = append(live, s[:strings.IndexByte(s, ' ')]+" "+f[0])
		}
	}
	return live
}
