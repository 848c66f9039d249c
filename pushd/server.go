// Package pushd is the push server of a farmlb farm: one node serves
// Server-Sent Events streams, accepts publishes and replicates them to every
// other node over the mesh, answers the farm list, and drains on request.
package pushd

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/farmlb/farmlb/farm"
	"github.com/prometheus/client_golang/prometheus"
)

// Mesh is what pushd needs from the farm's mesh; *peerlink.Mesh implements
// it. Its methods are safe for concurrent use.
type Mesh interface {
	farm.Source
	// Self is this node's name in the farm.
	Self() string
	// SetUsers reports this node's open streams (coalesced by the mesh).
	SetUsers(n int)
	// SetState sets this node's status and the reason for it (see
	// farm.Server.Reason): UP or DRAINING, or DOWN with a reason (alive,
	// sending its clients elsewhere).
	SetState(s farm.Status, reason string)
	// Send delivers body to peer's handler (the peer's Server.HandlePeer)
	// reliably and in order, and returns once the peer accepted it.
	Send(ctx context.Context, peer string, body []byte) error
}

// Config configures a Server. The zero value of every field but Mesh means
// its default.
type Config struct {
	// Mesh links this node to the farm. Required.
	Mesh Mesh
	// Listen is the HTTP listen address, used when Listen is called
	// without Listener. Default "127.0.0.1:0".
	Listen string
	// Listener, if set, is used instead of binding Listen.
	Listener net.Listener
	// skew is added to this node's clock where it stamps a message's
	// publish time: tests play machines whose clocks differ.
	skew time.Duration
	// TLS, if set, serves HTTPS (HTTP/1.1 and HTTP/2 by ALPN) instead of
	// cleartext HTTP/1.1 and h2c.
	TLS *tls.Config
	// PublishToken is the bearer token POST /publish requires. Empty
	// refuses every publish: a farm never publishes unauthenticated.
	PublishToken string
	// AdminToken is the bearer token /admin/* requires. Default:
	// PublishToken.
	AdminToken string
	// HistorySize is how many messages each topic keeps for resuming
	// clients. Default 1000: a minute of a busy ticker, ~100 KiB per topic.
	HistorySize int
	// HistoryAge is how long a message stays in history. Default 10
	// minutes: longer than any reconnect, short enough to bound memory.
	HistoryAge time.Duration
	// KeepAlive is the interval of ": keepalive" comments on idle streams.
	// Default 15 s: below the 30–60 s idle timeouts of common proxies.
	KeepAlive time.Duration
	// MaxPayload bounds a published message. Default 64 KiB.
	MaxPayload int
	// MaxTopics bounds the topics of one stream. Default 64.
	MaxTopics int
	// Capacity is the most open streams; further ones get 503 with a
	// hint. Default 0: no limit.
	Capacity int
	// DrainWindow spreads the move events of a drain over this long, so
	// that clients do not all reconnect in the same second. Default 30 s.
	DrainWindow time.Duration
	// MoveGrace is how long a stream stays open after its move event, so
	// that the client connects elsewhere before it is cut off. Default 5 s.
	MoveGrace time.Duration
	// PublishTimeout bounds how long a publish waits for a second node to
	// hold the message. Default 5 s: longer than the mesh needs to notice
	// a dead peer.
	PublishTimeout time.Duration
	// ReplicaWait is how long a publish, once held by two nodes, waits
	// for every other UP node to hold it before answering. Default
	// 500 ms: the mesh declares a dead peer DOWN sooner, so this only
	// bounds the wait on a live but slow peer; meanwhile a publisher that
	// publishes its next message on another node keeps its order.
	ReplicaWait time.Duration
	// WriteTimeout drops a client whose socket accepts nothing for this
	// long (a slow or vanished client). Default 10 s.
	WriteTimeout time.Duration
	// IdempotencyTTL is how long an Idempotency-Key is remembered.
	// Default 10 minutes (as HistoryAge).
	IdempotencyTTL time.Duration
	// Health is the node's own health checks (health.go). Default: none.
	Health Health
	// Overload is the overload detection (overload.go); each zero field
	// takes DefaultOverload's value.
	Overload Overload
	// Logger receives structured logs. Default: discard.
	Logger *slog.Logger
	// Registerer receives the metrics. Default: a private registry.
	Registerer prometheus.Registerer
	// Gatherer serves GET /metrics. Default: Registerer when it is a
	// *prometheus.Registry, else none.
	Gatherer prometheus.Gatherer
	// Rand seeds the epoch and the drain order. Default: random.
	Rand *rand.Rand
}

