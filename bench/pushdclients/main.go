// Command pushdclients opens many idle SSE streams to a pushd node for the
// memory and fan-out benchmarks (bench/pushd-*.sh). One process holds at most
// -n streams (keep it under the 20,000 descriptors a process may hold);
// the scripts start several.
//
// It prints "ready N" once N streams have their headers and first event, and
// with -fanout it then reads every stream and prints, per received event
// whose data is a publish time (unix nanoseconds), the delivery latency.
//
// With -h2 the streams are HTTP/2 (h2c with prior knowledge),
// -streams-per-conn of them multiplexed over each connection, so N streams
// take N/streams-per-conn descriptors instead of N.
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"sync"
	"syscall"
	"time"
)

func main() {
	addr := flag.String("addr", "127.0.0.31:8080", "pushd HTTP address")
	src := flag.String("src", "", "source IP to dial from (spreads ports)")
	n := flag.Int("n", 1000, "streams to open")
	topic := flag.String("topic", "bench", "topic to subscribe to")
	fanout := flag.Int("fanout", 0, "read this many events per stream and print latency percentiles")
	par := flag.Int("par", 64, "connections (HTTP/2: streams) opened in parallel")
	epoll := flag.Bool("epoll", true, "with -fanout, read every HTTP/1.1 stream from one thread with epoll (Linux) rather than a goroutine per stream (HTTP/2 streams are read by a goroutine each)")
	h2 := flag.Bool("h2", false, "open HTTP/2 streams (h2c, prior knowledge) instead of HTTP/1.1 connections")
	useTLS := flag.Bool("tls", false, "connect with TLS (HTTP/1.1, or HTTP/2 by ALPN with -h2), not checking the server's certificate (the benchmark's node has a self-signed one)")
	perConn := flag.Int("streams-per-conn", 100, "with -h2, streams per connection: at most the server's SETTINGS_MAX_CONCURRENT_STREAMS (Go's default 250); 100 is what a Go client assumes before the server's settings arrive")
	flag.Parse()

	// Linger 0: the streams end with a reset when the process exits, so
	// that no TIME_WAIT sockets are left to hold the source ports the next
	// run binds.
	d := net.Dialer{Timeout: 10 * time.Second, ControlContext: func(_ context.Context, _, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = syscall.SetsockoptLinger(int(fd), syscall.SOL_SOCKET, syscall.SO_LINGER, &syscall.Linger{Onoff: 1, Linger: 0})
		})
		if err != nil {
			return err
		}
		return serr
	}}
	if *src != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(*src)}
	}
	var readers []*bufio.Reader
	var conns []net.Conn // HTTP/1.1 only: the sockets, for -epoll
	var closeAll func()
	var err error
	if *h2 {
		readers, closeAll, err = openH2(d, *addr, *topic, *n, *perConn, *par, *fanout > 0, *useTLS)
	} else {
		conns, readers, closeAll, err = openH1(d, *addr, *topic, *n, *par, *fanout > 0, *useTLS)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "pushdclients:", err)
		os.Exit(1)
	}
	fmt.Printf("ready %d\n", *n)
	cpu0 := cpuTime()

	if *fanout > 0 && *epoll && conns != nil && !*useTLS {
		all, err := fanoutEpoll(conns, readers, *fanout)
		if err != nil {
			fmt.Fprintln(os.Stderr, "pushdclients:", err)
		}
		printLatency(all, cpuTime()-cpu0, *fanout)
		return
	}
	if *fanout > 0 {
		printLatency(fanoutGoroutines(readers, *fanout), cpuTime()-cpu0, *fanout)
		return
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	<-sig
	closeAll()
}

// openH1 opens n HTTP/1.1 streams, one connection each, and returns their
// sockets, their readers (when keep is set) and a function that closes
// them all.
func openH1(d net.Dialer, addr, topic string, n, par int, keep, useTLS bool) ([]net.Conn, []*bufio.Reader, func(), error) {
	req := []byte("GET /stream?event=topic&topic=" + topic + " HTTP/1.1\r\nHost: " + addr + "\r\nAccept: text/event-stream\r\n\r\n")
	conns := make([]net.Conn, n)
	closeAll := func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	}
	readers, err := openAll(n, par, keep, func(i int) (*bufio.Reader, error) {
		var c net.Conn
		var err error
		for try := 0; try < 5; try++ { // a loaded machine drops some SYNs
			if c, err = d.Dial("tcp", addr); err == nil {
				break
			}
		}
		if err != nil {
			return nil, err
		}
		conns[i] = c
		if useTLS {
			tc := tls.Client(c, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}})
			if err := tc.Handshake(); err != nil {
				return nil, err
			}
			c, conns[i] = tc, tc
		}
		if _, err := c.Write(req); err != nil {
			return nil, err
		}
		br := bufio.NewReaderSize(c, 512)
		if err := readUntil(br, "\n\n"); err != nil { // the headers
			return nil, err
		}
		return br, readUntil(br, "\n\n") // the first event (retry + id)
	})
	if err != nil {
		closeAll()
		return nil, nil, nil, err
	}
	return conns, readers, closeAll, nil
}

