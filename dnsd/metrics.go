package dnsd

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
)

// The query counters are kept per serving goroutine in plain atomics (a
// CounterVec lookup per query would cost more than the rest of the fast path)
// and summed when Prometheus scrapes.

// typeLabels are the query types counted by name; the rest count as "other".
var typeLabels = [...]string{"A", "AAAA", "TXT", "SRV", "NS", "SOA", "ANY", "other"}

func typeIndex(t uint16) int {
	switch t {
	case dns.TypeA:
		return 0
	case dns.TypeAAAA:
		return 1
	case dns.TypeTXT:
		return 2
	case dns.TypeSRV:
		return 3
	case dns.TypeNS:
		return 4
	case dns.TypeSOA:
		return 5
	case dns.TypeANY:
		return 6
	}
	return 7
}

// rcodeLabels are the rcodes counted by name; "none" is a query that got no
// reply (a response, or shorter than a header).
var rcodeLabels = [...]string{"NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED", "BADVERS", "none"}

func rcodeIndex(r int) int {
	switch r {
	case dns.RcodeSuccess:
		return 0
	case dns.RcodeFormatError:
		return 1
	case dns.RcodeServerFailure:
		return 2
	case dns.RcodeNameError:
		return 3
	case dns.RcodeNotImplemented:
		return 4
	case dns.RcodeRefused:
		return 5
	case dns.RcodeBadVers:
		return 6
	}
	return 7
}

// latencyBuckets are the answer-duration histogram's upper bounds: from the
// fast path's microseconds to a slow path under load.
var latencyBuckets = [...]float64{5e-6, 10e-6, 25e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 100e-3}

// stats are one serving goroutine's counters.
type stats struct {
	queries   [len(typeLabels)][len(rcodeLabels)]atomic.Uint64
	truncated atomic.Uint64
	slow      atomic.Uint64
	buckets   [len(latencyBuckets) + 1]atomic.Uint64
	durNanos  atomic.Uint64
	_         [64]byte // keep goroutines' counters off each other's cache lines
}

func (s *stats) record(r result) {
	s.queries[typeIndex(r.qtype)][rcodeIndex(r.rcode)].Add(1)
	if r.truncated {
		s.truncated.Add(1)
	}
	if r.slow {
		s.slow.Add(1)
	}
}

// observe records n answers that each took d.
func (s *stats) observe(d time.Duration, n int) {
	sec := d.Seconds()
	i := 0
	for i < len(latencyBuckets) && sec > latencyBuckets[i] {
		i++
	}
	s.buckets[i].Add(uint64(n))
	s.durNanos.Add(uint64(d.Nanoseconds()) * uint64(n))
}

// metrics are the server's Prometheus metrics.
type metrics struct {
	mu    sync.Mutex
	stats []*stats

	queriesDesc, truncDesc, slowDesc, latencyDesc *prometheus.Desc

	tableAge      prometheus.GaugeFunc
	tableHeld     prometheus.Gauge
	tableServers  *prometheus.GaugeVec
	tableUpdates  prometheus.Counter
	tableErrors   prometheus.Counter
	tcpConns      prometheus.Gauge
	signDuration  prometheus.Histogram   // dnssec.go
	denialsSigned prometheus.Counter     // denial.go
	more          []prometheus.Collector // registered with these (guard.go, tcplimit.go)
}

