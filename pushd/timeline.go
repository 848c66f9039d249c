package pushd

import (
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/farmlb/farmlb/farm"
)

// The farm over time, as this node saw it: every node's users and status
// sampled each timelineStep for the last timelineSpan, and every change of a
// node's status as it happened. The dashboard draws it (GET /farm/timeline),
// so an operator who opens the page after a failure still sees it.
const (
	// timelineStep: the dashboard's chart has a point a second, as its
	// table refreshes.
	timelineStep = time.Second
	// timelineSpan: ten minutes, 600 samples; a farm of 64 nodes keeps
	// under 1 MiB.
	timelineSpan = 10 * time.Minute
)

type timeline struct {
	mu      sync.Mutex
	samples []tlSample // oldest first
	changes []tlChange // oldest first
	last    map[string]farm.Server
}

type tlSample struct {
	At     time.Time
	Users  map[string]int
	Status map[string]farm.Status
}

// tlChange is one node's change of status. Users is what the node had when
// it left UP: the clients that fail over (DOWN) or are moved away
// (DRAINING).
type tlChange struct {
	At       time.Time
	Node     string
	From, To farm.Status
	Users    int
}

// runTimeline samples the table each timelineStep and notes every status
// change the mesh reports, until the server stops.
func (s *Server) runTimeline() {
	changed, cancel := s.mesh.Subscribe()
	defer cancel()
	t := time.NewTicker(timelineStep)
	defer t.Stop()
	s.timeline.observe(time.Now(), s.mesh.Table(), true)
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-changed:
			s.timeline.observe(time.Now(), s.mesh.Table(), false)
		case now := <-t.C:
			s.timeline.observe(now, s.mesh.Table(), true)
		}
	}
}

// observe notes the status changes between the last table seen and l, and
// with sample set, adds a sample of l.
func (tl *timeline) observe(now time.Time, l *farm.List, sample bool) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	if tl.last == nil {
		tl.last = map[string]farm.Server{}
	}
	for _, srv := range l.Servers {
		if old, ok := tl.last[srv.Name]; ok && old.Status != srv.Status {
			tl.changes = append(tl.changes, tlChange{At: now, Node: srv.Name, From: old.Status, To: srv.Status, Users: old.Users})
		}
		tl.last[srv.Name] = srv
	}
	if sample {
		sm := tlSample{At: now, Users: make(map[string]int, len(l.Servers)), Status: make(map[string]farm.Status, len(l.Servers))}
		for _, srv := range l.Servers {
			sm.Users[srv.Name] = srv.Users
			sm.Status[srv.Name] = srv.Status
		}
		tl.samples = append(tl.samples, sm)
	}
	cut := now.Add(-timelineSpan)
	i := 0
	for i < len(tl.samples) && tl.samples[i].At.Before(cut) {
		i++
	}
	tl.samples = append(tl.samples[:0], tl.samples[i:]...)
	i = 0
	for i < len(tl.changes) && tl.changes[i].At.Before(cut) {
		i++
	}
	tl.changes = append(tl.changes[:0], tl.changes[i:]...)
}

// timelineJSON is GET /farm/timeline's answer. Times are Unix milliseconds.
type timelineJSON struct {
	Reporter string           `json:"reporter"`
	Now      int64            `json:"now"`
	StepMs   int64            `json:"step_ms"`
	SpanMs   int64            `json:"span_ms"`
	Nodes    []string         `json:"nodes"`
	Samples  []timelineSample `json:"samples"`
	Changes  []timelineChange `json:"changes"`
}

type timelineSample struct {
	T      int64             `json:"t"`
	Users  map[string]int    `json:"users"`
	Status map[string]string `json:"status"`
}

type timelineChange struct {
	T    int64  `json:"t"`
	Node string `json:"node"`
	From string `json:"from"`
	To   string `json:"to"`
	// Users is what the node had when it left UP.
	Users int `json:"users"`
	// Failover: an UP node with users went DOWN or DRAINING, so its
	// clients go to other nodes.
	Failover bool `json:"failover"`
}

// snapshot returns what the timeline holds after since (zero: all of it).
func (tl *timeline) snapshot(self string, since time.Time, nodes []string) timelineJSON {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	out := timelineJSON{Reporter: self, Now: time.Now().UnixMilli(), StepMs: timelineStep.Milliseconds(), SpanMs: timelineSpan.Milliseconds(),
		Nodes: nodes, Samples: []timelineSample{}, Changes: []timelineChange{}}
	for _, sm := range tl.samples {
		if !sm.At.After(since) {
			continue
		}
		js := timelineSample{T: sm.At.UnixMilli(), Users: sm.Users, Status: make(map[string]string, len(sm.Status))}
		for n, st := range sm.Status {
			js.Status[n] = st.String()
		}
		out.Samples = append(out.Samples, js)
	}
	for _, c := range tl.changes {
		if !c.At.After(since) {
			continue
		}
		out.Changes = append(out.Changes, timelineChange{T: c.At.UnixMilli(), Node: c.Node, From: c.From.String(), To: c.To.String(),
			Users: c.Users, Failover: c.From == farm.StatusUp && c.To != farm.StatusUp && c.Users > 0})
	}
	return out
}

// handleTimeline answers GET /farm/timeline[?since=UNIX_MS]: the farm over
// the last minutes as this node saw it (samples and status changes after
// since).
func (s *Server) handleTimeline(w http.ResponseWriter, r *http.Request) {
	cors(w)
	var since time.Time
	if v := r.URL.Query().Get("since"); v != "" {
		ms, err := strconv.ParseInt(v, 10, 64)
		if err != nil || ms < 0 {
			jsonError(w, http.StatusBadRequest, "since: want Unix milliseconds, got "+strconv.Quote(v), "")
			return
		}
		since = time.UnixMilli(ms)
	}
	l := s.mesh.Table()
	nodes := make([]string, len(l.Servers))
	for i, srv := range l.Servers {
		nodes[i] = srv.Name
	}
	writeJSON(w, http.StatusOK, s.timeline.snapshot(s.self, since, nodes))
}
