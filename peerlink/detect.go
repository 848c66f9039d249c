package peerlink

import (
	"context"
	"fmt"
	"time"
)

// Failure detection, "a simple negotiation":
//
//  1. Every member sends every peer a heartbeat datagram each
//     HeartbeatInterval. Any frame from a peer counts as hearing it.
//  2. A peer silent for SuspectAfter becomes suspect. This member pings it
//     and sends a probe request about it to up to ProbeFanout other
//     connected members.
//  3. A member asked about the suspect answers yes at once if it heard
//     from the suspect within the last two heartbeat intervals, and no at
//     once if it holds it DOWN itself; otherwise it pings it and answers
//     yes as soon as it hears from it, or no after VouchTimeout. It vouches only for what it hears itself, never for
//     what it was told.
//  4. A yes makes the suspect unreachable: silent to this member, alive for
//     the farm, so UP in the table with the record the yes carries. A yes
//     that comes late (after its round ended, even after this member
//     concluded DOWN) counts as long as it answers a question of the
//     current silence: it proves the peer lived after that question.
//  5. A new round starts every ProbeTimeout for as long as the peer is
//     silent (each yes refreshes its record and its lease); a peer DOWN
//     after a suspicion is asked about again every RecheckInterval while
//     its link is down, so that a verdict reached on a lost or late answer
//     is undone.
//  6. The peer is DOWN when every member asked in a round says no (a
//     late no still counts against its round, unless a yes came since),
//     when VouchLifetime passes since the suspicion or the last yes
//     without a yes, or, with nobody to ask, when one round passes.
//  7. Hearing from the peer itself makes it UP again at once.
//
// DOWN is each member's own conclusion, not news that travels: there is no
// rumour to go stale. Incarnations order what does travel (records, and
// connections of a restarted member).

// maxVouches bounds the probe requests a member holds at once; more are
// answered "no" at once (a flood of questions cannot grow memory).
const maxVouches = 4096

// maxRecentRounds bounds the rounds about one peer whose answers still
// count.
const maxRecentRounds = 4

// recentRound returns the recent round about p with the given id, or nil.
func (p *peer) recentRound(id uint64) *round {
	for _, r := range p.recent {
		if r.id == id {
			return r
		}
	}
	return nil
}

// detectLoop sends heartbeats and runs the suspicion timers.
func (m *Mesh) detectLoop(ctx context.Context) {
	defer m.wg.Done()
	tick := max(m.cfg.HeartbeatInterval/5, time.Millisecond)
	t := time.NewTicker(tick)
	defer t.Stop()
	nextHB := time.Now()
	last := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			now := time.Now() // t.C's value may be old if this goroutine was late
			m.mu.Lock()
			if late := now.Sub(last); late > max(4*tick, m.cfg.HeartbeatInterval) {
				// This member itself stalled (CPU starvation, a pause): the
				// silence it sees now is its own, and its peers' heartbeats
				// are still queued in its socket. Suspect nobody until it
				// has had time to read them.
				m.graceUntil = now.Add(m.cfg.SuspectAfter)
				m.met.stalls.Inc()
				m.log.Info("member stalled", "ms", late.Milliseconds())
			}
			last = now
			if !now.Before(nextHB) {
				m.heartbeatLocked()
				nextHB = now.Add(m.cfg.HeartbeatInterval)
			}
			m.checkLocked(now)
			m.mu.Unlock()
		}
	}
}

func (m *Mesh) heartbeatLocked() {
	now := m.monoNanos()
	for _, p := range m.peers {
		if p.link == nil {
			continue
		}
		p.hbSeq++
		hb := &heartbeatFrame{Incarnation: m.cfg.Incarnation, Seq: p.hbSeq, SentNanos: now}
		if p.lastHBNanos != 0 {
			hb.EchoNanos = p.lastHBNanos
			hb.EchoDelay = uint64(time.Since(p.lastHBAt))
		}
		p.link.sendDatagram(appendFrame(nil, hb))
	}
}

