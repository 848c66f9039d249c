package peerlink

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"time"

	"github.com/farmlb/farmlb/config"
)

// memNet is an in-memory network of members, made of channels only so that
// testing/synctest can run the mesh's timers on a fake clock. A member can
// crash (it goes silent, as with SIGKILL: peers are not told) and a link
// between two members can be cut (nothing crosses it either way).
type memNet struct {
	mu      sync.Mutex
	members map[string]*memTransport
	cut     map[[2]string]bool
}

func newMemNet() *memNet {
	return &memNet{members: map[string]*memTransport{}, cut: map[[2]string]bool{}}
}

func pairKey(a, b string) [2]string {
	if a > b {
		a, b = b, a
	}
	return [2]string{a, b}
}

// cutLink makes a and b unable to hear each other (or heals it).
func (n *memNet) cutLink(a, b string, cut bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.cut[pairKey(a, b)] = cut
}

func (n *memNet) isCut(a, b string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.cut[pairKey(a, b)]
}

func (n *memNet) transport(name string) *memTransport {
	t := &memTransport{net: n, name: name, incoming: make(chan *memConn, 16), closed: make(chan struct{})}
	return t
}

type memTransport struct {
	net      *memNet
	name     string
	incoming chan *memConn
	closed   chan struct{}
	once     sync.Once
	crashed  bool
}

type memAddr string

func (a memAddr) Network() string { return "mem" }
func (a memAddr) String() string  { return string(a) }

func (t *memTransport) listen() error {
	t.net.mu.Lock()
	defer t.net.mu.Unlock()
	t.net.members[t.name] = t
	return nil
}

func (t *memTransport) addr() net.Addr { return memAddr(t.name) }

