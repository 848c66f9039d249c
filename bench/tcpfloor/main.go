//go:build linux

// Command tcpfloor measures the floor under pushd's fan-out figure on this
// machine: the same fan-out — one small message to each of -n loopback TCP
// connections, -msgs times, -gap apart, each message carrying its send time
// — done by a bare loop of write(2) calls with no server logic at all, and
// read by an epoll loop in a second process (as bench/pushdclients -epoll
// reads). It prints the delivery latency percentiles and the writer's CPU
// time per fan-out: what the kernel alone costs for that many sockets.
//
//	go run ./bench/tcpfloor -n 10000
package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"sort"
	"strconv"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

func main() {
	n := flag.Int("n", 10000, "connections (each process holds n descriptors; at most 20,000 here)")
	msgs := flag.Int("msgs", 20, "fan-outs")
	gap := flag.Duration("gap", 500*time.Millisecond, "time between fan-outs")
	writers := flag.Int("writers", runtime.GOMAXPROCS(0), "threads writing in parallel, each to its share of the connections")
	addr := flag.String("addr", "127.0.0.61:0", "address to listen on")
	reader := flag.String("reader", "", "(internal) run as the reading process, dialing this address")
	flag.Parse()
	if *reader != "" {
		if err := read(*reader, *n, *msgs); err != nil {
			fmt.Fprintln(os.Stderr, "tcpfloor reader:", err)
			os.Exit(1)
		}
		return
	}
	if err := write(*addr, *n, *msgs, *writers, *gap); err != nil {
		fmt.Fprintln(os.Stderr, "tcpfloor:", err)
		os.Exit(1)
	}
}

func write(addr string, n, msgs, writers int, gap time.Duration) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	cmd := exec.Command(os.Args[0], "-reader", ln.Addr().String(), "-n", strconv.Itoa(n), "-msgs", strconv.Itoa(msgs))
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	defer cmd.Wait()
	fds := make([]int, 0, n)
	var conns []net.Conn // kept open
	for len(fds) < n {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		rc, err := c.(*net.TCPConn).SyscallConn()
		if err != nil {
			return err
		}
		rc.Control(func(fd uintptr) { fds = append(fds, int(fd)) })
		conns = append(conns, c)
	}
	br := bufio.NewReader(out)
	if line, err := br.ReadString('\n'); err != nil || line != "ready\n" {
		return fmt.Errorf("reader: %q %v", line, err)
	}
	var cpu time.Duration
	next := time.Now()
	for range msgs {
		c0 := cpuTime()
		msg := []byte("data: " + strconv.FormatInt(time.Now().UnixNano(), 10) + "\n\n")
		var wg sync.WaitGroup
		for w := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				runtime.LockOSThread()
				defer runtime.UnlockOSThread()
				for i := w; i < len(fds); i += writers {
					unix.Write(fds[i], msg)
				}
			}()
		}
		wg.Wait()
		cpu += cpuTime() - c0
		next = next.Add(gap)
		time.Sleep(time.Until(next))
	}
	res, _ := br.ReadString('\n')
	fmt.Printf("%d connections, %d fan-outs, %d writer threads: %s", n, msgs, writers, res)
	fmt.Printf("writer CPU: %.1f ms per fan-out (%.2f µs per write)\n",
		float64(cpu.Microseconds())/1000/float64(msgs), float64(cpu.Nanoseconds())/1000/float64(msgs*n))
	for _, c := range conns {
		c.Close()
	}
	return nil
}

func read(addr string, n, msgs int) error {
	runtime.LockOSThread()
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return err
	}
	fds := make([]int, n)
	for i := range fds {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return err
		}
		c.(*net.TCPConn).SetLinger(0) // no TIME_WAIT left for the next run
		rc, _ := c.(*net.TCPConn).SyscallConn()
		rc.Control(func(fd uintptr) { fds[i] = int(fd) })
		defer c.Close()
		ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(i)}
		if err := unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, fds[i], &ev); err != nil {
			return err
		}
	}
	fmt.Println("ready")
	lat := make([]time.Duration, 0, n*msgs)
	left := n * msgs
	events := make([]unix.EpollEvent, 512)
	var buf [4096]byte
	for left > 0 {
		k, err := unix.EpollWait(ep, events, -1)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		for _, ev := range events[:k] {
			m, err := unix.Read(fds[ev.Fd], buf[:])
			at := time.Now()
			if err != nil || m == 0 {
				continue
			}
			for b := buf[:m]; len(b) > 0; {
				i := bytes.Index(b, []byte("\n\n"))
				if i < 0 {
					break
				}
				if ns, err := strconv.ParseInt(string(bytes.TrimPrefix(b[:i], []byte("data: "))), 10, 64); err == nil {
					lat = append(lat, at.Sub(time.Unix(0, ns)))
					left--
				}
				b = b[i+2:]
			}
		}
	}
	sort.Slice(lat, func(a, b int) bool { return lat[a] < lat[b] })
	p := func(q float64) time.Duration { return lat[int(q*float64(len(lat)-1))] }
	fmt.Printf("latency n=%d p50=%v p90=%v p99=%v max=%v\n", len(lat), p(0.5), p(0.9), p(0.99), lat[len(lat)-1])
	return nil
}

// cpuTime is the CPU time (user + system) the process used so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