// checkLocked advances suspicion for every peer and expires vouches.
func (m *Mesh) checkLocked(now time.Time) {
	changed := false
	for _, p := range m.peers {
		switch p.state {
		case stateUp:
			if now.Sub(p.lastHeard) > m.cfg.SuspectAfter && !now.Before(m.graceUntil) {
				p.state = stateSuspect
				p.episode = m.nextID + 1 // the id of the round about to start
				p.suspectedAt, p.vouchedAt = now, time.Time{}
				m.log.Info("peer suspect", "peer", p.name, "silent_ms", now.Sub(p.lastHeard).Milliseconds())
				m.startRoundLocked(p, now, m.cfg.ProbeTimeout)
				changed = true
			}
		case stateSuspect, stateUnreachable:
			// The last sign of life: the suspicion itself, or the last yes.
			since := p.suspectedAt
			if p.vouchedAt.After(since) {
				since = p.vouchedAt
			}
			// With nobody to ask (a farm of two, or every other link
			// down too), a round passed in silence is all there is to know.
			alone := p.state == stateSuspect && p.round.asked == 0 && !now.Before(p.round.deadline)
			if (alone || now.Sub(since) > m.cfg.VouchLifetime) && !now.Before(m.graceUntil) {
				m.markDownLocked(p, fmt.Sprintf("silent for %d ms and no member vouched for it for %d ms (asked %d in the last round)",
					now.Sub(p.lastHeard).Milliseconds(), now.Sub(since).Milliseconds(), p.round.asked))
				changed = true
				continue
			}
			// Otherwise ask again each ProbeTimeout: the next answer
			// refreshes the peer's record, or says it is gone. (After a
			// stall of this member, the answers may be waiting unread in
			// its socket; the grace above keeps it from concluding.)
			if !now.Before(p.round.deadline) {
				m.startRoundLocked(p, now, m.cfg.ProbeTimeout)
			}
		case stateDown:
			// Ask again about a peer concluded DOWN after a suspicion while
			// its own link stays down: if the others still hear it, the
			// verdict was reached on a lost or late answer.
			if p.episode != 0 && p.link == nil && p.round != nil && !now.Before(p.round.deadline) {
				m.startRoundLocked(p, now, m.cfg.RecheckInterval)
			}
		}
	}
	for id, v := range m.vouches {
		if now.After(v.deadline) && !now.Before(m.graceUntil) {
			delete(m.vouches, id)
			m.replyLocked(v, false)
		}
	}
	if changed {
		m.publishLocked()
	}
}

// startRoundLocked pings the suspect and asks up to ProbeFanout other
// connected members, chosen at random, whether they hear it. The round
// ends after d.
func (m *Mesh) startRoundLocked(p *peer, now time.Time, d time.Duration) {
	m.nextID++
	r := &round{id: m.nextID, started: now, deadline: now.Add(d)}
	p.round = r
	if len(p.recent) == maxRecentRounds {
		p.recent = append(p.recent[:0], p.recent[1:]...)
	}
	p.recent = append(p.recent, r)
	if p.link != nil {
		p.link.sendDatagram(appendFrame(nil, &pingFrame{Nonce: r.id}))
	}
	helpers := make([]*peer, 0, len(m.peers))
	for _, q := range m.peers {
		if q != p && q.link != nil && q.direct() {
			helpers = append(helpers, q)
		}
	}
	m.rand.Shuffle(len(helpers), func(i, j int) { helpers[i], helpers[j] = helpers[j], helpers[i] })
	req := appendFrame(nil, &probeRequestFrame{ID: r.id, Target: p.name})
	for _, q := range helpers[:min(len(helpers), m.cfg.ProbeFanout)] {
		q.link.sendControl(req)
		r.asked++
	}
}

