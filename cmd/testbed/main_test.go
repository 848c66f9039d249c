package main

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/farmlb/farmlb/internal/cliutil"
	"github.com/farmlb/farmlb/testbed"
)

func TestCommandLine(t *testing.T) {
	empty := t.TempDir()
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
		{"unknown command", []string{"bogus"}, 2, "", `unknown command "bogus"`},
		{"down with arguments", []string{"down", "x"}, 2, "", "down takes no arguments"},
		{"list with arguments", []string{"list", "--scenarios", "../../testbed/scenarios", "x"}, 2, "", "list takes no arguments"},
		{"list a missing folder", []string{"list", "--scenarios", "/nonexistent"}, 2, "", "no scenarios (*.yaml) in /nonexistent"},
		{"list an empty folder", []string{"list", "--scenarios", empty}, 2, "", "no scenarios (*.yaml) in " + empty},
		{"run all in a missing folder", []string{"run", "--scenarios", "/nonexistent", "all"}, 2, "", "no scenarios (*.yaml) in /nonexistent"},
		{"down with an empty prefix", []string{"down", "--prefix", ""}, 2, "", `--prefix: prefix "" is not a lab prefix`},
		{"down with a prefix no lab has", []string{"down", "--prefix", "tbfx"}, 2, "", `prefix "tbfx" is not a lab prefix`},
		{"run with a bad prefix", []string{"run", "--prefix", "a/b-", "--scenarios", "../../testbed/scenarios", "all"}, 2, "", `prefix "a/b-" is not a lab prefix`},
		{"run with a prefix too long for the hosts", []string{"run", "--prefix", "abcdefghijk-", "--scenarios", "../../testbed/scenarios", "failover"}, 2, "", `scenario failover: hosts[0].name: "serverA" is too long`},
		{"up with a bad prefix", []string{"up", "--prefix", "abcdefghijklmn-", "--scenarios", "../../testbed/scenarios"}, 2, "", `prefix "abcdefghijklmn-" is not a lab prefix`},
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
			if code == 2 && stdout.Len() > 0 {
				t.Errorf("a usage error printed %q on stdout", stdout.String())
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

func TestSummaryLine(t *testing.T) {
	rep := &testbed.Report{Scenario: "failover", Pass: true}
	for _, tc := range []struct {
		name string
		rep  *testbed.Report
		err  error
		want string
	}{
		{"the summary", rep, nil, "failover         PASS  "},
		{"where the report is", rep, nil, " (42s; report in build/testbed/failover/report.md)"},
		{"an error", nil, errors.New("lab: boom"), "failover         ERROR lab: boom (42s)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := summaryLine("failover", tc.rep, tc.err, 42*time.Second, "build/testbed/failover")
			if !strings.Contains(got, tc.want) {
				t.Errorf("%q lacks %q", got, tc.want)
			}
		})
	}
}
