//go:build !linux

package pushd

import (
	"context"
	"errors"
	"log/slog"
	"net"
)

// closePoller exists on Linux only; elsewhere an idle HTTP/1.1 stream
// notices a gone client at its next write (a keep-alive at the latest).
type closePoller struct{}

func newClosePoller(*slog.Logger) (*closePoller, error) {
	return nil, errors.New("not supported on this system")
}
func (*closePoller) add(net.Conn, *stream) (uint64, error) { return 0, nil }
func (*closePoller) remove(uint64)                         {}
func (*closePoller) run(context.Context)                   {}
func (*closePoller) stop()                                 {}
func (*closePoller) close()                                {}

// socketFD: no direct writes here; every write goes the blocking way.
func socketFD(net.Conn) int { return -1 }

func writeNonBlocking(int, []byte) (int, error) { return 0, nil }
