package testbed

import (
	"bufio"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/farmlb/farmlb/farm"
)

// Report is what a run measured. Times are milliseconds; -1 means "not
// applicable" (no such fault in the scenario) or "never happened" (see
// Notes).
type Report struct {
	Scenario string `json:"scenario"`
	Pass     bool   `json:"pass"`
	// Failures lists every expectation the run missed.
	Failures []string `json:"failures"`

	// DetectMSMax is the slowest member (other pushd nodes, dnsd) to list
	// the victim as not UP, from the fault.
	DetectMSMax int64 `json:"detect_ms_max"`
	// DetectMS is each member's time.
	DetectMS map[string]int64 `json:"detect_ms"`
	// DNSRemovedMS is the time until the resolver host no longer gets the
	// victim's address for the service name.
	DNSRemovedMS int64 `json:"dns_removed_ms"`
	// BackUpMS is, when the victim is brought back (restart, cont,
	// link-up), the time from that step until every other member lists it
	// UP again.
	BackUpMS int64 `json:"back_up_ms"`

	// ReconnectMS* are what the clients felt of a change of node: from the
	// last message the old node delivered to the first from the new one
	// (agent clients); for farmctl swarm clients, the swarm's own
	// reconnect percentiles. Reconnects is how many there were.
	ReconnectMSP50 int64 `json:"reconnect_ms_p50"`
	ReconnectMSP99 int64 `json:"reconnect_ms_p99"`
	ReconnectMSMax int64 `json:"reconnect_ms_max"`
	Reconnects     int   `json:"reconnects"`

	// Lost counts acknowledged messages a client should have had (after
	// its first message) and never got; Duplicated, messages a client got
	// more than once; Resets, explicit farmlb-reset events.
	Lost       int `json:"lost"`
	Duplicated int `json:"duplicated"`
	Resets     int `json:"resets"`
	Published  int `json:"published"`
	// Clients arrived; Streaming were connected at the end; Silent never
	// received a message.
	Clients   int `json:"clients"`
	Streaming int `json:"streaming"`
	Silent    int `json:"silent"`

	// MaxOverMean is the busiest UP node's users over the mean of the UP
	// nodes, at the end (after settling); Users are those counts.
	MaxOverMean float64        `json:"max_over_mean"`
	Users       map[string]int `json:"users"`
	// Stranded are clients that arrived but were not streaming from a live
	// node at the end: Clients less the users the UP nodes report. A client
	// stuck on a dead node's socket shows here, whatever it believes.
	Stranded int `json:"stranded"`

	// FalseDown counts observations (a member's list, polled every 100 ms)
	// that showed a node DOWN while it was running and reachable by clients.
	FalseDown int `json:"false_down"`
	// ResolveFailures counts failed _farm TXT lookups through the resolver.
	ResolveFailures int   `json:"resolve_failures"`
	ResolveQueries  int   `json:"resolve_queries"`
	DurationMS      int64 `json:"duration_ms"`

	// FailoverTookMSP50/Max are clientlib's own failover times (from
	// giving up a stream to the new one answering), agent clients only.
	FailoverTookMSP50 int64 `json:"failover_took_ms_p50"`
	FailoverTookMSMax int64 `json:"failover_took_ms_max"`

	Faults []faultRecord `json:"faults"`
	Notes  []string      `json:"notes"`
	// Windows are the stretches a node was made to fail its health check,
	// or starved or squeezed (window.go).
	Windows []WindowReport `json:"windows"`

	visits       []AgentVisit
	reconnects   []int64
	failoverTook []int64
}

