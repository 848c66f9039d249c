package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/farmlb/farmlb/config"
	"github.com/farmlb/farmlb/pushd"
	"github.com/urfave/cli/v2"
)

func TestUsageErrors(t *testing.T) {
	dir := t.TempDir()
	farmFile := filepath.Join(dir, "farm.yaml")
	os.WriteFile(farmFile, []byte("service: s.test\ntls: {ca: ca.crt, cert: x.crt, key: x.key}\nnodes:\n  - {name: a, url: \"http://127.0.0.1:1\", peer: \"127.0.0.1:2\"}\n"), 0o644)
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no flags", nil, 2, "--config and --node are required"},
		{"unknown node", []string{"--config", farmFile, "--node", "zz"}, 2, `"zz" is not a node`},
		{"bad log level", []string{"--config", farmFile, "--node", "a", "--log-level", "loud"}, 2, "--log-level"},
		{"half tls", []string{"--config", farmFile, "--node", "a", "--standalone", "--tls-cert", "x"}, 2, "go together"},
		{"missing file", []string{"--config", filepath.Join(dir, "nope.yaml"), "--node", "a"}, 1, "nope.yaml"},
		{"stray argument", []string{"--config", farmFile, "--node", "a", "extra"}, 2, "unexpected argument"},
		{"demo feed bad interval", []string{"demo-feed", "--interval", "0s"}, 2, "--interval"},
		{"unknown flag", []string{"--bogus"}, 2, "flag provided but not defined: -bogus"},
		{"demo feed unparsable interval", []string{"demo-feed", "--interval", "xyz"}, 2, "invalid value"},
		{"bad health url", []string{"--config", farmFile, "--node", "a", "--health-http", "ftp://x"}, 2, "--health-*: checks[0].http"},
		{"bad on-fail", []string{"--config", farmFile, "--node", "a", "--health-on-fail", "maybe"}, 2, `--health-*: on_fail: "maybe" is not draining or down`},
		{"expect without http", []string{"--config", farmFile, "--node", "a", "--health-expect", "200"}, 2, "--health-expect: goes with --health-http"},
		{"interval too short", []string{"--config", farmFile, "--node", "a", "--health-tcp", "x:1", "--health-interval", "1ms"}, 2, "checks[0].interval"},
		{"cpu over 1", []string{"--config", farmFile, "--node", "a", "--overload-cpu", "2"}, 2, "--overload-*: cpu"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out, errw bytes.Buffer
			err := newApp(&out, &errw).Run(append([]string{"pushd"}, tc.args...))
			if err == nil {
				t.Fatal("no error")
			}
			code := 1
			var ec cli.ExitCoder
			if errors.As(err, &ec) {
				code = ec.ExitCode()
			}
			if code != tc.code || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("exit %d %q, want %d containing %q", code, err, tc.code, tc.want)
			}
			if strings.Contains(out.String()+errw.String(), "USAGE:") {
				t.Errorf("a usage error printed the whole help:\n%s%s", out.String(), errw.String())
			}
		})
	}
}

func TestHelp(t *testing.T) {
	var out bytes.Buffer
	if err := newApp(&out, &out).Run([]string{"pushd", "--help"}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"--config", "FARMLB_NODE", "SIGTERM", "demo-feed", "mesh: section"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("--help lacks %q", want)
		}
	}
}

// TestHealthFlags: checks given by flag replace the farm file's, the
// timing flags apply to the checks in use, and the environment works as
// the flags do.
func TestHealthFlags(t *testing.T) {
	f, err := config.Parse([]byte("service: s.test\nnodes:\n  - name: a\n    url: http://127.0.0.1:1\n    peer: 127.0.0.1:2\n    health: {checks: [{name: db, tcp: 'x:1', interval: 5s}]}\npushd: {overload: {streams: 10}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	node, _ := f.Node("a")
	run := func(env []string, args ...string) (pushd.Health, pushd.Overload) {
		t.Helper()
		for _, e := range env {
			k, v, _ := strings.Cut(e, "=")
			t.Setenv(k, v)
		}
		var h pushd.Health
		var o pushd.Overload
		app := &cli.App{Name: "x", Flags: healthFlags(), Action: func(c *cli.Context) error {
			hc, oc, err := applyHealthFlags(c, f, node)
			h, o = pushdHealth(hc, oc)
			return err
		}}
		if err := app.Run(append([]string{"x"}, args...)); err != nil {
			t.Fatal(err)
		}
		return h, o
	}
	h, o := run(nil)
	if len(h.Checks) != 1 || h.Checks[0].Name != "db" || h.Checks[0].Interval != 5*time.Second || h.Down || o.Streams != 10 {
		t.Errorf("the file's: %+v %+v", h, o)
	}
	h, _ = run(nil, "--health-interval", "500ms", "--health-on-fail", "down")
	if c := h.Checks[0]; c.Name != "db" || c.Interval != 500*time.Millisecond || c.Timeout != 500*time.Millisecond || !h.Down {
		t.Errorf("timing on the file's check: %+v", h)
	}
	h, o = run([]string{"FARMLB_HEALTH_COMMAND=test -e /x", "FARMLB_OVERLOAD_FANOUT_DELAY=300ms"}, "--health-http", "http://127.0.0.1:9/ok", "--health-fall", "5")
	if len(h.Checks) != 2 || h.Checks[0].HTTP != "http://127.0.0.1:9/ok" || h.Checks[0].Name != "http" || h.Checks[0].Fall != 5 ||
		strings.Join(h.Checks[1].Command, "|") != "/bin/sh|-c|test -e /x" || h.Checks[1].Fall != 5 || o.FanoutDelay != 300*time.Millisecond {
		t.Errorf("flag checks: %+v %+v", h, o)
	}
}
