// Command pushdclients opens many idle SSE streams to a pushd node for the
// memory and fan-out benchmarks (bench/pushd-*.sh). One process holds at most
// -n streams (keep it under the 20,000 descriptors a process may hold);
// the scripts start several.
//
// It prints "ready N" once N streams have their headers and first event, and
// with -fanout it then reads every stream and prints, per received event
// whose data is a publish time (unix nanoseconds), the delivery latency.
package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"net"
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
	par := flag.Int("par", 64, "connections opened in parallel")
	epoll := flag.Bool("epoll", true, "with -fanout, read every stream from one thread with epoll (Linux) rather than a goroutine per stream")
	flag.Parse()

	d := net.Dialer{Timeout: 10 * time.Second}
	if *src != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(*src)}
	}
	req := []byte("GET /stream?topic=" + *topic + " HTTP/1.1\r\nHost: " + *addr + "\r\nAccept: text/event-stream\r\n\r\n")
	conns := make([]net.Conn, *n)
	readers := make([]*bufio.Reader, *n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, *par)
	var mu sync.Mutex
	var firstErr error
	for i := 0; i < *n; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			var c net.Conn
			var err error
			for try := 0; try < 5; try++ { // a loaded machine drops some SYNs
				if c, err = d.Dial("tcp", *addr); err == nil {
					break
				}
			}
			if err == nil {
				_, err = c.Write(req)
			}
			var br *bufio.Reader
			if err == nil {
				br = bufio.NewReaderSize(c, 512)
				err = readUntil(br, "\n\n") // the headers
			}
			if err == nil {
				err = readUntil(br, "\n\n") // the first event (retry + id)
			}
			if err != nil {
				mu.Lock()
				if firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
				return
			}
			conns[i] = c
			if *fanout > 0 {
				readers[i] = br
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		fmt.Fprintln(os.Stderr, "pushdclients:", firstErr)
		os.Exit(1)
	}
	fmt.Printf("ready %d\n", *n)
	cpu0 := cpuTime()

	if *fanout > 0 && *epoll {
		all, err := fanoutEpoll(conns, readers, *fanout)
		if err != nil {
			fmt.Fprintln(os.Stderr, "pushdclients:", err)
		}
		printLatency(all, cpuTime()-cpu0, *fanout)
		return
	}
	if *fanout > 0 {
		lat := make([][]time.Duration, *n)
		for i := range readers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for k := 0; k < *fanout; k++ {
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
		printLatency(all, cpuTime()-cpu0, *fanout)
		return
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	<-sig
	for _, c := range conns {
		c.Close()
	}
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
