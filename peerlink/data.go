package peerlink

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
)

// The data channel: reliable, ordered delivery of messages to one peer.
//
// Send puts a message in the peer's outbox, which holds at most SendWindow
// messages and SendWindowBytes bytes that the peer has not acknowledged;
// Send blocks while it is full, so a slow peer slows its senders instead of
// making them buffer without bound. A writer per connection streams the
// outbox in order; the receiver calls the Handler, one message at a time,
// and acknowledges it on the same stream; the ack releases the sender. When
// a connection is replaced, the new one resends what is unacknowledged and
// the receiver skips what it has delivered already (sequence numbers), so
// each message reaches the Handler once. When the peer is declared DOWN or
// restarts, every waiting Send fails with ErrPeerDown: the message may or
// may not have been delivered.

type outMsg struct {
	seq  uint64
	body []byte
	done chan error // buffered: the result, sent once
}

type outbox struct {
	mu      sync.Mutex
	next    uint64 // last sequence number assigned
	pending []*outMsg
	bytes   int
	changed chan struct{} // closed and replaced when room frees up
	kick    chan struct{} // wakes the writer
}

// notifyLocked wakes the senders waiting for room.
func (o *outbox) notifyLocked() {
	close(o.changed)
	o.changed = make(chan struct{})
}

// fail ends every waiting message with err.
func (o *outbox) fail(err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, msg := range o.pending {
		msg.done <- err
	}
	o.pending, o.bytes = nil, 0
	o.notifyLocked()
}

// ack completes the messages up to seq; errText is the Handler's error for
// seq itself.
func (o *outbox) ack(peer string, seq uint64, errText string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for len(o.pending) > 0 && o.pending[0].seq <= seq {
		msg := o.pending[0]
		o.pending = o.pending[1:]
		o.bytes -= len(msg.body)
		if msg.seq == seq && errText != "" {
			msg.done <- &RemoteError{Peer: peer, Msg: errText}
		} else {
			msg.done <- nil
		}
	}
	o.notifyLocked()
}

