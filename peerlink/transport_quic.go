package peerlink

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/farmlb/farmlb/config"
	"github.com/quic-go/quic-go"
)

// quicTransport is the production transport: one UDP socket, one
// quic.Transport that both listens and dials from it.
type quicTransport struct {
	self      string
	bind      string         // address to bind when pc is nil
	pc        net.PacketConn // the socket; owned (closed) only if ownPC
	ownPC     bool
	cert      *tls.Certificate
	server    *tls.Config
	client    func(want string) *tls.Config
	qconf     *quic.Config
	isMember  func(string) (string, bool)
	tr        *quic.Transport
	ln        *quic.Listener
	resolveFn func(string) (*net.UDPAddr, error)
}

func newQUICTransport(cfg *Config, cert *tls.Certificate, v *verifier, onRefuse func(*RefusedError)) *quicTransport {
	self, _ := cfg.Farm.Member(cfg.Self)
	server, client := tlsConfigs(cert, v, onRefuse)
	if cfg.protos != nil {
		server, client = tlsConfigsWith(cert, v, onRefuse, cfg.protos)
	}
	return &quicTransport{
		self:     cfg.Self,
		bind:     self.Peer,
		pc:       cfg.PacketConn,
		cert:     cert,
		server:   server,
		client:   client,
		isMember: v.isMember,
		qconf: &quic.Config{
			HandshakeIdleTimeout: cfg.DialTimeout,
			MaxIdleTimeout:       cfg.IdleTimeout,
			EnableDatagrams:      true,
			// One control stream and one data stream each way; a few
			// spare for a replaced stream still closing.
			MaxIncomingStreams:    8,
			MaxIncomingUniStreams: -1,
			// A data frame is at most MaxMessage plus a header; let a
			// whole one be in flight, and bound what a peer can make
			// this member buffer.
			InitialStreamReceiveWindow:     2 * MaxMessage,
			MaxStreamReceiveWindow:         4 * MaxMessage,
			InitialConnectionReceiveWindow: 3 * MaxMessage,
			MaxConnectionReceiveWindow:     8 * MaxMessage,
		},
		resolveFn: func(a string) (*net.UDPAddr, error) { return net.ResolveUDPAddr("udp", a) },
	}
}

func (t *quicTransport) listen() error {
	if t.pc == nil {
		pc, err := net.ListenPacket("udp", t.bind)
		if err != nil {
			return fmt.Errorf("peerlink: listen %s: %w", t.bind, err)
		}
		t.pc, t.ownPC = pc, true
	}
	key, err := resetKey(t.cert)
	if err != nil {
		return err
	}
	srk := quic.StatelessResetKey(key)
	t.tr = &quic.Transport{Conn: t.pc, StatelessResetKey: &srk}
	ln, err := t.tr.Listen(t.server, t.qconf)
	if err != nil {
		t.tr.Close()
		if t.ownPC {
			t.pc.Close()
		}
		return fmt.Errorf("peerlink: listen: %w", err)
	}
	t.ln = ln
	return nil
}

func (t *quicTransport) addr() net.Addr {
	if t.pc == nil {
		return nil
	}
	return t.pc.LocalAddr()
}

func (t *quicTransport) dial(ctx context.Context, m config.Member) (conn, error) {
	ua, err := t.resolveFn(m.Peer)
	if err != nil {
		return nil, err
	}
	qc, err := t.tr.Dial(ctx, ua, t.client(m.Name), t.qconf)
	if err != nil {
		return nil, err
	}
	return &quicConn{c: qc, name: m.Name}, nil
}

func (t *quicTransport) accept(ctx context.Context) (conn, error) {
	for {
		qc, err := t.ln.Accept(ctx)
		if err != nil {
			return nil, err
		}
		// The handshake's VerifyConnection proved membership already.
		name, err := nameOf(qc.ConnectionState().TLS, t.isMember)
		if err != nil {
			qc.CloseWithError(quic.ApplicationErrorCode(codeProtocol), err.Error())
			continue
		}
		return &quicConn{c: qc, name: name}, nil
	}
}

func (t *quicTransport) close() error {
	var err error
	if t.ln != nil {
		err = t.ln.Close()
	}
	if t.tr != nil {
		err = errors.Join(err, t.tr.Close())
	}
	if t.ownPC && t.pc != nil {
		err = errors.Join(err, t.pc.Close())
	}
	return err
}

type quicConn struct {
	c    *quic.Conn
	name string
}

func (c *quicConn) peer() string { return c.name }
func (c *quicConn) reasons() bool {
	return c.c.ConnectionState().TLS.NegotiatedProtocol == alpnReasons
}
func (c *quicConn) remoteAddr() net.Addr        { return c.c.RemoteAddr() }
func (c *quicConn) sendDatagram(b []byte) error { return c.c.SendDatagram(b) }
func (c *quicConn) receiveDatagram(ctx context.Context) ([]byte, error) {
	return c.c.ReceiveDatagram(ctx)
}

func (c *quicConn) openStream(ctx context.Context) (stream, error) {
	s, err := c.c.OpenStreamSync(ctx)
	if err != nil {
		return nil, err
	}
	return quicStream{s}, nil
}

func (c *quicConn) acceptStream(ctx context.Context) (stream, error) {
	s, err := c.c.AcceptStream(ctx)
	if err != nil {
		return nil, err
	}
	return quicStream{s}, nil
}

func (c *quicConn) closeWith(code closeCode, reason string) {
	c.c.CloseWithError(quic.ApplicationErrorCode(code), reason)
}

func (c *quicConn) done() <-chan struct{} { return c.c.Context().Done() }

func (c *quicConn) closedBy() (closeCode, bool) {
	var ae *quic.ApplicationError
	if err := context.Cause(c.c.Context()); errors.As(err, &ae) && ae.Remote {
		return closeCode(ae.ErrorCode), true
	}
	return 0, false
}

type quicStream struct{ s *quic.Stream }

func (s quicStream) Read(b []byte) (int, error)  { return s.s.Read(b) }
func (s quicStream) Write(b []byte) (int, error) { return s.s.Write(b) }
func (s quicStream) Close() error                { return s.s.Close() }
func (s quicStream) abort() {
	s.s.CancelRead(quic.StreamErrorCode(codeShutdown))
	s.s.CancelWrite(quic.StreamErrorCode(codeShutdown))
}

// isClosedErr reports errors that mean "the connection or stream ended",
// which are a clean exit for the goroutine that sees them.
func isClosedErr(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, net.ErrClosed) || errors.Is(err, context.Canceled) || errors.Is(err, errConnClosed) {
		return true
	}
	var (
		ae *quic.ApplicationError
		ie *quic.IdleTimeoutError
		se *quic.StreamError
		sr *quic.StatelessResetError
	)
	return errors.As(err, &ae) || errors.As(err, &ie) || errors.As(err, &se) || errors.As(err, &sr) ||
		strings.Contains(err.Error(), "closed")
}
