package peerlink

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/farmlb/farmlb/config"
	"github.com/farmlb/farmlb/farm"
)

// The timer logic on a fake clock: members over memNet inside a synctest
// bubble, where time advances only when every goroutine waits, so the
// timings below are exact and the tests take no real time.

type simMember struct {
	*Mesh
	tr     *memTransport
	cancel context.CancelFunc
	done   chan struct{}
	logs   *logBuf
}

func simFarm(t *testing.T, names ...string) *config.Farm {
	t.Helper()
	y := "service: s.test\nnodes:\n"
	for i, n := range names {
		y += fmt.Sprintf("  - {name: %s, url: 'http://10.0.0.%d', peer: '10.0.0.%d:7946'}\n", n, i+1, i+1)
	}
	f, err := config.Parse([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func startSim(t *testing.T, n *memNet, f *config.Farm, name string, inc uint64) *simMember {
	t.Helper()
	return startSimWith(t, n, f, name, inc, nil)
}

func startSimWith(t *testing.T, n *memNet, f *config.Farm, name string, inc uint64, edit func(*Config)) *simMember {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Farm, cfg.Self, cfg.Incarnation = f, name, inc
	logs := &logBuf{}
	cfg.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	tr := n.transport(name)
	cfg.transport = tr
	if edit != nil {
		edit(&cfg)
	}
	m, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	sm := &simMember{Mesh: m, tr: tr, cancel: cancel, done: make(chan struct{}), logs: logs}
	go func() {
		defer close(sm.done)
		m.Serve(ctx)
	}()
	t.Cleanup(func() {
		sm.stop()
		if t.Failed() {
			t.Logf("logs of %s:\n%s", name, logs)
		}
	})
	return sm
}

// startSims starts a member for each name, all with incarnation inc.
func startSims(t *testing.T, n *memNet, f *config.Farm, inc uint64, names ...string) map[string]*simMember {
	t.Helper()
	ms := map[string]*simMember{}
	for _, name := range names {
		ms[name] = startSim(t, n, f, name, inc)
	}
	return ms
}

func (s *simMember) stop() {
	s.cancel()
	<-s.done
}

// waitStatus advances the fake clock until m sees name with status want,
// and returns how long that took.
func waitStatus(t *testing.T, m *Mesh, name string, want farm.Status, limit time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for statusOf(m.Table(), name) != want {
		if time.Since(start) > limit {
			t.Fatalf("%s: %s not %s after %v:\n%s", m.Self(), name, want, limit, tableText(m.Table()))
		}
		time.Sleep(time.Millisecond)
	}
	return time.Since(start)
}

// waitUsers advances the fake clock until m sees name with the given users,
// or fails with msg after limit.
func waitUsers(t *testing.T, m *Mesh, name string, users int, limit time.Duration, msg string) {
	t.Helper()
	for deadline := time.Now().Add(limit); ; time.Sleep(time.Millisecond) {
		if s, _ := m.Table().Find(name); s.Users == users {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(msg)
		}
	}
}

func TestSimDetection(t *testing.T) {
	cases := []struct {
		name string
		// fault is applied at time 0 to a 5-member farm; the test then
		// checks what every other member concludes about "c".
		fault    func(n *memNet, ms map[string]*simMember)
		wantDown bool
	}{
		{"crash", func(n *memNet, ms map[string]*simMember) { ms["c"].tr.crash() }, true},
		{"one link cut", func(n *memNet, ms map[string]*simMember) { n.cutLink("a", "c", true) }, false},
		{"two links cut", func(n *memNet, ms map[string]*simMember) {
			n.cutLink("a", "c", true)
			n.cutLink("b", "c", true)
		}, false},
		{"clean shutdown", func(n *memNet, ms map[string]*simMember) { ms["c"].stop() }, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				names := []string{"a", "b", "c", "d", "e"}
				f := simFarm(t, names...)
				n := newMemNet()
				ms := startSims(t, n, f, 1, names...)
				for _, name := range names {
					for _, other := range names {
						waitStatus(t, ms[name].Mesh, other, farm.StatusUp, time.Second)
					}
				}
				time.Sleep(time.Second) // steady state
				tc.fault(n, ms)
				t0 := time.Now()
				if tc.wantDown {
					// Poll every member each millisecond of fake time and
					// record when each first sees c DOWN.
					seen := map[string]time.Duration{}
					for len(seen) < len(names)-1 {
						if time.Since(t0) > 2*time.Second {
							t.Fatalf("c not DOWN everywhere after 2 s: %v", seen)
						}
						for _, name := range names {
							if _, ok := seen[name]; !ok && name != "c" && statusOf(ms[name].Table(), "c") == farm.StatusDown {
								seen[name] = time.Since(t0)
							}
						}
						time.Sleep(time.Millisecond)
					}
					d := DefaultConfig()
					lo, hi := d.SuspectAfter-d.HeartbeatInterval, d.SuspectAfter+d.ProbeTimeout+50*time.Millisecond
					for name, d := range seen {
						// Defaults: suspect after SuspectAfter of silence
						// (the last heartbeat was up to one interval before
						// the fault), then the others answer "no" after
						// VouchTimeout, within ProbeTimeout.
						if tc.name == "crash" && (d < lo || d > hi) {
							t.Errorf("%s saw c DOWN after %v, want %v–%v", name, d, lo, hi)
						}
						t.Logf("%s: c DOWN after %v", name, d)
					}
				} else {
					for time.Since(t0) < 3*time.Second {
						for _, name := range names {
							if s := statusOf(ms[name].Table(), "c"); name != "c" && s != farm.StatusUp {
								t.Fatalf("%s sees c %s after %v with only some links cut", name, s, time.Since(t0))
							}
						}
						time.Sleep(5 * time.Millisecond)
					}
					if !strings.Contains(ms["a"].logs.String(), "suspect vouched for") {
						t.Errorf("a never suspected c: the cut did not cut")
					}
				}
				if !tc.wantDown {
					// The members cut off from c still get its news via vouchers.
					ms["c"].SetUsers(77)
					waitUsers(t, ms["a"].Mesh, "c", 77, time.Second, "a did not learn c's users through the others")
				}
				for _, m := range ms {
					m.stop()
				}
			})
		})
	}
}

