//go:build !linux

package dnsd

import "net"

// udpBufferBytes is the receive and send buffer asked for each UDP socket
// (see sockbuf_linux.go).
const udpBufferBytes = 4 << 20

func setBuffers(c *net.UDPConn) {
	_ = c.SetReadBuffer(udpBufferBytes)
	_ = c.SetWriteBuffer(udpBufferBytes)
}
