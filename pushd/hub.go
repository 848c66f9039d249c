package pushd

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"
)

// hub holds every topic's history and runs the replication: it stamps the
// node's own publishes, sends them to the peers, takes in the peers'
// messages, fills gaps, and wakes the streams when a topic moves on.
//
// Locking: mu guards topics, their epochs and the idempotency keys; streams
// read under RLock. Peer senders have their own locks and are never called
// with mu held except to enqueue.
type hub struct {
	s *Server

	mu     sync.RWMutex
	topics map[string]*topic
	keys   map[string]keyEntry // topic + Idempotency-Key → first copy
	// arrivals numbers the delivered messages, every topic's, in the
	// order this node delivered them (message.local): a stream replays
	// its topics merged in that order.
	arrivals uint64

	peersMu sync.Mutex
	peers   map[string]*peerSender
	up      map[string]bool // peers UP or DRAINING in the last table seen

	// heard is when each peer's last frame came (under mu): a peer that
	// just spoke can be asked for a fill though the table does not show
	// it UP yet (a restarted node hears a peer's news of what it holds
	// before the mesh marks that peer UP).
	heard map[string]time.Time
}

// keyEntry is the first copy of a message this node saw with a given
// Idempotency-Key on a topic.
type keyEntry struct {
	epoch, seq uint64
	at         time.Time
}

func keyOf(topic, key string) string { return topic + "\x00" + key }

// topic is one topic's history and subscribers.
type topic struct {
	name   string
	hash   uint32
	epochs map[uint64]*epochLog
	fifo   []*message // delivered messages in arrival order, oldest first
	subs   map[*stream]struct{}
	// snap is subs as a wakeSet, handed to the flush workers when the
	// topic moves on; nil after subs changed (rebuilt on the next wake).
	// Its streams are never written once built: workers read them
	// without the hub's lock.
	snap *wakeSet
	// pushed is the snapshot last handed to the workers: when a newer one
	// goes, what is left of it in the queue is dropped (the newer one
	// wakes every stream), so subscribers coming and going do not grow
	// the queue either.
	pushed *wakeSet
	q      *flushQueue
	// lastDeps is the dependency list of the last message stamped here:
	// the next one shares it when it is the same (hub.mu).
	lastDeps []dep
}

// epochLog is what a node holds of one origin incarnation on one topic:
// msgs are the delivered messages base..head without a gap.
type epochLog struct {
	origin  string
	epoch   uint64
	msgs    []*message
	base    uint64 // seq of msgs[0]; head+1 when msgs is empty
	head    uint64 // highest seq delivered here
	changed time.Time

	// At the origin: stamped messages that no peer has acknowledged yet,
	// seq head+1.. in order.
	unacked []*message
	// Elsewhere: messages held back, by seq: they arrived after a gap, or
	// the next one waits for a dependency (deliverReadyLocked).
	pending map[uint64]*message
	// waived: dependencies on seq ≤ waived count as met, after a message
	// waited causalWait for them (checkBlockedLocked).
	waived uint64
	// Gap filling: the seq wanted up to, when it was last asked, and of
	// whom.
	fillTo uint64
	// catchUpTo is the highest seq another node said it holds (a "have",
	// after a membership change or a sync) beyond what this node had:
	// history this node catches up on, rather than news. A gap noticed
	// in live traffic, or a dependency, is news.
	catchUpTo uint64
	fillAt    time.Time
	fillAsked map[string]bool
}

// maxKeys bounds the idempotency keys remembered: beyond it (a million
// publishes with keys within IdempotencyTTL) new keys are not recorded.
const maxKeys = 1 << 20

// pendingLimit bounds the out-of-order messages held per epoch while a gap
// is filled; beyond it, later messages are dropped and fetched again.
const pendingLimit = 10000

// A message whose turn has come (the next of its epoch) but whose
// dependencies are not all here waits. After depFetchAfter they are asked
// of peers as a gap (most often they are on their way from their own
// origin, a frame behind: asking at once would turn every such race into a
// fill). After causalWait it is delivered anyway, counted and logged: the
// fill protocol brings a dependency some peer holds within a couple of its
// 2 s retries and gives up one no UP peer holds (which then counts as
// met), so this is only the net under anything else: a topic never stalls.
const (
	depFetchAfter = 500 * time.Millisecond
	causalWait    = 10 * time.Second
)

