//go:build linux

// Command dnsload sends DNS queries over UDP from many source addresses at
// once, as no single dnsperf process can: each datagram leaves from the
// next of -sources addresses in 127.0.0.0/8 (one per /24: 127.B.C.1), set
// per packet with IP_PKTINFO on a socket bound to the wildcard address, which
// also receives the replies to all of them. It is the load of the dnsd
// benchmarks with response rate limiting on (bench/dnsd.sh: many clients,
// none over its limit) and the flood of bench/dnsd-flood.sh (one source as
// fast as it goes, or 100,000 forged ones).
//
// Two modes:
//
//	dnsload -s 127.0.0.1:53 -d queries -l 10s -sources 4096 -q 500   # closed loop: -q outstanding per socket, like dnsperf
//	dnsload -s 127.0.0.1:53 -d queries -l 10s -rate 0 -src 127.9.0.1 # open loop: as fast as it goes (or -rate q/s), replies only counted
//
// It prints one line of key=value: sent, received, lost, qps (answered a
// second), latency_ms (closed loop), bytes_sent, bytes_received (DNS
// payloads), truncated (replies with TC) and amplification (bytes received /
// bytes sent).
package main

import (
	"bufio"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/net/ipv4"
)

func main() {
	server := flag.String("s", "127.0.0.1:53", "the server, host:port")
	data := flag.String("d", "", "queries, one \"NAME TYPE\" a line (dnsperf's format)")
	length := flag.Duration("l", 10*time.Second, "how long to send")
	sources := flag.Int("sources", 1, "distinct source addresses in 127.0.0.0/8, each in a /24 of its own (127.B.C.1 from 127.1.0.1) up to 65,280 of them, then 127.B.C.2 and so on")
	src := flag.String("src", "", "a single source address (overrides -sources)")
	sockets := flag.Int("c", 2, "sockets, each with a sender and a receiver goroutine")
	outstanding := flag.Int("q", 500, "closed loop: queries outstanding per socket")
	rate := flag.Int("rate", -1, "open loop: queries a second in all, 0 for as fast as it goes; -1: closed loop")
	timeout := flag.Duration("t", time.Second, "a query without a reply for this long is lost")
	edns := flag.Bool("e", false, "send an EDNS0 OPT record (1232 bytes)")
	do := flag.Bool("D", false, "set the DO bit (DNSSEC OK) in an EDNS0 OPT record, as dnsperf -D (implies -e)")
	flag.Parse()
	if *data == "" || *sources < 1 || *sources > 1_000_000 || *sockets < 1 || *outstanding < 1 {
		fmt.Fprintln(os.Stderr, "dnsload: need -d FILE, 1 <= -sources <= 1000000, -c >= 1, -q >= 1")
		os.Exit(2)
	}
	queries, err := readQueries(*data, *edns || *do, *do)
	if err != nil {
		fmt.Fprintln(os.Stderr, "dnsload:", err)
		os.Exit(1)
	}
	to, err := net.ResolveUDPAddr("udp4", *server)
	if err != nil {
		fmt.Fprintln(os.Stderr, "dnsload:", err)
		os.Exit(2)
	}
	var addrs []netip.Addr
	if *src != "" {
		a, err := netip.ParseAddr(*src)
		if err != nil {
			fmt.Fprintln(os.Stderr, "dnsload: -src:", err)
			os.Exit(2)
		}
		addrs = []netip.Addr{a}
	} else {
		const nets = 1<<16 - 256 // the /24s from 127.1.0.0: 127.0.0.0/16 is the servers'
		for i := range *sources {
			n := i%nets + 256
			addrs = append(addrs, netip.AddrFrom4([4]byte{127, byte(n >> 8), byte(n), byte(1 + i/nets)}))
		}
	}
	var t totals
	var wg sync.WaitGroup
	deadline := time.Now().Add(*length)
	start := time.Now()
	for i := range *sockets {
		w, err := newWorker(to, queries, addrs, i, *sockets, &t)
		if err != nil {
			fmt.Fprintln(os.Stderr, "dnsload:", err)
			os.Exit(1)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if *rate >= 0 {
				w.open(deadline, float64(*rate)/float64(*sockets))
			} else {
				w.closed(deadline, *outstanding, *timeout)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start).Seconds()
	sent, recv := t.sent.Load(), t.received.Load()
	lost := int64(sent) - int64(recv)
	lat := 0.0
	if recv > 0 {
		lat = float64(t.latencyNanos.Load()) / float64(recv) / 1e6
	}
	amp := 0.0
	if bs := t.bytesSent.Load(); bs > 0 {
		amp = float64(t.bytesReceived.Load()) / float64(bs)
	}
	fmt.Printf("sent=%d received=%d lost=%d qps=%.0f latency_ms=%.3f bytes_sent=%d bytes_received=%d truncated=%d amplification=%.3f sources=%d\n",
		sent, recv, max(lost, 0), float64(recv)/elapsed, lat, t.bytesSent.Load(), t.bytesReceived.Load(), t.truncated.Load(), amp, len(addrs))
}

type totals struct {
	sent, received, bytesSent, bytesReceived, truncated, latencyNanos atomic.Uint64
}

// readQueries packs the queries of a dnsperf data file.
func readQueries(path string, edns, do bool) ([][]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out [][]byte
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) != 2 {
			continue
		}
		t, ok := dns.StringToType[strings.ToUpper(fields[1])]
		if !ok {
			return nil, fmt.Errorf("%s: unknown type %q", path, fields[1])
		}
		m := new(dns.Msg)
		m.SetQuestion(dns.Fqdn(fields[0]), t)
		m.RecursionDesired = false
		if edns {
			m.SetEdns0(1232, do)
		}
		b, err := m.Pack()
		if err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no queries", path)
	}
	return out, sc.Err()
}