// markDownLocked declares p DOWN and fails the messages waiting for it.
// When p went silent (rather than leaving), its round stays, as the
// timer of the next recheck.
func (m *Mesh) markDownLocked(p *peer, reason string) {
	p.state = stateDown
	if p.round != nil {
		p.round.deadline = time.Now().Add(m.cfg.RecheckInterval)
	}
	m.met.transitions.WithLabelValues("down").Inc()
	m.log.Warn("peer down", "peer", p.name, "reason", reason, "incarnation", p.inc)
	// Close the connection: the peer, if it only hung, finds it closed when
	// it resumes, and the dialer of the pair dials again until the peer
	// answers, so that its return is seen within a dial, not after a
	// QUIC idle timeout.
	if l := p.link; l != nil {
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			l.c.closeWith(codeProtocol, "declared down: "+reason)
		}()
	}
	// Fail the waiting senders outside this lock's critical path: fail only
	// takes the outbox lock.
	p.out.fail(fmt.Errorf("%w: %s: %s", ErrPeerDown, p.name, reason))
}

// vouchedLocked records that another member (by) hears p, and what it says
// of p (rec); late reports whether the answer came after its round ended.
func (m *Mesh) vouchedLocked(p *peer, by string, rec record, late bool) {
	now := time.Now()
	p.vouchedAt = now
	m.log.Debug("suspect vouched for", "peer", p.name, "by", by, "late", late)
	if rec.Incarnation > p.inc && p.link == nil {
		// p restarted, and this member learns it from a member that hears
		// the new life: its old messages are gone.
		p.inc = rec.Incarnation
		p.out.fail(fmt.Errorf("%w: %s restarted", ErrPeerDown, p.name))
	}
	if rec.Incarnation == p.inc && rec.newer(p.rec) {
		p.rec = rec
	}
	switch p.state {
	case stateSuspect:
		p.state = stateUnreachable
		m.log.Info("peer unreachable", "peer", p.name, "reason", "silent here, but "+by+" hears it", "late", late)
		if p.link == nil {
			p.out.fail(fmt.Errorf("%w: %s: unreachable (only other members hear it)", ErrPeerDown, p.name))
		}
	case stateDown:
		p.state = stateUnreachable
		m.met.transitions.WithLabelValues("up").Inc()
		m.log.Warn("peer up", "peer", p.name, "reason", "silent here, but "+by+" hears it", "late", late, "incarnation", p.inc)
		m.startRoundLocked(p, now, m.cfg.ProbeTimeout)
	}
	m.publishLocked()
}

// heardLocked records that p was heard from directly.
func (m *Mesh) heardLocked(p *peer, what string) {
	now := time.Now()
	p.lastHeard = now
	switch p.state {
	case stateSuspect, stateUnreachable:
		was := p.state
		p.state = stateUp
		p.round, p.recent, p.episode = nil, nil, 0
		m.log.Info("peer no longer "+was.String(), "peer", p.name, "heard", what)
		m.publishLocked()
	case stateNew, stateDown:
		if p.link == nil {
			return
		}
		p.state = stateUp
		p.round, p.recent, p.episode = nil, nil, 0
		m.met.transitions.WithLabelValues("up").Inc()
		m.log.Info("peer up", "peer", p.name, "reason", "heard "+what, "incarnation", p.inc)
		m.publishLocked()
	}
	for id, v := range m.vouches {
		if v.target == p {
			delete(m.vouches, id)
			m.replyLocked(v, true)
		}
	}
}

// replyLocked answers a probe request.
func (m *Mesh) replyLocked(v vouch, heard bool) {
	if v.from.link == nil {
		return
	}
	m.sendReplyLocked(v.from.link, &probeReplyFrame{ID: v.id, Target: v.target.name, Heard: heard, Record: v.target.rec})
}

// sendReplyLocked sends a probe reply on l, held back by Config.replyDelay
// (tests: a slow voucher).
func (m *Mesh) sendReplyLocked(l *link, rep *probeReplyFrame) {
	r := *rep
	r.Record = l.recordFor(r.Record)
	b := appendFrame(nil, &r)
	d := m.cfg.replyDelay
	if d <= 0 {
		l.sendControl(b)
		return
	}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
			l.sendControl(b)
		case <-l.ctx.Done():
		}
	}()
}

