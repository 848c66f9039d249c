package dnsd

import (
	"net"

	"golang.org/x/sys/unix"
)

// udpBufferBytes is the receive and send buffer asked for each UDP socket:
// room for some thousands of queries, so that a burst while a goroutine waits
// for a core is queued rather than dropped (a dropped query costs the client
// a timeout of a second or more).
const udpBufferBytes = 4 << 20

// setBuffers sizes a UDP socket's buffers. SO_RCVBUFFORCE passes the
// system's rmem_max (often 208 KiB) when the process may (CAP_NET_ADMIN);
// otherwise the kernel caps the size.
func setBuffers(c *net.UDPConn) {
	rc, err := c.SyscallConn()
	if err != nil {
		return
	}
	forced := false
	_ = rc.Control(func(fd uintptr) {
		forced = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, udpBufferBytes) == nil &&
			unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, udpBufferBytes) == nil
	})
	if !forced {
		_ = c.SetReadBuffer(udpBufferBytes)
		_ = c.SetWriteBuffer(udpBufferBytes)
	}
}
