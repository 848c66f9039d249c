// Package peerlink is the farm's mesh: every member (pushd node, dnsd
// observer) holds a QUIC connection to every other member, authenticated by
// mutual TLS against the farm CA, and over it keeps the whole farm table
// live: each member pushes its own users, status and priority on change,
// heartbeats on QUIC datagrams, and declares a peer DOWN only after the
// other members agree they no longer hear it either. A reliable, ordered,
// flow-controlled data channel per peer carries pushd's messages.
//
// See docs/ARCHITECTURE.md ("config and peerlink") for the protocol and
// what a partition does.
package peerlink

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/farmlb/farmlb/config"
	"github.com/farmlb/farmlb/farm"
)

// ErrPeerDown is returned (wrapped) by Send when the peer is DOWN, not
// connected, or restarted before acknowledging the message.
var ErrPeerDown = errors.New("peer is down")

// ErrClosed is returned by Send and Serve once the mesh is shut down.
var ErrClosed = errors.New("peerlink: mesh closed")

// RemoteError is the error a peer's Handler returned for a message.
type RemoteError struct {
	Peer string
	Msg  string
}

func (e *RemoteError) Error() string {
	return fmt.Sprintf("peer %s refused the message: %s", e.Peer, e.Msg)
}

// Mesh is one member's end of the farm mesh. It implements farm.Source.
type Mesh struct {
	cfg   Config
	log   *slog.Logger
	met   *metrics
	tr    transport
	start time.Time // origin of the monotonic clock of heartbeats

	mu         sync.Mutex
	self       record
	peers      []*peer // every other member, in config order
	byName     map[string]*peer
	nextID     uint64           // probe round and ping ids
	graceUntil time.Time        // no new suspicion before this (after a stall of this member)
	rand       *rand.Rand       // picks the members asked about a suspect
	vouches    map[uint64]vouch // probe requests this member must answer
	table      atomic.Pointer[farm.List]
	subMu      sync.Mutex
	subs       map[chan struct{}]struct{}
	listened   bool
	serving    bool
	stopped    bool
	cancel     context.CancelFunc
	served     chan struct{} // closed when Serve has returned
	wg         sync.WaitGroup
}

var _ farm.Source = (*Mesh)(nil)

// peerState is what this member thinks of another.
type peerState uint8

const (
	stateNew         peerState = iota // never heard since start: DOWN in the table
	stateUp                           // heard recently
	stateSuspect                      // silent; the others are being asked
	stateUnreachable                  // silent to this member, but another member hears it: UP in the table
	stateDown                         // silent, and nobody else heard it either
)

var stateNames = [...]string{"new", "up", "suspect", "unreachable", "down"}

func (s peerState) String() string { return stateNames[s] }

// peer is another member. Fields marked (mu) are guarded by Mesh.mu.
type peer struct {
	name   string
	member config.Member
	dials  bool // this member dials the peer (its name sorts first)

	link        *link         // (mu) the current connection, or nil
	linkGone    chan struct{} // (mu) closed when link becomes nil
	inc         uint64        // (mu) the peer's incarnation as last seen in a hello
	state       peerState     // (mu)
	lastHeard   time.Time     // (mu) last frame of any kind straight from the peer
	round       *round        // (mu) the probe round while suspect, unreachable, or DOWN after a suspicion
	recent      []*round      // (mu) the last rounds, whose answers still count
	episode     uint64        // (mu) id of the first round of the current silence; 0 when heard
	suspectedAt time.Time     // (mu) when the current silence became a suspicion
	vouchedAt   time.Time     // (mu) when another member last said it hears the peer
	rec         record        // (mu) the peer's latest record
	hbSeq       uint64        // (mu) heartbeats sent to the peer
	lastHBNanos uint64        // (mu) SentNanos of the peer's last heartbeat
	lastHBAt    time.Time     // (mu) when it arrived
	out         outbox
	recvMu      sync.Mutex // serialises delivery to the Handler
	recvInc     uint64     // (recvMu) incarnation recvSeq belongs to
	recvSeq     uint64     // (recvMu) last data seq delivered
}

// round is one probe round about a suspect peer.
type round struct {
	id       uint64
	started  time.Time
	deadline time.Time
	asked    int
	noes     int
}

// vouch is a probe request this member answers once it hears the target.
type vouch struct {
	from     *peer
	id       uint64 // the asker's round id
	target   *peer
	deadline time.Time
}

