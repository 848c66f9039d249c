package dnsd

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"

	"github.com/farmlb/farmlb/farm"
)

// Server is the authoritative DNS server for one farm's zone. Create it with
// New, bind with Listen (or let Serve do it), run Serve, stop with Shutdown.
type Server struct {
	cfg     Config
	log     *slog.Logger
	metrics *metrics
	guard   *guard      // cookies and RRL around the answer path
	tcpLim  *tcpLimiter // TCP limits per prefix

	// zone is the snapshot queries are answered from.
	zone atomic.Pointer[zone]
	// taken is when the table answered from was taken from the source (Unix
	// nanoseconds), for the table-age metric.
	taken atomic.Int64

	// buildMu serialises rebuilds and guards the fields below it.
	buildMu  sync.Mutex
	zoneCfg  Zone
	serial   uint32
	source   *farm.List // the source's table last built (tables are immutable snapshots)
	lastUp   *farm.List // the last table with an UP server (HoldLastUp)
	held     bool
	lastNote string
	// signer signs the zone with zoneCfg.Keys (nil: unsigned); made anew
	// when the zone settings change.
	signer *signer
	// resign is poked when a build sets a new refresh time.
	resign chan struct{}
	// tableHook, when set (by tests), is called with each source table
	// taken, under buildMu.
	tableHook func(*farm.List)

	mu       sync.Mutex
	udp      []net.PacketConn
	tcp      net.Listener
	conns    map[net.Conn]struct{}
	serving  bool
	closed   bool
	stopOnce sync.Once
	stop     chan struct{} // closed by Shutdown
	finished chan struct{} // closed when Serve returns
}

// New checks cfg, fills its defaults and builds the first answers from the
// source's current table.
func New(cfg Config) (*Server, error) {
	cfg, err := cfg.populate()
	if err != nil {
		return nil, err
	}
	s := &Server{
		cfg:      cfg,
		log:      cfg.Logger,
		zoneCfg:  cfg.Zone,
		conns:    map[net.Conn]struct{}{},
		resign:   make(chan struct{}, 1),
		stop:     make(chan struct{}),
		finished: make(chan struct{}),
	}
	s.metrics = newMetrics(func() float64 {
		return cfg.Now().Sub(time.Unix(0, s.taken.Load())).Seconds()
	})
	if err := s.rebuild(true); err != nil {
		return nil, fmt.Errorf("dnsd: first table: %w", err)
	}
	s.guard = newGuard(cfg)
	s.tcpLim = newTCPLimiter(cfg)
	if err := s.metrics.register(cfg.Registerer, s.guard, s.guard.bucketsGauge(), s.tcpLim); err != nil {
		return nil, fmt.Errorf("dnsd: register metrics: %w", err)
	}
	return s, nil
}

// SetZone changes what the server answers (TTLs, nameservers, names) and
// rebuilds the answers. The listen address and sockets stay as they are.
func (s *Server) SetZone(z Zone) error {
	z, err := z.populate(s.cfg.Listen)
	if err != nil {
		return err
	}
	s.buildMu.Lock()
	old, oldSigner := s.zoneCfg, s.signer
	s.zoneCfg, s.signer = z, nil
	s.buildMu.Unlock()
	if err := s.rebuild(true); err != nil {
		s.buildMu.Lock()
		s.zoneCfg, s.signer = old, oldSigner
		s.buildMu.Unlock()
		return err
	}
	return nil
}

