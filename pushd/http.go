package pushd

import (
	"crypto/subtle"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/farmlb/farmlb/farm"
	"github.com/farmlb/farmlb/webclient"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

//go:embed dashboard
var dashboardFS embed.FS

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	static, _ := fs.Sub(dashboardFS, "dashboard")
	mux.Handle("GET /{$}", http.FileServerFS(static))
	mux.Handle("GET /dashboard/", http.StripPrefix("/dashboard/", http.FileServerFS(static)))
	mux.HandleFunc("GET /farm", s.handleFarm)
	mux.HandleFunc("GET /farm/timeline", s.handleTimeline)
	mux.HandleFunc("GET /stream", s.handleStream)
	mux.HandleFunc("POST /publish/{topic}", s.handlePublish)
	mux.HandleFunc("POST /admin/drain", s.handleDrain)
	mux.HandleFunc("POST /admin/undrain", s.handleUndrain)
	mux.HandleFunc("GET /healthz", s.handleHealthz)
	webclient.Register(mux)
	if s.cfg.Gatherer != nil {
		mux.Handle("GET /metrics", promhttp.HandlerFor(s.cfg.Gatherer, promhttp.HandlerOpts{}))
	}
	for _, p := range []string{"/farm", "/stream", "/publish/{topic}"} {
		mux.HandleFunc("OPTIONS "+p, handlePreflight)
	}
	return mux
}

// cors lets a page from any origin read the answer: the farm list and the
// streams are public, and publish needs a token that a page must hold.
func cors(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", "*")
	h.Set("Access-Control-Expose-Headers", "Farmlb-Node, Retry-After, Location")
}

func handlePreflight(w http.ResponseWriter, r *http.Request) {
	cors(w)
	h := w.Header()
	h.Set("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
	h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, Idempotency-Key, Last-Event-ID")
	h.Set("Access-Control-Max-Age", "600")
	w.WriteHeader(http.StatusNoContent)
}

// jsonError answers with {"error": msg} (and "try" when a URL is given).
func jsonError(w http.ResponseWriter, code int, msg string, try string) {
	body := map[string]string{"error": msg}
	if try != "" {
		body["try"] = try
	}
	writeJSON(w, code, body)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	w.Write(append(b, '\n'))
}

func (s *Server) handleFarm(w http.ResponseWriter, r *http.Request) {
	cors(w)
	l := s.mesh.Table().Clone()
	l.Reporter = s.self
	l.GeneratedAt = time.Now().UTC()
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Farmlb-Node", s.self)
	if r.URL.Query().Get("format") == "text" || strings.HasPrefix(r.Header.Get("Accept"), "text/plain") {
		b, err := farm.MarshalText(l)
		if err != nil {
			jsonError(w, http.StatusInternalServerError, err.Error(), "")
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write(b)
		return
	}
	b, err := farm.MarshalJSON(l)
	if err != nil {
		jsonError(w, http.StatusInternalServerError, err.Error(), "")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(append(b, '\n'))
}

func (s *Server) handleHealthz(w http.ResponseWriter, r *http.Request) {
	cur := s.State()
	st := cur.Status.String()
	code := http.StatusOK
	if s.ctx.Err() != nil {
		st, code = "STOPPING", http.StatusServiceUnavailable
	}
	body := map[string]any{"node": s.self, "status": st, "streams": s.Users()}
	if cur.Reason != "" {
		body["reason"] = cur.Reason
	}
	writeJSON(w, code, body)
}

// bearer checks the Authorization header against a token and answers 401
// or 403 when it does not match.
func bearer(w http.ResponseWriter, r *http.Request, token string) bool {
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || got == "" {
		w.Header().Set("WWW-Authenticate", `Bearer realm="farmlb"`)
		jsonError(w, http.StatusUnauthorized, "missing bearer token (Authorization: Bearer <token>)", "")
		return false
	}
	if token == "" || subtle.ConstantTimeCompare([]byte(got), []byte(token)) != 1 {
		jsonError(w, http.StatusForbidden, "wrong token", "")
		return false
	}
	return true
}

func (s *Server) handlePublish(w http.ResponseWriter, r *http.Request) {
	cors(w)
	if !bearer(w, r, s.cfg.PublishToken) {
		return
	}
	topic := r.PathValue("topic")
	if err := CheckTopic(topic); err != nil {
		jsonError(w, http.StatusBadRequest, err.Error(), "")
		return
	}
	key := r.Header.Get("Idempotency-Key")
	if len(key) > MaxKeyLen || !printable(key) {
		jsonError(w, http.StatusBadRequest, fmt.Sprintf("Idempotency-Key must be at most %d printable ASCII characters", MaxKeyLen), "")
		return
	}
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, int64(s.cfg.MaxPayload)))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			jsonError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("payload larger than %d bytes", s.cfg.MaxPayload), "")
			return
		}
		jsonError(w, http.StatusBadRequest, "reading the body: "+err.Error(), "")
		return
	}
	if !utf8.Valid(data) {
		jsonError(w, http.StatusBadRequest, "payload must be UTF-8 text (SSE carries text)", "")
		return
	}
	id, dup, err := s.hub.publish(r.Context(), topic, key, data)
	switch {
	case errors.Is(err, errNotReplicated):
		s.m.publishes.WithLabelValues("unreplicated").Inc()
		w.Header().Set("Retry-After", "1")
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "no second node acknowledged in time; retry with the same Idempotency-Key", "id": id, "topic": topic})
		return
	case err != nil:
		s.m.publishes.WithLabelValues("error").Inc()
		jsonError(w, http.StatusServiceUnavailable, err.Error(), "")
		return
	}
	res := "ok"
	if dup {
		res = "duplicate"
	}
	s.m.publishes.WithLabelValues(res).Inc()
	writeJSON(w, http.StatusOK, map[string]any{"id": id, "topic": topic, "duplicate": dup})
}