func newHub(s *Server) *hub {
	return &hub{
		s:      s,
		topics: map[string]*topic{},
		keys:   map[string]keyEntry{},
		peers:  map[string]*peerSender{},
		up:     map[string]bool{},
		heard:  map[string]time.Time{},
	}
}

// topicLocked returns the topic, creating it. mu must be held for writing.
func (h *hub) topicLocked(name string) *topic {
	t := h.topics[name]
	if t == nil {
		t = &topic{name: name, hash: TopicHash(name), epochs: map[uint64]*epochLog{}, subs: map[*stream]struct{}{}, q: &h.s.flushq}
		h.topics[name] = t
	}
	return t
}

func (t *topic) epochLocked(origin string, epoch uint64, now time.Time) *epochLog {
	e := t.epochs[epoch]
	if e == nil {
		e = &epochLog{origin: origin, epoch: epoch, base: 1, changed: now}
		t.epochs[epoch] = e
	}
	return e
}

// deliverLocked appends m, the next seq of e, to the history.
func (h *hub) deliverLocked(t *topic, e *epochLog, m *message) {
	if len(e.msgs) == 0 {
		e.base = m.Seq
	}
	e.msgs = append(e.msgs, m)
	e.head = m.Seq
	e.changed = time.Now()
	t.fifo = append(t.fifo, m)
	for len(t.fifo) > h.s.cfg.HistorySize {
		h.evictLocked(t)
	}
	h.arrivals++
	m.local = h.arrivals
	h.s.m.delivered.Inc()
}

// bindKeyLocked records m as the copy of its Idempotency-Key this node
// holds, or, when the node already holds another copy (a publisher retried
// on a second node before the first one's copy reached it: a node frozen
// with the request in its socket answers it much later), makes the two
// twins: a stream shows only the first of a set of twins it meets, so a
// message published twice under one key reaches each client once, on any
// node. Called for every message the node takes in (stamped here or
// received), before it is delivered.
func (h *hub) bindKeyLocked(t *topic, m *message, now time.Time) {
	if m.Key == "" {
		return
	}
	k := keyOf(m.Topic, m.Key)
	first, ok := h.keys[k]
	if !ok {
		if len(h.keys) < maxKeys {
			h.keys[k] = keyEntry{epoch: m.Epoch, seq: m.Seq, at: now}
		}
		return
	}
	if first.epoch == m.Epoch && first.seq == m.Seq {
		return
	}
	h.s.m.keyCopies.Inc()
	f := t.findLocked(first.epoch, first.seq)
	if f == nil {
		return // no longer held: nothing left to show twice
	}
	// Every copy lists every other, so that each stream stops at the
	// first copy it meets whatever the order of delivery.
	for _, o := range append([]*message{f}, f.twins...) {
		if o.twin(m.Epoch, m.Seq) {
			continue
		}
		o.twins = append(o.twins, m)
		m.twins = append(m.twins, o)
	}
}

// twin reports whether (epoch, seq) is m or one of its twins.
func (m *message) twin(epoch, seq uint64) bool {
	if m.Epoch == epoch && m.Seq == seq {
		return true
	}
	for _, o := range m.twins {
		if o.Epoch == epoch && o.Seq == seq {
			return true
		}
	}
	return false
}

// findLocked returns the message (epoch, seq) of the topic if this node
// holds it: delivered, waiting for a peer's acknowledgement, or waiting for
// a gap to be filled.
func (t *topic) findLocked(epoch, seq uint64) *message {
	e := t.epochs[epoch]
	if e == nil {
		return nil
	}
	if len(e.msgs) > 0 && seq >= e.base && seq-e.base < uint64(len(e.msgs)) {
		return e.msgs[seq-e.base]
	}
	for _, m := range e.unacked {
		if m.Seq == seq {
			return m
		}
	}
	return e.pending[seq]
}

// evictLocked drops the topic's oldest message.
func (h *hub) evictLocked(t *topic) {
	m := t.fifo[0]
	t.fifo[0] = nil
	t.fifo = t.fifo[1:]
	if e := t.epochs[m.Epoch]; e != nil && len(e.msgs) > 0 && e.msgs[0] == m {
		e.msgs[0] = nil
		e.msgs = e.msgs[1:]
		e.base = m.Seq + 1
		if len(e.msgs) == 0 {
			e.msgs = nil
		}
	}
	if len(t.fifo) == 0 {
		t.fifo = nil
	}
}

