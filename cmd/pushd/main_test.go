package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

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