func (m *Mesh) handleControl(l *link, f frame) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	p := l.p
	if p.link != l {
		return nil // a replaced link still draining
	}
	switch f := f.(type) {
	case *statusFrame:
		if f.Record.Incarnation != l.remoteInc {
			return fmt.Errorf("status of incarnation %d on a link of incarnation %d", f.Record.Incarnation, l.remoteInc)
		}
		if f.Record.newer(p.rec) {
			p.rec = f.Record
		}
		m.heardLocked(p, "status")
		m.publishLocked()
	case *probeRequestFrame:
		m.heardLocked(p, "probe request")
		t := m.peerByName(f.Target)
		if t == nil || t == p || !t.direct() {
			rep := &probeReplyFrame{ID: f.ID, Target: f.Target}
			if t != nil {
				rep.Record = t.rec
			}
			m.sendReplyLocked(l, rep)
			return nil
		}
		if t.link != nil && time.Since(t.lastHeard) < 2*m.cfg.HeartbeatInterval {
			// Heard within two heartbeats: the answer is known, and the
			// asker must not wait for this member's ping round trip.
			m.sendReplyLocked(l, &probeReplyFrame{ID: f.ID, Target: f.Target, Heard: true, Record: t.rec})
			return nil
		}
		if len(m.vouches) >= maxVouches {
			m.sendReplyLocked(l, &probeReplyFrame{ID: f.ID, Target: f.Target, Record: t.rec})
			return nil
		}
		m.nextID++
		m.vouches[m.nextID] = vouch{from: p, id: f.ID, target: t, deadline: time.Now().Add(m.cfg.VouchTimeout)}
		// With no link (it just failed, say after a long stall of this
		// machine, and is being redialed) there is nothing to ping, but
		// the answer is not "no" yet: a new link's hello may come first.
		if t.link != nil {
			t.link.sendDatagram(appendFrame(nil, &pingFrame{Nonce: m.nextID}))
		}
	case *probeReplyFrame:
		m.heardLocked(p, "probe reply")
		t := m.peerByName(f.Target)
		if t == nil || t.episode == 0 || f.ID < t.episode {
			return nil // an answer about a silence that has ended
		}
		current := t.round != nil && t.round.id == f.ID
		if f.Heard {
			if f.Record.Incarnation == 0 || f.Record.Incarnation < t.inc {
				return nil // news of an older life
			}
			m.vouchedLocked(t, p.name, f.Record, !current)
			return nil
		}
		// A no may come after its round ended (VouchTimeout plus two
		// hops can exceed ProbeTimeout on a loaded machine): it counts
		// against the round it answers, unless a yes came since.
		r := t.recentRound(f.ID)
		if r == nil || !t.alive() {
			return nil
		}
		r.noes++
		if r.noes >= r.asked && !t.vouchedAt.After(r.started) {
			m.markDownLocked(t, fmt.Sprintf("silent for %d ms and none of the %d members asked hears it",
				time.Since(t.lastHeard).Milliseconds(), r.asked))
			m.publishLocked()
		}
	default:
		return fmt.Errorf("unexpected %s frame on the control stream", f.frameType())
	}
	return nil
}

func (m *Mesh) handleDatagram(l *link, f frame) {
	m.mu.Lock()
	defer m.mu.Unlock()
	p := l.p
	if p.link != l {
		return
	}
	switch f := f.(type) {
	case *heartbeatFrame:
		if f.Incarnation != l.remoteInc {
			return
		}
		p.lastHBNanos, p.lastHBAt = f.SentNanos, time.Now()
		if f.EchoNanos != 0 {
			now := m.monoNanos()
			if rtt := int64(now) - int64(f.EchoNanos) - int64(f.EchoDelay); rtt >= 0 && f.EchoNanos < now {
				m.met.rtt.Observe(time.Duration(rtt).Seconds())
			}
		}
		m.heardLocked(p, "heartbeat")
	case *pingFrame:
		l.sendDatagram(appendFrame(nil, &pongFrame{Nonce: f.Nonce}))
		m.heardLocked(p, "ping")
	case *pongFrame:
		m.heardLocked(p, "pong")
	default:
		m.log.Warn("unexpected datagram", "peer", p.name, "type", f.frameType().String())
	}
}