// Send delivers body to the named peer and returns once the peer's Handler
// accepted it (nil), refused it (a *RemoteError), or the peer went DOWN,
// restarted or became unreachable (an error wrapping ErrPeerDown). It blocks
// while the peer's send window is full, and while the peer is suspect
// (silent to this member, the others being asked): the message goes when
// the connection is back. To a peer that is unreachable (UP for the farm,
// but only other members hear it) this member has no link to carry the
// message: Send fails at once with ErrPeerDown. If ctx ends first, Send
// returns ctx's error; the message may still be delivered. body is copied;
// the caller may reuse it. Send is safe for concurrent use; each caller's
// messages keep their order.
func (m *Mesh) Send(ctx context.Context, peer string, body []byte) error {
	if len(body) > MaxMessage {
		return fmt.Errorf("peerlink: message of %d bytes, at most %d", len(body), MaxMessage)
	}
	m.mu.Lock()
	p := m.peerByName(peer)
	stopped := m.stopped
	m.mu.Unlock()
	switch {
	case p == nil && peer == m.cfg.Self:
		return fmt.Errorf("peerlink: send to self %q", peer)
	case p == nil:
		return fmt.Errorf("peerlink: %q is not a member of the farm", peer)
	case stopped:
		return ErrClosed
	}
	msg := &outMsg{body: append([]byte(nil), body...), done: make(chan error, 1)}
	for {
		m.mu.Lock()
		reachable := p.direct() && !m.stopped
		m.mu.Unlock()
		if !reachable {
			return fmt.Errorf("peerlink: send to %s: %w", p.name, ErrPeerDown)
		}
		o := &p.out
		o.mu.Lock()
		if len(o.pending) == 0 || len(o.pending) < m.cfg.SendWindow && o.bytes+len(msg.body) <= m.cfg.SendWindowBytes {
			o.next++
			msg.seq = o.next
			o.pending = append(o.pending, msg)
			o.bytes += len(msg.body)
			o.mu.Unlock()
			break
		}
		wait := o.changed
		o.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	// The peer may have gone DOWN between the check and the enqueue; its
	// DOWN failed the outbox before this message was in it.
	m.mu.Lock()
	reachable := p.direct() && !m.stopped
	m.mu.Unlock()
	if !reachable {
		p.out.fail(fmt.Errorf("peerlink: send to %s: %w", p.name, ErrPeerDown))
	}
	kick(p.out.kick)
	select {
	case err := <-msg.done:
		if err == nil {
			m.met.messagesSent.Inc()
		}
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// failAllSends ends every waiting Send (the mesh is closing).
func (m *Mesh) failAllSends(err error) {
	for _, p := range m.peers {
		p.out.fail(err)
	}
}

// openData opens this member's data stream to the peer, streams the outbox
// into it and reads the acks.
func (l *link) openData() {
	defer l.wg.Done()
	s, err := l.c.openStream(l.ctx)
	if err != nil {
		l.fail(fmt.Errorf("open data stream: %w", err))
		return
	}
	defer s.abort()
	stop := context.AfterFunc(l.ctx, s.abort)
	defer stop()
	l.wg.Add(1)
	go l.readAcks(s)

	o := &l.p.out
	w := bufio.NewWriterSize(s, 64<<10)
	if err := l.write(w, appendFrame(nil, &openDataFrame{})); err != nil {
		l.fail(err)
		return
	}
	var (
		sent  uint64 // highest seq written on this stream
		batch []*outMsg
		buf   []byte
	)
	for {
		o.mu.Lock()
		batch = batch[:0]
		for _, msg := range o.pending {
			if msg.seq > sent {
				batch = append(batch, msg)
			}
		}
		o.mu.Unlock()
		if len(batch) == 0 {
			if err := w.Flush(); err != nil {
				l.fail(err)
				return
			}
			select {
			case <-l.ctx.Done():
				return
			case <-o.kick:
			}
			continue
		}
		for _, msg := range batch {
			buf = appendFrame(buf[:0], &dataFrame{Seq: msg.seq, Body: msg.body})
			if err := l.write(w, buf); err != nil {
				l.fail(fmt.Errorf("write data: %w", err))
				return
			}
			sent = msg.seq
		}
		if err := w.Flush(); err != nil {
			l.fail(err)
			return
		}
	}
}

func (l *link) readAcks(s stream) {
	defer l.wg.Done()
	fr := frameReader{r: bufio.NewReader(s), max: maxControlPayload}
	for {
		f, err := fr.read()
		if err != nil {
			if !isClosedErr(err) && !errors.Is(err, io.EOF) && l.ctx.Err() == nil {
				l.m.log.Warn("bad ack stream", "peer", l.p.name, "err", err)
				l.fail(err)
			}
			return
		}
		l.m.met.received(f.frameType(), fr.n)
		a, ok := f.(*ackFrame)
		if !ok {
			l.fail(fmt.Errorf("unexpected %s frame on the ack stream", f.frameType()))
			return
		}
		l.p.out.ack(l.p.name, a.Seq, a.Err)
	}
}

// acceptData accepts the peer's data stream and delivers its messages.
func (l *link) acceptData() {
	defer l.wg.Done()
	s, err := l.c.acceptStream(l.ctx)
	if err != nil {
		if !isClosedErr(err) && l.ctx.Err() == nil {
			l.fail(fmt.Errorf("accept data stream: %w", err))
		}
		return
	}
	defer s.abort()
	stop := context.AfterFunc(l.ctx, s.abort)
	defer stop()
	m, p := l.m, l.p
	fr := frameReader{r: bufio.NewReaderSize(s, 64<<10), max: maxPayload(typeData)}
	first := true
	var buf []byte
	for {
		f, err := fr.read()
		if err != nil {
			if !isClosedErr(err) && !errors.Is(err, io.EOF) && l.ctx.Err() == nil {
				m.log.Warn("bad data stream", "peer", p.name, "err", err)
				l.fail(err)
			}
			return
		}
		m.met.received(f.frameType(), fr.n)
		if first {
			if _, ok := f.(*openDataFrame); !ok {
				l.fail(fmt.Errorf("data stream opens with %s", f.frameType()))
				return
			}
			first = false
			continue
		}
		d, ok := f.(*dataFrame)
		if !ok {
			l.fail(fmt.Errorf("unexpected %s frame on a data stream", f.frameType()))
			return
		}
		ack := ackFrame{Seq: d.Seq}
		p.recvMu.Lock()
		if p.recvInc != l.remoteInc {
			p.recvInc, p.recvSeq = l.remoteInc, 0
		}
		if d.Seq > p.recvSeq {
			if err := m.deliver(p.name, d.Body); err != nil {
				ack.Err = err.Error()
				if len(ack.Err) > maxAckErr {
					ack.Err = ack.Err[:maxAckErr]
				}
			}
			p.recvSeq = d.Seq
		}
		p.recvMu.Unlock()
		buf = appendFrame(buf[:0], &ack)
		if err := l.write(s, buf); err != nil {
			if !isClosedErr(err) {
				l.fail(fmt.Errorf("write ack: %w", err))
			}
			return
		}
	}
}

// deliver calls the Handler, turning a panic into an error so that one bad
// message cannot take the member down.
func (m *Mesh) deliver(from string, body []byte) (err error) {
	if m.cfg.Handler == nil {
		return errors.New("no handler")
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("handler panicked: %v", r)
			m.log.Error("handler panicked", "peer", from, "panic", r)
		}
	}()
	err = m.cfg.Handler(from, body)
	if err == nil {
		m.met.messagesRecv.Inc()
	}
	return err
}
