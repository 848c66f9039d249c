package pushd

import (
	"bytes"
	"errors"
	"net"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"
)

// A stream is one client's SSE connection. It holds no goroutine while
// idle: a notify starts one flusher that writes everything the client has
// not seen (read from the topics' history by its cursor) and ends. Over
// HTTP/1.1 the connection is hijacked after the request, so neither the
// server's read and write buffers nor its connection goroutine stay with an
// idle stream; over HTTP/2 the handler goroutine stays and does the writes.
type stream struct {
	s       *Server
	topics  []*topic
	cur     Cursor // sorted; owned by the running flusher
	resets  []string
	resumed bool      // the client gave a cursor
	named   bool      // ?event=topic: each event named by its topic, raw data
	start   time.Time // when the client came

	mu        sync.Mutex
	running   bool // a flusher goroutine is on it
	dirty     bool // topics moved on since the last flush
	keepalive bool
	move      []byte // a farmlb-move event to send
	closed    bool
	done      chan struct{}

	// HTTP/1.1: the hijacked connection; HTTP/2: the handler writes.
	conn net.Conn
	// fd is the plain TCP socket's descriptor, which the flush workers
	// write to with write(2) directly (the socket is non-blocking), or -1
	// (TLS, or not Linux). wmu is held around each such write and by
	// close before the connection is closed, so a descriptor is never
	// written after it was closed (and perhaps reused).
	wmu     sync.Mutex
	fd      int
	rest    []byte // what a write that would block left over
	pollKey uint64
	wakec   chan struct{}
	rw      http.ResponseWriter
	rc      *http.ResponseController
}

// wake says that one of the stream's topics moved on; it runs on a flush
// worker, which writes to the stream itself unless a flusher is on it
// already (that one finds the news when it looks again).
func (st *stream) wake() {
	st.mu.Lock()
	if st.closed {
		st.mu.Unlock()
		return
	}
	st.dirty = true
	if st.conn == nil {
		st.mu.Unlock()
		st.signal()
		return
	}
	if st.running {
		st.mu.Unlock()
		return
	}
	st.running = true
	st.mu.Unlock()
	st.runFast()
}

// signal wakes an HTTP/2 stream's handler goroutine.
func (st *stream) signal() {
	select {
	case st.wakec <- struct{}{}:
	default:
	}
}

// poke sets a flag under the lock and gets a flusher going.
func (st *stream) poke(set func()) {
	st.mu.Lock()
	if st.closed {
		st.mu.Unlock()
		return
	}
	set()
	if st.conn == nil {
		st.mu.Unlock()
		st.signal()
		return
	}
	start := !st.running
	st.running = true
	st.mu.Unlock()
	if start {
		st.s.flushq.push(st)
	}
}

// runFast is the HTTP/1.1 flusher on a flush worker: it writes without
// ever blocking, and hands the stream to a goroutine of its own (runSlow)
// when the socket's buffer is full.
func (st *stream) runFast() {
	for {
		w, ok := st.next()
		if !ok {
			return
		}
		err := st.flush(&w, true)
		if err == errWouldBlock {
			st.mu.Lock()
			st.dirty = true // collect finds what remains, if anything
			// The move event not written goes back, unless a newer one
			// came meanwhile.
			if w.move != nil && st.move == nil {
				st.move = w.move
			}
			st.mu.Unlock()
			if !st.s.goRun(st.runSlow) {
				st.close(nil)
			}
			return
		}
		if err != nil {
			st.close(err)
			return
		}
	}
}

// runSlow serves a stream whose client reads slowly: blocking writes with
// WriteTimeout, until the stream has nothing left to send.
func (st *stream) runSlow() {
	if st.rest != nil {
		err := st.write(st.rest, false)
		st.rest = nil
		if err != nil {
			st.close(err)
			return
		}
	}
	for {
		w, ok := st.next()
		if !ok {
			return
		}
		if err := st.flush(&w, false); err != nil {
			st.close(err)
			return
		}
	}
}

var errWouldBlock = errors.New("write would block")

type work struct {
	dirty, keepalive bool
	move             []byte
}

// next takes the flusher's next work, or, when there is none (or the
// stream is closed), ends the flusher's turn: running goes false under the
// same lock, so a wake from then on starts a new one.
func (st *stream) next() (work, bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.closed || !(st.dirty || st.keepalive || st.move != nil) {
		st.running = false
		return work{}, false
	}
	return st.takeLocked(), true
}