// rebuild builds the answers from the source's current table, unless it is
// the table already answered from, force is false and no signature is due.
func (s *Server) rebuild(force bool) error {
	s.buildMu.Lock()
	defer s.buildMu.Unlock()
	now := s.cfg.Now()
	l := s.cfg.Source.Table()
	if l == s.source && !force && !s.resignDue(now) {
		return nil
	}
	s.source = l
	taken := l
	up := countUp(l)
	held := false
	if s.cfg.HoldLastUp && up == 0 && s.lastUp != nil {
		l, held = s.lastUp, true
	}
	s.serial = max(s.serial+1, uint32(now.Unix()))
	if s.zoneCfg.Keys != nil && s.signer == nil {
		s.signer = newSigner(s.zoneCfg.Keys)
		s.signer.denied = s.metrics.denialsSigned
		s.log.Info("dnssec: signing the zone", "keys", s.signer.describe())
	}
	var z *zone
	var err error
	if s.signer != nil {
		start := time.Now()
		z, err = buildSignedZone(s.zoneCfg, l, s.serial, s.cfg.UDPSize, s.signer, now)
		s.metrics.signDuration.Observe(time.Since(start).Seconds())
	} else {
		z, err = buildZone(s.zoneCfg, l, s.serial, s.cfg.UDPSize)
	}
	if err != nil {
		s.metrics.tableErrors.Inc()
		s.log.Error("table not taken: answers stay as they were", "err", err)
		return err
	}
	if note := fmt.Sprint(z.notes); note != s.lastNote {
		for _, n := range z.notes {
			s.log.Warn("zone: " + n)
		}
		s.lastNote = note
	}
	s.zone.Store(z)
	s.metrics.tableUpdates.Inc()
	if z.signer != nil {
		select {
		case s.resign <- struct{}{}:
		default:
		}
	}
	if !held {
		s.taken.Store(now.UnixNano())
		if up > 0 {
			s.lastUp = l
		}
	}
	switch {
	case held && !s.held:
		s.log.Warn("the source's table has no UP server: answering from the last table that had one",
			"table_time", time.Unix(0, s.taken.Load()).UTC(), "servers", len(l.Servers), "up", z.up)
	case !held && s.held:
		s.log.Info("the source's table has UP servers again", "up", up)
	}
	s.held = held
	if held {
		s.metrics.tableHeld.Set(1)
	} else {
		s.metrics.tableHeld.Set(0)
	}
	counts := map[farm.Status]int{}
	for _, sv := range l.Servers {
		counts[sv.Status]++
	}
	for _, st := range []farm.Status{farm.StatusUp, farm.StatusDown, farm.StatusDraining} {
		s.metrics.tableServers.WithLabelValues(st.String()).Set(float64(counts[st]))
	}
	s.log.Debug("table taken", "servers", len(l.Servers), "up", up, "serial", s.serial, "held", held)
	if s.tableHook != nil {
		s.tableHook(taken)
	}
	return nil
}

func countUp(l *farm.List) int {
	n := 0
	for _, s := range l.Servers {
		if s.Status == farm.StatusUp {
			n++
		}
	}
	return n
}

// Listen binds the UDP sockets (UDPSockets of them sharing one port with
// SO_REUSEPORT) and the TCP listener on the same port, unless they were given
// in Config. A port of 0 picks a free port shared by UDP and TCP.
func (s *Server) Listen() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("dnsd: server is shut down")
	}
	if len(s.udp) > 0 || s.tcp != nil {
		return errors.New("dnsd: already listening")
	}
	udp, tcp := s.cfg.PacketConns, s.cfg.Listener
	var err error
	for try := 0; ; try++ {
		var lu []net.PacketConn
		var lt net.Listener
		lu, lt, err = s.bind(udp == nil, tcp == nil)
		if err == nil {
			if udp == nil {
				udp = lu
			}
			if tcp == nil {
				tcp = lt
			}
			break
		}
		// With port 0 the kernel picks a UDP port that may be taken for TCP.
		if _, port, _ := net.SplitHostPort(s.cfg.Listen); port != "0" || try == 10 || !errors.Is(err, syscall.EADDRINUSE) {
			return fmt.Errorf("dnsd: listen on %s: %w", s.cfg.Listen, err)
		}
	}
	s.udp, s.tcp = udp, tcp
	return nil
}

