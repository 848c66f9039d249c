package testbed

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/farmlb/farmlb/farm"
)

// WindowReport is one stretch of time a node was made to fail its health
// check, or was starved or squeezed: where the farm's new clients went
// meanwhile, and whether the node kept its own.
type WindowReport struct {
	Target string `json:"target"`
	Fault  string `json:"fault"`
	// FromMS is the fault's step, ToMS the step that ended it (or the end
	// of the timeline), from the start of the run.
	FromMS int64 `json:"from_ms"`
	ToMS   int64 `json:"to_ms"`
	// ShownMS is when a node first listed the target as not UP, from the
	// start; -1 if none ever did. The counts below start there.
	ShownMS int64 `json:"shown_ms"`
	// Reasons are the reasons the target's own list gave it meanwhile.
	Reasons []string `json:"reasons"`
	// Joined clients started streaming from the target, of JoinedAll that
	// started streaming from any node (new clients and moved ones), from
	// ShownMS to ToMS; Share is Joined/JoinedAll, -1 when nobody joined.
	Joined    int     `json:"joined"`
	JoinedAll int     `json:"joined_all"`
	Share     float64 `json:"share"`
	// UsersStart are the target's users as it reported them last before
	// the fault, UsersEnd last before ToMS; Kept is UsersEnd/UsersStart,
	// -1 when it had none.
	UsersStart int     `json:"users_start"`
	UsersEnd   int     `json:"users_end"`
	Kept       float64 `json:"kept"`
}

// windowEnds pairs each fault that opens a window with the one that
// closes it.
var windowEnds = map[string]string{"check-fail": "check-ok", "starve": "unstarve", "squeeze": "unsqueeze"}

// windows measures every window of the run. rc.mu must be held.
func windows(rc *recorder, visits []AgentVisit) []WindowReport {
	out := []WindowReport{}
	for i, f := range rc.faults {
		end, ok := windowEnds[f.st.Fault]
		if !ok {
			continue
		}
		to := rc.end
		for _, g := range rc.faults[i+1:] {
			if g.st.Target == f.st.Target && g.st.Fault == end {
				to = g.at
				break
			}
		}
		w := WindowReport{Target: f.st.Target, Fault: f.st.Fault, FromMS: f.at.Sub(rc.start).Milliseconds(),
			ToMS: to.Sub(rc.start).Milliseconds(), ShownMS: -1, Reasons: []string{}, Share: -1, Kept: -1}
		var shown time.Time
		seenReason := map[string]bool{}
		for _, s := range rc.lists {
			if s.list == nil || s.at.Before(f.at) || !s.at.Before(to) || strings.HasPrefix(s.reporter, "ns") {
				continue
			}
			sv, ok := s.list.Find(f.st.Target)
			if !ok {
				continue
			}
			if shown.IsZero() && sv.Status != farm.StatusUp {
				shown = s.at
			}
			if s.reporter == f.st.Target && sv.Reason != "" && !seenReason[sv.Reason] {
				seenReason[sv.Reason] = true
				w.Reasons = append(w.Reasons, sv.Reason)
			}
		}
		w.UsersStart = ownUsers(rc, f.st.Target, f.at)
		w.UsersEnd = ownUsers(rc, f.st.Target, to)
		if w.UsersStart > 0 {
			w.Kept = math.Round(float64(w.UsersEnd)/float64(w.UsersStart)*1000) / 1000
		}
		if !shown.IsZero() {
			w.ShownMS = shown.Sub(rc.start).Milliseconds()
			for _, v := range visits {
				at := time.UnixMilli(v.AtMS)
				if at.Before(shown) || !at.Before(to) {
					continue
				}
				w.JoinedAll++
				if v.Node == f.st.Target {
					w.Joined++
				}
			}
			if w.JoinedAll > 0 {
				w.Share = math.Round(float64(w.Joined)/float64(w.JoinedAll)*1000) / 1000
			}
		}
		out = append(out, w)
	}
	return out
}

// ownUsers is the node's users as its own list gave them last before t.
func ownUsers(rc *recorder, node string, t time.Time) int {
	users := 0
	for _, s := range rc.lists {
		if !s.at.Before(t) {
			break
		}
		if s.reporter != node || s.list == nil {
			continue
		}
		if sv, ok := s.list.Find(node); ok {
			users = sv.Users
		}
	}
	return users
}

// checkWindows adds the failures of the window limits.
func (rep *Report) checkWindows(e Expect, fail func(string, ...any)) {
	for _, w := range rep.Windows {
		name := fmt.Sprintf("%s %s at %.1f s", w.Fault, w.Target, float64(w.FromMS)/1000)
		if e.WindowShareMax != nil || e.WindowKeptMin[w.Target] > 0 || e.WindowKeptMax[w.Target] > 0 {
			if w.ShownMS < 0 {
				fail("%s: no node ever listed %s as not UP", name, w.Target)
				continue
			}
		}
		if e.WindowShareMax != nil {
			switch {
			case w.JoinedAll == 0:
				fail("%s: no client joined any node meanwhile (nothing to measure)", name)
			case w.Share > *e.WindowShareMax:
				fail("%s: %s took %d of %d clients that joined (%.3f > %.3f)", name, w.Target, w.Joined, w.JoinedAll, w.Share, *e.WindowShareMax)
			}
		}
		if lo, ok := e.WindowKeptMin[w.Target]; ok && (w.Kept < 0 || w.Kept < lo) {
			fail("%s: kept %d of %d users (%.3f < %.3f)", name, w.UsersEnd, w.UsersStart, w.Kept, lo)
		}
		if hi, ok := e.WindowKeptMax[w.Target]; ok && (w.Kept < 0 || w.Kept > hi) {
			fail("%s: kept %d of %d users (%.3f > %.3f)", name, w.UsersEnd, w.UsersStart, w.Kept, hi)
		}
	}
}
