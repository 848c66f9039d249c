package pushd

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// closePoller notices that the client of an idle hijacked stream went away,
// without a goroutine per stream: one epoll instance watches every stream's
// socket for the peer's FIN or an error (EPOLLRDHUP, EPOLLHUP, EPOLLERR)
// and one goroutine waits on it. The sockets stay registered with Go's own
// poller too; a socket may be in several epoll sets.
type closePoller struct {
	log  *slog.Logger
	epfd int
	evfd int // eventfd that wakes the waiter to stop

	mu      sync.Mutex
	closed  bool // the descriptors are released: nothing may use them
	next    uint32
	streams map[uint32]pollEntry // by registration key
}

type pollEntry struct {
	st *stream
	fd int
}

const pollStop = 0 // the key of the eventfd

func newClosePoller(log *slog.Logger) (*closePoller, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll_create: %w", err)
	}
	evfd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(epfd)
		return nil, fmt.Errorf("eventfd: %w", err)
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: pollStop}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, evfd, &ev); err != nil {
		unix.Close(epfd)
		unix.Close(evfd)
		return nil, fmt.Errorf("epoll_ctl: %w", err)
	}
	return &closePoller{log: log, epfd: epfd, evfd: evfd, next: pollStop, streams: map[uint32]pollEntry{}}, nil
}

// add watches conn for its stream and returns the key to remove it by.
func (p *closePoller) add(conn net.Conn, st *stream) (uint64, error) {
	if tc, ok := conn.(*tls.Conn); ok {
		conn = tc.NetConn()
	}
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return 0, errors.New("connection has no file descriptor")
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return 0, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return 0, errors.New("close poller stopped")
	}
	p.next++
	if p.next == pollStop {
		p.next++
	}
	key := p.next
	var cerr error
	err = rc.Control(func(fd uintptr) {
		ev := unix.EpollEvent{Events: unix.EPOLLRDHUP | unix.EPOLLHUP | unix.EPOLLERR | unix.EPOLLET, Fd: int32(key)}
		cerr = unix.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, int(fd), &ev)
		if cerr == nil {
			p.streams[key] = pollEntry{st, int(fd)}
		}
	})
	if err == nil {
		err = cerr
	}
	if err != nil {
		return 0, fmt.Errorf("epoll_ctl add: %w", err)
	}
	return uint64(key), nil
}

// remove stops watching; call it before the connection is closed.
func (p *closePoller) remove(key uint64) {
	if key == 0 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	e, ok := p.streams[uint32(key)]
	if !ok || p.closed {
		return
	}
	delete(p.streams, uint32(key))
	unix.EpollCtl(p.epfd, unix.EPOLL_CTL_DEL, e.fd, nil)
}

// run waits for closed sockets and closes their streams, until stop; it
// releases the poller's descriptors when it returns, so that they are
// released however long the rest of a shutdown takes.
func (p *closePoller) run(ctx context.Context) {
	defer p.close()
	events := make([]unix.EpollEvent, 256)
	for {
		n, err := unix.EpollWait(p.epfd, events, -1)
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			p.log.Error("epoll_wait", "err", err)
			return
		}
		var gone []*stream
		p.mu.Lock()
		for _, ev := range events[:n] {
			key := uint32(ev.Fd)
			if key == pollStop {
				p.mu.Unlock()
				return
			}
			if e, ok := p.streams[key]; ok {
				gone = append(gone, e.st)
			}
		}
		p.mu.Unlock()
		for _, st := range gone {
			st.close(errClientGone)
		}
	}
}

var errClientGone = errors.New("client closed the connection")

// stop wakes run to return.
func (p *closePoller) stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.closed {
		var one = [8]byte{1}
		unix.Write(p.evfd, one[:])
	}
}

// close releases the poller's descriptors: run calls it as it returns (or
// Serve, when run never started). Later calls, and add, remove and stop
// afterwards, do nothing, so a descriptor number the kernel gave to
// another file is never touched.
func (p *closePoller) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	p.closed = true
	clear(p.streams)
	unix.Close(p.epfd)
	unix.Close(p.evfd)
}

// socketFD returns the descriptor of a plain TCP connection, or -1.
func socketFD(conn net.Conn) int {
	tc, ok := conn.(*net.TCPConn)
	if !ok {
		return -1
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return -1
	}
	fd := -1
	if rc.Control(func(f uintptr) { fd = int(f) }) != nil {
		return -1
	}
	return fd
}

// writeNonBlocking writes what the non-blocking socket fd takes now:
// n < len(b) means its send buffer is full. It goes around Go's poller
// (which a write that never waits does not need), so the caller must make
// sure fd is not closed meanwhile.
func writeNonBlocking(fd int, b []byte) (n int, err error) {
	for n < len(b) {
		m, err := unix.Write(fd, b[n:])
		if err == unix.EINTR {
			continue
		}
		if err == unix.EAGAIN {
			return n, nil
		}
		if err != nil {
			return n, err
		}
		n += m
	}
	return n, nil
}
