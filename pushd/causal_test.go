package pushd

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/farmlb/farmlb/farm"
)

// TestCatchUpKeepsPublisherOrder: one publisher alternates between nodes p
// and q, each publish after the previous answer, while node r is away.
// When r catches up it fetches p's and q's messages as two ranges; its
// streams, live and resumed, must still show them in the publisher's
// order.
func TestCatchUpKeepsPublisherOrder(t *testing.T) {
	tests := []struct {
		name string
		// away takes r out of the farm, back restores it; after back, last
		// is published on p (r may only learn of what it missed then).
		away, back func(f *memFarm)
		last       bool
	}{
		{
			name: "frozen", // the others see r DOWN, then UP again (SIGSTOP, SIGCONT)
			away: func(f *memFarm) { f.setStatus("r", farm.StatusDown) },
			back: func(f *memFarm) { f.setStatus("r", farm.StatusUp) },
		},
		{
			name: "cut", // frames to r are lost on the way, unnoticed
			away: func(f *memFarm) { f.setCut("p", "r", true); f.setCut("q", "r", true) },
			back: func(f *memFarm) { f.setCut("p", "r", false); f.setCut("q", "r", false) },
			last: true,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newMemFarm("p", "q", "r")
			nodes := startNodes(t, f, nil, "p", "q", "r")
			live := openStream(t, nil, streamURL(nodes["r"], "t"), "")
			waitFor(t, func() bool { return nodes["r"].s.Users() == 1 })
			mustPublish(t, nodes["p"].url, "t", "m0")
			if ev := live.next(t); ev.Data != "m0" {
				t.Fatalf("first event %+v", ev)
			}
			older := live.lastID

			tc.away(f)
			var want []string
			for i, n := range []string{"p", "q", "p", "q", "p", "q"} {
				msg := fmt.Sprintf("m%d", i+1)
				mustPublish(t, nodes[n].url, "t", msg)
				want = append(want, msg)
			}
			tc.back(f)
			if tc.last {
				mustPublish(t, nodes["p"].url, "t", "last")
				want = append(want, "last")
			}

			if got := data(live.collect(t, len(want))); got != strings.Join(want, ",") {
				t.Errorf("live stream on r: %s, want %s", got, strings.Join(want, ","))
			}
			live.expectNothing(t, 100*time.Millisecond)
			resumed := openStream(t, nil, streamURL(nodes["r"], "t"), older)
			if got := data(resumed.collect(t, len(want))); got != strings.Join(want, ",") {
				t.Errorf("resumed on r after m0: %s, want %s", got, strings.Join(want, ","))
			}
			resumed.expectNothing(t, 100*time.Millisecond)
		})
	}
}

// data joins the events' payloads with commas.
func data(evs []event) string {
	var out []string
	for _, ev := range evs {
		out = append(out, ev.Data)
	}
	return strings.Join(out, ",")
}

