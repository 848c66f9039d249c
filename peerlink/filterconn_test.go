package peerlink

import (
	"net"
	"sync"
)

// filterConn is a member's real UDP socket with a switch that drops every
// packet to or from chosen addresses: it cuts one link of the mesh while
// the member's other links carry on.
type filterConn struct {
	net.PacketConn
	mu      sync.Mutex
	blocked map[string]bool
}

func newFilterConn(pc net.PacketConn) *filterConn {
	return &filterConn{PacketConn: pc, blocked: map[string]bool{}}
}

func (c *filterConn) block(addr string, on bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.blocked[addr] = on
}

func (c *filterConn) isBlocked(a net.Addr) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.blocked[a.String()]
}

func (c *filterConn) ReadFrom(b []byte) (int, net.Addr, error) {
	for {
		n, a, err := c.PacketConn.ReadFrom(b)
		if err != nil || !c.isBlocked(a) {
			return n, a, err
		}
	}
}

func (c *filterConn) WriteTo(b []byte, a net.Addr) (int, error) {
	if c.isBlocked(a) {
		return len(b), nil
	}
	return c.PacketConn.WriteTo(b, a)
}

// SetReadBuffer and SetWriteBuffer let quic-go size the socket's buffers.
func (c *filterConn) SetReadBuffer(n int) error {
	return c.PacketConn.(interface{ SetReadBuffer(int) error }).SetReadBuffer(n)
}

func (c *filterConn) SetWriteBuffer(n int) error {
	return c.PacketConn.(interface{ SetWriteBuffer(int) error }).SetWriteBuffer(n)
}