// wakeLocked tells the topic's streams that it moved on: the snapshot of
// its subscribers goes to the flush workers in chunks, and each stream is
// touched only there, by the worker that writes to it.
func (t *topic) wakeLocked() {
	if len(t.subs) == 0 {
		return
	}
	if t.snap == nil {
		ws := &wakeSet{streams: make([]*stream, 0, len(t.subs))}
		for st := range t.subs {
			ws.streams = append(ws.streams, st)
		}
		ws.queued = make([]bool, (len(ws.streams)+wakeChunk-1)/wakeChunk)
		t.snap = ws
	}
	t.q.pushWake(t.snap, t.pushed)
	t.pushed = t.snap
}

// subscribeLocked and unsubscribeLocked change the topic's subscribers;
// the hub's lock must be held for writing.
func (t *topic) subscribeLocked(st *stream) {
	t.subs[st] = struct{}{}
	t.snap = nil
}

func (t *topic) unsubscribeLocked(st *stream) {
	delete(t.subs, st)
	t.snap = nil
}

// errNotReplicated is returned when no second node acknowledged in time.
var errNotReplicated = errors.New("not yet held by a second node")

// publish stamps a message from a publisher, sends it to the peers, and
// returns its id once a second node holds it (or at once when no other node
// is UP). A key seen before returns the first id and publishes nothing.
func (h *hub) publish(ctx context.Context, topicName, key string, data []byte) (id string, dup bool, err error) {
	now := time.Now()
	up := h.upPeers()
	h.mu.Lock()
	if key != "" {
		if k, ok := h.keys[keyOf(topicName, key)]; ok {
			// The first copy may be one of this node's own that no
			// peer holds yet (its publish was answered 503): the retry
			// is answered as that publish would be.
			var done chan struct{}
			if t := h.topics[topicName]; t != nil && k.epoch == h.s.epoch {
				if m := t.findLocked(k.epoch, k.seq); m != nil {
					done = m.done
				}
			}
			h.mu.Unlock()
			id = messageID(&message{Topic: topicName, Epoch: k.epoch, Seq: k.seq})
			if done != nil {
				timeout := time.NewTimer(h.s.cfg.PublishTimeout)
				defer timeout.Stop()
				select {
				case <-done:
				case <-ctx.Done():
					return id, true, ctx.Err()
				case <-timeout.C:
					return id, true, errNotReplicated
				}
			}
			return id, true, nil
		}
	}
	t := h.topicLocked(topicName)
	e := t.epochLocked(h.s.self, h.s.epoch, now)
	m := &message{Topic: topicName, Origin: h.s.self, Epoch: h.s.epoch, Seq: e.head + uint64(len(e.unacked)) + 1, At: now.Add(h.s.cfg.skew), Key: key, Data: data,
		Deps: t.depsLocked(h.s.epoch)}
	m.done, m.all, m.sentTo = make(chan struct{}), make(chan struct{}), len(up)
	e.unacked = append(e.unacked, m)
	id = messageID(m)
	h.bindKeyLocked(t, m, now)
	h.mu.Unlock()

	for _, p := range up {
		h.enqueue(p, outItem{msg: m})
	}
	if len(up) == 0 {
		h.acked(m, false) // every UP node (this one) holds it
	}
	timeout := time.NewTimer(h.s.cfg.PublishTimeout)
	defer timeout.Stop()
	select {
	case <-m.done:
	case <-ctx.Done():
		return id, false, ctx.Err()
	case <-timeout.C:
		return id, false, errNotReplicated
	}
	// Held twice: the publisher may have its answer. Wait a little more
	// for every UP node to hold it, so that a publisher that publishes
	// its next message on another node only after this answer keeps its
	// order on every node (the next one cannot overtake this one).
	wait := time.NewTimer(h.s.cfg.ReplicaWait)
	defer wait.Stop()
	select {
	case <-m.all:
	case <-wait.C:
	case <-ctx.Done():
	}
	h.s.m.publishAck.Observe(time.Since(now).Seconds())
	return id, false, nil
}