func (st *stream) takeLocked() work {
	w := work{st.dirty, st.keepalive, st.move}
	st.dirty, st.keepalive, st.move = false, false, nil
	return w
}

// flushLimit bounds one write, so that a client far behind gets its
// replay in pieces and never makes the server build one huge buffer.
const flushLimit = 64 << 10

// flush writes what the stream has not seen, then a keep-alive if nothing
// else went, then a move event; fast writes return errWouldBlock rather
// than wait (w then holds what is left to do).
func (st *stream) flush(w *work, fast bool) error {
	sc, _ := st.s.bufs.Get().(*scratch)
	if sc == nil {
		sc = &scratch{buf: make([]byte, 0, 4096)}
	}
	defer func() {
		if cap(sc.buf) <= 4*flushLimit {
			sc.reset()
			st.s.bufs.Put(sc)
		}
	}()
	wrote := false
	for w.dirty {
		buf, more := st.collect(sc)
		if len(buf) > 0 {
			if err := st.write(buf, fast); err != nil {
				return err
			}
			wrote = true
		}
		if !more {
			break
		}
	}
	if w.keepalive && !wrote {
		w.keepalive = false
		if err := st.write([]byte(": keepalive\n\n"), fast); err != nil {
			return err
		}
	}
	if mv := w.move; mv != nil {
		w.move = nil
		if err := st.write(mv, fast); err != nil {
			return err
		}
	}
	return nil
}

func (st *stream) write(b []byte, fast bool) error {
	timeout := st.s.cfg.WriteTimeout
	if st.conn != nil {
		if fast {
			n, err := st.writeNow(b)
			if err != nil || n == len(b) {
				return err
			}
			st.rest = append([]byte(nil), b[n:]...)
			return errWouldBlock
		}
		st.conn.SetWriteDeadline(time.Now().Add(timeout))
		_, err := st.conn.Write(b)
		if err != nil && isTimeout(err) {
			st.s.m.droppedSlow.Inc()
		}
		st.conn.SetWriteDeadline(time.Time{})
		return err
	}
	st.rc.SetWriteDeadline(time.Now().Add(timeout))
	if _, err := st.rw.Write(b); err != nil {
		return err
	}
	if err := st.rc.Flush(); err != nil {
		if isTimeout(err) {
			st.s.m.droppedSlow.Inc()
		}
		return err
	}
	return nil
}