// openH2 opens n HTTP/2 streams over ceil(n/perConn) h2c connections,
// perConn streams each, and returns once every stream has its headers and
// first event. It returns the streams' readers (when keep is set) and a
// function that closes every connection.
func openH2(d net.Dialer, addr, topic string, n, perConn, par int, keep, useTLS bool) ([]*bufio.Reader, func(), error) {
	if perConn < 1 {
		return nil, nil, errors.New("-streams-per-conn must be at least 1")
	}
	var protos http.Protocols
	tr := &http.Transport{Protocols: &protos, DialContext: d.DialContext}
	scheme := "http"
	if useTLS {
		protos.SetHTTP2(true)
		tr.TLSClientConfig = &tls.Config{InsecureSkipVerify: true}
		scheme = "https"
	} else {
		protos.SetUnencryptedHTTP2(true)
	}
	// Opening is bounded: a stream the server would not start (more per
	// connection than its SETTINGS_MAX_CONCURRENT_STREAMS) makes RoundTrip
	// wait; this turns that into an error.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ccs := make([]*http.ClientConn, (n+perConn-1)/perConn)
	closeAll := func() {
		for _, cc := range ccs {
			if cc != nil {
				cc.Close()
			}
		}
	}
	for i := range ccs {
		var err error
		for try := 0; try < 5; try++ { // a loaded machine drops some SYNs
			if ccs[i], err = tr.NewClientConn(ctx, scheme, addr); err == nil {
				break
			}
		}
		if err != nil {
			closeAll()
			return nil, nil, fmt.Errorf("connection %d: %w", i, err)
		}
	}
	readers, err := openAll(n, par, keep, func(i int) (*bufio.Reader, error) {
		return openH2Stream(ctx, ccs[i/perConn], scheme+"://"+addr, topic)
	})
	if err != nil {
		closeAll()
		return nil, nil, err
	}
	return readers, closeAll, nil
}

// openAll runs open for streams 0..n-1, par at a time, and returns the
// first error, or the streams' readers (nil unless keep is set).
func openAll(n, par int, keep bool, open func(i int) (*bufio.Reader, error)) ([]*bufio.Reader, error) {
	readers := make([]*bufio.Reader, n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, par)
	var mu sync.Mutex
	var firstErr error
	for i := 0; i < n; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			br, err := open(i)
			if err != nil {
				mu.Lock()
				if firstErr == nil {
					firstErr = fmt.Errorf("stream %d: %w", i, err)
				}
				mu.Unlock()
				return
			}
			if keep {
				readers[i] = br
			}
		}()
	}
	wg.Wait()
	return readers, firstErr
}

// openH2Stream sends one GET /stream on cc and reads its headers and first
// event. The stream stays open after ctx ends: ctx only bounds the opening.
func openH2Stream(ctx context.Context, cc *http.ClientConn, base, topic string) (*bufio.Reader, error) {
	req, err := http.NewRequest("GET", base+"/stream?event=topic&topic="+topic, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "text/event-stream")
	type result struct {
		resp *http.Response
		err  error
	}
	got := make(chan result, 1)
	go func() {
		resp, err := cc.RoundTrip(req)
		got <- result{resp, err}
	}()
	var res result
	select {
	case res = <-got:
	case <-ctx.Done():
		return nil, fmt.Errorf("no answer (more streams per connection than the server allows?): %w", ctx.Err())
	}
	if res.err != nil {
		return nil, res.err
	}
	if res.resp.StatusCode != http.StatusOK || res.resp.ProtoMajor != 2 {
		b, _ := io.ReadAll(io.LimitReader(res.resp.Body, 512))
		res.resp.Body.Close()
		return nil, fmt.Errorf("%s %s: %s", res.resp.Proto, res.resp.Status, bytes.TrimSpace(b))
	}
	br := bufio.NewReaderSize(res.resp.Body, 512)
	if err := readUntil(br, "\n\n"); err != nil { // the first event (retry + id)
		return nil, err
	}
	return br, nil
}

// fanoutGoroutines reads msgs events from every stream, a goroutine per
// stream, and returns each event's latency: the time it was read minus the
// publish time in its data.
func fanoutGoroutines(readers []*bufio.Reader, msgs int) []time.Duration {
	var wg sync.WaitGroup
	lat := make([][]time.Duration, len(readers))
	for i := range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := 0; k < msgs; k++ {
				data, err := readEventData(readers[i])
				if err != nil {
					return
				}
				at := time.Now()
				ns, err := strconv.ParseInt(string(data), 10, 64)
				if err == nil {
					lat[i] = append(lat[i], at.Sub(time.Unix(0, ns)))
				}
			}
		}()
	}
	wg.Wait()
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	return all
}

// printLatency prints the percentiles of the latencies, which it sorts,
// and the CPU time the process used per message.
func printLatency(all []time.Duration, cpu time.Duration, msgs int) {
	sort.Slice(all, func(a, b int) bool { return all[a] < all[b] })
	if len(all) > 0 {
		p := func(q float64) time.Duration { return all[int(q*float64(len(all)-1))] }
		fmt.Printf("latency n=%d p50=%v p90=%v p99=%v max=%v cpu/msg=%v\n", len(all), p(0.5), p(0.9), p(0.99), all[len(all)-1], (cpu / time.Duration(msgs)).Round(100*time.Microsecond))
	}
}

// cpuTime is the CPU time (user + system) the process used so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func readUntil(br *bufio.Reader, end string) error {
	var tail []byte
	for {
		b, err := br.ReadByte()
		if err != nil {
			return err
		}
		tail = append(tail, b)
		if len(tail) > len(end)+2 {
			tail = tail[1:]
		}
		if bytes.HasSuffix(bytes.ReplaceAll(tail, []byte("\r"), nil), []byte(end)) {
			return nil
		}
	}
}

// readEventData reads one event and returns its data (the first data line).
func readEventData(br *bufio.Reader) ([]byte, error) {
	var data []byte
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return nil, err
		}
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 {
			if data != nil {
				return data, nil
			}
			continue
		}
		if v, ok := bytes.CutPrefix(line, []byte("data: ")); ok && data == nil {
			data = append([]byte(nil), v...)
		}
	}
}
