package dnsd

import (
	"net"
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// TCP limits. TCP answers are never rate limited (a TCP source cannot be
// forged, and RRL's slip sends real clients there), so TCP is bounded by
// connections instead: at most MaxTCPConns in all and MaxTCPConnsPerPrefix
// from one client prefix at once, at most TCPConnRate new ones a second from
// one prefix, and each connection closed when a whole query does not arrive
// within TCPIdleTimeout of the connection's start or of its previous answer —
// whether it sends nothing or a byte a second. A connection over a limit is
// closed as soon as it is accepted: nothing worse than a closed connection,
// and other clients' connections are untouched.

// Reasons a connection is refused, for the metric.
const (
	tcpRefusedTotal = iota
	tcpRefusedPrefix
	tcpRefusedRate
)

var tcpRefusedLabels = [...]string{"total", "prefix", "rate"}

// tcpLimiter keeps the per-prefix TCP limits.
type tcpLimiter struct {
	maxPer int
	prefix func(netip.Addr) netip.Prefix
	rate   *bucketTable // new connections per prefix

	mu   sync.Mutex
	open map[netip.Prefix]int // at most MaxTCPConns keys

	refused  [len(tcpRefusedLabels)]atomic.Uint64
	timeouts atomic.Uint64

	refusedDesc, timeoutsDesc *prometheus.Desc
}

func newTCPLimiter(cfg Config) *tcpLimiter {
	r := &rrl{cfg: cfg.RRL}
	return &tcpLimiter{
		maxPer: cfg.MaxTCPConnsPerPrefix,
		prefix: r.prefix,
		// A prefix opening connections faster than the rate keeps its
		// bucket; 4096 buckets of 32 bytes cover many more prefixes than
		// MaxTCPConns lets connect at once.
		rate:         newBucketTable(4096, cfg.TCPConnRate),
		open:         map[netip.Prefix]int{},
		refusedDesc:  prometheus.NewDesc("farmlb_dnsd_tcp_refused_total", "TCP connections closed as soon as accepted, by the limit reached: total (MaxTCPConns), prefix (connections open from the client's prefix), rate (new connections a second from the prefix).", []string{"reason"}, nil),
		timeoutsDesc: prometheus.NewDesc("farmlb_dnsd_tcp_timeouts_total", "TCP connections closed because a whole query did not arrive, or an answer could not be written, within the idle timeout.", nil, nil),
	}
}

// admit says whether a new connection from src at now (milliseconds) may
// stay; when it may, done must be called with the prefix it returns once
// the connection ends.
func (l *tcpLimiter) admit(src netip.Addr, now int64) (netip.Prefix, bool) {
	p := l.prefix(src)
	a := p.Addr().As16()
	var key [17]byte
	copy(key[:], a[:])
	key[16] = byte(p.Bits())
	if ok, _, _ := l.rate.take(l.rate.hash(key[:]), now); !ok {
		l.refused[tcpRefusedRate].Add(1)
		return p, false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.open[p] >= l.maxPer {
		l.refused[tcpRefusedPrefix].Add(1)
		return p, false
	}
	l.open[p]++
	return p, true
}

// done ends a connection admitted from p.
func (l *tcpLimiter) done(p netip.Prefix) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.open[p]--; l.open[p] <= 0 {
		delete(l.open, p)
	}
}

// remoteAddr is the client address of c, unmapped; the zero Addr when it is
// not TCP.
func remoteAddr(c net.Conn) netip.Addr {
	if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		return a.AddrPort().Addr().Unmap()
	}
	return netip.Addr{}
}

// Describe implements prometheus.Collector.
func (l *tcpLimiter) Describe(ch chan<- *prometheus.Desc) {
	ch <- l.refusedDesc
	ch <- l.timeoutsDesc
}

// Collect implements prometheus.Collector.
func (l *tcpLimiter) Collect(ch chan<- prometheus.Metric) {
	for i := range l.refused {
		ch <- prometheus.MustNewConstMetric(l.refusedDesc, prometheus.CounterValue, float64(l.refused[i].Load()), tcpRefusedLabels[i])
	}
	ch <- prometheus.MustNewConstMetric(l.timeoutsDesc, prometheus.CounterValue, float64(l.timeouts.Load()))
}