// bind opens the UDP sockets and the TCP listener that were not injected.
func (s *Server) bind(wantUDP, wantTCP bool) ([]net.PacketConn, net.Listener, error) {
	ctx := context.Background()
	addr := s.cfg.Listen
	var udp []net.PacketConn
	closeAll := func() {
		for _, c := range udp {
			c.Close()
		}
	}
	if wantUDP {
		lc := net.ListenConfig{Control: reusePort}
		n := s.cfg.UDPSockets
		if reusePort == nil {
			n = 1
		}
		for i := 0; i < n; i++ {
			c, err := lc.ListenPacket(ctx, "udp", addr)
			if err != nil {
				closeAll()
				return nil, nil, err
			}
			if u, ok := c.(*net.UDPConn); ok {
				setBuffers(u)
			}
			udp = append(udp, c)
			if i == 0 { // the others share the first one's port
				host, _, _ := net.SplitHostPort(addr)
				addr = net.JoinHostPort(host, strconv.Itoa(c.LocalAddr().(*net.UDPAddr).Port))
			}
		}
	}
	var tcp net.Listener
	if wantTCP {
		var err error
		tcp, err = (&net.ListenConfig{}).Listen(ctx, "tcp", addr)
		if err != nil {
			closeAll()
			return nil, nil, err
		}
	}
	return udp, tcp, nil
}

// Addr returns the address the server answers on (the first UDP socket's;
// TCP shares its port unless a listener was injected), or nil before Listen.
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.udp) > 0 {
		return s.udp[0].LocalAddr()
	}
	if s.tcp != nil {
		return s.tcp.Addr()
	}
	return nil
}

// TCPAddr returns the TCP listener's address, or nil before Listen.
func (s *Server) TCPAddr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tcp == nil {
		return nil
	}
	return s.tcp.Addr()
}

// Serve answers queries until ctx ends or Shutdown is called, then closes
// every socket and waits for every goroutine it started. It listens first if
// Listen was not called. It returns nil after a clean stop.
func (s *Server) Serve(ctx context.Context) error {
	s.mu.Lock()
	if s.serving || s.closed {
		s.mu.Unlock()
		return errors.New("dnsd: Serve called twice or after Shutdown")
	}
	s.serving = true
	listening := len(s.udp) > 0 || s.tcp != nil
	s.mu.Unlock()
	defer close(s.finished)
	if !listening {
		if err := s.Listen(); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	s.mu.Lock()
	udp, tcp := s.udp, s.tcp
	s.mu.Unlock()

	changed, unsubscribe := s.cfg.Source.Subscribe()
	defer unsubscribe()
	_ = s.rebuild(false) // catch up with changes since New; an error is logged and the old answers stay
	wg.Add(1)
	go func() {
		defer wg.Done()
		// The refresh timer re-signs a signed zone whose table does not
		// change before its signatures come due (dnssec.go).
		refresh := time.NewTimer(s.refreshIn())
		defer refresh.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-changed:
				_ = s.rebuild(false)
			case <-s.resign:
				refresh.Reset(s.refreshIn())
			case <-refresh.C:
				_ = s.rebuild(false)
				refresh.Reset(s.refreshIn())
			}
		}
	}()
	for _, c := range udp {
		st, gs := s.metrics.newStats(), s.guard.newStats()
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.serveUDP(c, st, gs)
		}()
	}
	if tcp != nil {
		st, gs := s.metrics.newStats(), s.guard.newStats()
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.serveTCP(tcp, st, gs, &wg)
		}()
	}
	s.log.Info("serving", "zone", s.Zone().Origin, "udp", addrOf(udp), "udp_sockets", len(udp), "tcp", tcpAddrOf(tcp))

	select {
	case <-ctx.Done():
	case <-s.stop:
	}
	cancel()
	s.closeAll()
	wg.Wait()
	s.log.Info("stopped")
	return nil
}

func addrOf(c []net.PacketConn) string {
	if len(c) == 0 {
		return ""
	}
	return c[0].LocalAddr().String()
}

func tcpAddrOf(l net.Listener) string {
	if l == nil {
		return ""
	}
	return l.Addr().String()
}

// closeAll closes the sockets and every TCP connection, which ends the
// serving goroutines.
func (s *Server) closeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	for _, c := range s.udp {
		c.Close()
	}
	if s.tcp != nil {
		s.tcp.Close()
	}
	for c := range s.conns {
		c.Close()
	}
}

