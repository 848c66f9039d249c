package pushd

import (
	"context"
	"sync"
	"time"
)

// outItem is one thing queued for a peer: a message or a control frame.
type outItem struct {
	msg  *message
	ctrl []byte
}

// peerSender sends one peer its queue in order, messages batched into
// frames, one frame in flight: Send returns once the peer took it, which is
// the acknowledgement the origin waits for.
type peerSender struct {
	h    *hub
	name string

	mu    sync.Mutex
	queue []outItem
	bytes int
	wake  chan struct{}
}

// Bounds of a peer's queue: beyond them new items are dropped (the peer
// fetches them by a fill when it sees the gap), so a dead or slow peer
// cannot grow this node's memory.
const (
	peerQueueItems = 100000
	peerQueueBytes = 64 << 20
	frameBudget    = 512 << 10 // bytes of messages per frame, under the mesh's 1 MiB
)

// enqueue queues an item for a peer, starting its sender on first use.
func (h *hub) enqueue(peer string, it outItem) {
	h.peersMu.Lock()
	p := h.peers[peer]
	if p == nil {
		p = &peerSender{h: h, name: peer, wake: make(chan struct{}, 1)}
		if !h.s.goRun(p.run) {
			h.peersMu.Unlock()
			return
		}
		h.peers[peer] = p
	}
	h.peersMu.Unlock()
	n := len(it.ctrl)
	if it.msg != nil {
		n = messageSize(it.msg)
	}
	p.mu.Lock()
	if len(p.queue) >= peerQueueItems || p.bytes+n > peerQueueBytes {
		p.mu.Unlock()
		h.s.m.peerDropped.WithLabelValues(peer).Inc()
		h.settleOwn([]outItem{it})
		return
	}
	p.queue = append(p.queue, it)
	p.bytes += n
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

func (p *peerSender) run() {
	ctx := p.h.s.ctx
	for {
		select {
		case <-ctx.Done():
			return
		case <-p.wake:
		}
		for ctx.Err() == nil {
			body, msgs, ok := p.next()
			if !ok {
				break
			}
			err := p.send(ctx, body)
			if err != nil {
				for _, m := range msgs {
					if m.Epoch == p.h.s.epoch && m.done != nil {
						p.h.acked(m, true)
					}
				}
				p.h.s.m.sendErrors.WithLabelValues(p.name).Inc()
				p.h.s.log.Debug("send to peer failed; it fetches what it missed by a fill", "peer", p.name, "err", err)
				if !p.h.isUp(p.name) {
					p.drop()
				}
				continue
			}
			p.h.s.m.replicated.WithLabelValues(p.name).Add(float64(len(msgs)))
			for _, m := range msgs {
				if m.Epoch == p.h.s.epoch && m.done != nil {
					p.h.acked(m, false)
				}
			}
		}
	}
}

// next takes the next frame off the queue: a control frame alone, or as
// many messages as fit frameBudget.
func (p *peerSender) next() (body []byte, msgs []*message, ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.queue) == 0 {
		return nil, nil, false
	}
	if c := p.queue[0].ctrl; c != nil {
		p.pop(1, len(c))
		return c, nil, true
	}
	size, n := 0, 0
	for n < len(p.queue) && n < maxBatch && p.queue[n].msg != nil {
		sz := messageSize(p.queue[n].msg)
		if n > 0 && size+sz > frameBudget {
			break
		}
		size += sz
		msgs = append(msgs, p.queue[n].msg)
		n++
	}
	p.pop(n, size)
	return encodeMessages(msgs), msgs, true
}

func (p *peerSender) pop(n, size int) {
	clear(p.queue[:n])
	p.queue = p.queue[n:]
	p.bytes -= size
	if len(p.queue) == 0 {
		p.queue, p.bytes = nil, 0
	}
}

// drop empties the queue of a peer that is DOWN.
func (p *peerSender) drop() {
	p.mu.Lock()
	q := p.queue
	n := len(q)
	p.queue, p.bytes = nil, 0
	p.mu.Unlock()
	p.h.settleOwn(q)
	if n > 0 {
		p.h.s.m.peerDropped.WithLabelValues(p.name).Add(float64(n))
	}
}

// HandlePeer takes one mesh message from a peer; it is the mesh's handler
// (peerlink Config.Handler). Returning nil acknowledges it: the messages are
// held here.
func (s *Server) HandlePeer(from string, body []byte) error {
	f, err := decodeFrame(body)
	if err != nil {
		s.m.wireErrors.Inc()
		return err
	}
	switch {
	case f.Messages != nil:
		s.hub.receive(from, f.Messages)
	case f.Fill != nil:
		s.hub.answerFill(from, f.Fill)
	case f.Haves != nil:
		s.hub.haves(from, f.Haves)
	case f.Sync:
		s.hub.synced(from)
	}
	return nil
}

// send sends one frame, retrying a few times with backoff while the peer is
// still UP in the table (a transient error must not leave the origin's
// publishes waiting for an acknowledgement that never comes).
func (p *peerSender) send(ctx context.Context, body []byte) error {
	backoff := 50 * time.Millisecond
	for attempt := 0; ; attempt++ {
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := p.h.s.mesh.Send(sctx, p.name, body)
		cancel()
		if err == nil || attempt == 5 || ctx.Err() != nil || !p.h.isUp(p.name) {
			return err
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		backoff *= 2
	}
}

// settleOwn counts this node's own messages among items as settled for a
// peer that will not get them (its queue dropped them).
func (h *hub) settleOwn(items []outItem) {
	for _, it := range items {
		if m := it.msg; m != nil && m.Epoch == h.s.epoch && m.done != nil {
			h.acked(m, true)
		}
	}
}
