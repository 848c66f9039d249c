package peerlink

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/farmlb/farmlb/farm"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestMeshComesUp(t *testing.T) {
	pki := newTestPKI(t)
	names := []string{"a", "b", "c"}
	tf := newTestFarm(t, names, []string{"ns1"})
	var ms []*member
	for _, n := range append(names, "ns1") {
		ms = append(ms, startMember(t, tf, pki, n, nil))
	}
	for _, m := range ms {
		waitTable(t, m.Mesh, 5*time.Second, "every node UP", allUp(names...))
	}
	cases := []struct {
		name   string
		change func()
		want   func(farm.Server) bool
	}{
		{"users", func() { ms[1].SetUsers(42) }, func(s farm.Server) bool { return s.Users == 42 }},
		{"draining", func() { ms[1].SetStatus(farm.StatusDraining) }, func(s farm.Server) bool { return s.Status == farm.StatusDraining }},
		{"priority", func() { ms[1].SetPriority(5) }, func(s farm.Server) bool { return s.Priority == 5 }},
		{"up again", func() { ms[1].SetStatus(farm.StatusUp) }, func(s farm.Server) bool { return s.Status == farm.StatusUp }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.change()
			for _, m := range ms {
				waitTable(t, m.Mesh, 2*time.Second, "b's change", func(l *farm.List) bool {
					s, _ := l.Find("b")
					return c.want(s)
				})
			}
		})
	}
	t.Run("table", func(t *testing.T) {
		l := ms[3].Table()
		if err := l.Validate(); err != nil {
			t.Fatal(err)
		}
		if l.Reporter != "ns1" || l.Service != "s.farmlb.test" || len(l.Servers) != 3 {
			t.Errorf("table %+v", l)
		}
		if _, ok := l.Find("ns1"); ok {
			t.Error("an observer is in the farm list")
		}
	})
	t.Run("metrics", func(t *testing.T) {
		for _, m := range ms {
			if got := testutil.ToFloat64(m.met.members.WithLabelValues("up")); got != 3 {
				t.Errorf("%s: members{state=up} = %v, want 3", m.name, got)
			}
			waitFor(t, 2*time.Second, m.name+" receiving heartbeats", func() bool {
				return testutil.ToFloat64(m.met.framesReceived.WithLabelValues("heartbeat")) > 0 &&
					testutil.CollectAndCount(m.met.rtt) == 1
			})
		}
	})
}

func TestRefused(t *testing.T) {
	pki := newTestPKI(t)
	foreign := newTestPKI(t)
	// The intruder trusts both CAs, so that it is the real member that
	// refuses it (and logs it), not the other way round.
	both := pki.pool.Clone()
	both.AppendCertsFromPEM(foreign.caPEM)
	cases := []struct {
		name       string
		intruder   string   // its name: "a…" dials b, "c…" is dialed by b
		pki        *testPKI // who signs its certificate
		wantReason string
	}{
		{"foreign CA, intruder dials", "a", foreign, "not from the farm CA"},
		{"foreign CA, member dials", "c", foreign, "not from the farm CA"},
		{"unknown name, intruder dials", "a0", pki, `a0\" is not a member of the farm`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			names := []string{"b"}
			if c.intruder == "c" {
				names = append(names, "c") // b's farm names c, whose real cert b expects from the farm CA
			}
			tf := newTestFarm(t, names, nil)
			itf := newTestFarm(t, []string{c.intruder}, nil)
			ipeer := itf.farm.Nodes[0].Peer
			if c.intruder == "c" {
				// b dials c's configured address: the intruder sits there.
				itf.conns["c"] = tf.conns["c"]
				ipeer = tf.farm.Nodes[1].Peer
			}
			b := startMember(t, tf, pki, "b", nil)
			y := fmt.Sprintf("service: s.farmlb.test\nnodes:\n  - {name: %s, url: 'http://127.0.0.1', peer: '%s'}\n  - {name: b, url: 'http://127.0.0.1', peer: '%s'}\n",
				c.intruder, ipeer, tf.farm.Nodes[0].Peer)
			ifarm, err := parseFarm(y)
			if err != nil {
				t.Fatal(err)
			}
			itf.farm = ifarm
			intruder := startMember(t, itf, c.pki, c.intruder, func(cfg *Config) { cfg.CA = both })
			deadline := time.Now().Add(5 * time.Second)
			for !strings.Contains(b.logs.String(), "peer refused") {
				if time.Now().After(deadline) {
					t.Fatalf("b logged no refusal:\n%s", b.logs)
				}
				time.Sleep(10 * time.Millisecond) // polling a log, not waiting for readiness
			}
			if !strings.Contains(b.logs.String(), c.wantReason) {
				t.Errorf("b's refusal does not say %q:\n%s", c.wantReason, b.logs)
			}
			if got := testutil.ToFloat64(b.met.refused); got < 1 {
				t.Errorf("refused_total = %v", got)
			}
			if s := statusOf(intruder.Table(), "b"); s != farm.StatusDown {
				t.Errorf("the intruder sees b %s", s)
			}
			if strings.Contains(b.logs.String(), "link up") {
				t.Errorf("b made a link with the intruder:\n%s", b.logs)
			}
		})
	}
}

