package testbed

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/farmlb/farmlb/farm"
)

func TestLostAndDuplicatedFromClientRecords(t *testing.T) {
	acked := map[int]time.Time{}
	for i := 1; i <= 10; i++ {
		acked[i] = time.Now()
	}
	for _, tc := range []struct {
		name                    string
		lines                   string
		lost, dup, silent, reco int
	}{
		{"whole sequence", `{"kind":"client","client":0,"seqs":[[1,10]],"first_connect_ms":1,"node":"a"}`, 0, 0, 0, 0},
		{"joined late, then complete", `{"kind":"client","client":0,"seqs":[[4,10]],"first_connect_ms":1,"node":"a"}`, 0, 0, 0, 0},
		{"a gap across a failover", `{"kind":"client","client":0,"seqs":[[1,4],[7,10]],"first_connect_ms":1,"node":"b","failovers":[{"from":"a","to":"b","took_ms":120}],"gaps_ms":[400]}`, 2, 0, 0, 1},
		{"missing the tail", `{"kind":"client","client":0,"seqs":[[1,6]],"first_connect_ms":1,"node":"a"}`, 4, 0, 0, 0},
		{"duplicates", `{"kind":"client","client":0,"seqs":[[1,10]],"duplicated":3,"first_connect_ms":1,"node":"a"}`, 0, 3, 0, 0},
		{"connected, got nothing", `{"kind":"client","client":0,"seqs":[],"first_connect_ms":1,"node":"a"}`, 0, 0, 1, 0},
		{"two failovers", `{"kind":"client","client":0,"seqs":[[1,10]],"first_connect_ms":1,"node":"c","failovers":[{"from":"a","to":"b","took_ms":120},{"from":"b","to":"c","took_ms":90}],"gaps_ms":[300,250]}`, 0, 0, 0, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "c.jsonl")
			if err := os.WriteFile(path, []byte(tc.lines+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			var rep Report
			if err := rep.addClients(path, acked); err != nil {
				t.Fatal(err)
			}
			if rep.Lost != tc.lost || rep.Duplicated != tc.dup || rep.Silent != tc.silent || len(rep.reconnects) != tc.reco {
				t.Errorf("lost %d dup %d silent %d reconnects %d, want %d %d %d %d",
					rep.Lost, rep.Duplicated, rep.Silent, len(rep.reconnects), tc.lost, tc.dup, tc.silent, tc.reco)
			}
		})
	}
}

func TestSwarmSummaryRead(t *testing.T) {
	dir := t.TempDir()
	a := filepath.Join(dir, "a.json")
	b := filepath.Join(dir, "b.json")
	os.WriteFile(a, []byte(`{"clients":100,"connected":100,"events":5000,"lost":0,"duplicated":1,"failovers":30,"reconnect_ms":{"p50":120,"p99":800,"max":900}}`+"\n"), 0o644)
	os.WriteFile(b, []byte(`{"clients":50,"connected":48,"events":2000,"lost":2,"duplicated":0,"failovers":10,"reconnect_ms":{"p50":200,"p99":700,"max":1500}}`+"\n"), 0o644)
	var rep Report
	for _, f := range []string{a, b} {
		if err := rep.addSwarm(f, nil); err != nil {
			t.Fatal(err)
		}
	}
	if rep.Clients != 150 || rep.Streaming != 148 || rep.Lost != 2 || rep.Duplicated != 1 || rep.Reconnects != 40 ||
		rep.ReconnectMSP50 != 200 || rep.ReconnectMSP99 != 800 || rep.ReconnectMSMax != 1500 || len(rep.Notes) != 1 {
		t.Errorf("%+v", rep)
	}
	bad := filepath.Join(dir, "bad.json")
	os.WriteFile(bad, []byte("swarm: no farm found\n"), 0o644)
	if err := rep.addSwarm(bad, nil); err == nil {
		t.Error("a swarm that printed no summary was accepted")
	}
}

