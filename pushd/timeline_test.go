package pushd

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/farmlb/farmlb/farm"
)

func list(servers ...farm.Server) *farm.List { return &farm.List{Servers: servers} }

func TestTimelineObserve(t *testing.T) {
	t0 := time.Unix(1764403200, 0)
	up := func(n string, users int) farm.Server {
		return farm.Server{Name: n, Status: farm.StatusUp, Users: users}
	}
	st := func(n string, s farm.Status, users int) farm.Server {
		return farm.Server{Name: n, Status: s, Users: users}
	}
	var tl timeline
	tl.observe(t0, list(up("a", 3), up("b", 5)), true)
	tl.observe(t0.Add(time.Second), list(up("a", 3), up("b", 5)), true)
	// b dies with 5 users: a change between samples, then its clients on a.
	tl.observe(t0.Add(1500*time.Millisecond), list(up("a", 3), st("b", farm.StatusDown, 5)), false)
	tl.observe(t0.Add(2*time.Second), list(up("a", 8), st("b", farm.StatusDown, 0)), true)
	// a drains with nobody left on it... and b comes back.
	tl.observe(t0.Add(3*time.Second), list(st("a", farm.StatusDraining, 0), up("b", 8)), true)

	got := tl.snapshot("a", time.Time{}, []string{"a", "b"})
	if len(got.Samples) != 4 || got.Samples[2].Users["a"] != 8 || got.Samples[2].Status["b"] != "DOWN" {
		t.Fatalf("samples %+v", got.Samples)
	}
	want := []timelineChange{
		{T: t0.Add(1500 * time.Millisecond).UnixMilli(), Node: "b", From: "UP", To: "DOWN", Users: 5, Failover: true},
		{T: t0.Add(3 * time.Second).UnixMilli(), Node: "a", From: "UP", To: "DRAINING", Users: 8, Failover: true},
		{T: t0.Add(3 * time.Second).UnixMilli(), Node: "b", From: "DOWN", To: "UP", Users: 0, Failover: false},
	}
	if len(got.Changes) != len(want) {
		t.Fatalf("changes %+v, want %+v", got.Changes, want)
	}
	for i := range want {
		if got.Changes[i] != want[i] {
			t.Errorf("change %d: %+v, want %+v", i, got.Changes[i], want[i])
		}
	}
	if inc := tl.snapshot("a", t0.Add(2*time.Second), nil); len(inc.Samples) != 1 || len(inc.Changes) != 2 {
		t.Errorf("since 2 s: %d samples, %d changes; want 1 and 2", len(inc.Samples), len(inc.Changes))
	}
	// What is older than the span goes.
	tl.observe(t0.Add(timelineSpan+2500*time.Millisecond), list(up("a", 1), up("b", 1)), true)
	if got := tl.snapshot("a", time.Time{}, nil); len(got.Samples) != 2 || len(got.Changes) != 3 {
		t.Errorf("after the span: %d samples, %d changes; want 2 (3 s and now) and 3 (the drain, b back, a back)", len(got.Samples), len(got.Changes))
	}
}

func TestTimelineEndpoint(t *testing.T) {
	f := newMemFarm("a", "b")
	nodes := startNodes(t, f, nil, "a", "b")
	openStream(t, nil, streamURL(nodes["b"], "t"), "")
	var tl timelineJSON
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(nodes["a"].url + "/farm/timeline")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || json.Unmarshal(b, &tl) != nil {
			t.Fatalf("%d %s", resp.StatusCode, b)
		}
		if n := len(tl.Samples); n > 0 && tl.Samples[n-1].Users["b"] == 1 && tl.Samples[n-1].Status["a"] == "UP" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("timeline never showed b's stream: %s", b)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if tl.Reporter != "a" || strings.Join(tl.Nodes, ",") != "a,b" || tl.StepMs != 1000 {
		t.Errorf("timeline %+v", tl)
	}
	resp, err := http.Get(nodes["a"].url + "/farm/timeline?since=yesterday")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Errorf("since=yesterday: %d, want 400", resp.StatusCode)
	}
}
