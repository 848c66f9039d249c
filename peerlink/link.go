package peerlink

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"
)

// One connection per pair of members: the member whose name sorts first
// dials, the other accepts. So two members never dial each other at once,
// and a restarted member is connected again either by its own dial or by
// the redial of a peer whose connection to its former life was reset (the
// stateless reset key is derived from the member's key, so the new process
// resets the old connection at once).
//
// A connection starts with a control stream opened by the dialer, on which
// both sides send hello (name, incarnation) and then status, probe requests
// and probe replies. Each side then opens one data stream for its messages;
// acks come back on the same stream. Heartbeats, pings and pongs are
// datagrams.

// link is one live connection to a peer.
type link struct {
	m          *Mesh
	p          *peer
	c          conn
	dialed     bool
	remoteInc  uint64
	ctx        context.Context
	cancel     context.CancelCauseFunc
	ctrl       stream
	ctrlOut    chan []byte   // encoded control frames to send
	statusKick chan struct{} // this member's record changed
	dgOut      chan []byte   // encoded datagrams to send
	wg         sync.WaitGroup
}

const (
	ctrlQueue = 64 // control frames queued per peer before dropping (a hung peer)
	dgQueue   = 16 // datagrams queued per peer before dropping
)

func (m *Mesh) acceptLoop(ctx context.Context) {
	defer m.wg.Done()
	for {
		c, err := m.tr.accept(ctx)
		if err != nil {
			if ctx.Err() != nil || isClosedErr(err) {
				return
			}
			m.log.Warn("accept failed", "err", err)
			continue
		}
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			m.runLink(ctx, c, false)
		}()
	}
}

// dialLoop keeps a connection to p, for the peers this member dials.
func (m *Mesh) dialLoop(ctx context.Context, p *peer) {
	defer m.wg.Done()
	t := time.NewTimer(0)
	defer t.Stop()
	failures := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		m.mu.Lock()
		gone := p.linkGone
		m.mu.Unlock()
		select { // an accepted connection from p (a peer that dialed anyway) serves too
		case <-gone:
		case <-ctx.Done():
			return
		}
		if ctx.Err() != nil {
			return
		}
		dctx, cancel := context.WithTimeout(ctx, m.cfg.DialTimeout)
		c, err := m.tr.dial(dctx, p.member)
		cancel()
		if err != nil {
			failures++
			if failures == 1 || failures%100 == 0 {
				m.log.Debug("dial failed", "peer", p.name, "addr", p.member.Peer, "failures", failures, "err", err)
			}
			t.Reset(m.cfg.RedialInterval)
			continue
		}
		failures = 0
		began := time.Now()
		m.runLink(ctx, c, true)
		// A link that lived is redialed at once (the peer probably
		// restarted and reset it); one that died young waits, so that a
		// peer that refuses the link is not hammered.
		if time.Since(began) > m.cfg.RedialInterval {
			t.Reset(0)
		} else {
			t.Reset(m.cfg.RedialInterval)
		}
	}
}

// runLink runs one connection from hello to close.
func (m *Mesh) runLink(ctx context.Context, c conn, dialed bool) {
	l := &link{
		m: m, c: c, dialed: dialed,
		ctrlOut:    make(chan []byte, ctrlQueue),
		statusKick: make(chan struct{}, 1),
		dgOut:      make(chan []byte, dgQueue),
	}
	l.ctx, l.cancel = context.WithCancelCause(ctx)
	defer l.cancel(nil)
	hello, err := l.handshake()
	if err != nil {
		if ctx.Err() == nil {
			m.log.Info("link refused", "peer", c.peer(), "remote", c.remoteAddr().String(), "reason", err.Error())
		}
		c.closeWith(codeProtocol, err.Error())
		return
	}
	if !m.adopt(l, hello) {
		return
	}
	l.wg.Add(5)
	go l.readControl()
	go l.writeControl()
	go l.readDatagrams()
	go l.writeDatagrams()
	go l.acceptData()
	l.wg.Add(1)
	go l.openData()

	select {
	case <-c.done():
	case <-l.ctx.Done():
	}
	code, reason := codeShutdown, "member leaving"
	if ctx.Err() == nil {
		code, reason = codeProtocol, "link failed"
		if cause := context.Cause(l.ctx); cause != nil && !errors.Is(cause, context.Canceled) {
			reason = cause.Error()
		}
	}
	c.closeWith(code, reason)
	l.cancel(nil)
	l.ctrl.abort()
	l.wg.Wait()
	m.dropLink(l)
}