// New returns a mesh for cfg. It checks the configuration and loads the
// certificates; Listen binds the socket.
func New(cfg Config) (*Mesh, error) {
	if err := cfg.populate(); err != nil {
		return nil, err
	}
	m := &Mesh{
		cfg:     cfg,
		log:     cfg.Logger.With("member", cfg.Self),
		start:   time.Now(),
		self:    cfg.firstRecord(),
		byName:  map[string]*peer{},
		vouches: map[uint64]vouch{},
		subs:    map[chan struct{}]struct{}{},
		served:  make(chan struct{}),
		rand:    rand.New(rand.NewPCG(cfg.Seed, cfg.Incarnation)),
	}
	met, err := newMetrics(cfg.Registerer, cfg.Self)
	if err != nil {
		return nil, fmt.Errorf("peerlink: register metrics: %w", err)
	}
	m.met = met
	for _, mem := range cfg.Farm.Members() {
		if mem.Name == cfg.Self {
			continue
		}
		p := &peer{name: mem.Name, member: mem, dials: cfg.Self < mem.Name, linkGone: make(chan struct{})}
		close(p.linkGone)
		if mem.Node != nil {
			p.rec.Priority = mem.Node.Priority
		}
		p.out.changed = make(chan struct{})
		p.out.kick = make(chan struct{}, 1)
		m.peers = append(m.peers, p)
		m.byName[mem.Name] = p
	}
	if cfg.transport != nil {
		m.tr = cfg.transport
	} else {
		cert, pool, err := cfg.loadIdentity()
		if err != nil {
			return nil, err
		}
		v := &verifier{pool: pool, now: time.Now, isMember: m.isMember}
		m.tr = newQUICTransport(&m.cfg, cert, v, m.refused)
	}
	m.mu.Lock()
	m.publishLocked()
	m.mu.Unlock()
	return m, nil
}

// isMember maps a certificate name to the member's configured name.
func (m *Mesh) isMember(name string) (string, bool) {
	mem, ok := m.cfg.Farm.Member(name)
	return mem.Name, ok
}

func (m *Mesh) refused(e *RefusedError) {
	m.met.refused.Inc()
	m.log.Warn("peer refused", "remote", e.Remote, "name", e.Name, "reason", e.Err.Error())
}

// Self returns this member's name.
func (m *Mesh) Self() string { return m.cfg.Self }

// Listen binds the mesh's UDP socket (Config.PacketConn, or the member's
// peer address from the farm file).
func (m *Mesh) Listen() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.listened {
		return errors.New("peerlink: Listen called twice")
	}
	if err := m.tr.listen(); err != nil {
		return err
	}
	m.listened = true
	return nil
}

// Addr returns the address the mesh listens on (nil before Listen).
func (m *Mesh) Addr() net.Addr {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.listened {
		return nil
	}
	return m.tr.addr()
}

// Serve runs the mesh until ctx ends or Shutdown is called, then closes
// every connection (telling the peers this member left) and the socket. It
// returns nil after a clean stop.
func (m *Mesh) Serve(ctx context.Context) error {
	m.mu.Lock()
	switch {
	case !m.listened:
		m.mu.Unlock()
		return errors.New("peerlink: Serve before Listen")
	case m.serving || m.stopped:
		m.mu.Unlock()
		return ErrClosed
	}
	m.serving = true
	ctx, m.cancel = context.WithCancel(ctx)
	m.mu.Unlock()
	defer close(m.served)

	m.log.Info("mesh serving", "addr", m.tr.addr().String(), "incarnation", m.self.Incarnation, "peers", len(m.peers))
	m.wg.Add(2)
	go m.acceptLoop(ctx)
	go m.detectLoop(ctx)
	for _, p := range m.peers {
		if p.dials {
			m.wg.Add(1)
			go m.dialLoop(ctx, p)
		}
	}
	<-ctx.Done()
	m.wg.Wait()
	m.mu.Lock()
	m.stopped = true
	m.mu.Unlock()
	m.failAllSends(ErrClosed)
	return m.tr.close()
}