// depsLocked is the dependency list of a message this node stamps now on
// the topic: for every other epoch of the topic whose history this node
// holds, the highest seq delivered here. It is bounded by maxDeps: beyond,
// the epochs that moved on least recently are left out (their messages
// are then ordered as before dependencies existed: by arrival). An epoch
// with nothing left in history here is left out too: no peer could be
// counted on to fill it.
func (t *topic) depsLocked(own uint64) []dep {
	var es []*epochLog
	for ep, e := range t.epochs {
		if ep != own && e.head > 0 && len(e.msgs) > 0 {
			es = append(es, e)
		}
	}
	if len(es) > maxDeps {
		slices.SortFunc(es, func(a, b *epochLog) int { return b.changed.Compare(a.changed) })
		es = es[:maxDeps]
	}
	slices.SortFunc(es, func(a, b *epochLog) int { return cmp.Compare(a.epoch, b.epoch) })
	same := len(es) == len(t.lastDeps)
	for i := 0; same && i < len(es); i++ {
		same = t.lastDeps[i] == dep{es[i].epoch, es[i].head}
	}
	if same {
		return t.lastDeps
	}
	ds := make([]dep, len(es))
	for i, e := range es {
		ds[i] = dep{e.epoch, e.head}
	}
	t.lastDeps = ds
	return ds
}

// depsMetLocked reports whether every dependency of m is delivered here
// (or was given up, or waived).
func (h *hub) depsMetLocked(t *topic, m *message) bool {
	for _, d := range m.Deps {
		e := t.epochs[d.Epoch]
		if e != nil && (e.head >= d.Seq || e.waived >= d.Seq) {
			continue
		}
		// One of this node's own messages is delivered once a peer
		// acknowledged it; one it never stamped is nothing to wait for.
		if d.Epoch == h.s.epoch && (e == nil || e.head+uint64(len(e.unacked)) < d.Seq) {
			continue
		}
		return false
	}
	return true
}

// askDepsLocked fetches m's missing dependencies: a dependency is news
// that its epoch reached that seq, so it is filled as any gap (asking m's
// origin first: it delivered them before it stamped m).
func (h *hub) askDepsLocked(t *topic, m *message, now time.Time) {
	for _, d := range m.Deps {
		if d.Epoch == h.s.epoch {
			continue
		}
		e := t.epochLocked("", d.Epoch, now)
		if e.head >= d.Seq || e.waived >= d.Seq {
			continue
		}
		if d.Seq > e.fillTo {
			e.fillTo = d.Seq
		}
		if m.fetched && d.Seq > e.catchUpTo { // history's dependencies are history
			e.catchUpTo = d.Seq
		}
		h.askFillLocked(t, e, m.Origin)
	}
}

// messageID is the id a publisher gets: a cursor of the one message.
func messageID(m *message) string {
	return Cursor{{Topic: TopicHash(m.Topic), Epoch: m.Epoch, Seq: m.Seq}}.String()
}

// acked records that a peer holds one of this node's own messages (or,
// with failed, that the peer will not: its send failed), and delivers
// every message of the epoch that is now held twice.
func (h *hub) acked(m *message, failed bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	m.settled++
	if m.settled >= m.sentTo && m.all != nil {
		select {
		case <-m.all:
		default:
			close(m.all)
		}
	}
	if failed {
		return
	}
	m.acked = true
	t := h.topics[m.Topic]
	if t == nil {
		return
	}
	e := t.epochs[m.Epoch]
	n := 0
	for n < len(e.unacked) && e.unacked[n].acked {
		u := e.unacked[n]
		h.deliverLocked(t, e, u)
		close(u.done)
		n++
	}
	if n > 0 {
		e.unacked = append(e.unacked[:0], e.unacked[n:]...)
		h.deliverReadyLocked(t, time.Now()) // a peer's message may wait for these
		t.wakeLocked()
	}
}

// ackAllLocked delivers every waiting own message: called when no other
// node is UP, so that this one is every UP node.
func (h *hub) ackAllOwn() {
	h.mu.Lock()
	var own []*message
	for _, t := range h.topics {
		if e := t.epochs[h.s.epoch]; e != nil {
			own = append(own, e.unacked...)
		}
	}
	h.mu.Unlock()
	for _, m := range own {
		h.acked(m, false)
	}
}