// TestSimRestart: a crashed member that comes back with a higher
// incarnation is UP everywhere, with its new record, not its old one.
func TestSimRestart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		names := []string{"a", "b", "c"}
		f := simFarm(t, names...)
		n := newMemNet()
		ms := startSims(t, n, f, 1, names...)
		for _, name := range names {
			waitStatus(t, ms[name].Mesh, "b", farm.StatusUp, time.Second)
		}
		ms["b"].SetUsers(500)
		time.Sleep(100 * time.Millisecond)
		ms["b"].tr.crash()
		waitStatus(t, ms["a"].Mesh, "b", farm.StatusDown, time.Second)
		waitStatus(t, ms["c"].Mesh, "b", farm.StatusDown, time.Second)
		ms["b"].stop()
		ms["b"] = startSim(t, n, f, "b", 2)
		for _, name := range []string{"a", "c"} {
			d := waitStatus(t, ms[name].Mesh, "b", farm.StatusUp, time.Second)
			if s, _ := ms[name].Table().Find("b"); s.Users != 0 {
				t.Errorf("%s shows the restarted b with %d users of its former life", name, s.Users)
			}
			t.Logf("%s: b UP %v after restart", name, d)
		}
		for _, m := range ms {
			m.stop()
		}
	})
}

// TestSimPause: a member that hangs (SIGSTOP) is DOWN everywhere, and UP
// again as soon as it resumes: on new connections (its peers closed the old
// ones when they marked it DOWN), with the same incarnation.
func TestSimPause(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		names := []string{"a", "b", "c"}
		f := simFarm(t, names...)
		n := newMemNet()
		ms := startSims(t, n, f, 1, names...)
		for _, name := range names {
			waitStatus(t, ms[name].Mesh, "c", farm.StatusUp, time.Second)
		}
		before := map[string]linkOf{}
		for _, name := range []string{"a", "b"} {
			before[name] = peerLink(ms[name].Mesh, "c")
			if before[name].link == nil || before[name].inc != 1 {
				t.Fatalf("%s: c's link before the pause = %+v, want a link of incarnation 1", name, before[name])
			}
		}
		ms["c"].tr.crash()
		waitStatus(t, ms["a"].Mesh, "c", farm.StatusDown, time.Second)
		waitStatus(t, ms["b"].Mesh, "c", farm.StatusDown, time.Second)
		time.Sleep(2 * time.Second)
		ms["c"].tr.resume()
		for _, name := range []string{"a", "b"} {
			d := waitStatus(t, ms[name].Mesh, "c", farm.StatusUp, time.Second)
			t.Logf("%s: c UP %v after resuming", name, d)
			// The link was closed when c went DOWN, so c comes back on a new
			// one, but as the same life: the incarnation of before the pause.
			if after := peerLink(ms[name].Mesh, "c"); after.link == nil || after.link == before[name].link || after.inc != before[name].inc {
				t.Errorf("%s: c came back on %+v, want a new link of the incarnation of before the pause (%+v)", name, after, before[name])
			}
		}
		ms["c"].SetUsers(9)
		waitUsers(t, ms["a"].Mesh, "c", 9, time.Second, "a does not get c's news after the pause")
	})
}