func (t *memTransport) dial(ctx context.Context, m config.Member) (conn, error) {
	t.net.mu.Lock()
	r := t.net.members[m.Name]
	cut := t.net.cut[pairKey(t.name, m.Name)]
	t.net.mu.Unlock()
	if r == nil {
		return nil, errors.New("no such member listening")
	}
	if cut || r.isDead() {
		<-ctx.Done() // an unanswered handshake
		return nil, ctx.Err()
	}
	a, b := newMemConnPair(t, r)
	select {
	case r.incoming <- b:
		return a, nil
	case <-r.closed:
		return nil, errConnClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (t *memTransport) accept(ctx context.Context) (conn, error) {
	select {
	case c := <-t.incoming:
		return c, nil
	case <-t.closed:
		return nil, errConnClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (t *memTransport) close() error {
	t.once.Do(func() { close(t.closed) })
	t.net.mu.Lock()
	if t.net.members[t.name] == t {
		delete(t.net.members, t.name)
	}
	t.net.mu.Unlock()
	return nil
}

// crash makes the member silent: nothing it sends arrives, nothing reaches
// it (SIGKILL, or SIGSTOP until resume).
func (t *memTransport) crash() { t.setCrashed(true) }

// resume ends a crash that was a pause (SIGCONT).
func (t *memTransport) resume() { t.setCrashed(false) }

func (t *memTransport) setCrashed(v bool) {
	t.net.mu.Lock()
	t.crashed = v
	t.net.mu.Unlock()
}

func (t *memTransport) isDead() bool {
	t.net.mu.Lock()
	defer t.net.mu.Unlock()
	return t.crashed
}

// memConn is one end of a connection.
type memConn struct {
	local, remote *memTransport
	other         *memConn
	dgrams        chan []byte
	streams       chan *memStream
	closed        chan struct{}
	once          *sync.Once // shared by both ends
	mu            *sync.Mutex
	code          *closeCode
	closer        **memConn
}

func newMemConnPair(a, b *memTransport) (*memConn, *memConn) {
	once, mu := &sync.Once{}, &sync.Mutex{}
	closed := make(chan struct{})
	var code closeCode
	var closer *memConn
	ca := &memConn{local: a, remote: b, dgrams: make(chan []byte, 64), streams: make(chan *memStream, 8), closed: closed, once: once, mu: mu, code: &code, closer: &closer}
	cb := &memConn{local: b, remote: a, dgrams: make(chan []byte, 64), streams: make(chan *memStream, 8), closed: closed, once: once, mu: mu, code: &code, closer: &closer}
	ca.other, cb.other = cb, ca
	return ca, cb
}

func (c *memConn) peer() string         { return c.remote.name }
func (c *memConn) reasons() bool        { return true }
func (c *memConn) remoteAddr() net.Addr { return memAddr(c.remote.name) }

// blocked reports whether traffic from c to its peer is lost.
func (c *memConn) blocked() bool {
	return c.local.isDead() || c.remote.isDead() || c.local.net.isCut(c.local.name, c.remote.name)
}

func (c *memConn) sendDatagram(b []byte) error {
	select {
	case <-c.closed:
		return errConnClosed
	default:
	}
	if c.blocked() {
		return nil
	}
	select {
	case c.other.dgrams <- append([]byte(nil), b...):
	default: // the receiver's queue is full: lost, as UDP would
	}
	return nil
}

func (c *memConn) receiveDatagram(ctx context.Context) ([]byte, error) {
	select {
	case b := <-c.dgrams:
		return b, nil
	case <-c.closed:
		return nil, errConnClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (c *memConn) openStream(ctx context.Context) (stream, error) {
	a, b := newMemStreamPair(c, c.other)
	select {
	case c.other.streams <- b:
		return a, nil
	case <-c.closed:
		return nil, errConnClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (c *memConn) acceptStream(ctx context.Context) (stream, error) {
	select {
	case s := <-c.streams:
		return s, nil
	case <-c.closed:
		return nil, errConnClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (c *memConn) closeWith(code closeCode, reason string) {
	c.once.Do(func() {
		c.mu.Lock()
		// A crashed member's goodbye never arrives; the peer sees a silent
		// connection, then (as with a QUIC idle timeout) a close with no code.
		if !c.blocked() {
			*c.code, *c.closer = code, c
		}
		c.mu.Unlock()
		close(c.closed)
	})
}

func (c *memConn) done() <-chan struct{} { return c.closed }

func (c *memConn) closedBy() (closeCode, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if *c.closer == c.other {
		return *c.code, true
	}
	return 0, false
}

// memStream is one end of a stream: chunks over a buffered channel each way.
type memStream struct {
	c    *memConn
	in   chan []byte
	out  chan []byte
	rest []byte
	done chan struct{} // shared
	once *sync.Once
}

func newMemStreamPair(a, b *memConn) (*memStream, *memStream) {
	x, y := make(chan []byte, 256), make(chan []byte, 256)
	done, once := make(chan struct{}), &sync.Once{}
	return &memStream{c: a, in: x, out: y, done: done, once: once}, &memStream{c: b, in: y, out: x, done: done, once: once}
}

func (s *memStream) Read(p []byte) (int, error) {
	if len(s.rest) == 0 {
		select {
		case b := <-s.in:
			s.rest = b
		case <-s.done:
			return 0, io.EOF
		case <-s.c.closed:
			return 0, errConnClosed
		}
	}
	n := copy(p, s.rest)
	s.rest = s.rest[n:]
	return n, nil
}

func (s *memStream) Write(p []byte) (int, error) {
	for s.c.blocked() {
		// Nothing gets through; QUIC retransmits until the path heals
		// or the connection dies.
		select {
		case <-s.c.closed:
			return 0, errConnClosed
		case <-s.done:
			return 0, errors.New("stream closed")
		case <-time.After(time.Millisecond):
		}
	}
	select {
	case s.out <- append([]byte(nil), p...):
		return len(p), nil
	case <-s.done:
		return 0, errors.New("stream closed")
	case <-s.c.closed:
		return 0, errConnClosed
	}
}

func (s *memStream) Close() error { s.abort(); return nil }
func (s *memStream) abort()       { s.once.Do(func() { close(s.done) }) }