// DefaultConfig returns a Config with every default filled in (Mesh unset).
func DefaultConfig() Config {
	return Config{
		Listen:         "127.0.0.1:0",
		HistorySize:    1000,
		HistoryAge:     10 * time.Minute,
		KeepAlive:      15 * time.Second,
		MaxPayload:     64 << 10,
		MaxTopics:      64,
		DrainWindow:    30 * time.Second,
		MoveGrace:      5 * time.Second,
		PublishTimeout: 5 * time.Second,
		ReplicaWait:    500 * time.Millisecond,
		WriteTimeout:   10 * time.Second,
		IdempotencyTTL: 10 * time.Minute,
	}
}

func (c *Config) populate() error {
	if c.Mesh == nil {
		return errors.New("pushd: Config.Mesh is required")
	}
	d := DefaultConfig()
	if c.Listen == "" {
		c.Listen = d.Listen
	}
	if c.AdminToken == "" {
		c.AdminToken = c.PublishToken
	}
	setDefault(&c.HistorySize, d.HistorySize)
	setDefault(&c.HistoryAge, d.HistoryAge)
	setDefault(&c.KeepAlive, d.KeepAlive)
	setDefault(&c.MaxPayload, d.MaxPayload)
	setDefault(&c.MaxTopics, d.MaxTopics)
	setDefault(&c.DrainWindow, d.DrainWindow)
	setDefault(&c.MoveGrace, d.MoveGrace)
	setDefault(&c.PublishTimeout, d.PublishTimeout)
	setDefault(&c.WriteTimeout, d.WriteTimeout)
	setDefault(&c.ReplicaWait, d.ReplicaWait)
	setDefault(&c.IdempotencyTTL, d.IdempotencyTTL)
	if err := c.Health.populate(); err != nil {
		return err
	}
	c.Overload.populate()
	if c.MaxPayload > maxWirePayload {
		return fmt.Errorf("pushd: MaxPayload %d is above the wire limit %d", c.MaxPayload, maxWirePayload)
	}
	if c.MaxTopics > MaxCursorEntries/2 {
		return fmt.Errorf("pushd: MaxTopics %d is above %d", c.MaxTopics, MaxCursorEntries/2)
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Registerer == nil {
		r := prometheus.NewRegistry()
		c.Registerer, c.Gatherer = r, r
	}
	if c.Gatherer == nil {
		if g, ok := c.Registerer.(prometheus.Gatherer); ok {
			c.Gatherer = g
		}
	}
	if c.Rand == nil {
		c.Rand = rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	}
	return nil
}

func setDefault[T comparable](v *T, d T) {
	var zero T
	if *v == zero {
		*v = d
	}
}

// Server is one pushd node.
type Server struct {
	cfg    Config
	log    *slog.Logger
	mesh   Mesh
	self   string
	epoch  uint64
	m      *metrics
	hub    *hub
	http   *http.Server
	ln     net.Listener
	poll   *closePoller // nil where no poller is available
	flushq flushQueue
	bufs   sync.Pool // *scratch, lent to a flush while it runs
	// timeline is the farm over the last minutes, for the dashboard.
	timeline timeline

	randMu sync.Mutex
	rand   *rand.Rand

	streamsMu sync.Mutex
	streams   map[*stream]struct{}
	draining  bool
	drainGen  int           // bumps on every drain/undrain, cancelling scheduled moves
	drained   chan struct{} // closed when a drain has no stream left

	// The node's own state (state.go): its health checks, overload
	// detection, and the status and reason they and drain give.
	stateMu  sync.Mutex
	state    State
	checks   []*checkRunner // (stateMu for their results)
	overload string         // (stateMu) the signal the node is full by, or ""
	refusing atomic.Pointer[string]
	fan      fanoutTracker
	hm       *stateMetrics

	ctx     context.Context // ends on Shutdown
	cancel  context.CancelFunc
	goMu    sync.Mutex
	stopped bool           // set by Shutdown under goMu: no new goroutines
	wg      sync.WaitGroup // every goroutine the server starts
}

// New checks cfg and builds a Server; Listen and Serve start it.
func New(cfg Config) (*Server, error) {
	if err := cfg.populate(); err != nil {
		return nil, err
	}
	s := &Server{
		cfg:     cfg,
		log:     cfg.Logger,
		mesh:    cfg.Mesh,
		self:    cfg.Mesh.Self(),
		rand:    cfg.Rand,
		streams: map[*stream]struct{}{},
	}
	for s.epoch == 0 {
		s.epoch = s.rand.Uint64()
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	s.m = m
	if s.hm, err = newStateMetrics(cfg.Registerer); err != nil {
		return nil, err
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.hub = newHub(s)
	h := s.routes()
	s.http = &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
		BaseContext:       func(net.Listener) context.Context { return s.ctx },
	}
	// HTTP/1.1 and HTTP/2: cleartext HTTP/2 (h2c, prior knowledge) without
	// TLS, HTTP/2 by ALPN with it.
	var protos http.Protocols
	protos.SetHTTP1(true)
	if cfg.TLS == nil {
		protos.SetUnencryptedHTTP2(true)
	} else {
		protos.SetHTTP2(true)
		s.http.TLSConfig = cfg.TLS.Clone()
		s.http.TLSConfig.NextProtos = []string{"h2", "http/1.1"}
	}
	s.http.Protocols = &protos
	return s, nil
}

// Name is this node's name.
func (s *Server) Name() string { return s.self }

// Epoch is this incarnation's random id, as cursors carry it.
func (s *Server) Epoch() uint64 { return s.epoch }

// Listen binds the HTTP listener (or takes Config.Listener).
func (s *Server) Listen() error {
	ln := s.cfg.Listener
	if ln == nil {
		var err error
		ln, err = net.Listen("tcp", s.cfg.Listen)
		if err != nil {
			return fmt.Errorf("pushd: listen: %w", err)
		}
	}
	if s.cfg.TLS != nil {
		ln = tls.NewListener(ln, s.http.TLSConfig)
	}
	s.ln = ln
	return nil
}

// Addr is the HTTP listener's address (after Listen).
func (s *Server) Addr() net.Addr {
	if s.ln == nil {
		return nil
	}
	return s.ln.Addr()
}

// Serve serves HTTP and runs the replication until ctx ends or Shutdown is
// called. It calls Listen if it was not called.
func (s *Server) Serve(ctx context.Context) error {
	if s.ln == nil {
		if err := s.Listen(); err != nil {
			return err
		}
	}
	if p, err := newClosePoller(s.log); err == nil {
		s.poll = p
		if !s.goRun(func() { p.run(s.ctx) }) {
			p.close() // shut down already: run never starts
		}
	} else {
		s.log.Info("no close poller; idle HTTP/1.1 streams notice a gone client on the next write", "err", err)
	}
	s.flushq.wake = make(chan struct{}, 1) // before anything can wake a stream
	s.hub.start()
	for range max(2, runtime.GOMAXPROCS(0)) {
		s.goRun(s.flushWorker)
	}
	s.goRun(s.keepAlive)
	s.goRun(s.runTimeline)
	s.updateState()
	s.mesh.SetUsers(0)
	s.startHealth()
	errc := make(chan error, 1)
	go func() { errc <- s.http.Serve(s.ln) }()
	select {
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), serveShutdownBudget)
		defer cancel()
		err := s.Shutdown(sctx)
		<-errc
		return err
	case <-s.ctx.Done():
		<-errc
		return nil
	case err := <-errc:
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		s.cancel()
		return fmt.Errorf("pushd: serve: %w", err)
	}
}