// A measure that never happened (-1) reads "n/a" in report.md, not -1.
func TestReportMarkdownSaysNA(t *testing.T) {
	dir := t.TempDir()
	s := &Scenario{Name: "failover", Description: "A node is killed."}
	rep := &Report{Scenario: s.Name, DetectMSMax: 900, DNSRemovedMS: -1, BackUpMS: -1}
	if err := writeReport(dir, s, rep, &recorder{}); err != nil {
		t.Fatal(err)
	}
	md, err := os.ReadFile(filepath.Join(dir, "report.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"| detect_ms_max | 900 |", "| dns_removed_ms | n/a |", "| back_up_ms | n/a |"} {
		if !strings.Contains(string(md), want) {
			t.Errorf("report.md lacks %q:\n%s", want, md)
		}
	}
}

// TestCheckBounds: each bound a scenario sets fails the run when the figure
// is over it, and a time bound fails when the thing timed never happened.
func TestCheckBounds(t *testing.T) {
	n := func(v int) *int { return &v }
	good := func() Report {
		return Report{DetectMSMax: 600, DNSRemovedMS: 5100, ReconnectMSP99: 480, ReconnectMSMax: 900, Published: 10, Clients: 5}
	}
	for _, tc := range []struct {
		name   string
		edit   func(*Report)
		expect Expect
		want   string // "" passes
	}{
		{"within every bound", func(*Report) {}, Expect{DetectMSMax: n(1500), DNSRemovedMSMax: n(12000), ReconnectMSP99: n(1000), ReconnectMSMax: n(2000)}, ""},
		{"no bound set", func(r *Report) { r.DetectMSMax, r.ReconnectMSMax = 99999, 99999 }, Expect{}, ""},
		{"detection too slow", func(r *Report) { r.DetectMSMax = 1501 }, Expect{DetectMSMax: n(1500)}, "detect_ms_max 1501"},
		{"detection never seen", func(r *Report) { r.DetectMSMax = -1 }, Expect{DetectMSMax: n(1500)}, "detect_ms_max -1"},
		{"dns removal too slow", func(r *Report) { r.DNSRemovedMS = 12001 }, Expect{DNSRemovedMSMax: n(12000)}, "dns_removed_ms 12001"},
		{"dns never removed", func(r *Report) { r.DNSRemovedMS = -1 }, Expect{DNSRemovedMSMax: n(12000)}, "dns_removed_ms -1"},
		{"reconnect p99 over", func(r *Report) { r.ReconnectMSP99 = 1001 }, Expect{ReconnectMSP99: n(1000)}, "reconnect_ms_p99 1001 > 1000"},
		{"a client stranded too long", func(r *Report) { r.ReconnectMSMax = 2001 }, Expect{ReconnectMSMax: n(2000)}, "reconnect_ms_max 2001 > 2000"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep := good()
			tc.edit(&rep)
			rep.check(tc.expect)
			got := strings.Join(rep.Failures, "; ")
			if rep.Pass != (tc.want == "") || !strings.Contains(got, tc.want) {
				t.Errorf("pass %v, failures %q; want %q", rep.Pass, got, tc.want)
			}
		})
	}
}

// TestWindows: a check-fail … check-ok window counts the clients that
// joined each node from the first list that shows the target not UP, and
// the users the target kept.
func TestWindows(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	list := func(a farm.Status, reason string, users int) *farm.List {
		return &farm.List{Servers: []farm.Server{{Name: "a", URL: "http://a", Status: a, Reason: reason, Users: users}, {Name: "b", URL: "http://b", Status: farm.StatusUp}}}
	}
	rc := &recorder{start: t0, end: at(30)}
	rc.faults = []timedStep{{at(10), Step{Fault: "check-fail", Target: "a"}}, {at(20), Step{Fault: "check-ok", Target: "a"}}}
	rc.lists = []listSample{
		{at(9), "a", list(farm.StatusUp, "", 40)},
		{at(10.5), "b", list(farm.StatusUp, "", 40)},
		{at(11), "b", list(farm.StatusDraining, "health:feed", 40)},
		{at(12), "a", list(farm.StatusDraining, "health:feed", 38)},
		{at(19), "a", list(farm.StatusDraining, "health:feed", 38)},
		{at(21), "a", list(farm.StatusUp, "", 45)},
	}
	visits := []AgentVisit{
		{at(10.7).UnixMilli(), "a"}, // before a was shown not UP: not counted
		{at(12).UnixMilli(), "b"}, {at(13).UnixMilli(), "b"}, {at(14).UnixMilli(), "a"}, {at(15).UnixMilli(), "b"},
		{at(22).UnixMilli(), "a"}, // after the window
	}
	ws := windows(rc, visits)
	if len(ws) != 1 {
		t.Fatalf("%d windows", len(ws))
	}
	w := ws[0]
	if w.ShownMS != 11000 || w.FromMS != 10000 || w.ToMS != 20000 || w.Joined != 1 || w.JoinedAll != 4 || w.Share != 0.25 ||
		w.UsersStart != 40 || w.UsersEnd != 38 || w.Kept != 0.95 || strings.Join(w.Reasons, ",") != "health:feed" {
		t.Errorf("%+v", w)
	}
	rep := &Report{Windows: ws, Published: 1, Clients: 1}
	share, keptMax := 0.2, map[string]float64{"a": 0.5}
	rep.check(Expect{WindowShareMax: &share, WindowKeptMax: keptMax, WindowKeptMin: map[string]float64{"a": 0.9}})
	if len(rep.Failures) != 2 || !strings.Contains(rep.Failures[0], "took 1 of 4") || !strings.Contains(rep.Failures[1], "kept 38 of 40 users (0.950 > 0.500)") {
		t.Errorf("failures %q", rep.Failures)
	}
}