// Shutdown stops the server and waits until Serve has returned and every
// goroutine has ended, or ctx ends. TCP connections are closed: a DNS client
// retries a query whose connection closes.
func (s *Server) Shutdown(ctx context.Context) error {
	s.stopOnce.Do(func() { close(s.stop) })
	s.mu.Lock()
	serving := s.serving
	s.mu.Unlock()
	if !serving {
		s.closeAll()
		s.unregister()
		return nil
	}
	select {
	case <-s.finished:
		s.unregister()
		return nil
	case <-ctx.Done():
		// The sockets are closed; the goroutines finish on their own. The
		// metrics go now, so that a new server can use the registry.
		s.unregister()
		return ctx.Err()
	}
}

// pause handles an error of a UDP read or a TCP accept other than a closed
// socket (out of file descriptors and the like): it logs it as what and
// waits, as net/http does, doubling the pause from 5 ms up to a second while
// the errors go on, so that a persistent error neither spins a core nor
// floods the log. It returns false when the server is stopping.
func (s *Server) pause(what string, err error, backoff *time.Duration) bool {
	*backoff = min(max(2**backoff, 5*time.Millisecond), time.Second)
	s.log.Warn(what, "err", err, "retry_in", *backoff)
	select {
	case <-s.stop:
		return false
	case <-time.After(*backoff):
		return true
	}
}

// batchConn reads and writes many datagrams per system call
// (recvmmsg/sendmmsg on Linux).
type batchConn interface {
	ReadBatch(ms []ipv4.Message, flags int) (int, error)
	WriteBatch(ms []ipv4.Message, flags int) (int, error)
}

const (
	udpBatch = 32   // datagrams per system call: enough to amortise it, small enough to stay in cache
	recvSize = 4096 // a larger query is cut short and answered FORMERR
)

// serveUDP answers one UDP socket until it is closed.
func (s *Server) serveUDP(c net.PacketConn, st *stats, gs *guardStats) {
	u, ok := c.(*net.UDPConn)
	if !ok {
		s.serveUDPSimple(c, st, gs)
		return
	}
	var bc batchConn
	if a, _ := u.LocalAddr().(*net.UDPAddr); a != nil && a.IP.To4() != nil {
		bc = ipv4.NewPacketConn(u)
	} else {
		bc = ipv6.NewPacketConn(u)
	}
	in := make([]ipv4.Message, udpBatch)
	out := make([]ipv4.Message, udpBatch)
	rbuf := make([]byte, udpBatch*recvSize)
	obuf := make([][]byte, udpBatch)
	for i := range in {
		in[i].Buffers = [][]byte{rbuf[i*recvSize : (i+1)*recvSize]}
		out[i].Buffers = make([][]byte, 1)
		obuf[i] = make([]byte, 0, s.cfg.UDPSize)
	}
	var backoff time.Duration
	for {
		n, err := bc.ReadBatch(in, 0)
		if err != nil {
			if errors.Is(err, net.ErrClosed) || !s.pause("udp read", err, &backoff) {
				return
			}
			continue
		}
		backoff = 0
		start := time.Now()
		z := s.zone.Load()
		k := 0
		for i := 0; i < n; i++ {
			m := &in[i]
			reply := s.guard.handle(z, obuf[k][:0], m.Buffers[0][:m.N], udpSource(m.Addr), true, start, st, gs, false)
			if reply == nil {
				continue
			}
			out[k].Buffers[0] = reply
			out[k].Addr = m.Addr
			k++
		}
		st.observe(time.Since(start), n)
		for sent := 0; sent < k; {
			w, err := bc.WriteBatch(out[sent:k], 0)
			if err != nil {
				if errors.Is(err, net.ErrClosed) {
					return
				}
				s.log.Debug("udp write", "to", out[sent].Addr, "err", err)
				w = 1 // drop the answer that failed, send the rest
			}
			sent += w
		}
		for i := 0; i < n; i++ {
			in[i].Addr = nil
		}
	}
}

// serveUDPSimple answers a PacketConn that is not a UDP socket (one given in
// Config), one datagram at a time.
func (s *Server) serveUDPSimple(c net.PacketConn, st *stats, gs *guardStats) {
	buf := make([]byte, recvSize)
	out := make([]byte, 0, s.cfg.UDPSize)
	var backoff time.Duration
	for {
		n, from, err := c.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) || !s.pause("udp read", err, &backoff) {
				return
			}
			continue
		}
		backoff = 0
		start := time.Now()
		reply := s.guard.handle(s.zone.Load(), out[:0], buf[:n], udpSource(from), true, start, st, gs, false)
		st.observe(time.Since(start), 1)
		if reply != nil {
			if _, err := c.WriteTo(reply, from); errors.Is(err, net.ErrClosed) {
				return
			}
		}
	}
}