func (r *runner) report(balance map[string]int) (*Report, error) {
	rep := &Report{Scenario: r.s.Name, DetectMSMax: -1, DNSRemovedMS: -1, BackUpMS: -1, DetectMS: map[string]int64{},
		Users: balance, Faults: append([]faultRecord{}, r.faults...), Failures: []string{}, Notes: []string{},
		DurationMS: time.Since(r.start).Milliseconds()}
	rc := r.rec
	rc.mu.Lock()
	defer rc.mu.Unlock()

	// Detection and DNS removal of the victim.
	if st, ok := r.s.Victim(); ok {
		t0 := r.start.Add(st.At)
		for _, f := range rc.faults {
			if f.st.Target == st.Target && f.st.Fault == st.Fault {
				t0 = f.at
				break
			}
		}
		for _, s := range rc.lists {
			if s.reporter == st.Target || s.list == nil || s.at.Before(t0) {
				continue
			}
			if _, done := rep.DetectMS[s.reporter]; done {
				continue
			}
			if sv, ok := s.list.Find(st.Target); ok && sv.Status != farm.StatusUp {
				rep.DetectMS[s.reporter] = s.at.Sub(t0).Milliseconds()
			}
		}
		members := []string{}
		for _, n := range r.plan.Nodes {
			if n.Name != st.Target {
				members = append(members, n.Name)
			}
		}
		for _, o := range r.plan.NS {
			members = append(members, o.Name)
		}
		for _, m := range members {
			d, ok := rep.DetectMS[m]
			if !ok {
				rep.Notes = append(rep.Notes, fmt.Sprintf("%s never listed %s as not UP", m, st.Target))
				continue
			}
			rep.DetectMSMax = max(rep.DetectMSMax, d)
		}
		rep.BackUpMS = backUp(rc, st, t0, len(members))
		if victim, ok := r.lab.Host(st.Target); ok && r.s.DNS {
			for _, s := range rc.resolved {
				if s.at.Before(t0) || s.err != nil {
					continue
				}
				if !slices.Contains(s.addrs, victim.Addr) {
					rep.DNSRemovedMS = s.at.Sub(t0).Milliseconds()
					break
				}
			}
			if rep.DNSRemovedMS < 0 {
				rep.Notes = append(rep.Notes, fmt.Sprintf("the resolver kept giving %s's address %v", st.Target, victim.Addr))
			}
		}
	}

	// Lists that showed a running node DOWN.
	var seen []string
	rep.FalseDown, seen = falseDowns(rc, r.plan)
	rep.Notes = append(rep.Notes, seen...)

	for _, s := range rc.txt {
		rep.ResolveQueries++
		if s.err != nil {
			rep.ResolveFailures++
			if rep.ResolveFailures <= 3 {
				rep.Notes = append(rep.Notes, fmt.Sprintf("_farm TXT through the resolver failed at %.1f s: %v", s.at.Sub(rc.start).Seconds(), s.err))
			}
		}
	}

	// What the clients got.
	acked := r.pub.ackedSet()
	rep.Published = len(acked)
	swarm := r.s.Clients.Kind != "agent"
	for _, a := range r.agents {
		add := rep.addClients
		if swarm {
			add = rep.addSwarm
		}
		if err := add(a.out, acked); err != nil {
			return nil, err
		}
	}
	if n := len(rep.failoverTook); n > 0 {
		slices.Sort(rep.failoverTook)
		rep.FailoverTookMSP50 = percentile(rep.failoverTook, 0.5)
		rep.FailoverTookMSMax = rep.failoverTook[n-1]
	}
	if n := len(rep.reconnects); n > 0 && !swarm {
		slices.Sort(rep.reconnects)
		rep.Reconnects = n
		rep.ReconnectMSP50 = percentile(rep.reconnects, 0.50)
		rep.ReconnectMSP99 = percentile(rep.reconnects, 0.99)
		rep.ReconnectMSMax = rep.reconnects[n-1]
	}
	live := 0
	for _, u := range balance {
		live += u
	}
	rep.Stranded = max(0, rep.Clients-live)
	if len(balance) > 0 {
		sum, most := 0, 0
		for _, u := range balance {
			sum += u
			most = max(most, u)
		}
		if sum > 0 {
			rep.MaxOverMean = math.Round(float64(most)/(float64(sum)/float64(len(balance)))*1000) / 1000
		}
	}
	rep.Windows = windows(rc, rep.visits)
	rep.check(r.s.Expect)
	return rep, nil
}

