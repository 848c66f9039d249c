package config

import (
	"strings"
	"testing"
	"time"
)

func TestPushdSection(t *testing.T) {
	base := "service: s.test\ntls: {ca: ca.crt, cert: x.crt, key: x.key}\nnodes:\n  - {name: a, url: \"http://127.0.0.1:1\", peer: \"127.0.0.1:2\"}\n"
	tests := []struct {
		name, yaml, err string
		check           func(*Pushd) bool
	}{
		{"empty", "pushd: {}\n", "", func(p *Pushd) bool { return *p == Pushd{} }},
		{"values", "pushd: {history_size: 50, history_age: 2m, keepalive: 5s, drain_window: 1m}\n", "",
			func(p *Pushd) bool {
				return p.HistorySize == 50 && p.HistoryAge == 2*time.Minute && p.KeepAlive == 5*time.Second && p.DrainWindow == time.Minute
			}},
		{"unknown key", "pushd: {histroy_size: 5}\n", "histroy_size", nil},
		{"negative size", "pushd: {history_size: -1}\n", "pushd.history_size", nil},
		{"payload too big", "pushd: {max_payload: 2000000}\n", "pushd.max_payload", nil},
		{"negative duration", "pushd: {keepalive: -1s}\n", "pushd.keepalive", nil},
		{"bad duration", "pushd: {keepalive: soon}\n", "pushd.keepalive", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, err := Parse([]byte(base + tc.yaml))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want one naming %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !tc.check(&f.Pushd) {
				t.Errorf("got %+v", f.Pushd)
			}
		})
	}
}