// resendOwn sends again, to the peers UP now, this node's own messages
// that no peer acknowledged and whose every send failed (housekeeping):
// a peer UP in the table may still fail a send (its link cut while
// another member vouches for it, or a restart the table showed for an
// instant), and such a message would otherwise wait, undelivered and
// unknown to the peers' haves, and hold back its epoch's later messages,
// until a peer happens to fetch it. With no peer UP, this node is every
// UP node: it holds them.
func (h *hub) resendOwn() {
	up := h.upPeers()
	h.mu.Lock()
	var again []*message
	for _, t := range h.topics {
		if e := t.epochs[h.s.epoch]; e != nil {
			for _, m := range e.unacked {
				if !m.acked && m.settled >= m.sentTo {
					m.sentTo, m.settled = len(up), 0
					again = append(again, m)
				}
			}
		}
	}
	h.mu.Unlock()
	for _, p := range up {
		for _, m := range again {
			h.enqueue(p, outItem{msg: m})
		}
	}
	if len(up) == 0 {
		for _, m := range again {
			h.acked(m, false)
		}
	}
}

// receive takes in messages from a peer (the origin, or a peer answering a
// fill). A message is delivered when it is the next of its epoch and its
// dependencies are delivered; otherwise it is held, and what it lacks (the
// gap before it, its dependencies) is asked of peers.
func (h *hub) receive(from string, ms []*message) {
	now := time.Now()
	h.mu.Lock()
	defer h.mu.Unlock()
	h.heard[from] = now
	touched := map[*topic]bool{} // → whether a message was delivered
	for _, m := range ms {
		if m.Epoch == h.s.epoch {
			continue // our own, echoed by a fill
		}
		t := h.topicLocked(m.Topic)
		e := t.epochLocked(m.Origin, m.Epoch, now)
		if e.origin == "" {
			e.origin = m.Origin // known until now only from a dependency
		}
		switch {
		case m.Seq <= e.head || e.pending[m.Seq] != nil:
			h.s.m.duplicates.Inc()
			continue
		}
		h.bindKeyLocked(t, m, now)
		m.fetched = m.Seq <= e.catchUpTo
		if m.Seq == e.head+1 && h.depsMetLocked(t, m) {
			h.deliverLocked(t, e, m)
			touched[t] = true
			continue
		}
		if _, ok := touched[t]; !ok {
			touched[t] = false
		}
		if e.pending == nil {
			e.pending = map[uint64]*message{}
		}
		if len(e.pending) < pendingLimit || m.Seq == e.head+1 {
			e.pending[m.Seq] = m
		} else if m.Seq > e.fillTo {
			e.fillTo = m.Seq // dropped: fetched again
		}
		if m.Seq > e.head+1 {
			if m.Seq-1 > e.fillTo {
				e.fillTo = m.Seq - 1
			}
			h.askFillLocked(t, e, from)
		}
	}
	for t, delivered := range touched {
		// What was delivered may be what held messages wait for; and a
		// held message that is next in its epoch starts its causalWait.
		if h.deliverReadyLocked(t, now) || delivered {
			t.wakeLocked()
		}
	}
}

// deliverReadyLocked delivers every held message of the topic whose turn
// has come: the next seq of its epoch, with its dependencies delivered
// here. Each delivery may unblock another epoch's message, so it goes
// round until nothing moves; every message is delivered after its
// dependencies, and each epoch stays gap-free. A message found waiting for
// a dependency is stamped blocked (checkBlockedLocked bounds the wait).
// It reports whether it delivered anything.
func (h *hub) deliverReadyLocked(t *topic, now time.Time) bool {
	delivered := false
	for moved := true; moved; {
		moved = false
		for _, e := range t.epochs {
			for len(e.pending) > 0 {
				m := e.pending[e.head+1]
				if m == nil {
					break
				}
				if !h.depsMetLocked(t, m) {
					if m.blocked.IsZero() {
						m.blocked = now
						h.s.m.depHolds.Inc()
					}
					break
				}
				delete(e.pending, m.Seq)
				h.deliverLocked(t, e, m)
				moved, delivered = true, true
			}
			if len(e.pending) == 0 {
				e.pending = nil
			}
			if e.head >= e.fillTo {
				e.fillTo, e.fillAsked = 0, nil
			}
		}
	}
	return delivered
}

