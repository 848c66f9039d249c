package dnsd

import (
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
)

// guard puts DNS cookies and response rate limiting around the answer path:
// it reads a query's cookie, has the zone answer, adds the cookie to the
// reply, and has RRL judge what goes out over UDP. Nothing in it allocates
// on the way of a usual query.
type guard struct {
	rrl     *rrl // nil: RRL off
	cookies atomic.Pointer[cookieKeys]
	log     *slog.Logger
	base    time.Time // RRL's clock counts milliseconds from here

	lastLog   atomic.Int64 // Unix second of the last "limiting" log line
	notLogged atomic.Int64 // spells of limiting begun since, not logged

	mu    sync.Mutex
	stats []*guardStats

	droppedDesc, slippedDesc, cookiesDesc, inUseDesc *prometheus.Desc
}

func newGuard(cfg Config) *guard {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	g := &guard{
		log:         cfg.Logger,
		base:        time.Now(),
		droppedDesc: prometheus.NewDesc("farmlb_dnsd_rrl_dropped_total", "UDP responses response rate limiting dropped.", nil, nil),
		slippedDesc: prometheus.NewDesc("farmlb_dnsd_rrl_slipped_total", "UDP responses response rate limiting sent as an empty truncated reply (or BADCOOKIE) instead of dropping them.", nil, nil),
		inUseDesc:   prometheus.NewDesc("farmlb_dnsd_rrl_buckets_in_use", "RRL buckets that counted a response in the last 10 seconds, out of a fixed table (farmlb_dnsd_rrl_buckets).", nil, nil),
		cookiesDesc: prometheus.NewDesc("farmlb_dnsd_cookies_total", "Queries with a COOKIE option, by what it held: client (a client cookie alone), valid (a server cookie of this farm), invalid (a server cookie that is not, or no longer), malformed (answered FORMERR).", []string{"result"}, nil),
	}
	if cfg.RRL.Rate > 0 {
		g.rrl = newRRL(cfg.RRL)
	}
	if !cfg.Cookies.Off {
		g.cookies.Store(newCookieKeys(cfg.Cookies))
	}
	return g
}

// Cookie results, for the metric.
const (
	cookieClient = iota
	cookieValid
	cookieInvalid
	cookieMalformed
)

var cookieLabels = [...]string{"client", "valid", "invalid", "malformed"}

// guardStats are one serving goroutine's counters.
type guardStats struct {
	dropped, slipped atomic.Uint64
	cookies          [len(cookieLabels)]atomic.Uint64
	_                [64]byte
}

func (g *guard) newStats() *guardStats {
	s := new(guardStats)
	g.mu.Lock()
	g.stats = append(g.stats, s)
	g.mu.Unlock()
	return s
}

// Describe implements prometheus.Collector.
func (g *guard) Describe(ch chan<- *prometheus.Desc) {
	ch <- g.droppedDesc
	ch <- g.slippedDesc
	ch <- g.inUseDesc
	ch <- g.cookiesDesc
}

// Collect implements prometheus.Collector.
func (g *guard) Collect(ch chan<- prometheus.Metric) {
	g.mu.Lock()
	all := append([]*guardStats(nil), g.stats...)
	g.mu.Unlock()
	var dropped, slipped uint64
	var cookies [len(cookieLabels)]uint64
	for _, s := range all {
		dropped += s.dropped.Load()
		slipped += s.slipped.Load()
		for i := range cookies {
			cookies[i] += s.cookies[i].Load()
		}
	}
	ch <- prometheus.MustNewConstMetric(g.droppedDesc, prometheus.CounterValue, float64(dropped))
	ch <- prometheus.MustNewConstMetric(g.slippedDesc, prometheus.CounterValue, float64(slipped))
	inUse := 0
	if g.rrl != nil {
		inUse = g.rrl.table.inUse(g.millis(time.Now()), 10_000)
	}
	ch <- prometheus.MustNewConstMetric(g.inUseDesc, prometheus.GaugeValue, float64(inUse))
	for i, n := range cookies {
		ch <- prometheus.MustNewConstMetric(g.cookiesDesc, prometheus.CounterValue, float64(n), cookieLabels[i])
	}
}

// bucketsGauge is the size of the RRL table, a constant gauge.
func (g *guard) bucketsGauge() prometheus.Collector {
	n := 0
	if g.rrl != nil {
		n = g.rrl.table.size()
	}
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "farmlb_dnsd_rrl_buckets",
		Help: "Size of the RRL table (buckets, allocated at start; 0 when RRL is off).",
	}, func() float64 { return float64(n) })
}

func (g *guard) millis(t time.Time) int64 { return t.Sub(g.base).Milliseconds() }