const batch = 32

// worker is one socket, bound to the wildcard address, sending from its
// share of the sources.
type worker struct {
	pc      *ipv4.PacketConn
	c       *net.UDPConn
	to      *net.UDPAddr
	queries [][]byte
	oob     [][]byte // a control message per source
	t       *totals
	sentAt  [65536]atomic.Int64 // by query ID: when sent (UnixNano), 0 when not in flight
}

func newWorker(to *net.UDPAddr, queries [][]byte, addrs []netip.Addr, i, n int, t *totals) (*worker, error) {
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4zero})
	if err != nil {
		return nil, err
	}
	_ = c.SetReadBuffer(8 << 20)
	_ = c.SetWriteBuffer(8 << 20)
	w := &worker{pc: ipv4.NewPacketConn(c), c: c, to: to, queries: queries, t: t}
	for j := i; j < len(addrs); j += n {
		a := addrs[j].As4()
		w.oob = append(w.oob, (&ipv4.ControlMessage{Src: net.IP(a[:])}).Marshal())
	}
	if len(w.oob) == 0 { // fewer sources than sockets
		a := addrs[i%len(addrs)].As4()
		w.oob = append(w.oob, (&ipv4.ControlMessage{Src: net.IP(a[:])}).Marshal())
	}
	return w, nil
}

// receive reads replies until the socket closes; closed-loop replies free
// their query's slot in free.
func (w *worker) receive(free chan struct{}) {
	ms := make([]ipv4.Message, batch)
	for i := range ms {
		ms[i].Buffers = [][]byte{make([]byte, 4096)}
	}
	for {
		n, err := w.pc.ReadBatch(ms, 0)
		if err != nil {
			return
		}
		now := time.Now().UnixNano()
		for _, m := range ms[:n] {
			b := m.Buffers[0][:m.N]
			if len(b) < 12 {
				continue
			}
			if free != nil {
				id := uint16(b[0])<<8 | uint16(b[1])
				at := w.sentAt[id].Swap(0)
				if at == 0 {
					continue // late: already counted lost
				}
				w.t.latencyNanos.Add(uint64(now - at))
				free <- struct{}{}
			}
			w.t.received.Add(1)
			w.t.bytesReceived.Add(uint64(len(b)))
			if b[2]&0x02 != 0 {
				w.t.truncated.Add(1)
			}
		}
	}
}