// backUp is the time from the step that brings the victim back until every
// one of the other members (n) has listed it UP; -1 if it never came back.
func backUp(rc *recorder, victim Step, after time.Time, n int) int64 {
	var t1 time.Time
	for _, f := range rc.faults {
		if f.st.Target == victim.Target && f.at.After(after) {
			switch f.st.Fault {
			case "restart", "cont", "link-up":
				t1 = f.at
			}
		}
		if !t1.IsZero() {
			break
		}
	}
	if t1.IsZero() {
		return -1
	}
	up := map[string]time.Time{}
	for _, s := range rc.lists {
		if s.reporter == victim.Target || s.list == nil || s.at.Before(t1) {
			continue
		}
		if _, done := up[s.reporter]; done {
			continue
		}
		if sv, ok := s.list.Find(victim.Target); ok && sv.Status == farm.StatusUp {
			up[s.reporter] = s.at
		}
	}
	if len(up) < n {
		return -1
	}
	var last time.Time
	for _, at := range up {
		if at.After(last) {
			last = at
		}
	}
	return last.Sub(t1).Milliseconds()
}

// falseDowns counts list observations that show a node DOWN while its
// daemon runs and its host is on the network. A node is "down by design"
// from a fault that stops it until 15 s after the step that brings it back
// (time enough for the mesh to see it again).
func falseDowns(rc *recorder, p Plan) (int, []string) {
	type interval struct{ from, to time.Time }
	downs := map[string][]interval{}
	open := map[string]time.Time{}
	const grace = 15 * time.Second
	for _, f := range rc.faults {
		switch f.st.Fault {
		case "kill", "stop", "term", "link-down", "dns-down":
			if _, ok := open[f.st.Target]; !ok {
				open[f.st.Target] = f.at
			}
		case "restart", "cont", "link-up", "dns-up":
			from, ok := open[f.st.Target]
			if !ok {
				from = f.at // a restart of a running node takes it away too
			}
			delete(open, f.st.Target)
			downs[f.st.Target] = append(downs[f.st.Target], interval{from, f.at.Add(grace)})
		case "drain":
			// DRAINING is not DOWN; nothing to excuse.
		}
	}
	for name, from := range open {
		downs[name] = append(downs[name], interval{from, from.Add(100 * time.Hour)})
	}
	excused := func(name string, at time.Time) bool {
		for _, iv := range downs[name] {
			if !at.Before(iv.from) && at.Before(iv.to) {
				return true
			}
		}
		return false
	}
	n := 0
	var notes []string
	for _, s := range rc.lists {
		if s.list == nil || excused(s.reporter, s.at) {
			continue
		}
		for _, sv := range s.list.Servers {
			// DOWN with a reason is the node's own choice (a failing
			// health check), not the mesh's conclusion.
			if sv.Status == farm.StatusDown && sv.Reason == "" && !excused(sv.Name, s.at) {
				n++
				if len(notes) < 5 {
					notes = append(notes, fmt.Sprintf("false DOWN: %s listed %s DOWN at %.1f s", s.reporter, sv.Name, s.at.Sub(rc.start).Seconds()))
				}
			}
		}
	}
	return n, notes
}

// addClients reads one agent's output: one record per client.
func (rep *Report) addClients(path string, acked map[int]time.Time) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("client output: %w", err)
	}
	defer f.Close()
	lastAcked := 0
	for s := range acked {
		lastAcked = max(lastAcked, s)
	}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	for sc.Scan() {
		var kind struct {
			Kind string `json:"kind"`
		}
		if err := json.Unmarshal(sc.Bytes(), &kind); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		switch kind.Kind {
		case "client":
			var c AgentClient
			if err := json.Unmarshal(sc.Bytes(), &c); err != nil {
				return err
			}
			rep.Clients++
			rep.visits = append(rep.visits, c.Visits...)
			rep.reconnects = append(rep.reconnects, c.GapsMS...)
			for _, f := range c.Failovers {
				rep.failoverTook = append(rep.failoverTook, f.TookMS)
			}
			rep.Duplicated += c.Duplicated
			rep.Resets += c.Resets
			if c.Node != "" {
				rep.Streaming++
			}
			if len(c.Seqs) == 0 {
				if c.FirstConnectMS != 0 {
					rep.Silent++
				}
				continue
			}
			// Every acknowledged number after the client's first is owed to it.
			first := c.Seqs[0][0]
			got := 0
			for _, rg := range c.Seqs {
				lo, hi := max(rg[0], first), min(rg[1], lastAcked)
				if hi >= lo {
					got += hi - lo + 1
				}
			}
			if owed := lastAcked - first + 1; owed > got {
				rep.Lost += owed - got
			}
		}
	}
	return sc.Err()
}