// TestHeldDependency: a message from a peer whose dependency is not here
// waits for it, but never for ever: a dependency no UP peer can be asked
// for is given up (as a gap) when it is fetched, depFetchAfter later; one
// asked of peers that never answer is waived after causalWait; later
// messages that need no more than what was given up or waived go at once.
func TestHeldDependency(t *testing.T) {
	tests := []struct {
		name   string
		silent []string // UP peers that take every frame and answer nothing
		held   bool     // the first message waits (causalWait) rather than going at once
	}{
		{name: "nobody to ask", held: false},
		{name: "asked, never answered", silent: []string{"b", "c", "d"}, held: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newMemFarm(append([]string{"a"}, tc.silent...)...)
			for _, n := range tc.silent {
				f.setStatus(n, farm.StatusUp)
				f.mu.Lock()
				f.handle[n] = func(string, []byte) error { return nil }
				f.mu.Unlock()
			}
			s := startNodes(t, f, nil, "a")["a"].s
			c := openStream(t, nil, streamURL(&testNode{url: "http://" + s.Addr().String()}, "t"), "")
			waitFor(t, func() bool { return s.Users() == 1 })
			send := func(seq uint64, deps ...dep) {
				t.Helper()
				m := &message{Topic: "t", Origin: "x", Epoch: 42, Seq: seq, At: time.Now(), Data: []byte(fmt.Sprint(seq)), Deps: deps}
				if err := s.HandlePeer("x", encodeMessages([]*message{m})); err != nil {
					t.Fatal(err)
				}
			}

			send(1, dep{Epoch: 99, Seq: 5})
			if tc.held {
				c.expectNothing(t, 100*time.Millisecond)
				if n := testutilCounter(t, s, "farmlb_pushd_causal_holds_total"); n != 1 {
					t.Errorf("causal_holds_total = %v, want 1", n)
				}
				s.hub.mu.Lock()
				s.hub.checkBlockedLocked(time.Now().Add(causalWait + time.Second))
				s.hub.mu.Unlock()
				if n := testutilCounter(t, s, "farmlb_pushd_causal_timeouts_total"); n != 1 {
					t.Errorf("causal_timeouts_total = %v, want 1", n)
				}
			}
			if ev := c.next(t); ev.Data != "1" {
				t.Fatalf("got %+v, want 1", ev)
			}
			if n := testutilCounter(t, s, "farmlb_pushd_gaps_lost_total"); !tc.held && n != 1 {
				t.Errorf("gaps_lost_total = %v, want 1", n)
			}
			send(2, dep{Epoch: 99, Seq: 5})
			if ev := c.next(t); ev.Data != "2" {
				t.Fatalf("got %+v, want 2 at once", ev)
			}
			send(3, dep{Epoch: 99, Seq: 6})
			if tc.held {
				// Held again, and waived again once its wait is over:
				// a topic is never stuck behind a dependency.
				c.expectNothing(t, 100*time.Millisecond)
				s.hub.mu.Lock()
				s.hub.checkBlockedLocked(time.Now().Add(causalWait + time.Second))
				s.hub.mu.Unlock()
				if ev := c.next(t); ev.Data != "3" {
					t.Fatalf("got %+v, want 3 once its wait was over", ev)
				}
				return
			}
			// Given up again: the stream, which had met epoch 99 at 5,
			// is told that 6 is lost, then gets 3.
			if ev := c.next(t); ev.Event != "farmlb-reset" {
				t.Fatalf("got %+v, want a reset", ev)
			}
			if ev := c.next(t); ev.Data != "3" {
				t.Fatalf("got %+v, want 3", ev)
			}
		})
	}
}

// TestDepsBound: a stamped message depends on every other epoch of its
// topic with history here, at most maxDeps of them, the most recently
// active; never on its own epoch or on one with nothing left in history.
func TestDepsBound(t *testing.T) {
	const own = 1
	base := time.Unix(1700000000, 0)
	topicWith := func(n int) *topic {
		tp := &topic{epochs: map[uint64]*epochLog{}}
		tp.epochs[own] = &epochLog{epoch: own, head: 3, msgs: []*message{{}}, changed: base.Add(time.Hour)}
		tp.epochs[2] = &epochLog{epoch: 2, head: 9, changed: base.Add(time.Hour)} // history gone
		for i := range n {
			ep := uint64(1000 - i) // the higher the epoch, the less recent
			tp.epochs[ep] = &epochLog{epoch: ep, head: uint64(i + 1), msgs: []*message{{}}, changed: base.Add(-time.Duration(i) * time.Second)}
		}
		return tp
	}
	tests := []struct {
		name   string
		epochs int
		want   int
	}{
		{"few", 3, 3},
		{"at the bound", maxDeps, maxDeps},
		{"over the bound", maxDeps + 6, maxDeps},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tp := topicWith(tc.epochs)
			ds := tp.depsLocked(own)
			if len(ds) != tc.want {
				t.Fatalf("%d deps, want %d", len(ds), tc.want)
			}
			for i, d := range ds {
				if d.Epoch == own || d.Epoch == 2 {
					t.Errorf("dep on epoch %d", d.Epoch)
				}
				if i > 0 && d.Epoch <= ds[i-1].Epoch {
					t.Errorf("not ascending: %v", ds)
				}
				if i := 1000 - int(d.Epoch); i >= maxDeps || d.Seq != uint64(i+1) {
					t.Errorf("dep %+v: not one of the %d most recent, or not its head", d, maxDeps)
				}
			}
			if again := tp.depsLocked(own); &again[0] != &ds[0] {
				t.Error("an unchanged dependency list is not shared")
			}
		})
	}
}