// checkBlockedLocked looks after the messages waiting for a dependency
// (housekeeping): after depFetchAfter their missing dependencies are asked
// of peers; after causalWait they are waived (so the messages waiting for
// no more than those go too), counted and logged.
func (h *hub) checkBlockedLocked(now time.Time) {
	for _, t := range h.topics {
		released := 0
		var missing []dep
		for _, e := range t.epochs {
			m := e.pending[e.head+1]
			if m == nil || m.blocked.IsZero() || now.Sub(m.blocked) < depFetchAfter || h.depsMetLocked(t, m) {
				continue
			}
			if now.Sub(m.blocked) < causalWait {
				h.askDepsLocked(t, m, now)
				continue
			}
			for _, d := range m.Deps {
				de := t.epochLocked("", d.Epoch, now)
				if de.head < d.Seq && de.waived < d.Seq {
					de.waived = d.Seq
					missing = append(missing, d)
				}
			}
			released++
		}
		if released == 0 {
			continue
		}
		h.s.m.depTimeouts.Add(float64(released))
		h.s.log.Warn("messages delivered before their dependencies, which did not come in time", "topic", t.name, "messages", released, "missing", fmt.Sprint(missing), "wait", causalWait)
		h.deliverReadyLocked(t, now)
		t.wakeLocked()
	}
}

// askFillLocked asks one peer for e's missing range: prefer the one named,
// then the origin, then any other UP peer not asked yet. With no one left
// to ask, the gap is given up: streams behind it get a reset.
func (h *hub) askFillLocked(t *topic, e *epochLog, prefer string) {
	if e.fillTo <= e.head {
		return
	}
	now := time.Now()
	if !e.fillAt.IsZero() && now.Sub(e.fillAt) < time.Second && len(e.fillAsked) > 0 {
		return // a fill is under way
	}
	from := e.gapStart()
	if e.fillTo < from {
		return
	}
	if e.fillAsked == nil {
		e.fillAsked = map[string]bool{}
	}
	up := h.upPeers()
	var who string
	for _, c := range append([]string{prefer, e.origin}, up...) {
		if c != "" && c != h.s.self && !e.fillAsked[c] && h.reachableLocked(c, now) {
			who = c
			break
		}
	}
	if who == "" {
		if from == e.head+1 {
			h.giveUpGapLocked(t, e)
		} // else: given up once the messages before the gap are delivered
		return
	}
	e.fillAsked[who] = true
	e.fillAt = now
	h.s.m.fills.Inc()
	h.enqueue(who, outItem{ctrl: encodeFill(fill{Topic: t.name, Epoch: e.epoch, From: from, To: e.fillTo})})
}

// gapStart is the first seq after head that this node does not hold: the
// next messages may be here already, waiting for their dependencies.
func (e *epochLog) gapStart() uint64 {
	from := e.head + 1
	for e.pending[from] != nil {
		from++
	}
	return from
}

// giveUpGapLocked skips a gap no peer can fill: the history restarts after
// it, so any stream whose cursor is before it gets a reset.
func (h *hub) giveUpGapLocked(t *topic, e *epochLog) {
	next := e.fillTo + 1
	for s := range e.pending {
		if s < next {
			next = s
		}
	}
	h.s.log.Warn("history gap no peer holds; streams behind it get a reset", "topic", t.name, "origin", e.origin, "from", e.head+1, "to", next-1)
	h.s.m.gapsLost.Inc()
	// Drop what is before the gap: history must stay without a hole.
	for _, m := range e.msgs {
		for i, f := range t.fifo {
			if f == m {
				t.fifo = append(t.fifo[:i], t.fifo[i+1:]...)
				break
			}
		}
	}
	e.msgs = nil
	e.head = next - 1
	e.base = next
	e.fillTo, e.fillAsked, e.fillAt = 0, nil, time.Time{}
	h.deliverReadyLocked(t, time.Now())
	t.wakeLocked()
}

// answerFill sends a peer the messages it asked for that this node holds,
// then what it holds of the epoch.
func (h *hub) answerFill(from string, f *fill) {
	h.mu.RLock()
	t := h.topics[f.Topic]
	var out []outItem
	hv := have{Topic: f.Topic, Epoch: f.Epoch, Base: 1, Head: 0}
	if t != nil {
		if e := t.epochs[f.Epoch]; e != nil {
			hv = have{Topic: f.Topic, Origin: e.origin, Epoch: e.epoch, Base: e.base, Head: e.head}
			all := append(e.msgs[:len(e.msgs):len(e.msgs)], e.unacked...)
			for _, m := range all {
				if m.Seq >= f.From && m.Seq <= f.To {
					out = append(out, outItem{msg: m})
				}
			}
			if len(e.msgs) == 0 {
				hv.Base = e.head + 1
			}
		}
	}
	h.mu.RUnlock()
	out = append(out, outItem{ctrl: encodeHaves([]have{hv})})
	for _, it := range out {
		h.enqueue(from, it)
	}
}