// swarmSummary is the part of `farmctl swarm --json`'s summary the lab reads.
type swarmSummary struct {
	Clients     int            `json:"clients"`
	Connected   int            `json:"connected"`
	Nodes       map[string]int `json:"nodes"`
	Events      int            `json:"events"`
	Lost        int            `json:"lost"`
	Duplicated  int            `json:"duplicated"`
	Resets      int            `json:"resets"`
	Failovers   int            `json:"failovers"`
	ReconnectMs struct {
		P50 float64 `json:"p50"`
		P99 float64 `json:"p99"`
		Max float64 `json:"max"`
	} `json:"reconnect_ms"`
}

// addSwarm reads one `farmctl swarm --json` summary. A swarm counts as lost
// the gaps in each client's sequence; it reports percentiles, not each
// reconnect, so across several swarms p50 and p99 are the largest of the
// swarms' (an upper bound) and max is exact.
func (rep *Report) addSwarm(path string, _ map[int]time.Time) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("swarm output: %w", err)
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	var s swarmSummary
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &s); err != nil {
		return fmt.Errorf("swarm output %s: %w (%q)", path, err, data)
	}
	rep.Clients += s.Clients
	rep.Streaming += s.Connected
	rep.Lost += s.Lost
	rep.Duplicated += s.Duplicated
	rep.Resets += s.Resets
	rep.Reconnects += s.Failovers
	rep.ReconnectMSP50 = max(rep.ReconnectMSP50, int64(s.ReconnectMs.P50))
	rep.ReconnectMSP99 = max(rep.ReconnectMSP99, int64(s.ReconnectMs.P99))
	rep.ReconnectMSMax = max(rep.ReconnectMSMax, int64(s.ReconnectMs.Max))
	if s.Connected < s.Clients {
		rep.Notes = append(rep.Notes, fmt.Sprintf("%s: %d of %d clients streaming at the end", filepath.Base(path), s.Connected, s.Clients))
	}
	if s.Events == 0 && s.Connected > 0 {
		rep.Silent += s.Connected
	}
	return nil
}