// handshake exchanges hellos on the control stream.
func (l *link) handshake() (*helloFrame, error) {
	m := l.m
	hctx, cancel := context.WithTimeout(l.ctx, m.cfg.DialTimeout)
	defer cancel()
	var err error
	if l.dialed {
		l.ctrl, err = l.c.openStream(hctx)
	} else {
		l.ctrl, err = l.c.acceptStream(hctx)
	}
	if err != nil {
		return nil, fmt.Errorf("control stream: %w", err)
	}
	// A peer that does not answer, or a shutdown, ends the handshake.
	stop := context.AfterFunc(hctx, l.ctrl.abort)
	defer stop()
	me := appendFrame(nil, &helloFrame{Name: m.cfg.Self, Incarnation: m.cfg.Incarnation})
	if l.dialed {
		if err := l.write(l.ctrl, me); err != nil {
			return nil, err
		}
	}
	fr := frameReader{r: l.ctrl, max: maxControlPayload}
	f, err := fr.read()
	if err != nil {
		return nil, fmt.Errorf("read hello: %w", err)
	}
	m.met.received(typeHello, fr.n)
	h, ok := f.(*helloFrame)
	if !ok {
		return nil, fmt.Errorf("first frame is %s, want hello", f.frameType())
	}
	if h.Name != l.c.peer() {
		return nil, fmt.Errorf("hello names %q but the certificate is for %q", h.Name, l.c.peer())
	}
	if h.Incarnation == 0 {
		return nil, errors.New("hello with incarnation 0")
	}
	if !l.dialed {
		if err := l.write(l.ctrl, me); err != nil {
			return nil, err
		}
	}
	return h, nil
}

// adopt makes l the peer's link, replacing an older one; false if l is
// stale (the peer's incarnation is older than one seen already).
func (m *Mesh) adopt(l *link, h *helloFrame) bool {
	m.mu.Lock()
	p := m.byName[h.Name]
	if p == nil { // cannot happen: the certificate name is a member
		m.mu.Unlock()
		l.c.closeWith(codeProtocol, "not a member")
		return false
	}
	l.p, l.remoteInc = p, h.Incarnation
	if h.Incarnation < p.inc {
		m.mu.Unlock()
		m.log.Warn("stale link refused", "peer", p.name, "incarnation", h.Incarnation, "current", p.inc)
		l.c.closeWith(codeStale, "stale incarnation")
		return false
	}
	old := p.link
	restarted := p.inc != 0 && h.Incarnation > p.inc
	p.inc = h.Incarnation
	p.link = l
	if old == nil {
		p.linkGone = make(chan struct{})
	}
	if restarted {
		m.log.Info("peer restarted", "peer", p.name, "incarnation", h.Incarnation)
		if p.alive() {
			p.state = stateNew // UP again with its first record of the new life
		}
	}
	m.heardLocked(p, "hello")
	m.publishLocked()
	kick(l.statusKick)
	m.mu.Unlock()
	if restarted {
		p.out.fail(fmt.Errorf("%w: %s restarted", ErrPeerDown, p.name))
	}
	if old != nil {
		old.c.closeWith(codeReplaced, "replaced by a newer connection")
	}
	m.log.Debug("link up", "peer", p.name, "remote", l.c.remoteAddr().String(), "dialed", l.dialed, "incarnation", h.Incarnation)
	return true
}

// dropLink forgets l when it ends.
func (m *Mesh) dropLink(l *link) {
	p := l.p
	code, byPeer := l.c.closedBy()
	m.mu.Lock()
	defer m.mu.Unlock()
	if p.link != l {
		return
	}
	p.link = nil
	close(p.linkGone)
	m.log.Debug("link down", "peer", p.name, "closed_by_peer", byPeer, "code", uint64(code))
	if byPeer && code == codeShutdown && p.state != stateDown && p.state != stateNew {
		p.round, p.recent, p.episode = nil, nil, 0 // it left: nothing to ask again
		m.markDownLocked(p, "the peer left the farm (shut down)")
		m.publishLocked()
	}
}