func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// parseStreamRequest checks the topics and reads the cursor.
func (s *Server) parseStreamRequest(r *http.Request) (topics []string, cur Cursor, named bool, curErr error, err error) {
	q := r.URL.Query()
	seen := map[uint32]string{}
	for _, t := range q["topic"] {
		for _, t := range strings.Split(t, ",") {
			if err := CheckTopic(t); err != nil {
				return nil, nil, false, nil, err
			}
			if prev, ok := seen[TopicHash(t)]; ok {
				if prev == t {
					continue
				}
				return nil, nil, false, nil, fmt.Errorf("topics %q and %q cannot share a stream (their hashes collide)", prev, t)
			}
			seen[TopicHash(t)] = t
			topics = append(topics, t)
		}
	}
	if len(topics) == 0 {
		return nil, nil, false, nil, errors.New("no topic: ask for one or more with ?topic=NAME")
	}
	if len(topics) > s.cfg.MaxTopics {
		return nil, nil, false, nil, fmt.Errorf("%d topics, at most %d per stream", len(topics), s.cfg.MaxTopics)
	}
	switch q.Get("event") {
	case "", "message":
	case "topic":
		named = true
	default:
		return nil, nil, false, nil, fmt.Errorf("event=%q: want event=message (the default: onmessage gets every topic, data {\"topic\",\"data\"}) or event=topic (events named by topic, raw data)", q.Get("event"))
	}
	raw := q.Get("cursor")
	if raw == "" {
		raw = r.Header.Get("Last-Event-ID")
	}
	cur, curErr = ParseCursor(strings.TrimSpace(raw))
	return topics, cur, named, curErr, nil
}

func (s *Server) handleStream(w http.ResponseWriter, r *http.Request) {
	cors(w)
	topics, cur, named, curErr, err := s.parseStreamRequest(r)
	if err != nil {
		jsonError(w, http.StatusBadRequest, err.Error(), "")
		return
	}
	st := &stream{s: s, done: make(chan struct{}), wakec: make(chan struct{}, 1), fd: -1, named: named}
	if reason := s.admit(st); reason != "" {
		s.m.refused.WithLabelValues(reason).Inc()
		try := s.roomElsewhere()
		w.Header().Set("Retry-After", strconv.Itoa(1+s.randN(5)))
		if try != "" {
			w.Header().Set("Location", try+"/stream?"+r.URL.RawQuery)
		}
		jsonError(w, http.StatusServiceUnavailable, reason, try)
		return
	}
	s.subscribe(st, topics, cur, curErr != nil || (cur == nil && r.Header.Get("Last-Event-ID") != ""))
	hj, canHijack := w.(http.Hijacker)
	if r.ProtoMajor == 1 && canHijack {
		s.serveHijacked(st, hj, r)
		return
	}
	s.serveHandler(st, w, r)
}