// Shutdown stops Serve and waits for every goroutine of the mesh, or for
// ctx to end.
func (m *Mesh) Shutdown(ctx context.Context) error {
	m.mu.Lock()
	serving := m.serving
	if m.cancel != nil {
		m.cancel()
	}
	if !serving {
		wasListening := m.listened && !m.stopped
		m.stopped = true
		m.mu.Unlock()
		if wasListening {
			return m.tr.close()
		}
		return nil
	}
	m.mu.Unlock()
	select {
	case <-m.served:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Table returns the farm table as this member sees it: an immutable
// snapshot, never nil. Nodes are in farm-file order; a node this member has
// not heard from, or has declared DOWN, is DOWN with 0 users.
func (m *Mesh) Table() *farm.List { return m.table.Load() }

// Subscribe returns a channel that receives a value after every change of
// the table (coalesced: a buffer of one; sends never block) and a function
// that ends the subscription.
func (m *Mesh) Subscribe() (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	m.subMu.Lock()
	m.subs[ch] = struct{}{}
	m.subMu.Unlock()
	return ch, func() {
		m.subMu.Lock()
		delete(m.subs, ch)
		m.subMu.Unlock()
	}
}

// SetUsers sets this node's user count. Changes are coalesced: peers get at
// most one status frame per Config.StatusInterval.
func (m *Mesh) SetUsers(n int) {
	n = max(0, min(n, farm.MaxUsers))
	m.updateSelf(func(r *record) { r.Users = uint32(n) })
}

// SetStatus sets this node's status: farm.StatusUp or farm.StatusDraining,
// with no reason (DOWN is for others to conclude; setting it is ignored).
func (m *Mesh) SetStatus(s farm.Status) { m.SetState(s, "") }

// SetState sets this node's status and the reason for it (farm.Server's
// Reason; "" for none). DOWN needs a reason: it is a node that lives but
// sends its clients elsewhere (a failing health check); DOWN without one
// is for others to conclude, and an invalid reason is dropped, as is a
// call that breaks either rule.
func (m *Mesh) SetState(s farm.Status, reason string) {
	switch {
	case s > farm.StatusDraining, s == farm.StatusDown && reason == "":
		return
	case reason != "" && !validReason(reason):
		return
	}
	m.updateSelf(func(r *record) { r.Status, r.Reason = s, reason })
}

// SetPriority sets this node's priority group.
func (m *Mesh) SetPriority(p farm.Priority) {
	if p > farm.PriorityLowest {
		return
	}
	m.updateSelf(func(r *record) { r.Priority = p })
}

func (m *Mesh) updateSelf(change func(*record)) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r := m.self
	change(&r)
	if r == m.self {
		return
	}
	r.Seq++
	m.self = r
	for _, p := range m.peers {
		if p.link != nil {
			kick(p.link.statusKick)
		}
	}
	m.publishLocked()
}

// kick signals a channel of capacity one without blocking.
func kick(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// publishLocked rebuilds the table snapshot and tells subscribers when a
// server changed. m.mu must be held.
func (m *Mesh) publishLocked() {
	l := m.cfg.Farm.InitialList()
	l.Reporter = m.cfg.Self
	for i := range l.Servers {
		s := &l.Servers[i]
		var r record
		switch p := m.byName[s.Name]; {
		case p == nil: // this member
			r = m.self
		case p.visible():
			r = p.rec
		default:
			s.Priority = p.rec.Priority
			continue
		}
		s.Status, s.Users, s.Priority, s.Reason = r.Status, int(r.Users), r.Priority, r.Reason
	}
	counts := map[string]float64{"up": 0, "suspect": 0, "unreachable": 0, "down": 0}
	for _, p := range m.peers {
		switch p.state {
		case stateUp:
			counts["up"]++
		case stateSuspect:
			counts["suspect"]++
		case stateUnreachable:
			counts["unreachable"]++
		default:
			counts["down"]++
		}
	}
	for k, v := range counts {
		m.met.members.WithLabelValues(k).Set(v)
	}
	old := m.table.Load()
	if old != nil && sameServers(old.Servers, l.Servers) {
		return
	}
	l.GeneratedAt = time.Now()
	m.table.Store(l)
	m.subMu.Lock()
	for ch := range m.subs {
		kick(ch)
	}
	m.subMu.Unlock()
}

// visible reports whether the table shows the peer with its own record:
// it is UP, suspect or unreachable (heard by another member) — not DOWN —
// and a record of its current life is known.
func (p *peer) visible() bool {
	return p.alive() && p.rec.Incarnation == p.inc && p.inc != 0
}

// alive reports whether this member believes the peer lives: heard
// directly, not yet concluded about, or vouched for by another member.
func (p *peer) alive() bool {
	return p.state == stateUp || p.state == stateSuspect || p.state == stateUnreachable
}

// direct reports whether the peer is reachable over its own link, as far
// as this member knows (Send needs that).
func (p *peer) direct() bool {
	return p.state == stateUp || p.state == stateSuspect
}

func sameServers(a, b []farm.Server) bool {
	return slices.EqualFunc(a, b, func(x, y farm.Server) bool {
		return x.Name == y.Name && x.Status == y.Status && x.Reason == y.Reason && x.Users == y.Users && x.Priority == y.Priority &&
			x.URL == y.URL && x.Capacity == y.Capacity && slices.Equal(x.Addrs, y.Addrs)
	})
}

// peerByName returns the peer with the given name (as the farm file spells
// it, case-insensitively).
func (m *Mesh) peerByName(name string) *peer {
	if p, ok := m.byName[name]; ok {
		return p
	}
	if mem, ok := m.cfg.Farm.Member(name); ok {
		return m.byName[mem.Name]
	}
	return nil
}

// monoNanos is this member's clock for heartbeat round trips; never 0.
func (m *Mesh) monoNanos() uint64 { return uint64(time.Since(m.start)) + 1 }