// TestSimStaleIncarnation: a connection from an older life of a member (a
// zombie process with a lower incarnation) is refused, and the news it
// carries never replaces the current life's.
func TestSimStaleIncarnation(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		names := []string{"a", "b", "c"}
		f := simFarm(t, names...)
		n := newMemNet()
		ms := startSims(t, n, f, 5, names...)
		waitStatus(t, ms["c"].Mesh, "b", farm.StatusUp, time.Second)
		ms["b"].SetUsers(123)
		time.Sleep(100 * time.Millisecond)
		zombie := startSim(t, n, f, "b", 3) // dials c, as b does
		zombie.SetUsers(999)
		time.Sleep(time.Second)
		if !strings.Contains(ms["c"].logs.String(), `msg="stale link refused" member=c peer=b incarnation=3 current=5`) {
			t.Errorf("c did not refuse the stale b:\n%s", ms["c"].logs)
		}
		if s, _ := ms["c"].Table().Find("b"); s.Users != 123 || s.Status != farm.StatusUp {
			t.Errorf("c shows b %v with %d users, want UP with 123", s.Status, s.Users)
		}
		zombie.stop()
	})
}

func TestRecordNewer(t *testing.T) {
	cases := []struct {
		name string
		a, b record
		want bool
	}{
		{"higher seq", record{Incarnation: 1, Seq: 2}, record{Incarnation: 1, Seq: 1}, true},
		{"same", record{Incarnation: 1, Seq: 2}, record{Incarnation: 1, Seq: 2}, false},
		{"lower seq", record{Incarnation: 1, Seq: 1}, record{Incarnation: 1, Seq: 2}, false},
		{"new life, lower seq", record{Incarnation: 2, Seq: 1}, record{Incarnation: 1, Seq: 900}, true},
		{"old life, higher seq", record{Incarnation: 1, Seq: 900}, record{Incarnation: 2, Seq: 1}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := c.a.newer(c.b); got != c.want {
				t.Errorf("newer = %v, want %v", got, c.want)
			}
		})
	}
}

// TestSimDataAcrossReconnect: when the connection breaks mid-stream, the
// new one resends what was not acknowledged and the receiver skips what it
// delivered already: every message reaches the Handler once, in order.
func TestSimDataAcrossReconnect(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := simFarm(t, "a", "b")
		n := newMemNet()
		var got []string
		a := startSim(t, n, f, "a", 1)
		b := startSimWith(t, n, f, "b", 1, func(c *Config) {
			c.Handler = func(from string, body []byte) error {
				got = append(got, string(body)) // one call at a time per peer
				time.Sleep(time.Millisecond)    // a handler that takes time
				return nil
			}
		})
		waitStatus(t, a.Mesh, "b", farm.StatusUp, time.Second)
		waitStatus(t, b.Mesh, "a", farm.StatusUp, time.Second)
		done := make(chan error, 1)
		go func() {
			for i := range 300 {
				if err := a.Send(context.Background(), "b", []byte(fmt.Sprintf("m%03d", i))); err != nil {
					done <- fmt.Errorf("send %d: %w", i, err)
					return
				}
			}
			done <- nil
		}()
		for _, after := range []time.Duration{40 * time.Millisecond, 200 * time.Millisecond} {
			time.Sleep(after)
			a.mu.Lock()
			l := a.byName["b"].link
			a.mu.Unlock()
			if l == nil {
				t.Fatal("no link to break")
			}
			l.c.closeWith(codeProtocol, "test: break the link")
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if len(got) != 300 {
			t.Fatalf("b got %d messages, want 300", len(got))
		}
		for i, m := range got {
			if m != fmt.Sprintf("m%03d", i) {
				t.Fatalf("message %d is %s", i, m)
			}
		}
		if !strings.Contains(a.logs.String(), `msg="link down"`) || strings.Count(a.logs.String(), `msg="link up"`) < 3 {
			t.Errorf("the link was not broken and remade twice:\n%s", a.logs)
		}
	})
}