// TestKillAndReturn: a member that dies without a word is DOWN for
// everyone, and UP again when it comes back with a new incarnation.
func TestKillAndReturn(t *testing.T) {
	pki := newTestPKI(t)
	names := []string{"a", "b", "c", "d"}
	tf := newTestFarm(t, names, nil)
	ms := map[string]*member{}
	for _, n := range names {
		ms[n] = startMember(t, tf, pki, n, nil)
	}
	for _, n := range names {
		waitTable(t, ms[n].Mesh, 5*time.Second, "all UP", allUp(names...))
	}
	ms["c"].SetUsers(10)
	for _, n := range []string{"a", "b", "d"} {
		waitTable(t, ms[n].Mesh, 2*time.Second, "c has users", func(l *farm.List) bool { s, _ := l.Find("c"); return s.Users == 10 })
	}
	addr := ms["c"].pc.LocalAddr().String()
	ms["c"].kill(t)
	for _, n := range []string{"a", "b", "d"} {
		waitTable(t, ms[n].Mesh, 3*time.Second, "c DOWN", func(l *farm.List) bool { return statusOf(l, "c") == farm.StatusDown })
		if !strings.Contains(ms[n].logs.String(), `msg="peer down" member=`+n+` peer=c`) {
			t.Errorf("%s did not log c down", n)
		}
	}
	// c returns on the same address, as a restarted process would.
	pc, err := listenUDP(addr)
	if err != nil {
		t.Fatal(err)
	}
	tf.conns["c"] = pc
	ms["c"] = startMember(t, tf, pki, "c", nil)
	for _, n := range names {
		waitTable(t, ms[n].Mesh, 3*time.Second, "c UP again", func(l *farm.List) bool {
			s, _ := l.Find("c")
			return s.Status == farm.StatusUp && s.Users == 0
		})
	}
}