func newMetrics(age func() float64) *metrics {
	return &metrics{
		queriesDesc: prometheus.NewDesc("farmlb_dnsd_queries_total", "DNS queries answered, by query type and response code (none: no reply).", []string{"type", "rcode"}, nil),
		truncDesc:   prometheus.NewDesc("farmlb_dnsd_truncated_total", "UDP answers sent truncated (TC set) because they did not fit the client's buffer.", nil, nil),
		slowDesc:    prometheus.NewDesc("farmlb_dnsd_slow_path_total", "Queries answered by the general (miekg/dns) path instead of the precomputed one.", nil, nil),
		latencyDesc: prometheus.NewDesc("farmlb_dnsd_answer_duration_seconds", "Time from reading a query to its answer being ready to send (UDP queries are timed per batch of reads).", nil, nil),
		tableAge: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "farmlb_dnsd_table_age_seconds",
			Help: "Seconds since the source last handed over a changed table that the answers follow: grows while the table does not change, and while the last table with an UP server is held.",
		}, age),
		tableHeld: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "farmlb_dnsd_table_held",
			Help: "1 while answers come from the last table with an UP server because the source's table has none (HoldLastUp).",
		}),
		tableServers: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "farmlb_dnsd_table_servers",
			Help: "Servers in the table answered from, by status.",
		}, []string{"status"}),
		tableUpdates: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "farmlb_dnsd_table_updates_total",
			Help: "Tables taken from the source and built into answers.",
		}),
		tableErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "farmlb_dnsd_table_errors_total",
			Help: "Tables from the source that could not be built into answers (the previous answers stay).",
		}),
		tcpConns: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "farmlb_dnsd_tcp_connections",
			Help: "Open TCP connections.",
		}),
		signDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "farmlb_dnsd_dnssec_build_seconds",
			Help:    "Time to build and sign the zone's answers after a table change or a signature refresh (signed zones only).",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}),
		denialsSigned: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "farmlb_dnsd_dnssec_denials_signed_total",
			Help: "Signed denials made for names that do not exist, on their first query (the one signature made on the query path; a flood of random names shows here).",
		}),
	}
}

// collectors are what register and unregister hand to the registry.
func (m *metrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m, m.tableAge, m.tableHeld, m.tableServers, m.tableUpdates, m.tableErrors, m.tcpConns, m.signDuration, m.denialsSigned}
}

func (m *metrics) register(r prometheus.Registerer, more ...prometheus.Collector) error {
	if r == nil {
		return nil
	}
	m.more = more
	for _, c := range append(m.collectors(), more...) {
		if err := r.Register(c); err != nil {
			return err
		}
	}
	return nil
}

func (m *metrics) unregister(r prometheus.Registerer) {
	if r == nil {
		return
	}
	for _, c := range append(m.collectors(), m.more...) {
		r.Unregister(c)
	}
}

// newStats returns counters for one more serving goroutine.
func (m *metrics) newStats() *stats {
	s := new(stats)
	m.mu.Lock()
	m.stats = append(m.stats, s)
	m.mu.Unlock()
	return s
}

// Describe implements prometheus.Collector.
func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	ch <- m.queriesDesc
	ch <- m.truncDesc
	ch <- m.slowDesc
	ch <- m.latencyDesc
}

// Collect implements prometheus.Collector.
func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	m.mu.Lock()
	all := append([]*stats(nil), m.stats...)
	m.mu.Unlock()
	var q [len(typeLabels)][len(rcodeLabels)]uint64
	var trunc, slow, nanos uint64
	var buckets [len(latencyBuckets) + 1]uint64
	for _, s := range all {
		for i := range q {
			for j := range q[i] {
				q[i][j] += s.queries[i][j].Load()
			}
		}
		trunc += s.truncated.Load()
		slow += s.slow.Load()
		nanos += s.durNanos.Load()
		for i := range buckets {
			buckets[i] += s.buckets[i].Load()
		}
	}
	for i := range q {
		for j := range q[i] {
			if q[i][j] > 0 {
				ch <- prometheus.MustNewConstMetric(m.queriesDesc, prometheus.CounterValue, float64(q[i][j]), typeLabels[i], rcodeLabels[j])
			}
		}
	}
	ch <- prometheus.MustNewConstMetric(m.truncDesc, prometheus.CounterValue, float64(trunc))
	ch <- prometheus.MustNewConstMetric(m.slowDesc, prometheus.CounterValue, float64(slow))
	cum := map[float64]uint64{}
	var count uint64
	for i, b := range latencyBuckets {
		count += buckets[i]
		cum[b] = count
	}
	count += buckets[len(latencyBuckets)]
	ch <- prometheus.MustNewConstHistogram(m.latencyDesc, count, float64(nanos)/1e9, cum)
}