// subscribe adds the stream to its topics and sets its cursor: the one the
// client resumes from, or, for a new client, the topics' heads (it sees
// what is published from now on). A cursor that cannot be read resets
// every topic.
func (s *Server) subscribe(st *stream, names []string, cur Cursor, bad bool) {
	s.hub.mu.Lock()
	defer s.hub.mu.Unlock()
	want := map[uint32]bool{}
	for _, n := range names {
		t := s.hub.topicLocked(n)
		t.subscribeLocked(st)
		st.topics = append(st.topics, t)
		want[t.hash] = true
	}
	if bad {
		for _, t := range st.topics {
			st.resets = append(st.resets, t.name)
		}
		cur = nil
	}
	st.start = time.Now()
	if cur != nil {
		st.resumed = true
		for _, e := range cur {
			if want[e.Topic] {
				st.cur = append(st.cur, e)
			}
		}
		st.dirty = true
		return
	}
	for _, t := range st.topics {
		for _, e := range t.epochs {
			if e.head > 0 {
				st.cur = append(st.cur, CursorEntry{t.hash, e.epoch, e.head})
			}
		}
	}
	st.cur.Sort()
	st.dirty = len(st.resets) > 0
}

// sseHeader is written once per stream.
func (s *Server) sseHeader(proto string) []byte {
	return []byte(proto + " 200 OK\r\n" +
		"Content-Type: text/event-stream; charset=utf-8\r\n" +
		"Cache-Control: no-cache\r\n" +
		"Connection: close\r\n" +
		"X-Accel-Buffering: no\r\n" +
		"Access-Control-Allow-Origin: *\r\n" +
		"Access-Control-Expose-Headers: Farmlb-Node\r\n" +
		"Farmlb-Node: " + s.self + "\r\n\r\n")
}

// firstEvent tells the client its starting cursor (an id with no data sets
// EventSource's last id without firing an event) and how soon to retry.
func (st *stream) firstEvent(b []byte) []byte {
	b = append(b, "retry: 1000\nid: "...)
	b = st.cur.Append(b)
	return append(b, "\n\n"...)
}

// serveHijacked takes the HTTP/1.1 connection over: headers are written by
// hand, the handler returns, and the stream keeps only the socket.
func (s *Server) serveHijacked(st *stream, hj http.Hijacker, r *http.Request) {
	// The bufio reader and writer net/http hands over are dropped: the
	// stream writes straight to the socket and never reads.
	conn, _, err := hj.Hijack()
	if err != nil {
		st.close(err)
		return
	}
	proto := "HTTP/1.1"
	if r.ProtoMinor == 0 {
		proto = "HTTP/1.0"
	}
	conn.SetReadDeadline(time.Time{})
	conn.SetWriteDeadline(time.Now().Add(s.cfg.WriteTimeout))
	if _, err := conn.Write(st.firstEvent(s.sseHeader(proto))); err != nil {
		conn.Close()
		st.close(err)
		return
	}
	conn.SetWriteDeadline(time.Time{}) // writes that never block need none
	st.mu.Lock()
	st.conn = conn
	st.fd = socketFD(conn)
	closed := st.closed
	st.mu.Unlock()
	if closed { // Shutdown came first
		conn.Close()
		return
	}
	if s.poll != nil {
		key, err := s.poll.add(conn, st)
		if err != nil {
			s.log.Debug("close poller", "err", err)
		}
		st.mu.Lock()
		st.pollKey = key
		closed := st.closed
		st.mu.Unlock()
		if closed { // closed meanwhile, before the key was known
			s.poll.remove(key)
		}
	}
	st.poke(func() {})
}

