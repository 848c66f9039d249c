package peerlink

import (
	"context"
	"errors"
	"io"
	"net"

	"github.com/farmlb/farmlb/config"
)

// The mesh runs over a transport: QUIC in production (transport_quic.go),
// an in-memory network in the tests that drive the timers with
// testing/synctest. The seam is small: authenticated connections that carry
// datagrams and streams.

// transport makes and accepts connections to members.
type transport interface {
	// listen binds the transport; addr is the member's own peer address.
	listen() error
	addr() net.Addr
	// dial connects to member m and returns once its identity is proven.
	dial(ctx context.Context, m config.Member) (conn, error)
	// accept returns the next connection whose peer proved membership.
	accept(ctx context.Context) (conn, error)
	close() error
}

// conn is one authenticated connection to a peer.
type conn interface {
	// peer is the member name the peer proved (its certificate's name).
	peer() string
	// reasons reports whether the peer reads reasons in records (the
	// link agreed on alpnReasons).
	reasons() bool
	remoteAddr() net.Addr
	sendDatagram(b []byte) error
	receiveDatagram(ctx context.Context) ([]byte, error)
	openStream(ctx context.Context) (stream, error)
	acceptStream(ctx context.Context) (stream, error)
	// closeWith closes the connection, telling the peer why.
	closeWith(code closeCode, reason string)
	// done is closed when the connection is closed, from either side.
	done() <-chan struct{}
	// closedBy returns the code the peer closed the connection with, or
	// false if the peer did not close it (timeout, reset, local close).
	closedBy() (closeCode, bool)
}

type stream interface {
	io.ReadWriteCloser
	// abort ends both directions at once (a reset).
	abort()
}

// closeCode says why a member closes a connection.
type closeCode uint64

const (
	codeShutdown closeCode = 0x100 + iota // the member leaves the farm
	codeReplaced                          // a newer connection to the same peer replaces this one
	codeProtocol                          // the peer broke the protocol
	codeStale                             // the peer's incarnation is older than one already seen
)

// errConnClosed is what in-memory connections return once closed.
var errConnClosed = errors.New("peerlink: connection closed")
