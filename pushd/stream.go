package pushd

import (
	"bytes"
	"errors"
	"net"
	"net/http"
	"sort"
	"strconv"
	"sync"
	"syscall"
	"time"
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
	start   time.Time // when a new (not resumed) client came

	mu        sync.Mutex
	running   bool // a flusher goroutine is on it
	dirty     bool // topics moved on since the last flush
	keepalive bool
	move      []byte // a farmlb-move event to send
	closed    bool
	done      chan struct{}

	// HTTP/1.1: the hijacked connection; HTTP/2: the handler writes.
	conn    net.Conn
	raw     syscall.RawConn // the TCP socket, for writes that never block
	rest    []byte          // what a write that would block left over
	pollKey uint64
	wake    chan struct{}
	rw      http.ResponseWriter
	rc      *http.ResponseController
}

// notify says that one of the stream's topics moved on.
func (st *stream) notify() { st.poke(func() { st.dirty = true }) }

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
		select {
		case st.wake <- struct{}{}:
		default:
		}
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
		st.mu.Lock()
		if st.closed || !(st.dirty || st.keepalive || st.move != nil) {
			st.running = false
			st.mu.Unlock()
			return
		}
		w := st.takeLocked()
		st.mu.Unlock()
		err := st.flush(&w, true)
		if err == errWouldBlock {
			st.mu.Lock()
			st.dirty = true // collect finds what remains, if anything
			if w.move != nil {
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
		st.mu.Lock()
		if st.closed || !(st.dirty || st.keepalive || st.move != nil) {
			st.running = false
			st.mu.Unlock()
			return
		}
		w := st.takeLocked()
		st.mu.Unlock()
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
	bp, _ := st.s.bufs.Get().(*[]byte)
	if bp == nil {
		b := make([]byte, 0, 4096)
		bp = &b
	}
	defer func() {
		if cap(*bp) <= 4*flushLimit {
			*bp = (*bp)[:0]
			st.s.bufs.Put(bp)
		}
	}()
	wrote := false
	for w.dirty {
		buf, more := st.collect((*bp)[:0])
		*bp = buf
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
		if fast && st.raw != nil {
			n, err := tryWrite(st.raw, b)
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

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// collect appends to buf the events the stream has not seen, up to
// flushLimit bytes, advancing its cursor; more reports that some remain.
func (st *stream) collect(buf []byte) (out []byte, more bool) {
	type run struct {
		ti   int
		msgs []*message
	}
	var runs []run
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
				// An epoch this new client has not met: it may be old
				// history a fill brought in after the stream started
				// (a node that just restarted). A new client sees what
				// is published from its start on.
				i := sort.Search(len(e.msgs), func(i int) bool { return !e.msgs[i].At.Before(st.start) })
				seen = base - 1 + uint64(i)
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
				runs = append(runs, run{i, append([]*message(nil), src...)})
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
		buf = append(buf, "\nevent: farmlb-reset\ndata: {\"topic\":\""...)
		buf = append(buf, name...)
		buf = append(buf, "\",\"reason\":\"history no longer covers the cursor\"}\n\n"...)
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
		if shown {
			continue
		}
		buf = appendEvent(buf, st.cur, m)
		st.s.m.fanout.Observe(now.Sub(m.At).Seconds())
	}
}

// appendEvent appends one SSE event: the stream's cursor as id, the topic
// as event name, the payload split into data lines.
func appendEvent(buf []byte, cur Cursor, m *message) []byte {
	buf = append(buf, "id: "...)
	buf = cur.Append(buf)
	buf = append(buf, '\n')
	return append(buf, m.sseBody()...)
}

// sseBody is the part of a message's event every stream shares, rendered
// once: the event name and the data lines.
func (m *message) sseBody() []byte {
	m.bodyOnce.Do(func() { m.body = renderBody(m) })
	return m.body
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
		delete(t.subs, st)
	}
	s.hub.mu.Unlock()
	if conn != nil {
		if s.poll != nil {
			s.poll.remove(key)
		}
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

// flushQueue hands HTTP/1.1 streams with work to the flush workers. It
// never blocks (topics wake streams while they hold the hub's lock).
type flushQueue struct {
	mu    sync.Mutex
	items []*stream
	wake  chan struct{}
}

func (q *flushQueue) push(st *stream) {
	q.mu.Lock()
	q.items = append(q.items, st)
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// pop takes up to len(batch) streams; it returns 0 when ctx ends.
func (q *flushQueue) pop(done <-chan struct{}, batch []*stream) int {
	for {
		q.mu.Lock()
		n := copy(batch, q.items)
		if n > 0 {
			clear(q.items[:n])
			q.items = q.items[n:]
			if len(q.items) == 0 {
				q.items = nil
			}
			more := len(q.items) > 0
			q.mu.Unlock()
			if more { // let another worker help
				select {
				case q.wake <- struct{}{}:
				default:
				}
			}
			return n
		}
		q.mu.Unlock()
		select {
		case <-done:
			return 0
		case <-q.wake:
		}
	}
}

// flushWorker writes to the HTTP/1.1 streams that have work.
func (s *Server) flushWorker() {
	batch := make([]*stream, 32)
	for {
		n := s.flushq.pop(s.ctx.Done(), batch)
		if n == 0 {
			return
		}
		for _, st := range batch[:n] {
			st.runFast()
		}
		clear(batch[:n])
	}
}