// TestOneLinkCut: when only the link between a and c breaks, a suspects c
// but the others still hear it, so c stays UP for everyone; and a still
// gets c's news through them. That holds too when the vouching members
// answer late, after the asker's round (ProbeTimeout) has ended: a late
// yes still proves c alive.
func TestOneLinkCut(t *testing.T) {
	// Slower timers than the defaults: this test is about who vouches, and
	// must not fail because a loaded CI machine starved a member for 400 ms.
	const probe = 500 * time.Millisecond
	cases := []struct {
		name  string
		delay time.Duration // b's and d's probe replies are held back this long
	}{
		{"prompt vouchers", 0},
		{"vouchers answer after ProbeTimeout", probe + 200*time.Millisecond},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pki := newTestPKI(t)
			names := []string{"a", "b", "c", "d"}
			tf := newTestFarm(t, names, nil)
			fa, fc := newFilterConn(tf.conns["a"]), newFilterConn(tf.conns["c"])
			tf.conns["a"], tf.conns["c"] = fa, fc
			ms := map[string]*member{}
			for _, n := range names {
				ms[n] = startMember(t, tf, pki, n, func(c *Config) {
					c.SuspectAfter, c.ProbeTimeout, c.VouchTimeout = 600*time.Millisecond, probe, 400*time.Millisecond
					c.VouchLifetime = 3 * probe
					if n == "b" || n == "d" {
						c.replyDelay = tc.delay
					}
				})
			}
			for _, n := range names {
				waitTable(t, ms[n].Mesh, 5*time.Second, "all UP", allUp(names...))
			}
			var sawDown atomic.Value
			stop := make(chan struct{})
			var wg sync.WaitGroup
			for _, n := range names {
				ch, cancel := ms[n].Subscribe()
				wg.Add(1)
				go func() {
					defer wg.Done()
					defer cancel()
					for {
						select {
						case <-stop:
							return
						case <-ch:
							for _, s := range ms[n].Table().Servers {
								if s.Status != farm.StatusUp {
									sawDown.Store(fmt.Sprintf("%s saw %s %s", n, s.Name, s.Status))
								}
							}
						}
					}
				}()
			}
			fa.block(fc.LocalAddr().String(), true)
			fc.block(fa.LocalAddr().String(), true)
			// Wait until a has suspected c and been told c is alive.
			deadline := time.Now().Add(5 * time.Second)
			for !strings.Contains(ms["a"].logs.String(), `msg="suspect vouched for" member=a peer=c`) {
				if time.Now().After(deadline) {
					t.Fatalf("a never suspected c:\n%s", ms["a"].logs)
				}
				time.Sleep(10 * time.Millisecond)
			}
			ms["c"].SetUsers(77)
			waitTable(t, ms["a"].Mesh, 3*time.Second, "c's users via the others", func(l *farm.List) bool {
				s, _ := l.Find("c")
				return s.Users == 77
			})
			// Two more seconds of cut link: nobody may see anyone DOWN.
			<-time.After(2 * time.Second)
			close(stop)
			wg.Wait()
			if v := sawDown.Load(); v != nil {
				t.Fatalf("one cut link made a member DOWN: %v\n%s", v, ms["a"].logs)
			}
			if tc.delay > 0 && !strings.Contains(ms["a"].logs.String(), `late=true`) {
				t.Errorf("no answer came after its round: the delay did not delay\n%s", ms["a"].logs)
			}
		})
	}
}

// TestStatusCoalesced: 10,000 changes in about a second cost each peer at
// most one status frame per StatusInterval, and the last value arrives.
func TestStatusCoalesced(t *testing.T) {
	pki := newTestPKI(t)
	tf := newTestFarm(t, []string{"a", "b"}, nil)
	a := startMember(t, tf, pki, "a", nil)
	b := startMember(t, tf, pki, "b", nil)
	waitTable(t, a.Mesh, 5*time.Second, "b UP", allUp("a", "b"))
	waitTable(t, b.Mesh, 5*time.Second, "a UP", allUp("a", "b"))
	before := testutil.ToFloat64(a.met.framesSent.WithLabelValues("status"))
	start := time.Now()
	tick := time.NewTicker(10 * time.Millisecond)
	for i := 1; i <= 10000; i++ {
		a.SetUsers(i)
		if i%100 == 0 {
			<-tick.C // spread the calls over about a second
		}
	}
	tick.Stop()
	elapsed := time.Since(start)
	waitTable(t, b.Mesh, 2*time.Second, "a's last count", func(l *farm.List) bool { s, _ := l.Find("a"); return s.Users == 10000 })
	frames := testutil.ToFloat64(a.met.framesSent.WithLabelValues("status")) - before
	limit := float64(elapsed/DefaultConfig().StatusInterval) + 3
	t.Logf("10000 SetUsers in %v: %v status frames (limit %v)", elapsed, frames, limit)
	if frames > limit || frames < 2 {
		t.Errorf("%v status frames for 10000 changes in %v, want 2..%v", frames, elapsed, limit)
	}
}