// serveHandler streams over the ResponseWriter (HTTP/2): the handler's
// goroutine stays and writes.
func (s *Server) serveHandler(st *stream, w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "text/event-stream; charset=utf-8")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	h.Set("Farmlb-Node", s.self)
	w.WriteHeader(http.StatusOK)
	st.rw, st.rc = w, http.NewResponseController(w)
	// An HTTP/2 write deadline is a timer of the stream's own that resets
	// the stream when it fires, whether the write is done or not: lift it
	// after each write, or an idle stream is cut WriteTimeout after its
	// last one.
	if err := st.write(st.firstEvent(nil), false); err != nil {
		st.close(err)
		return
	}
	st.rc.SetWriteDeadline(time.Time{})
	st.mu.Lock()
	st.running = true
	st.mu.Unlock()
	for {
		st.mu.Lock()
		wk := st.takeLocked()
		st.mu.Unlock()
		if wk.dirty || wk.keepalive || wk.move != nil {
			if err := st.flush(&wk, false); err != nil {
				st.close(err)
				return
			}
			st.rc.SetWriteDeadline(time.Time{})
			continue
		}
		select {
		case <-st.wakec:
		case <-st.done:
			return
		case <-r.Context().Done():
			st.close(r.Context().Err())
			return
		}
	}
}

// admit counts a new stream in, or says why not (at capacity, draining,
// failing a health check, overloaded).
func (s *Server) admit(st *stream) string {
	s.streamsMu.Lock()
	if s.draining {
		s.streamsMu.Unlock()
		return "draining: this node takes no new streams"
	}
	if why := s.refusing.Load(); why != nil {
		s.streamsMu.Unlock()
		return *why
	}
	if s.ctx.Err() != nil {
		s.streamsMu.Unlock()
		return "shutting down"
	}
	if c := s.cfg.Capacity; c > 0 && len(s.streams) >= c {
		s.streamsMu.Unlock()
		return fmt.Sprintf("at capacity (%d streams)", c)
	}
	s.streams[st] = struct{}{}
	n := len(s.streams)
	s.streamsMu.Unlock()
	s.usersChanged(n)
	return ""
}

func (s *Server) removeStream(st *stream) {
	s.streamsMu.Lock()
	if _, ok := s.streams[st]; !ok {
		s.streamsMu.Unlock()
		return
	}
	delete(s.streams, st)
	n := len(s.streams)
	if n == 0 && s.draining && s.drained != nil {
		select {
		case <-s.drained:
		default:
			close(s.drained)
		}
	}
	s.streamsMu.Unlock()
	s.usersChanged(n)
}

func (s *Server) usersChanged(n int) {
	s.m.streams.Set(float64(n))
	s.mesh.SetUsers(n)
}

// openStreams returns a copy of the set of open streams, to act on each
// without holding streamsMu.
func (s *Server) openStreams() []*stream {
	s.streamsMu.Lock()
	defer s.streamsMu.Unlock()
	return s.openStreamsLocked()
}

// openStreamsLocked is openStreams for a caller holding streamsMu.
func (s *Server) openStreamsLocked() []*stream {
	all := make([]*stream, 0, len(s.streams))
	for st := range s.streams {
		all = append(all, st)
	}
	return all
}

// Users is the number of open streams.
func (s *Server) Users() int {
	s.streamsMu.Lock()
	defer s.streamsMu.Unlock()
	return len(s.streams)
}

// roomElsewhere is the URL of another node a refused client should try:
// the least loaded eligible node of the best priority group.
func (s *Server) roomElsewhere() string {
	l := s.mesh.Table().Clone()
	others := l.Servers[:0]
	for _, srv := range l.Servers {
		if srv.Name != s.self {
			others = append(others, srv)
		}
	}
	l.Servers = others
	idx, err := farm.Candidates(l)
	if err != nil || len(idx) == 0 {
		return ""
	}
	best := idx[0]
	for _, i := range idx[1:] {
		if l.Servers[i].Users < l.Servers[best].Users {
			best = i
		}
	}
	return strings.TrimSuffix(l.Servers[best].URL, "/")
}

// keepAlive pokes every stream each KeepAlive interval; a stream that wrote
// nothing in the meantime sends a comment line.
func (s *Server) keepAlive() {
	t := time.NewTicker(s.cfg.KeepAlive)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		}
		for _, st := range s.openStreams() {
			st.poke(func() { st.keepalive = true })
		}
	}
}
