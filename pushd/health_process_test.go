package pushd

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/farmlb/farmlb/farm"
	"github.com/farmlb/farmlb/internal/farmtest"
)

// waitServer polls every running node's /farm until each shows node name
// with the given status and reason, or fails the test. The nodes are other
// processes: there is nothing to wait on but their answers.
func waitServer(t *testing.T, f *farmtest.Farm, timeout time.Duration, name string, st farm.Status, reason string, from ...string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	last := ""
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
			s, _ := l.Find(name)
			if s.Status != st || s.Reason != reason {
				ok, last = false, fmt.Sprintf("%s sees %s as %v %q", obs, name, s.Status, s.Reason)
				break
			}
		}
		if ok {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s never became %v %q within %v: %s", name, st, reason, timeout, last)
}

// refusedElsewhere asserts that a new stream on url is refused with 503
// and pointed at another node, and returns the refusal's message.
func refusedElsewhere(t *testing.T, f *farmtest.Farm, node string) string {
	t.Helper()
	_, resp, err := tryStream(nil, f.URL(node)+"/stream?topic=t", "")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("a new stream on %s: %s %s, want 503", node, resp.Status, b)
	}
	loc := resp.Header.Get("Location")
	if loc == "" || strings.HasPrefix(loc, f.URL(node)) {
		t.Errorf("refused with Location %q, want another node", loc)
	}
	var body struct{ Error, Try string }
	json.Unmarshal(b, &body)
	return body.Error
}

// TestHealthChecks runs a farm of three real processes where node a has
// one health check, of each kind in turn, and makes the check fail and
// pass again: a must leave the farm list for new clients (DRAINING or DOWN
// with the reason health:NAME, on every node), refuse new streams, keep or
// move its clients as configured, stay in the replication, and come back
// UP after rise passes.
func TestHealthChecks(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	dir := t.TempDir()
	flag := filepath.Join(dir, "fail")
	// The HTTP check's upstream and the TCP check's listener are real
	// sockets in this process; stopping them is the failure.
	upstream := func(t *testing.T) (addr string, stop, start func()) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr = ln.Addr().String()
		var srv *http.Server
		serve := func(ln net.Listener) {
			srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })}
			go srv.Serve(ln)
		}
		serve(ln)
		stop = func() { srv.Close() }
		start = func() {
			ln, err := net.Listen("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			serve(ln)
		}
		t.Cleanup(func() { srv.Close() })
		return addr, stop, start
	}
	type kase struct {
		name   string
		health func(t *testing.T) (yaml string, fail, recover func())
		down   bool
	}
	cases := []kase{
		{"command, draining", func(t *testing.T) (string, func(), func()) {
			return fmt.Sprintf("checks:\n  - {name: feed, command: [test, '!', -e, %q], interval: 150ms, rise: 2, fall: 2}\n", flag),
				func() { os.WriteFile(flag, nil, 0o644) }, func() { os.Remove(flag) }
		}, false},
		{"http, down", func(t *testing.T) (string, func(), func()) {
			addr, stop, start := upstream(t)
			return fmt.Sprintf("on_fail: down\nchecks:\n  - {name: feed, http: \"http://%s/ready\", expect: 204, interval: 150ms, timeout: 100ms, rise: 2, fall: 2}\n", addr), stop, start
		}, true},
		{"tcp, draining", func(t *testing.T) (string, func(), func()) {
			addr, stop, start := upstream(t)
			return fmt.Sprintf("on_fail: draining\nchecks:\n  - {name: feed, tcp: %q, interval: 150ms, timeout: 100ms, rise: 2, fall: 2}\n", addr), stop, start
		}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			health, fail, recover := tc.health(t)
			f := farmtest.Start(t, farmtest.Options{
				Nodes: []farmtest.NodeSpec{{Name: "a", Health: health}, {Name: "b"}, {Name: "c"}},
				Extra: "pushd:\n  drain_window: 300ms\n  move_grace: 100ms\n",
			})
			f.WaitUp(30 * time.Second)
			all := []string{"a", "b", "c"}
			old := openStream(t, nil, f.URL("a")+"/stream?topic=t", "")
			if _, err := f.Publish(context.Background(), "b", "t", "before"); err != nil {
				t.Fatal(err)
			}
			if got := old.data(t, 1); got[0] != "before" {
				t.Fatalf("got %q", got)
			}

			fail()
			want := farm.StatusDraining
			if tc.down {
				want = farm.StatusDown
			}
			waitServer(t, f, 10*time.Second, "a", want, "health:feed", all...)
			if msg := refusedElsewhere(t, f, "a"); !strings.Contains(msg, "health check feed fails") {
				t.Errorf("refusal says %q", msg)
			}
			// a stays in the replication: a publish on a is held by a
			// second node, and one on b reaches a's client (until it
			// moves, when a is DOWN).
			if _, err := f.Publish(context.Background(), "a", "t", "on-a"); err != nil {
				t.Fatalf("publish on a while its check fails: %v", err)
			}
			if tc.down {
				ev := old.next(t)
				for ev.Event == "t" {
					ev = old.next(t)
				}
				if ev.Event != "farmlb-move" || !strings.Contains(ev.Data, `"reason":"health:feed"`) || !strings.Contains(ev.Data, f.URL("b")) && !strings.Contains(ev.Data, f.URL("c")) {
					t.Errorf("a's client got %+v, want a farmlb-move to b or c", ev)
				}
			} else {
				if got := old.data(t, 1); got[0] != "on-a" {
					t.Errorf("a's client got %q, want on-a", got)
				}
				old.expectNothing(t, 500*time.Millisecond)
			}

			recover()
			waitServer(t, f, 10*time.Second, "a", farm.StatusUp, "", all...)
			again := openStream(t, nil, f.URL("a")+"/stream?topic=t", "")
			if _, err := f.Publish(context.Background(), "c", "t", "after"); err != nil {
				t.Fatal(err)
			}
			if got := again.data(t, 1); got[0] != "after" {
				t.Errorf("a new client of a got %q", got)
			}
			if !tc.down {
				if got := old.data(t, 1); got[0] != "after" {
					t.Errorf("the client a kept got %q", got)
				}
			}
			// The reason is in a's metrics too.
			resp, err := http.Get(f.URL("a") + "/metrics")
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			for _, m := range []string{
				`farmlb_pushd_status_changes_total{reason="health:feed",status="` + want.String() + `"} 1`,
				`farmlb_pushd_status{reason="none",status="UP"} 1`,
				`farmlb_pushd_health_check_up{check="feed"} 1`,
				`farmlb_pushd_health_check_runs_total{check="feed",result="fail"}`,
			} {
				if !strings.Contains(string(b), m) {
					t.Errorf("metrics lack %s", m)
				}
			}
		})
	}
}