func TestDataChannel(t *testing.T) {
	pki := newTestPKI(t)
	tf := newTestFarm(t, []string{"a", "b", "c"}, nil)
	var (
		mu    sync.Mutex
		got   []string
		gate  atomic.Pointer[chan struct{}] // swapped by subtests while handlers run
		gated atomic.Bool
	)
	setGate := func() chan struct{} {
		ch := make(chan struct{})
		gate.Store(&ch)
		return ch
	}
	setGate()
	handler := func(from string, body []byte) error {
		if gated.Load() {
			<-*gate.Load()
		}
		if string(body) == "refuse me" {
			return errors.New("no thanks")
		}
		mu.Lock()
		got = append(got, from+":"+string(body))
		mu.Unlock()
		return nil
	}
	a := startMember(t, tf, pki, "a", func(c *Config) { c.SendWindow = 4 })
	b := startMember(t, tf, pki, "b", func(c *Config) { c.Handler = handler })
	c := startMember(t, tf, pki, "c", nil)
	for _, m := range []*member{a, b, c} {
		waitTable(t, m.Mesh, 5*time.Second, "all UP", allUp("a", "b", "c"))
	}
	ctx := context.Background()

	t.Run("ordered and acknowledged", func(t *testing.T) {
		var want []string
		for i := range 1000 {
			msg := fmt.Sprintf("m%d", i)
			want = append(want, "a:"+msg)
			if err := a.Send(ctx, "b", []byte(msg)); err != nil {
				t.Fatalf("send %d: %v", i, err)
			}
		}
		mu.Lock()
		defer mu.Unlock()
		if !slices.Equal(got, want) {
			t.Fatalf("b got %d messages, first differences: %v", len(got), firstDiff(got, want))
		}
		got = nil
	})
	t.Run("concurrent senders keep each one's order", func(t *testing.T) {
		var wg sync.WaitGroup
		for g := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range 100 {
					if err := a.Send(ctx, "b", []byte(fmt.Sprintf("g%d-%03d", g, i))); err != nil {
						t.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		mu.Lock()
		defer mu.Unlock()
		last := map[string]string{}
		for _, m := range got {
			g, seq, _ := strings.Cut(strings.TrimPrefix(m, "a:"), "-")
			if seq <= last[g] {
				t.Fatalf("%s after %s", m, last[g])
			}
			last[g] = seq
		}
		if len(got) != 400 {
			t.Errorf("got %d messages, want 400", len(got))
		}
		got = nil
	})
	t.Run("handler error reaches the sender", func(t *testing.T) {
		err := a.Send(ctx, "b", []byte("refuse me"))
		var re *RemoteError
		if !errors.As(err, &re) || re.Peer != "b" || re.Msg != "no thanks" {
			t.Fatalf("error %v, want a RemoteError from b", err)
		}
		if err := a.Send(ctx, "b", []byte("after")); err != nil {
			t.Fatalf("the next message: %v", err)
		}
	})
	t.Run("bad arguments", func(t *testing.T) {
		cases := []struct {
			peer string
			body []byte
			want string
		}{
			{"zz", nil, "not a member"},
			{"a", nil, "self"},
			{"b", make([]byte, MaxMessage+1), "at most"},
		}
		for _, c := range cases {
			if err := a.Send(ctx, c.peer, c.body); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("Send(%q, %d bytes) = %v, want %q", c.peer, len(c.body), err, c.want)
			}
		}
		var re *RemoteError
		if err := a.Send(ctx, "c", []byte("x")); !errors.As(err, &re) || re.Msg != "no handler" {
			t.Errorf("Send to a member without a Handler = %v, want a RemoteError", err)
		}
	})
	t.Run("largest message", func(t *testing.T) {
		body := make([]byte, MaxMessage)
		for i := range body {
			body[i] = byte(i)
		}
		if err := a.Send(ctx, "b", body); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("backpressure", func(t *testing.T) {
		gate := *gate.Load()
		gated.Store(true)
		// The handler is stuck: a's window (4) fills and Send blocks.
		errs := make(chan error, 8)
		for i := range 8 {
			go func() { errs <- a.Send(ctx, "b", []byte(fmt.Sprint("bp", i))) }()
		}
		waitFor(t, 5*time.Second, "a's window full", func() bool {
			a.byName["b"].out.mu.Lock()
			defer a.byName["b"].out.mu.Unlock()
			return len(a.byName["b"].out.pending) == 4
		})
		short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		err := a.Send(short, "b", []byte("one more"))
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Send with a full window returned %v, want it to block until its deadline", err)
		}
		a.byName["b"].out.mu.Lock()
		n := len(a.byName["b"].out.pending)
		a.byName["b"].out.mu.Unlock()
		if n > 4 {
			t.Errorf("%d messages pending, window is 4", n)
		}
		gated.Store(false)
		close(gate)
		for range 8 {
			if err := <-errs; err != nil {
				t.Error(err)
			}
		}
	})
	t.Run("peer down", func(t *testing.T) {
		gate := setGate()
		gated.Store(true)
		errs := make(chan error, 1)
		go func() { errs <- a.Send(ctx, "b", []byte("lost")) }()
		waitFor(t, 5*time.Second, "a message pending", func() bool {
			a.byName["b"].out.mu.Lock()
			defer a.byName["b"].out.mu.Unlock()
			return len(a.byName["b"].out.pending) == 1
		})
		b.pc.Close() // b dies with the message in its handler
		if err := <-errs; !errors.Is(err, ErrPeerDown) {
			t.Errorf("Send to a dying peer: %v, want ErrPeerDown", err)
		}
		if err := a.Send(ctx, "b", []byte("to a dead peer")); !errors.Is(err, ErrPeerDown) {
			t.Errorf("Send to a DOWN peer: %v, want ErrPeerDown", err)
		}
		close(gate)
	})
}

func firstDiff(got, want []string) string {
	for i := range min(len(got), len(want)) {
		if got[i] != want[i] {
			return fmt.Sprintf("at %d: got %q want %q", i, got[i], want[i])
		}
	}
	return fmt.Sprintf("lengths %d and %d", len(got), len(want))
}

// waitFor polls cond (state inside the mesh that no channel announces).
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestReasonsAndOlderMembers: a member's reason reaches the members of this
// version; a member of the version before reasons (offering only the old
// ALPN name) gets the record it can read — no reason, and DOWN-with-a-reason
// as DRAINING — and its link stays up.
func TestReasonsAndOlderMembers(t *testing.T) {
	pki := newTestPKI(t)
	names := []string{"a", "b", "c"}
	tf := newTestFarm(t, names, nil)
	a := startMember(t, tf, pki, "a", nil)
	b := startMember(t, tf, pki, "b", func(c *Config) { c.protos = []string{alpn} })
	c := startMember(t, tf, pki, "c", nil)
	for _, m := range []*member{a, b, c} {
		waitTable(t, m.Mesh, 5*time.Second, "every node UP", allUp(names...))
	}
	steps := []struct {
		name    string
		set     func()
		wantNew farm.Server // as a and c see the subject
		wantOld farm.Server // as b sees it
		subject string
		seers   []*member
	}{
		{"down with a reason", func() { a.SetState(farm.StatusDown, "health:feed") },
			farm.Server{Status: farm.StatusDown, Reason: "health:feed"}, farm.Server{Status: farm.StatusDraining}, "a", []*member{c}},
		{"draining with a reason", func() { c.SetState(farm.StatusDraining, "overload:fanout") },
			farm.Server{Status: farm.StatusDraining, Reason: "overload:fanout"}, farm.Server{Status: farm.StatusDraining}, "c", []*member{a}},
		{"up again", func() { a.SetState(farm.StatusUp, "") },
			farm.Server{Status: farm.StatusUp}, farm.Server{Status: farm.StatusUp}, "a", []*member{c}},
		{"old member draining", func() { b.SetStatus(farm.StatusDraining) },
			farm.Server{Status: farm.StatusDraining}, farm.Server{Status: farm.StatusDraining}, "b", []*member{a, c}},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			st.set()
			match := func(want farm.Server) func(*farm.List) bool {
				return func(l *farm.List) bool {
					s, _ := l.Find(st.subject)
					return s.Status == want.Status && s.Reason == want.Reason
				}
			}
			for _, m := range st.seers {
				waitTable(t, m.Mesh, 3*time.Second, fmt.Sprintf("%s as %+v", st.subject, st.wantNew), match(st.wantNew))
			}
			if st.subject != "b" {
				waitTable(t, b.Mesh, 3*time.Second, fmt.Sprintf("%s as an old member sees it", st.subject), match(st.wantOld))
			}
		})
	}
	t.Run("nothing refused", func(t *testing.T) {
		for _, m := range []*member{a, b, c} {
			if n := testutil.ToFloat64(m.met.refused); n != 0 {
				t.Errorf("%s refused %v connections", m.name, n)
			}
			if err := m.Table().Validate(); err != nil {
				t.Errorf("%s: %v", m.name, err)
			}
		}
	})
	t.Run("DOWN without a reason is ignored", func(t *testing.T) {
		c.SetState(farm.StatusDown, "")
		c.SetState(farm.StatusUp, "bad reason")
		s, _ := c.Table().Find("c")
		if s.Status != farm.StatusDraining || s.Reason != "overload:fanout" {
			t.Errorf("c is %v %q, want its last valid state", s.Status, s.Reason)
		}
	})
}