// closed keeps q queries outstanding until deadline, then waits for the
// last replies.
func (w *worker) closed(deadline time.Time, q int, timeout time.Duration) {
	free := make(chan struct{}, q)
	for range q {
		free <- struct{}{}
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); w.receive(free) }()
	stop := make(chan struct{})
	go func() { // the sweeper: a query past its timeout is lost and frees its slot
		defer wg.Done()
		tick := time.NewTicker(timeout / 4)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			old := time.Now().Add(-timeout).UnixNano()
			for i := range w.sentAt {
				if at := w.sentAt[i].Load(); at != 0 && at < old && w.sentAt[i].CompareAndSwap(at, 0) {
					free <- struct{}{}
				}
			}
		}
	}()
	ms := make([]ipv4.Message, batch)
	for i := range ms {
		ms[i].Addr = w.to
		ms[i].Buffers = make([][]byte, 1)
	}
	id, qi, si := uint16(0), 0, 0
	bufs := make([][]byte, batch)
	for i := range bufs {
		bufs[i] = make([]byte, 0, 512)
	}
	for time.Now().Before(deadline) {
		<-free
		k := 1
	more:
		for k < batch {
			select {
			case <-free:
				k++
			default:
				break more
			}
		}
		now := time.Now().UnixNano()
		for i := range k {
			for w.sentAt[id].Load() != 0 {
				id++
			}
			b := append(bufs[i][:0], w.queries[qi]...)
			b[0], b[1] = byte(id>>8), byte(id)
			w.sentAt[id].Store(now)
			id++
			ms[i].Buffers[0] = b
			ms[i].OOB = w.oob[si]
			qi = (qi + 1) % len(w.queries)
			si = (si + 1) % len(w.oob)
			w.t.bytesSent.Add(uint64(len(b)))
		}
		w.send(ms[:k])
	}
	// The replies still in flight: wait up to the timeout.
	end := time.Now().Add(timeout)
	for time.Now().Before(end) && w.inFlight() > 0 {
		time.Sleep(10 * time.Millisecond)
	}
	close(stop)
	w.c.Close()
	wg.Wait()
}

func (w *worker) inFlight() int {
	n := 0
	for i := range w.sentAt {
		if w.sentAt[i].Load() != 0 {
			n++
		}
	}
	return n
}

// open sends at rate queries a second (0: as fast as the socket takes them)
// until deadline, counting the replies that come back.
func (w *worker) open(deadline time.Time, rate float64) {
	done := make(chan struct{})
	go func() { defer close(done); w.receive(nil) }()
	ms := make([]ipv4.Message, batch)
	for i := range ms {
		ms[i].Addr = w.to
		ms[i].Buffers = make([][]byte, 1)
	}
	bufs := make([][]byte, batch)
	for i := range bufs {
		bufs[i] = make([]byte, 0, 512)
	}
	start := time.Now()
	var id uint16
	qi, si, sent := 0, 0, 0
	for time.Now().Before(deadline) {
		k := batch
		if rate > 0 {
			due := int(time.Since(start).Seconds()*rate) - sent
			if due <= 0 {
				time.Sleep(time.Millisecond)
				continue
			}
			k = min(due, batch)
		}
		for i := range k {
			b := append(bufs[i][:0], w.queries[qi]...)
			b[0], b[1] = byte(id>>8), byte(id)
			id++
			ms[i].Buffers[0] = b
			ms[i].OOB = w.oob[si]
			qi = (qi + 1) % len(w.queries)
			si = (si + 1) % len(w.oob)
			w.t.bytesSent.Add(uint64(len(b)))
		}
		w.send(ms[:k])
		sent += k
	}
	time.Sleep(500 * time.Millisecond) // the last replies
	w.c.Close()
	<-done
}

// send writes the batch; datagrams the kernel refuses (a full buffer) are
// counted sent all the same, as lost.
func (w *worker) send(ms []ipv4.Message) {
	for len(ms) > 0 {
		n, err := w.pc.WriteBatch(ms, 0)
		if err != nil {
			n = 1
		}
		w.t.sent.Add(uint64(n))
		ms = ms[n:]
	}
}