// TestOverloadStreams: a node over its soft stream limit marks itself full
// (DRAINING, reason overload:streams) while another node of its group can
// take clients, and takes clients again once it is back under; a node
// alone in its group stays UP with the reason.
func TestOverloadStreams(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	f := farmtest.Start(t, farmtest.Options{
		Nodes: []farmtest.NodeSpec{{Name: "a"}, {Name: "b"}, {Name: "z", Priority: "B"}},
		Extra: "pushd:\n  overload: {streams: 2, interval: 100ms, over_for: 300ms, under_for: 300ms}\n",
	})
	f.WaitUp(30 * time.Second)
	all := []string{"a", "b", "z"}
	var streams []*sseClient
	for range 3 {
		streams = append(streams, openStream(t, nil, f.URL("a")+"/stream?topic=t", ""))
	}
	waitServer(t, f, 10*time.Second, "a", farm.StatusDraining, "overload:streams", all...)
	if msg := refusedElsewhere(t, f, "a"); !strings.Contains(msg, "overloaded (streams)") {
		t.Errorf("refusal says %q", msg)
	}
	// Its clients stay.
	if _, err := f.Publish(context.Background(), "b", "t", "x"); err != nil {
		t.Fatal(err)
	}
	for _, s := range streams {
		if got := s.data(t, 1); got[0] != "x" {
			t.Errorf("got %q", got)
		}
	}
	streams[0].close()
	streams[1].close()
	waitServer(t, f, 10*time.Second, "a", farm.StatusUp, "", all...)

	// z is alone in group B: overloaded, it stays UP and says why.
	for range 3 {
		openStream(t, nil, f.URL("z")+"/stream?topic=t", "")
	}
	waitServer(t, f, 10*time.Second, "z", farm.StatusUp, "overload:streams", all...)
}

// TestOverloadIgnoresCatchUp: a node that comes back from a pause (SIGSTOP,
// long enough for the mesh to declare it DOWN) delivers its backlog to its
// clients seconds late — a burst, not overload: it must not mark itself
// full. (The testbed's hang scenario found this: its stopped node
// stranded its 110 clients as DRAINING, overload:fanout.)
func TestOverloadIgnoresCatchUp(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	f := farmtest.Start(t, farmtest.Options{
		Nodes: []farmtest.NodeSpec{{Name: "a"}, {Name: "b"}},
		Extra: "pushd:\n  overload: {fanout_delay: 100ms, interval: 100ms, over_for: 1s, under_for: 300ms}\n",
	})
	f.WaitUp(30 * time.Second)
	c := openStream(t, nil, f.URL("a")+"/stream?topic=t", "")
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ctx.Err() == nil; i++ {
			f.Publish(ctx, "b", "t", fmt.Sprint(i))
			time.Sleep(20 * time.Millisecond) // a steady feed, not a readiness wait
		}
	}()
	defer func() { stop(); <-done }()
	c.data(t, 5)
	f.Stop("a")
	f.WaitStatus(10*time.Second, farm.StatusDown, []string{"a"}, "b")
	time.Sleep(1500 * time.Millisecond) // the pause itself: the backlog it leaves is the test
	f.Cont("a")
	f.WaitStatus(10*time.Second, farm.StatusUp, []string{"a"}, "b")
	// For three over_for after it is back, a never says it is overloaded.
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		l, err := f.List(context.Background(), "a")
		if err == nil {
			if s, _ := l.Find("a"); s.Reason != "" || s.Status != farm.StatusUp {
				t.Fatalf("a back from a pause lists itself %v %q", s.Status, s.Reason)
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
}
