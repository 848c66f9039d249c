package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/farmlb/farmlb/internal/cliutil"
)

func TestCommandLine(t *testing.T) {
	for _, tc := range []struct {
		name     string
		args     []string
		code     int
		out, err string
	}{
		{"help", []string{"--help"}, 0, "testbed down", ""},
		{"run without scenarios", []string{"run"}, 2, "", "run needs at least one scenario"},
		{"unknown scenario", []string{"run", "--scenarios", "../../testbed/scenarios", "nosuch"}, 2, "", `no scenario "nosuch"`},
		{"bad scenario file", []string{"run", "testdata/bad.yaml"}, 2, "", `timeline[0].fault: "explode" is not one of`},
		{"unknown flag", []string{"run", "--bogus", "failover"}, 2, "", "flag provided but not defined"},
		{"list", []string{"list", "--scenarios", "../../testbed/scenarios"}, 0, "partition", ""},
		{"down with arguments", []string{"down", "x"}, 2, "", "down takes no arguments"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := newApp(&stdout, &stderr, strings.NewReader("")).RunContext(context.Background(), append([]string{"testbed"}, tc.args...))
			code := 0
			if err != nil {
				code = cliutil.ExitCode(err)
				stderr.WriteString(err.Error())
			}
			if code != tc.code {
				t.Errorf("exit %d, want %d (%v)", code, tc.code, err)
			}
			if !strings.Contains(stdout.String(), tc.out) {
				t.Errorf("stdout %q lacks %q", stdout.String(), tc.out)
			}
			if !strings.Contains(stderr.String(), tc.err) {
				t.Errorf("stderr %q lacks %q", stderr.String(), tc.err)
			}
		})
	}
}