// handle answers query q from src, received at now, with the answers of z,
// into buf; nil means no reply. slowOnly has the general path answer every
// query (the tests' reference).
func (g *guard) handle(z *zone, buf, q []byte, src netip.Addr, udp bool, now time.Time, st *stats, gs *guardStats, slowOnly bool) []byte {
	var ck queryCookie
	keys := g.cookies.Load()
	if keys != nil {
		ck = parseCookie(q)
	}
	var reply []byte
	var res result
	valid := false
	switch {
	case ck.malformed:
		gs.cookies[cookieMalformed].Add(1)
		reply = appendHeader(buf[:0], q, 0, dns.RcodeFormatError, 0, 0, 0)
		res = result{qtype: 0, rcode: dns.RcodeFormatError, slow: true}
	default:
		keep := false
		if ck.present {
			switch {
			case ck.server == nil:
				gs.cookies[cookieClient].Add(1)
			default:
				valid, keep = keys.check(ck.server, ck.client, uint32(now.Unix()), src)
				if valid {
					gs.cookies[cookieValid].Add(1)
				} else {
					gs.cookies[cookieInvalid].Add(1)
				}
			}
		}
		if slowOnly {
			reply, res = z.slow(buf, q, udp)
		} else {
			reply, res = z.answer(buf, q, udp)
		}
		if ck.present && endsInOPT(reply) {
			reply = g.addCookie(z, reply, keys, ck, keep, src, now, udp, &res)
		}
	}
	st.record(res)
	if reply == nil || !udp || g.rrl == nil || valid || g.rrl.allowed(src) {
		return reply
	}
	v, kind, started := g.rrl.check(src, reply, res.nxname, g.millis(now))
	if started {
		g.limiting(src, kind, now)
	}
	switch v {
	case dropIt:
		gs.dropped.Add(1)
		return nil
	case slipIt:
		gs.slipped.Add(1)
		if ck.present {
			return badCookie(reply, keys, ck, src, now, z.udpSize)
		}
		return appendSlip(reply[:0], reply)
	}
	return reply
}

// addCookie adds the client's cookie and a server cookie to reply, which
// ends in an OPT record without options. Over UDP, a reply that no longer
// fits the client's buffer becomes an empty truncated one.
func (g *guard) addCookie(z *zone, reply []byte, keys *cookieKeys, ck queryCookie, keep bool, src netip.Addr, now time.Time, udp bool, res *result) []byte {
	var sc [serverCookieLen]byte
	server := ck.server
	if !keep {
		server = keys.appendServerCookie(sc[:0], ck.client, uint32(now.Unix()), src)
	}
	if udp && len(reply)+4+len(ck.client)+len(server) > z.udpLimit(true, ck.size) {
		var opt [optLen]byte
		copy(opt[:], reply[len(reply)-optLen:])
		reply = appendSlip(reply[:0], reply)
		reply = append(reply, opt[:]...)
		reply[11] = 1
		res.truncated = true
	}
	return appendCookieOption(reply, ck.client, server)
}

// badCookie turns reply, the response to a query with a COOKIE option, into
// a BADCOOKIE one (RFC 7873 5.2.3: a server that will not answer a query
// without a valid server cookie, here because RRL limits its source, sends
// the client a fresh cookie to retry with): the question, and an OPT record
// with the server's UDP size, the query's DO bit echoed (RFC 3225) and the
// cookies.
func badCookie(reply []byte, keys *cookieKeys, ck queryCookie, src netip.Addr, now time.Time, udpSize uint16) []byte {
	var sc [serverCookieLen]byte
	server := keys.appendServerCookie(sc[:0], ck.client, uint32(now.Unix()), src)
	var opt [optLen]byte
	appendOPT(opt[:0], udpSize, ck.do)
	out := appendSlip(reply[:0], reply)
	out[2] &^= 0x02 // not truncated: the client retries over UDP with the cookie
	out[3] = out[3]&0xF0 | dns.RcodeBadCookie&0x0F
	opt[5] = dns.RcodeBadCookie >> 4 // extended rcode
	out = append(out, opt[:]...)
	out[11] = 1
	return appendCookieOption(out, ck.client, server)
}

// limiting logs that a bucket began to be limited, at most once a second
// for the whole server, saying how many others began meanwhile.
func (g *guard) limiting(src netip.Addr, kind byte, now time.Time) {
	sec := now.Unix()
	last := g.lastLog.Load()
	if sec <= last || !g.lastLog.CompareAndSwap(last, sec) {
		g.notLogged.Add(1)
		return
	}
	g.log.Warn("rrl: limiting responses to a client prefix", "prefix", g.rrl.prefix(src).String(), "kind", kindNames[kind],
		"rate", g.rrl.cfg.Rate, "slip", g.rrl.cfg.Slip, "others_since_last_line", g.notLogged.Swap(0))
}

// SetCookieSecrets changes the cookie secrets (on SIGHUP): secret makes and
// checks cookies from now on, previous are only checked. A zero secret draws
// a random one. It does nothing when cookies are off.
func (s *Server) SetCookieSecrets(secret [16]byte, previous [][16]byte) {
	if s.guard.cookies.Load() == nil {
		return
	}
	s.guard.cookies.Store(newCookieKeys(CookieConfig{Secret: secret, Previous: previous}))
}
