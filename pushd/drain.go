package pushd

import (
	"context"
	"net/http"
	"time"
)

// Drain marks the node DRAINING (lists and DNS stop sending it clients),
// refuses new streams, and sends every open stream a farmlb-move event,
// spread evenly in random order over DrainWindow; each stream is closed
// MoveGrace after its event. It returns at once; Drained reports the end.
func (s *Server) Drain() {
	s.streamsMu.Lock()
	if s.draining {
		s.streamsMu.Unlock()
		return
	}
	s.draining = true
	s.drainGen++
	s.drained = make(chan struct{})
	if len(s.streams) == 0 {
		close(s.drained)
	}
	gen := s.drainGen
	all := s.openStreamsLocked()
	s.streamsMu.Unlock()
	s.updateState()
	s.log.Info("draining", "streams", len(all), "window", s.cfg.DrainWindow)
	s.spreadMoves(gen, all, "drain")
}

// moveStreams moves every open stream off the node as a drain does,
// without refusing new streams itself (a health check that fails with
// on_fail down does that through the node's state); a drain, an undrain
// or cancelMoves cancels it.
func (s *Server) moveStreams(why string) {
	s.streamsMu.Lock()
	s.drainGen++
	gen := s.drainGen
	all := s.openStreamsLocked()
	s.streamsMu.Unlock()
	s.log.Info("moving every stream", "reason", why, "streams", len(all), "window", s.cfg.DrainWindow)
	s.spreadMoves(gen, all, why)
}

// cancelMoves stops the moves that moveStreams scheduled, unless the node
// is draining (the drain's moves go on).
func (s *Server) cancelMoves() {
	s.streamsMu.Lock()
	defer s.streamsMu.Unlock()
	if !s.draining {
		s.drainGen++
	}
}

// spreadMoves shuffles the streams and moves them over DrainWindow.
func (s *Server) spreadMoves(gen int, all []*stream, why string) {
	s.randMu.Lock()
	s.rand.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
	s.randMu.Unlock()
	s.goRun(func() { s.moveAll(gen, all, why) })
}

// moveAll sends the move events of one drain and closes each stream
// MoveGrace after its event, unless an undrain or a newer drain cancels it.
func (s *Server) moveAll(gen int, all []*stream, why string) {
	window, grace := s.cfg.DrainWindow, s.cfg.MoveGrace
	start := time.Now()
	moveAt := func(i int) time.Time {
		return start.Add(window * time.Duration(i) / time.Duration(max(len(all), 1)))
	}
	t := time.NewTimer(0)
	defer t.Stop()
	next, closed := 0, 0 // next stream to move, to close
	for closed < len(all) {
		var at time.Time
		if next < len(all) && (closed == next || moveAt(next).Before(moveAt(closed).Add(grace))) {
			at = moveAt(next)
		} else {
			at = moveAt(closed).Add(grace)
		}
		t.Reset(time.Until(at))
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		}
		s.streamsMu.Lock()
		cancelled := s.drainGen != gen
		s.streamsMu.Unlock()
		if cancelled {
			return
		}
		if next < len(all) && !time.Now().Before(moveAt(next)) && (closed == next || !moveAt(next).After(moveAt(closed).Add(grace))) {
			st := all[next]
			ev := moveEvent(why, s.roomElsewhere(), 0)
			st.poke(func() { st.move = ev })
			s.m.moves.Inc()
			next++
			continue
		}
		all[closed].close(nil)
		closed++
	}
}

// Undrain reverses Drain: the node is UP again and takes new streams;
// streams not yet moved stay.
func (s *Server) Undrain() {
	s.streamsMu.Lock()
	was := s.draining
	s.draining = false
	s.drainGen++
	s.streamsMu.Unlock()
	if was {
		s.updateState()
		s.log.Info("undrained")
	}
}

// WaitDrained waits until a drain has moved every stream off this node (or
// ctx ends). It returns at once when the node is not draining.
func (s *Server) WaitDrained(ctx context.Context) error {
	s.streamsMu.Lock()
	ch := s.drained
	draining := s.draining
	s.streamsMu.Unlock()
	if !draining || ch == nil {
		return nil
	}
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *Server) isDraining() bool {
	s.streamsMu.Lock()
	defer s.streamsMu.Unlock()
	return s.draining
}

func (s *Server) handleDrain(w http.ResponseWriter, r *http.Request) {
	if !bearer(w, r, s.cfg.AdminToken) {
		return
	}
	s.Drain()
	writeJSON(w, http.StatusOK, map[string]any{"node": s.self, "status": "DRAINING", "streams": s.Users(), "window_ms": s.cfg.DrainWindow.Milliseconds()})
}

func (s *Server) handleUndrain(w http.ResponseWriter, r *http.Request) {
	if !bearer(w, r, s.cfg.AdminToken) {
		return
	}
	s.Undrain()
	writeJSON(w, http.StatusOK, map[string]any{"node": s.self, "status": "UP", "streams": s.Users()})
}
