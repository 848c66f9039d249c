package pushd

import (
	"strings"

	"github.com/farmlb/farmlb/farm"
	"github.com/prometheus/client_golang/prometheus"
)

// State is the status a node gives itself and why (farm.Server's Status
// and Reason). Several things decide it; the first that holds wins:
//
//  1. a drain (POST /admin/drain, SIGTERM): DRAINING, reason "drain";
//  2. a failing health check NAME: DRAINING or, with Health.Down, DOWN,
//     reason "health:NAME";
//  3. overload by SIGNAL: DRAINING, reason "overload:SIGNAL" — or UP with
//     that reason while no other node of the node's priority group is UP
//     and not full, so that overload never empties a group;
//  4. otherwise UP, no reason.
//
// In every state but UP the node refuses new streams (503 with a hint of
// a node that has room); DOWN also moves its clients away, spread over
// DrainWindow as a drain does.
type State struct {
	Status farm.Status
	Reason string
}

// State returns the node's current state.
func (s *Server) State() State {
	s.stateMu.Lock()
	defer s.stateMu.Unlock()
	return s.state
}

// updateState works out the node's state, tells the mesh when it changed,
// and starts or stops the moves of a DOWN. Calls are serialised by stateMu
// so that the mesh learns the states in the order they were decided.
func (s *Server) updateState() {
	s.stateMu.Lock()
	defer s.stateMu.Unlock()
	draining := s.isDraining()
	next := s.wantStateLocked(draining)
	prev := s.state // the zero State (DOWN, no reason) is never wanted: the first call publishes
	if next == prev {
		return
	}
	s.state = next
	if next.Status == farm.StatusUp {
		s.refusing.Store(nil)
	} else if !draining {
		why := refusal(next)
		s.refusing.Store(&why)
	}
	s.mesh.SetState(next.Status, next.Reason)
	s.hm.setState(prev, next)
	if prev != (State{}) || next.Status != farm.StatusUp {
		s.log.Info("status", "status", next.Status.String(), "reason", next.Reason, "was", prev.Status.String(), "was_reason", prev.Reason)
	}
	switch {
	case next.Status == farm.StatusDown && prev.Status != farm.StatusDown && !draining:
		s.moveStreams(next.Reason)
	case prev.Status == farm.StatusDown && next.Status != farm.StatusDown:
		s.cancelMoves()
	}
}

// refusal is what a refused client is told.
func refusal(st State) string {
	kind, detail, _ := strings.Cut(st.Reason, ":")
	switch kind {
	case "health":
		return "health check " + detail + " fails: this node takes no new streams"
	case "overload":
		return "overloaded (" + detail + "): this node takes no new streams"
	}
	return strings.ToLower(st.Status.String()) + ": this node takes no new streams"
}

func (s *Server) wantStateLocked(draining bool) State {
	if draining {
		return State{farm.StatusDraining, "drain"}
	}
	for _, c := range s.checks {
		if !c.up {
			st := farm.StatusDraining
			if s.cfg.Health.Down {
				st = farm.StatusDown
			}
			return State{st, "health:" + c.cfg.Name}
		}
	}
	if s.overload != "" {
		reason := "overload:" + s.overload
		if s.canShed() {
			return State{farm.StatusDraining, reason}
		}
		return State{farm.StatusUp, reason}
	}
	return State{Status: farm.StatusUp}
}

// canShed reports whether the node may mark itself full: another node of
// its priority group is UP and not full. When none is, the node whose name
// sorts first among the group's overloaded nodes stays UP and the others
// stay full, so that two nodes overloaded at once do not flap in step.
func (s *Server) canShed() bool {
	l := s.mesh.Table()
	me, ok := l.Find(s.self)
	if !ok {
		return false
	}
	first := s.self
	for _, srv := range l.Servers {
		if srv.Name == s.self || srv.Priority != me.Priority {
			continue
		}
		if srv.Eligible() && !strings.HasPrefix(srv.Reason, "overload:") {
			return true
		}
		if strings.HasPrefix(srv.Reason, "overload:") && srv.Status != farm.StatusDown && srv.Name < first {
			first = srv.Name
		}
	}
	return first != s.self
}

// stateMetrics are the metrics of the node's own state, its checks and
// overload detection.
type stateMetrics struct {
	status      *prometheus.GaugeVec
	changes     *prometheus.CounterVec
	checkUp     *prometheus.GaugeVec
	checkRuns   *prometheus.CounterVec
	overloadVal *prometheus.GaugeVec
	overloaded  prometheus.Gauge
}

func newStateMetrics(reg prometheus.Registerer) (*stateMetrics, error) {
	const ns, sub = "farmlb", "pushd"
	m := &stateMetrics{
		status:      prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "status", Help: "1 for the node's own status and its reason (none, drain, health:NAME, overload:SIGNAL); one series at a time."}, []string{"status", "reason"}),
		changes:     prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "status_changes_total", Help: "Changes of the node's own status, by the status and reason changed to."}, []string{"status", "reason"}),
		checkUp:     prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "health_check_up", Help: "1 while the health check passes (after rise passes), 0 while it fails (after fall failures)."}, []string{"check"}),
		checkRuns:   prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "health_check_runs_total", Help: "Runs of each health check, by result (pass, fail)."}, []string{"check", "result"}),
		overloadVal: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "overload_signal", Help: "The overload signals as last taken: fanout (p90 delay, seconds), cpu (share of the cores), streams."}, []string{"signal"}),
		overloaded:  prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "overloaded", Help: "1 while overload detection holds the node full (whether or not it could shed: see farmlb_pushd_status)."}),
	}
	for _, c := range []prometheus.Collector{m.status, m.changes, m.checkUp, m.checkRuns, m.overloadVal, m.overloaded} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func reasonLabel(r string) string {
	if r == "" {
		return "none"
	}
	return r
}

func (m *stateMetrics) setState(prev, next State) {
	m.status.DeleteLabelValues(prev.Status.String(), reasonLabel(prev.Reason))
	m.status.WithLabelValues(next.Status.String(), reasonLabel(next.Reason)).Set(1)
	m.changes.WithLabelValues(next.Status.String(), reasonLabel(next.Reason)).Inc()
}

// takesData reports whether a peer takes the farm's messages: every
// member the mesh has not declared DOWN. A node DOWN with a reason (its
// health check fails) lives and stays in the replication; it only sends
// its clients elsewhere.
func takesData(srv farm.Server) bool {
	return srv.Status != farm.StatusDown || srv.Reason != ""
}
