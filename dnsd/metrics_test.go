package dnsd

import (
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// metricValue returns the value of the metric name with the given labels from
// reg (counter, gauge, or a histogram's count); found is false when absent.
func metricValue(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) (float64, bool) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			have := map[string]string{}
			for _, lp := range m.GetLabel() {
				have[lp.GetName()] = lp.GetValue()
			}
			for k, v := range labels {
				if have[k] != v {
					continue next
				}
			}
			switch mf.GetType() {
			case dto.MetricType_COUNTER:
				return m.GetCounter().GetValue(), true
			case dto.MetricType_GAUGE:
				return m.GetGauge().GetValue(), true
			case dto.MetricType_HISTOGRAM:
				return float64(m.GetHistogram().GetSampleCount()), true
			}
		}
	}
	return 0, false
}

// TestMetrics checks the metrics a user scrapes after some queries.
func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	cfg := testConfig(newTestSource(testList(t)))
	cfg.Registerer = reg
	now := cfg.Now()
	clock := now
	cfg.Now = func() time.Time { return clock }
	s := startServer(t, cfg)

	for _, network := range []string{"udp", "tcp"} {
		for i := 0; i < 3; i++ {
			exchange(t, s, network, query(testZone, dns.TypeA))
		}
		exchange(t, s, network, query("_farm."+testZone, dns.TypeTXT))
		exchange(t, s, network, query("nope."+testZone, dns.TypeA))
		exchange(t, s, network, query("example.com.", dns.TypeAAAA))
	}
	big := query("x."+testZone, dns.TypeA)
	big.SetEdns0(1232, false)
	big.IsEdns0().SetVersion(2)
	exchange(t, s, "udp", big)
	clock = now.Add(42 * time.Second) // the table was taken at now

	tests := []struct {
		name   string
		metric string
		labels map[string]string
		want   float64
	}{
		{"A NOERROR", "farmlb_dnsd_queries_total", map[string]string{"type": "A", "rcode": "NOERROR"}, 6},
		{"TXT NOERROR", "farmlb_dnsd_queries_total", map[string]string{"type": "TXT", "rcode": "NOERROR"}, 2},
		{"A NXDOMAIN", "farmlb_dnsd_queries_total", map[string]string{"type": "A", "rcode": "NXDOMAIN"}, 2},
		{"AAAA REFUSED", "farmlb_dnsd_queries_total", map[string]string{"type": "AAAA", "rcode": "REFUSED"}, 2},
		{"A BADVERS", "farmlb_dnsd_queries_total", map[string]string{"type": "A", "rcode": "BADVERS"}, 1},
		{"answers timed", "farmlb_dnsd_answer_duration_seconds", nil, 13},
		{"slow path taken once (BADVERS)", "farmlb_dnsd_slow_path_total", nil, 1},
		{"table age", "farmlb_dnsd_table_age_seconds", nil, 42},
		{"UP servers", "farmlb_dnsd_table_servers", map[string]string{"status": "UP"}, 2},
		{"DRAINING servers", "farmlb_dnsd_table_servers", map[string]string{"status": "DRAINING"}, 1},
		{"not held", "farmlb_dnsd_table_held", nil, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := metricValue(t, reg, tc.metric, tc.labels)
			if !ok {
				t.Fatalf("%s%v not found", tc.metric, tc.labels)
			}
			if got != tc.want {
				t.Errorf("%s%v = %v, want %v", tc.metric, tc.labels, got, tc.want)
			}
		})
	}
}