// write writes one encoded frame to s, counting it.
func (l *link) write(s io.Writer, b []byte) error {
	if _, err := s.Write(b); err != nil {
		return err
	}
	l.m.met.sent(encodedType(b), len(b))
	return nil
}

// sendControl queues an encoded control frame; drops it if the peer is not
// reading (the queue is full), as a hung peer must not block this member.
func (l *link) sendControl(b []byte) {
	select {
	case l.ctrlOut <- b:
	default:
		l.m.met.dropped.WithLabelValues(encodedType(b).String()).Inc()
	}
}

// sendDatagram queues an encoded datagram, dropping it if the queue is full.
func (l *link) sendDatagram(b []byte) {
	select {
	case l.dgOut <- b:
	default:
		l.m.met.dropped.WithLabelValues(encodedType(b).String()).Inc()
	}
}

func (l *link) fail(err error) { l.cancel(err) }

// recordFor is r as the peer of this link may see it: whole, or without
// its reason for a peer that predates reasons.
func (l *link) recordFor(r record) record {
	if l.c.reasons() {
		return r
	}
	return r.forOldPeer()
}

func (l *link) writeControl() {
	defer l.wg.Done()
	m := l.m
	var (
		last    time.Time
		pending bool
		timer   = time.NewTimer(time.Hour)
	)
	timer.Stop()
	defer timer.Stop()
	sendStatus := func() error {
		m.mu.Lock()
		b := appendFrame(nil, &statusFrame{Record: l.recordFor(m.self)})
		m.mu.Unlock()
		last, pending = time.Now(), false
		return l.write(l.ctrl, b)
	}
	for {
		var err error
		select {
		case <-l.ctx.Done():
			return
		case b := <-l.ctrlOut:
			err = l.write(l.ctrl, b)
		case <-l.statusKick:
			if wait := m.cfg.StatusInterval - time.Since(last); wait > 0 {
				if !pending {
					pending = true
					timer.Reset(wait)
				}
				continue
			}
			err = sendStatus()
		case <-timer.C:
			err = sendStatus()
		}
		if err != nil {
			l.fail(fmt.Errorf("write control: %w", err))
			return
		}
	}
}

func (l *link) readControl() {
	defer l.wg.Done()
	fr := frameReader{r: bufio.NewReader(l.ctrl), max: maxControlPayload}
	for {
		f, err := fr.read()
		if err != nil {
			if !isClosedErr(err) && !errors.Is(err, io.EOF) && l.ctx.Err() == nil {
				l.m.log.Warn("bad control stream", "peer", l.p.name, "err", err)
			}
			l.fail(fmt.Errorf("read control: %w", err))
			return
		}
		l.m.met.received(f.frameType(), fr.n)
		if err := l.m.handleControl(l, f); err != nil {
			l.m.log.Warn("protocol error", "peer", l.p.name, "err", err)
			l.fail(err)
			return
		}
	}
}

func (l *link) writeDatagrams() {
	defer l.wg.Done()
	for {
		select {
		case <-l.ctx.Done():
			return
		case b := <-l.dgOut:
			if err := l.c.sendDatagram(b); err != nil {
				if !isClosedErr(err) {
					l.fail(fmt.Errorf("send datagram: %w", err))
				}
				return
			}
			l.m.met.sent(encodedType(b), len(b))
		}
	}
}

func (l *link) readDatagrams() {
	defer l.wg.Done()
	for {
		b, err := l.c.receiveDatagram(l.ctx)
		if err != nil {
			l.fail(fmt.Errorf("receive datagram: %w", err))
			return
		}
		f, err := parseFrame(b)
		if err != nil {
			// A datagram is self-contained: drop it, keep the link.
			l.m.log.Warn("bad datagram", "peer", l.p.name, "err", err)
			continue
		}
		l.m.met.received(f.frameType(), len(b))
		l.m.handleDatagram(l, f)
	}
}