// serveTCP accepts connections until the listener is closed; each
// connection's goroutine is added to wg.
func (s *Server) serveTCP(l net.Listener, st *stats, gs *guardStats, wg *sync.WaitGroup) {
	slots := make(chan struct{}, s.cfg.MaxTCPConns)
	var backoff time.Duration
	for {
		c, err := l.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) || !s.pause("tcp accept", err, &backoff) {
				return
			}
			continue
		}
		backoff = 0
		src := remoteAddr(c)
		prefix, ok := s.tcpLim.admit(src, s.guard.millis(time.Now()))
		if !ok {
			c.Close()
			continue
		}
		select {
		case slots <- struct{}{}:
		default:
			s.tcpLim.refused[tcpRefusedTotal].Add(1)
			s.log.Debug("tcp connection refused: at MaxTCPConns", "from", c.RemoteAddr())
			s.tcpLim.done(prefix)
			c.Close()
			continue
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			c.Close()
			return
		}
		s.conns[c] = struct{}{}
		s.metrics.tcpConns.Inc()
		s.mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() {
				s.mu.Lock()
				delete(s.conns, c)
				s.metrics.tcpConns.Dec()
				s.mu.Unlock()
				c.Close()
				<-slots
				s.tcpLim.done(prefix)
			}()
			s.serveConn(c, src, st, gs)
		}()
	}
}

// serveConn answers the queries of one TCP connection in order (RFC 7766
// pipelining) until it closes or idles.
func (s *Server) serveConn(c net.Conn, src netip.Addr, st *stats, gs *guardStats) {
	r := bufio.NewReaderSize(c, 4096)
	// Grown to the largest query the connection sends, so that an idle
	// connection costs 4 KiB and not 64.
	query := make([]byte, 512)
	buf := make([]byte, 0, 4096)
	var length [2]byte
	for {
		if err := c.SetReadDeadline(time.Now().Add(s.cfg.TCPIdleTimeout)); err != nil {
			return
		}
		if _, err := io.ReadFull(r, length[:]); err != nil {
			s.countTimeout(err)
			return
		}
		n := int(binary.BigEndian.Uint16(length[:]))
		if n > len(query) {
			query = make([]byte, n)
		}
		if _, err := io.ReadFull(r, query[:n]); err != nil {
			s.countTimeout(err)
			return
		}
		start := time.Now()
		reply := s.guard.handle(s.zone.Load(), buf[:0], query[:n], src, false, start, st, gs, false)
		st.observe(time.Since(start), 1)
		if reply == nil {
			continue
		}
		if cap(reply) > cap(buf) {
			buf = reply[:0]
		}
		binary.BigEndian.PutUint16(length[:], uint16(len(reply)))
		_ = c.SetWriteDeadline(time.Now().Add(s.cfg.TCPIdleTimeout))
		bufs := net.Buffers{length[:], reply}
		if _, err := bufs.WriteTo(c); err != nil {
			s.countTimeout(err)
			return
		}
	}
}

// Zone returns the zone settings in use (defaults filled in).
func (s *Server) Zone() Zone {
	s.buildMu.Lock()
	defer s.buildMu.Unlock()
	z := s.zoneCfg
	z.NameServers = slices.Clone(z.NameServers)
	return z
}

// countTimeout counts a TCP connection ended by its deadline.
func (s *Server) countTimeout(err error) {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		s.tcpLim.timeouts.Add(1)
	}
}

// udpSource is the client address of a UDP datagram, unmapped.
func udpSource(a net.Addr) netip.Addr {
	if u, ok := a.(*net.UDPAddr); ok {
		return u.AddrPort().Addr().Unmap()
	}
	return netip.Addr{}
}

func (s *Server) unregister() { s.metrics.unregister(s.cfg.Registerer) }