// TestSimSlowVoucher: the link a–b is cut and c, the only member that can
// vouch for b to a (and for a to b), answers every question late — after
// ProbeTimeout, the length of a round. A late yes still proves b alive,
// so b stays UP in every table, and a follows b's news through c. If b
// then really dies, c's (late) noes and the silence make it DOWN within
// 1 s all the same.
func TestSimSlowVoucher(t *testing.T) {
	d := DefaultConfig()
	cases := []struct {
		name  string
		delay time.Duration // c's probe replies are held back this long
		crash bool          // b dies once the cut has settled
	}{
		{"late answers, b alive", d.ProbeTimeout + 100*time.Millisecond, false},
		{"answers nearly VouchLifetime late, b alive", d.VouchLifetime - 50*time.Millisecond, false},
		{"late answers, b dies", d.ProbeTimeout + 100*time.Millisecond, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				names := []string{"a", "b", "c"}
				f := simFarm(t, names...)
				n := newMemNet()
				ms := map[string]*simMember{}
				for _, name := range names {
					ms[name] = startSimWith(t, n, f, name, 1, func(c *Config) {
						if name == "c" {
							c.replyDelay = tc.delay
						}
					})
				}
				for _, name := range names {
					for _, other := range names {
						waitStatus(t, ms[name].Mesh, other, farm.StatusUp, time.Second)
					}
				}
				time.Sleep(time.Second)
				n.cutLink("a", "b", true)
				t0 := time.Now()
				for time.Since(t0) < 5*time.Second {
					for _, name := range names {
						for _, s := range ms[name].Table().Servers {
							if s.Status != farm.StatusUp {
								t.Fatalf("%s sees %s %s %v after the cut of a–b", name, s.Name, s.Status, time.Since(t0))
							}
						}
					}
					time.Sleep(5 * time.Millisecond)
				}
				if !strings.Contains(ms["a"].logs.String(), `msg="peer unreachable" member=a peer=b`) {
					t.Fatalf("a never found b unreachable: the cut did not cut")
				}
				ms["b"].SetUsers(42)
				waitUsers(t, ms["a"].Mesh, "b", 42, 2*time.Second, "a does not learn b's users through c")
				if !tc.crash {
					return
				}
				ms["b"].tr.crash()
				t1 := time.Now()
				seen := map[string]time.Duration{}
				for len(seen) < 2 {
					if time.Since(t1) > 2*time.Second {
						t.Fatalf("b not DOWN everywhere 2 s after it died: %v", seen)
					}
					for _, name := range []string{"a", "c"} {
						if _, ok := seen[name]; !ok && statusOf(ms[name].Table(), "b") == farm.StatusDown {
							seen[name] = time.Since(t1)
						}
					}
					time.Sleep(time.Millisecond)
				}
				for name, took := range seen {
					if took > time.Second {
						t.Errorf("%s saw b DOWN %v after it died, want ≤ 1 s", name, took)
					}
					t.Logf("%s: b DOWN %v after it died", name, took)
				}
			})
		})
	}
}

// TestSimReturnBehindCutLink: b is cut off from everyone and DOWN
// everywhere; then only its link to c heals. a cannot hear b, but its
// rechecks learn from c that b lives: b is UP in a's table too.
func TestSimReturnBehindCutLink(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		names := []string{"a", "b", "c"}
		f := simFarm(t, names...)
		n := newMemNet()
		ms := startSims(t, n, f, 1, names...)
		for _, name := range names {
			waitStatus(t, ms[name].Mesh, "b", farm.StatusUp, time.Second)
		}
		n.cutLink("a", "b", true)
		n.cutLink("b", "c", true)
		waitStatus(t, ms["a"].Mesh, "b", farm.StatusDown, time.Second)
		waitStatus(t, ms["c"].Mesh, "b", farm.StatusDown, time.Second)
		time.Sleep(2 * time.Second)
		n.cutLink("b", "c", false)
		waitStatus(t, ms["c"].Mesh, "b", farm.StatusUp, time.Second)
		d := DefaultConfig()
		took := waitStatus(t, ms["a"].Mesh, "b", farm.StatusUp, d.RecheckInterval+time.Second)
		t.Logf("a: b UP %v after c heard it again", took)
		ms["b"].SetUsers(7)
		waitUsers(t, ms["a"].Mesh, "b", 7, 2*d.RecheckInterval, "a does not learn b's users through c")
	})
}

// linkOf is what a member holds of a peer's connection: the link itself and
// the peer's incarnation.
type linkOf struct {
	link *link
	inc  uint64
}

func peerLink(m *Mesh, name string) linkOf {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, p := range m.peers {
		if p.name == name {
			return linkOf{p.link, p.inc}
		}
	}
	return linkOf{}
}