// haves takes a peer's news of what it holds: fetch what this node lacks,
// and give up on a gap that the peer cannot fill either.
func (h *hub) haves(from string, hs []have) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.heard[from] = time.Now()
	for _, hv := range hs {
		if hv.Epoch == h.s.epoch || hv.Head == 0 {
			continue
		}
		t := h.topicLocked(hv.Topic)
		e := t.epochLocked(hv.Origin, hv.Epoch, time.Now())
		if e.origin == "" {
			e.origin = hv.Origin
		}
		if hv.Head <= e.head {
			if e.fillTo > e.head && e.fillAsked[from] && hv.Base > e.gapStart() {
				h.askFillLocked(t, e, "") // this peer lacks it too: next one
			}
			continue
		}
		if hv.Head > e.fillTo {
			e.fillTo = hv.Head
		}
		if hv.Head > e.catchUpTo {
			e.catchUpTo = hv.Head
		}
		if e.fillAsked[from] && hv.Base > e.gapStart() {
			// Asked this peer already and it lacks the start of the gap.
			e.fillAt = time.Time{}
			h.askFillLocked(t, e, "")
			continue
		}
		e.fillAt = time.Time{}
		if e.fillAsked != nil {
			delete(e.fillAsked, from)
		}
		h.askFillLocked(t, e, from)
	}
}

// upPeers lists the peers UP or DRAINING in the table (they take data).
func (h *hub) upPeers() []string {
	var out []string
	for _, srv := range h.s.mesh.Table().Servers {
		if srv.Name != h.s.self && takesData(srv) {
			out = append(out, srv.Name)
		}
	}
	return out
}

func (h *hub) isUp(name string) bool {
	srv, ok := h.s.mesh.Table().Find(name)
	return ok && takesData(srv)
}

// reachableLocked tells whether peer can be asked for data: a member UP
// or DRAINING in the table, or a member heard from within the last second.
func (h *hub) reachableLocked(peer string, now time.Time) bool {
	srv, ok := h.s.mesh.Table().Find(peer)
	return ok && (takesData(srv) || now.Sub(h.heard[peer]) < time.Second)
}

// start runs the table watcher and the housekeeping.
func (h *hub) start() {
	h.s.goRun(h.watchTable)
	h.s.goRun(h.housekeep)
}

// watchTable reacts to peers going DOWN or coming UP: with no peer UP the
// node's waiting publishes are held by every UP node; a peer that went DOWN
// may have sent some nodes more than others, so every node tells the
// others what it holds of that peer's epochs.
func (h *hub) watchTable() {
	ch, cancel := h.s.mesh.Subscribe()
	defer cancel()
	h.tableChanged()
	for {
		select {
		case <-h.s.ctx.Done():
			return
		case <-ch:
			h.tableChanged()
		}
	}
}

func (h *hub) tableChanged() {
	now := map[string]bool{}
	for _, srv := range h.s.mesh.Table().Servers {
		if srv.Name == h.s.self {
			continue
		}
		up := takesData(srv)
		now[srv.Name] = up
		h.s.m.peerUp.WithLabelValues(srv.Name).Set(b2f(up))
	}
	h.peersMu.Lock()
	prev := h.up
	h.up = now
	h.peersMu.Unlock()
	var wentDown, cameUp []string
	anyUp := false
	for name, up := range now {
		if up {
			anyUp = true
			if !prev[name] {
				cameUp = append(cameUp, name)
			}
		} else if prev[name] {
			wentDown = append(wentDown, name)
		}
	}
	if !anyUp {
		h.ackAllOwn()
	}
	if len(wentDown) > 0 || len(cameUp) > 0 {
		// Tell every UP peer what this node holds of the epochs of those
		// that went down (a peer may have missed their last messages),
		// and tell those that came up everything (they may have missed
		// whatever was published while they were away) and ask them the
		// same (this node may be the one that was away: a restart can be
		// too quick for the others to see it DOWN).
		for name, up := range now {
			if !up {
				continue
			}
			if slices.Contains(cameUp, name) {
				h.sendHaves(name, nil)
				h.enqueue(name, outItem{ctrl: encodeSync()})
			} else if len(wentDown) > 0 {
				h.sendHaves(name, wentDown)
			}
		}
	}
}