func percentile(sorted []int64, q float64) int64 {
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// check compares the report with the scenario's expectations.
func (rep *Report) check(e Expect) {
	fail := func(format string, args ...any) { rep.Failures = append(rep.Failures, fmt.Sprintf(format, args...)) }
	atMost := func(name string, got int64, limit *int) {
		if limit != nil && got > int64(*limit) {
			fail("%s %d > %d", name, got, *limit)
		}
	}
	atMost("lost", int64(rep.Lost), e.Lost)
	atMost("duplicated", int64(rep.Duplicated), e.Duplicated)
	atMost("false_down", int64(rep.FalseDown), e.FalseDown)
	atMost("resolve_failures", int64(rep.ResolveFailures), e.ResolveFailures)
	atMost("reconnect_ms_p99", rep.ReconnectMSP99, e.ReconnectMSP99)
	atMost("reconnect_ms_max", rep.ReconnectMSMax, e.ReconnectMSMax)
	if e.DetectMSMax != nil && (rep.DetectMSMax < 0 || rep.DetectMSMax > int64(*e.DetectMSMax)) {
		fail("detect_ms_max %d, want ≤ %d", rep.DetectMSMax, *e.DetectMSMax)
	}
	if e.DNSRemovedMSMax != nil && (rep.DNSRemovedMS < 0 || rep.DNSRemovedMS > int64(*e.DNSRemovedMSMax)) {
		fail("dns_removed_ms %d, want ≤ %d", rep.DNSRemovedMS, *e.DNSRemovedMSMax)
	}
	if e.MaxOverMean != nil && rep.MaxOverMean > *e.MaxOverMean {
		fail("max_over_mean %.3f > %.3f", rep.MaxOverMean, *e.MaxOverMean)
	}
	rep.checkWindows(e, fail)
	if rep.Published == 0 {
		fail("nothing was published (every publish failed)")
	}
	if rep.Clients == 0 {
		fail("no client reported")
	}
	if rep.Stranded > 0 {
		fail("%d clients not streaming from a live node at the end", rep.Stranded)
	}
	if rep.Silent > 0 {
		fail("%d clients connected but never got a message", rep.Silent)
	}
	rep.Pass = len(rep.Failures) == 0
}

// Summary is the report in one line.
func (rep *Report) Summary() string {
	verdict := "PASS"
	if !rep.Pass {
		verdict = "FAIL (" + strings.Join(rep.Failures, "; ") + ")"
	}
	line := fmt.Sprintf("%-16s %s  detect_ms_max=%d dns_removed_ms=%d reconnect_ms p50/p99/max=%d/%d/%d lost=%d duplicated=%d max_over_mean=%.2f false_down=%d stranded=%d clients=%d published=%d",
		rep.Scenario, verdict, rep.DetectMSMax, rep.DNSRemovedMS, rep.ReconnectMSP50, rep.ReconnectMSP99, rep.ReconnectMSMax,
		rep.Lost, rep.Duplicated, rep.MaxOverMean, rep.FalseDown, rep.Stranded, rep.Clients, rep.Published)
	for _, w := range rep.Windows {
		line += fmt.Sprintf(" %s(%s):share=%.2f,kept=%.2f", w.Fault, w.Target, w.Share, w.Kept)
	}
	return line
}

// usersSeries is each node's own report of its users over time, in seconds
// since the start, until the end of the timeline; NaN where the node did
// not answer (a gap in the chart: its clients may still hang on to it).
func usersSeries(rc *recorder, nodes []string) map[string][][2]float64 {
	out := map[string][][2]float64{}
	for _, s := range rc.lists {
		if !slices.Contains(nodes, s.reporter) || (!rc.end.IsZero() && s.at.After(rc.end)) {
			continue
		}
		u := math.NaN()
		if s.list != nil {
			if sv, ok := s.list.Find(s.reporter); ok {
				u = float64(sv.Users)
			}
		}
		out[s.reporter] = append(out[s.reporter], [2]float64{s.at.Sub(rc.start).Seconds(), u})
	}
	return out
}

func writeReport(dir string, s *Scenario, rep *Report, rc *recorder) error {
	data, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "report.json"), append(data, '\n'), 0o644); err != nil {
		return err
	}
	var nodes []string
	for _, n := range s.Nodes {
		nodes = append(nodes, n.Name)
	}
	rc.mu.Lock()
	series := usersSeries(rc, nodes)
	var marks []chartMark
	for _, f := range rc.faults {
		marks = append(marks, chartMark{x: f.at.Sub(rc.start).Seconds(), label: f.st.Fault + " " + f.st.Target})
	}
	rc.mu.Unlock()
	if err := os.WriteFile(filepath.Join(dir, "users.svg"), []byte(lineChart("Users per node", "seconds", "users", nodes, series, marks)), 0o644); err != nil {
		return err
	}
	chart := histogram("Reconnect times", "milliseconds", "reconnects", rep.reconnects)
	if len(rep.reconnects) == 0 && rep.Reconnects > 0 {
		chart = percentileBars("Reconnect times", "milliseconds", []string{"p50", "p99", "max"},
			[]int64{rep.ReconnectMSP50, rep.ReconnectMSP99, rep.ReconnectMSMax},
			fmt.Sprintf("%d failovers; farmctl swarm reports percentiles (clients.kind: agent records each)", rep.Reconnects))
	}
	if err := os.WriteFile(filepath.Join(dir, "reconnect.svg"), []byte(chart), 0o644); err != nil {
		return err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# testbed: %s\n\n%s\n\n", s.Name, strings.TrimSpace(s.Description))
	verdict := "**PASS**"
	if !rep.Pass {
		verdict = "**FAIL**: " + strings.Join(rep.Failures, "; ")
	}
	fmt.Fprintf(&b, "%s\n\n| measure | value |\n| --- | --- |\n", verdict)
	row := func(k string, v any) { fmt.Fprintf(&b, "| %s | %v |\n", k, v) }
	row("detect_ms_max", msOrNA(rep.DetectMSMax))
	keys := make([]string, 0, len(rep.DetectMS))
	for k := range rep.DetectMS {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		row("&nbsp;&nbsp;detect_ms "+k, rep.DetectMS[k])
	}
	row("dns_removed_ms", msOrNA(rep.DNSRemovedMS))
	row("back_up_ms", msOrNA(rep.BackUpMS))
	row("reconnect_ms p50 / p99 / max", fmt.Sprintf("%d / %d / %d (%d reconnects)", rep.ReconnectMSP50, rep.ReconnectMSP99, rep.ReconnectMSMax, rep.Reconnects))
	row("clientlib's failover time p50 / max", fmt.Sprintf("%d / %d", rep.FailoverTookMSP50, rep.FailoverTookMSMax))
	row("lost", rep.Lost)
	row("duplicated", rep.Duplicated)
	row("resets", rep.Resets)
	row("published (acknowledged)", rep.Published)
	row("clients / streaming at the end / silent", fmt.Sprintf("%d / %d / %d", rep.Clients, rep.Streaming, rep.Silent))
	row("stranded (not on a live node at the end)", rep.Stranded)
	row("max_over_mean", rep.MaxOverMean)
	row("users at the end", fmtUsers(rep.Users))
	row("false_down", rep.FalseDown)
	row("resolve_failures", fmt.Sprintf("%d of %d", rep.ResolveFailures, rep.ResolveQueries))
	row("duration_ms", rep.DurationMS)
	if len(rep.Windows) > 0 {
		b.WriteString("\n## Windows\n\nFrom the first list that showed the target not UP to the step that ended the fault: the target's share of the clients that started streaming from a node, and the users it kept.\n\n")
		b.WriteString("| fault | target | from / shown / to (s) | reasons | joined target / all | share | users start → end | kept |\n| --- | --- | --- | --- | --- | --- | --- | --- |\n")
		for _, w := range rep.Windows {
			fmt.Fprintf(&b, "| %s | %s | %.1f / %s / %.1f | %s | %d / %d | %.3f | %d → %d | %.3f |\n", w.Fault, w.Target,
				float64(w.FromMS)/1000, secOrNA(w.ShownMS), float64(w.ToMS)/1000, strings.Join(w.Reasons, " "), w.Joined, w.JoinedAll, w.Share, w.UsersStart, w.UsersEnd, w.Kept)
		}
	}
	b.WriteString("\n## Faults\n\n")
	for _, f := range rep.Faults {
		fmt.Fprintf(&b, "- %.1f s: %s %s %s %s\n", float64(f.AtMS)/1000, f.Fault, f.Target, f.Peer, f.Err)
	}
	if len(rep.Notes) > 0 {
		b.WriteString("\n## Notes\n\n")
		for _, n := range rep.Notes {
			fmt.Fprintf(&b, "- %s\n", n)
		}
	}
	b.WriteString("\n## Users per node\n\n![users per node](users.svg)\n\n## Reconnect times\n\n![reconnect times](reconnect.svg)\n")
	b.WriteString("\nLogs: `logs/<host>.log`; client records: `clients/`; each node's last `/metrics`: `metrics/`.\n")
	return os.WriteFile(filepath.Join(dir, "report.md"), []byte(b.String()), 0o644)
}

// msOrNA shows a time for a reader: -1 (the scenario has no such step, or
// what is timed never happened) is "n/a".
func msOrNA(ms int64) string {
	if ms < 0 {
		return "n/a"
	}
	return strconv.FormatInt(ms, 10)
}

func secOrNA(ms int64) string {
	if ms < 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.1f", float64(ms)/1000)
}

func fmtUsers(u map[string]int) string {
	keys := make([]string, 0, len(u))
	for k := range u {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s=%d", k, u[k]))
	}
	return strings.Join(parts, " ")
}
