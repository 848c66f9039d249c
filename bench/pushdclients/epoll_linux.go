//go:build linux

package main

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"runtime"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// fanoutEpoll reads msgs events from every stream on one thread with
// epoll, as a client machine's event loop would, so that the readers
// cost the shared CPUs as little as possible; it returns each event's
// latency: the time it was read minus the publish time in its data.
func fanoutEpoll(conns []net.Conn, readers []*bufio.Reader, msgs int) ([]time.Duration, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	defer unix.Close(ep)
	type conn struct {
		fd   int
		buf  []byte // unparsed bytes
		left int    // events still to read
	}
	cs := make([]conn, len(conns))
	for i, c := range conns {
		fd := -1
		rc, err := c.(*net.TCPConn).SyscallConn()
		if err == nil {
			err = rc.Control(func(f uintptr) { fd = int(f) })
		}
		if err != nil {
			return nil, err
		}
		cs[i] = conn{fd: fd, left: msgs}
		if n := readers[i].Buffered(); n > 0 {
			b, _ := readers[i].Peek(n)
			cs[i].buf = append(cs[i].buf, b...)
		}
		ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(i)}
		if err := unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
			return nil, fmt.Errorf("epoll_ctl: %w", err)
		}
	}
	lat := make([]time.Duration, 0, len(conns)*msgs)
	// take parses the complete events in c.buf.
	take := func(c *conn, at time.Time) {
		for c.left > 0 {
			end := bytes.Index(c.buf, []byte("\n\n"))
			if end < 0 {
				return
			}
			ev := c.buf[:end+1]
			c.buf = c.buf[end+2:]
			i := bytes.Index(ev, []byte("data: "))
			if i < 0 {
				continue // the first event (retry, id) or a comment
			}
			data := ev[i+6:]
			data = data[:bytes.IndexByte(data, '\n')]
			if ns, err := strconv.ParseInt(string(data), 10, 64); err == nil {
				lat = append(lat, at.Sub(time.Unix(0, ns)))
				c.left--
			}
		}
		if len(c.buf) == 0 {
			c.buf = c.buf[:0]
		}
	}
	for i := range cs {
		take(&cs[i], time.Now())
	}
	open := 0
	for i := range cs {
		if cs[i].left > 0 {
			open++
		}
	}
	events := make([]unix.EpollEvent, 512)
	var rbuf [4096]byte
	for open > 0 {
		n, err := unix.EpollWait(ep, events, -1)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, err
		}
		for _, ev := range events[:n] {
			c := &cs[ev.Fd]
			m, err := unix.Read(c.fd, rbuf[:])
			at := time.Now()
			if err == unix.EAGAIN || err == unix.EINTR {
				continue
			}
			if err != nil || m == 0 {
				return lat, fmt.Errorf("stream %d closed with %d events to go: %v", ev.Fd, c.left, err)
			}
			c.buf = append(c.buf, rbuf[:m]...)
			take(c, at)
			if c.left == 0 {
				unix.EpollCtl(ep, unix.EPOLL_CTL_DEL, c.fd, nil)
				open--
			}
		}
	}
	return lat, nil
}