// synced answers a peer's sync (it just saw this node come UP, or it just
// started): it is told what this node holds, and, since it may be a
// restart that the table showed DOWN too briefly for any watcher to see,
// every other UP peer is told what this node holds of its former lives,
// as when a peer goes DOWN (its last messages may have reached some
// nodes and not others).
func (h *hub) synced(from string) {
	h.sendHaves(from, nil)
	for _, p := range h.upPeers() {
		if p != from {
			h.sendHaves(p, []string{from})
		}
	}
}

// sendHaves tells a peer what this node holds, of the given origins (nil:
// all), in frames of at most maxHaves.
func (h *hub) sendHaves(peer string, origins []string) {
	hs := h.collectHaves(origins)
	for len(hs) > 0 {
		n := min(len(hs), maxHaves)
		h.enqueue(peer, outItem{ctrl: encodeHaves(hs[:n])})
		hs = hs[n:]
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// collectHaves lists what this node holds, of the given origins (nil: all).
func (h *hub) collectHaves(origins []string) []have {
	h.mu.RLock()
	defer h.mu.RUnlock()
	var hs []have
	for _, t := range h.topics {
		for _, e := range t.epochs {
			if e.head == 0 || (origins != nil && !slices.Contains(origins, e.origin)) {
				continue
			}
			base := e.base
			if len(e.msgs) == 0 {
				base = e.head + 1
			}
			hs = append(hs, have{Topic: t.name, Origin: e.origin, Epoch: e.epoch, Base: base, Head: e.head})
		}
	}
	return hs
}

// housekeep drops messages older than HistoryAge and idempotency keys older
// than their TTL, and retries fills that got no answer.
func (h *hub) housekeep() {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-h.s.ctx.Done():
			return
		case <-tick.C:
		}
		now := time.Now()
		h.mu.Lock()
		held := 0
		for _, t := range h.topics {
			for len(t.fifo) > 0 && now.Sub(t.fifo[0].At) > h.s.cfg.HistoryAge {
				h.evictLocked(t)
			}
			held += len(t.fifo)
			for _, e := range t.epochs {
				if e.fillTo > e.head && now.Sub(e.fillAt) > 2*time.Second {
					h.askFillLocked(t, e, "")
				}
			}
		}
		for k, v := range h.keys {
			if now.Sub(v.at) > h.s.cfg.IdempotencyTTL {
				delete(h.keys, k)
			}
		}
		h.checkBlockedLocked(now)
		h.forgetLocked(now)
		h.mu.Unlock()
		h.resendOwn()
		h.s.m.history.Set(float64(held))
	}
}

// epochRetention is how long the record of an epoch with nothing left in
// history is kept: a cursor that names it is told plainly (reset) whether
// it missed something, for a day after the last message.
const epochRetention = 24 * time.Hour

// forgetLocked drops what no longer serves: records of old epochs that hold
// nothing, and topics with no subscriber and no history (so that clients
// asking for random topic names cannot grow the node's memory for good).
func (h *hub) forgetLocked(now time.Time) {
	for name, t := range h.topics {
		for ep, e := range t.epochs {
			if ep != h.s.epoch && len(e.msgs) == 0 && len(e.pending) == 0 && now.Sub(e.changed) > epochRetention {
				delete(t.epochs, ep)
			}
		}
		if len(t.subs) > 0 || len(t.fifo) > 0 {
			continue
		}
		// A topic this node published on keeps its epoch's record for
		// good: its seq must never start again at 1.
		idle := t.epochs[h.s.epoch] == nil
		for _, e := range t.epochs {
			if len(e.unacked) > 0 || len(e.pending) > 0 || now.Sub(e.changed) <= h.s.cfg.HistoryAge {
				idle = false
			}
		}
		if idle && (len(t.epochs) == 0 || now.Sub(latest(t)) > epochRetention) {
			delete(h.topics, name)
		}
	}
}

func latest(t *topic) time.Time {
	var l time.Time
	for _, e := range t.epochs {
		if e.changed.After(l) {
			l = e.changed
		}
	}
	return l
}