// writeNow writes what the socket takes now, never waiting: n < len(b)
// means its send buffer is full (or the stream has no descriptor of its
// own to write to: every write of a TLS stream goes the blocking way).
func (st *stream) writeNow(b []byte) (n int, err error) {
	st.wmu.Lock()
	defer st.wmu.Unlock()
	if st.fd < 0 {
		return 0, nil
	}
	return writeNonBlocking(st.fd, b)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// scratch is what a flush works in, lent from a pool so that a flush
// allocates nothing in the common case.
type scratch struct {
	buf  []byte     // the events to write
	runs []run      // per (topic, epoch), the messages after the cursor
	msgs []*message // the runs' messages, copied out of the history
}

type run struct {
	ti   int
	msgs []*message
}

func (sc *scratch) reset() {
	sc.buf = sc.buf[:0]
	clear(sc.runs)
	sc.runs = sc.runs[:0]
	clear(sc.msgs)
	sc.msgs = sc.msgs[:0]
}

// collect fills sc.buf with the events the stream has not seen, up to
// flushLimit bytes, advancing its cursor; more reports that some remain.
func (st *stream) collect(sc *scratch) (out []byte, more bool) {
	sc.reset()
	buf, runs := sc.buf, sc.runs
	defer func() { sc.buf, sc.runs = out, runs }()
	var twins map[*message][]CursorEntry // of the messages in runs that have any
	truncated := false
	st.s.hub.mu.RLock()
	for i, t := range st.topics {
		reset := false
		for ep, e := range t.epochs {
			if e.head == 0 {
				continue
			}
			k := st.cur.find(t.hash, ep)
			var seen uint64
			if k >= 0 {
				seen = st.cur[k].Seq
			}
			base := e.base
			if len(e.msgs) == 0 {
				base = e.head + 1
			}
			if k < 0 && !st.resumed {
				// An epoch this new client has not met: everything of it
				// came here after the client did, so it is all news, but
				// for history the node caught up on (skipped below).
				seen = base - 1
				k = st.cur.set(k, t.hash, ep, seen)
			}
			if seen+1 < base {
				// History lost seen+1..base-1: say so, then go on.
				reset = true
				seen = base - 1
				st.cur.set(k, t.hash, ep, seen)
			}
			if e.head > seen && seen >= base-1 {
				// Copy: eviction clears the history's slots under the
				// write lock, and this reads them after RUnlock.
				src := e.msgs[seen+1-base:]
				if len(src) > 1024 {
					src, truncated = src[:1024], true
				}
				n := len(sc.msgs)
				sc.msgs = append(sc.msgs, src...)
				runs = append(runs, run{i, sc.msgs[n:len(sc.msgs):len(sc.msgs)]})
				for _, m := range src {
					for _, o := range m.twins {
						if twins == nil {
							twins = map[*message][]CursorEntry{}
						}
						twins[m] = append(twins[m], CursorEntry{t.hash, o.Epoch, o.Seq})
					}
				}
			}
		}
		if reset {
			st.resets = append(st.resets, t.name)
		}
	}
	st.s.hub.mu.RUnlock()

	for _, name := range st.resets {
		st.s.m.resets.Inc()
		buf = append(buf, "id: "...)
		buf = st.cur.Append(buf)
		if st.named {
			buf = append(buf, "\nevent: farmlb-reset\ndata: {\"topic\":\""...)
		} else {
			buf = append(buf, "\ndata: {\"topic\":\""...)
		}
		buf = append(buf, name...) // topic names need no JSON escaping
		if !st.named {
			buf = append(buf, "\",\"reset\":true"...)
		} else {
			buf = append(buf, '"')
		}
		buf = append(buf, ",\"reason\":\"history no longer covers the cursor\"}\n\n"...)
	}
	st.resets = st.resets[:0]

	// Merge the runs in the order this node delivered the messages (each
	// run is in seq order): it respects the order of a publisher that
	// moves from node to node, where publish times from several clocks
	// might not.
	now := time.Now()
	for {
		best := -1
		for r := range runs {
			if len(runs[r].msgs) > 0 && (best < 0 || runs[r].msgs[0].local < runs[best].msgs[0].local) {
				best = r
			}
		}
		if best < 0 {
			return buf, truncated
		}
		if len(buf) >= flushLimit {
			return buf, true
		}
		m := runs[best].msgs[0]
		runs[best].msgs = runs[best].msgs[1:]
		t := st.topics[runs[best].ti]
		// A copy of a message the stream has shown already under another
		// id (its twin: same Idempotency-Key) is passed over.
		shown := false
		for _, tw := range twins[m] {
			if k := st.cur.find(tw.Topic, tw.Epoch); k >= 0 && st.cur[k].Seq >= tw.Seq {
				shown = true
			}
		}
		st.cur.set(st.cur.find(t.hash, m.Epoch), t.hash, m.Epoch, m.Seq)
		if shown || st.old(m) {
			continue
		}
		buf = appendEvent(buf, st.cur, m, st.named)
		st.s.m.fanout.Observe(now.Sub(m.At).Seconds())
		if m.At.After(st.start) && !m.fetched {
			// Live news, not history the stream or the node catches up
			// on: what overload detection watches.
			st.s.fan.observe(now.Sub(m.At))
		}
	}
}

// old says that a new client (one that gave no cursor) is not to see m:
// history this node caught up on that was published before the client
// came. News (a live message, a gap or dependency filled because of one)
// is shown whatever the origin's clock says; the node can be still
// catching up when a client comes, so this holds for every message, not
// only for epochs the client meets later.
func (st *stream) old(m *message) bool {
	return !st.resumed && m.fetched && m.At.Before(st.start)
}

// appendEvent appends one SSE event: the stream's cursor as id, then the
// message, as an unnamed event whose data is a JSON envelope
// {"topic","data"} (which a stock EventSource's onmessage receives), or,
// named, with the topic as event name and the payload as data lines
// (addEventListener(topic)).
func appendEvent(buf []byte, cur Cursor, m *message, named bool) []byte {
	buf = append(buf, "id: "...)
	buf = cur.Append(buf)
	buf = append(buf, '\n')
	if named {
		return append(buf, m.sseBody()...)
	}
	return append(buf, m.sseEnvelope()...)
}

// sseBody is the part of a message's named event every stream shares,
// rendered once: the event name and the data lines.
func (m *message) sseBody() []byte {
	m.bodyOnce.Do(func() { m.body = renderBody(m) })
	return m.body
}

// sseEnvelope is the part of a message's unnamed event every stream
// shares, rendered once: one data line of {"topic","data"}.
func (m *message) sseEnvelope() []byte {
	m.envOnce.Do(func() { m.env = renderEnvelope(m) })
	return m.env
}

func renderEnvelope(m *message) []byte {
	buf := make([]byte, 0, len(m.Topic)+len(m.Data)+len(m.Data)/8+32)
	buf = append(buf, `data: {"topic":"`...)
	buf = append(buf, m.Topic...) // topic names need no JSON escaping
	buf = append(buf, `","data":`...)
	buf = appendJSONString(buf, m.Data)
	return append(buf, "}\n\n"...)
}

// appendJSONString appends s as a JSON string: quotes, backslashes and
// control characters escaped (so the result holds no line break and stays
// one SSE data line), U+2028 and U+2029 too (JavaScript source that embeds
// it stays valid), bytes that are not UTF-8 as U+FFFD (publish takes only
// UTF-8; this guards what a peer sends).
func appendJSONString(buf, s []byte) []byte {
	const hex = "0123456789abcdef"
	buf = append(buf, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				buf = append(buf, '\\', c)
			case c == '\n':
				buf = append(buf, '\\', 'n')
			case c == '\r':
				buf = append(buf, '\\', 'r')
			case c == '\t':
				buf = append(buf, '\\', 't')
			case c < 0x20 || c == 0x7f:
				buf = append(buf, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			default:
				buf = append(buf, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRune(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			buf = append(buf, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			buf = append(buf, '\\', 'u', '2', '0', '2', hex[r&0xf])
		default:
			buf = append(buf, s[i:i+size]...)
		}
		i += size
	}
	return append(buf, '"')
}

func renderBody(m *message) []byte {
	buf := make([]byte, 0, len(m.Topic)+len(m.Data)+16)
	buf = append(buf, "event: "...)
	buf = append(buf, m.Topic...)
	buf = append(buf, '\n')
	data := m.Data
	for {
		i := bytes.IndexAny(data, "\r\n")
		buf = append(buf, "data: "...)
		if i < 0 {
			buf = append(buf, data...)
			buf = append(buf, '\n')
			break
		}
		buf = append(buf, data[:i]...)
		buf = append(buf, '\n')
		if data[i] == '\r' && i+1 < len(data) && data[i+1] == '\n' {
			i++
		}
		data = data[i+1:]
	}
	return append(buf, '\n')
}

// find returns the index of (topic, epoch) in the sorted cursor, or -1.
func (c Cursor) find(topic uint32, epoch uint64) int {
	i := sort.Search(len(c), func(i int) bool {
		return c[i].Topic > topic || (c[i].Topic == topic && c[i].Epoch >= epoch)
	})
	if i < len(c) && c[i].Topic == topic && c[i].Epoch == epoch {
		return i
	}
	return -1
}

// set sets the seq of (topic, epoch) at index k (or inserts it when k < 0)
// and returns its index.
func (c *Cursor) set(k int, topic uint32, epoch uint64, seq uint64) int {
	if k >= 0 {
		(*c)[k].Seq = seq
		return k
	}
	*c = append(*c, CursorEntry{topic, epoch, seq})
	c.Sort()
	return c.find(topic, epoch)
}

// close ends the stream: the connection is closed and the node's user
// count goes down. err is why (nil: the server ended it).
func (st *stream) close(err error) {
	st.mu.Lock()
	if st.closed {
		st.mu.Unlock()
		return
	}
	st.closed = true
	close(st.done)
	conn, key := st.conn, st.pollKey
	st.mu.Unlock()
	s := st.s
	s.hub.mu.Lock()
	for _, t := range st.topics {
		t.unsubscribeLocked(st)
	}
	s.hub.mu.Unlock()
	if conn != nil {
		if s.poll != nil {
			s.poll.remove(key)
		}
		st.wmu.Lock()
		st.fd = -1
		st.wmu.Unlock()
		conn.Close()
	}
	s.removeStream(st)
}

// moveEvent is the farmlb-move event that asks a client to reconnect
// elsewhere.
func moveEvent(reason, url string, delay time.Duration) []byte {
	b := []byte("event: farmlb-move\ndata: {\"reason\":")
	b = strconv.AppendQuote(b, reason)
	b = append(b, ",\"url\":"...)
	b = strconv.AppendQuote(b, url)
	b = append(b, ",\"delay_ms\":"...)
	b = strconv.AppendInt(b, delay.Milliseconds(), 10)
	return append(b, "}\n\n"...)
}

// flushQueue hands work to the flush workers: HTTP/1.1 streams a flusher
// was started for (poke), and chunks of topics' subscriber snapshots to
// wake (a publish). It never blocks: topics wake their streams while they
// hold the hub's lock. It stays small however fast publishes come: a
// stream is in items at most once (its running flag), and a chunk at most
// once until a worker takes it (wakeSet.queued) — a stream woken once
// pulls everything new since its cursor.
type flushQueue struct {
	mu     sync.Mutex
	items  []*stream  // flusher started: run it
	chunks []chunkRef // to wake, each stream by the worker that takes it
	wake   chan struct{}
}

// wakeSet is a topic's subscriber snapshot as the flush workers take it.
// streams is never written once built (workers read it without the hub's
// lock); queued says, per chunk of wakeChunk streams, whether the chunk
// waits in the queue (flushQueue.mu).
type wakeSet struct {
	streams []*stream
	queued  []bool
}

type chunkRef struct {
	ws *wakeSet
	i  int
}

// wakeChunk is how many streams of a topic one worker takes at a time:
// large enough that the queue's lock is taken rarely, small enough that
// the workers share a topic's streams.
const wakeChunk = 128

func (q *flushQueue) push(st *stream) {
	q.mu.Lock()
	q.items = append(q.items, st)
	q.mu.Unlock()
	q.signal()
}

// pushWake queues the chunks of ws that are not queued already, after
// dropping what is queued of old, an earlier snapshot of the same topic
// (nil, or ws itself, for none).
func (q *flushQueue) pushWake(ws, old *wakeSet) {
	q.mu.Lock()
	if old != nil && old != ws && slices.Contains(old.queued, true) {
		q.chunks = slices.DeleteFunc(q.chunks, func(r chunkRef) bool { return r.ws == old })
		clear(old.queued)
	}
	for i, queued := range ws.queued {
		if !queued {
			ws.queued[i] = true
			q.chunks = append(q.chunks, chunkRef{ws, i})
		}
	}
	q.mu.Unlock()
	q.signal()
}

func (q *flushQueue) signal() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// pop takes up to len(batch) started streams, or else one chunk to wake
// (which a publish may queue again from then on: no wake is lost); it
// returns false once done is closed.
func (q *flushQueue) pop(done <-chan struct{}, batch []*stream) (started []*stream, wake []*stream, ok bool) {
	for {
		select {
		case <-done:
			return nil, nil, false
		default:
		}
		q.mu.Lock()
		if n := copy(batch, q.items); n > 0 {
			clear(q.items[:n])
			q.items = q.items[n:]
			if len(q.items) == 0 {
				q.items = nil
			}
			started = batch[:n]
		} else if len(q.chunks) > 0 {
			r := q.chunks[0]
			q.chunks[0] = chunkRef{}
			q.chunks = q.chunks[1:]
			if len(q.chunks) == 0 {
				q.chunks = nil
			}
			r.ws.queued[r.i] = false
			wake = r.ws.streams[r.i*wakeChunk : min((r.i+1)*wakeChunk, len(r.ws.streams))]
		}
		more := len(q.items) > 0 || len(q.chunks) > 0
		q.mu.Unlock()
		if started != nil || wake != nil {
			if more { // let another worker help
				q.signal()
			}
			return started, wake, true
		}
		select {
		case <-done:
			return nil, nil, false
		case <-q.wake:
		}
	}
}

// flushWorker writes to the HTTP/1.1 streams that have work.
func (s *Server) flushWorker() {
	batch := make([]*stream, 32)
	for {
		started, wake, ok := s.flushq.pop(s.ctx.Done(), batch)
		if !ok {
			return
		}
		for _, st := range started {
			st.runFast()
		}
		clear(started)
		for _, st := range wake {
			st.wake()
		}
	}
}
