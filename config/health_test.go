package config

import (
	"strings"
	"testing"
	"time"
)

func TestHealthSection(t *testing.T) {
	base := "service: s.test\ntls: {ca: ca.crt, cert: x.crt, key: x.key}\nnodes:\n  - name: a\n    url: \"http://127.0.0.1:1\"\n    peer: \"127.0.0.1:2\"\n"
	tests := []struct {
		name, yaml, err string
		check           func(*Health) bool
	}{
		{"none", "", "", func(h *Health) bool { return h == nil }},
		{"defaults", "    health: {checks: [{http: \"http://127.0.0.1:9/ok\"}, {tcp: \"127.0.0.1:5\"}, {command: [\"true\"]}, {command: [\"false\"]}]}\n", "",
			func(h *Health) bool {
				c := h.Checks[0]
				return h.OnFail == "draining" && c.Name == "http" && c.Interval == 2*time.Second && c.Timeout == time.Second &&
					c.Rise == 2 && c.Fall == 3 && c.Expect == 0 && h.Checks[1].Name == "tcp" && h.Checks[2].Name == "command2" && h.Checks[3].Name == "command3"
			}},
		{"values", "    health: {on_fail: down, checks: [{name: feed, http: \"https://x/r\", expect: 204, interval: 500ms, rise: 1, fall: 5}]}\n", "",
			func(h *Health) bool {
				c := h.Checks[0]
				return h.OnFail == "down" && c.Name == "feed" && c.Expect == 204 && c.Interval == 500*time.Millisecond && c.Timeout == 500*time.Millisecond && c.Rise == 1 && c.Fall == 5
			}},
		{"bad on_fail", "    health: {on_fail: maybe}\n", "nodes[0].health.on_fail: \"maybe\" is not draining or down (line 7)", nil},
		{"two kinds", "    health: {checks: [{http: \"http://x\", tcp: \"x:1\"}]}\n", "nodes[0].health.checks[0]: a check needs exactly one", nil},
		{"no kind", "    health: {checks: [{name: x}]}\n", "exactly one of http, tcp and command", nil},
		{"bad url", "    health: {checks: [{http: \"ftp://x\"}]}\n", "nodes[0].health.checks[0].http", nil},
		{"bad tcp", "    health: {checks: [{tcp: \"nowhere\"}]}\n", "nodes[0].health.checks[0].tcp", nil},
		{"empty program", "    health: {checks: [{command: [\"\"]}]}\n", "checks[0].command: the program is empty", nil},
		{"expect on tcp", "    health: {checks: [{tcp: \"x:1\", expect: 200}]}\n", "expect is for http checks", nil},
		{"bad expect", "    health: {checks: [{http: \"http://x\", expect: 42}]}\n", "checks[0].expect: 42", nil},
		{"timeout over interval", "    health: {checks: [{tcp: \"x:1\", interval: 1s, timeout: 2s}]}\n", "checks[0].timeout", nil},
		{"interval too short", "    health: {checks: [{tcp: \"x:1\", interval: 1ms}]}\n", "checks[0].interval", nil},
		{"fall zero is default, negative is not", "    health: {checks: [{tcp: \"x:1\", fall: -1}]}\n", "checks[0].fall: -1", nil},
		{"same name", "    health: {checks: [{name: f, tcp: \"x:1\"}, {name: f, tcp: \"x:2\"}]}\n", "checks[1].name: \"f\" is already", nil},
		{"bad name", "    health: {checks: [{name: \"a b\", tcp: \"x:1\"}]}\n", "checks[0].name", nil},
		{"unknown key", "    health: {checks: [{tcp: \"x:1\", every: 2s}]}\n", "every", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, err := Parse([]byte(base + tc.yaml))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !tc.check(f.Nodes[0].Health) {
				t.Errorf("got %+v", f.Nodes[0].Health)
			}
		})
	}
}

func TestOverloadSection(t *testing.T) {
	base := "service: s.test\ntls: {ca: ca.crt, cert: x.crt, key: x.key}\nnodes:\n  - {name: a, url: \"http://127.0.0.1:1\", peer: \"127.0.0.1:2\"}\n"
	tests := []struct{ name, yaml, err string }{
		{"values", "pushd: {overload: {fanout_delay: 300ms, cpu: 0.9, streams: 5000, over_for: 2s, under_for: 4s, interval: 500ms}}\n", ""},
		{"off", "pushd: {overload: {off: true}}\n", ""},
		{"cpu over 1", "pushd: {overload: {cpu: 1.5}}\n", "pushd.overload.cpu: 1.5 out of range"},
		{"negative streams", "pushd: {overload: {streams: -1}}\n", "pushd.overload.streams"},
		{"negative delay", "pushd: {overload: {fanout_delay: -1s}}\n", "pushd.overload.fanout_delay"},
		{"short interval", "pushd: {overload: {interval: 1ms}}\n", "pushd.overload.interval"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(base + tc.yaml))
			if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
				t.Fatalf("err %v, want %q", err, tc.err)
			}
		})
	}
}
