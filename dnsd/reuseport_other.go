//go:build !unix

package dnsd

import "syscall"

// reusePort is nil where SO_REUSEPORT is not available: one UDP socket.
var reusePort func(network, address string, c syscall.RawConn) error