// serveShutdownBudget bounds the Shutdown that Serve runs when its ctx
// ends: closing the streams and waiting for the server's goroutines takes
// milliseconds; a budget this long only ends a wait for a goroutine stuck
// on something that will not come back.
const serveShutdownBudget = 5 * time.Second

// Shutdown stops accepting, closes every stream and waits for every
// goroutine of the server, until ctx ends. Drain first for a gentle stop.
// The close poller's descriptors are released even when ctx ends first:
// its goroutine releases them as it returns.
func (s *Server) Shutdown(ctx context.Context) error {
	s.cancel()
	err := s.http.Shutdown(ctx)
	s.goMu.Lock()
	s.stopped = true
	s.goMu.Unlock()
	for _, st := range s.openStreams() {
		st.close(nil)
	}
	if s.poll != nil {
		s.poll.stop()
	}
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		return fmt.Errorf("pushd: shutdown: %w", ctx.Err())
	}
	return err
}

// goRun starts fn as a goroutine the server owns and waits for; after
// Shutdown it starts nothing and returns false.
func (s *Server) goRun(fn func()) bool {
	s.goMu.Lock()
	defer s.goMu.Unlock()
	if s.stopped {
		return false
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		fn()
	}()
	return true
}

func (s *Server) randN(n int) int {
	s.randMu.Lock()
	defer s.randMu.Unlock()
	return s.rand.IntN(n)
}
