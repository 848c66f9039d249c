package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/farmlb/farmlb/internal/cliutil"
)

// run runs farmctl in process and returns its output and exit status as main
// would set it.
func run(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	err := newApp(&out, &errb).Run(append([]string{"farmctl"}, args...))
	if err != nil {
		errb.WriteString(err.Error())
		code = cliutil.ExitCode(err)
	}
	return out.String(), errb.String(), code
}

func TestPickExplainPatent(t *testing.T) {
	out, errOut, code := run(t, "pick", "--list", "../../farm/testdata/patent.txt", "--policy", "inverse-share", "--explain", "--seed", "1")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{
		"exact probabilities",
		"serverA  UP      2963   A         0.501",
		"serverB  DOWN    0      B         0.000",
		"serverN  UP      2979   A         0.499",
		"picked: http://server",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestPickEveryEncoding(t *testing.T) {
	for _, f := range []string{"patent.txt", "sample.txt", "sample.json", "sample.dig"} {
		t.Run(f, func(t *testing.T) {
			out, errOut, code := run(t, "pick", "--list", "../../farm/testdata/"+f, "--seed", "9")
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			if !strings.HasPrefix(out, "http://serverA.caplin.com UP") && !strings.HasPrefix(out, "http://serverN.caplin.com UP") {
				t.Errorf("picked %q, want serverA or serverN", out)
			}
		})
	}
}

func TestPickSimulatedPolicySaysSo(t *testing.T) {
	out, _, code := run(t, "pick", "--list", "../../farm/testdata/patent.txt", "--policy", "p2c", "--explain", "--samples", "1000")
	if code != 0 || !strings.Contains(out, "estimated from 1000 simulated picks") {
		t.Fatalf("exit %d:\n%s", code, out)
	}
}

func TestPickSeedRepeats(t *testing.T) {
	pick := func() string {
		t.Helper()
		out, errOut, code := run(t, "pick", "--list", "../../farm/testdata/patent.txt", "--seed", "42", "--policy", "random")
		if code != 0 || !strings.HasPrefix(out, "http://server") {
			t.Fatalf("exit %d, picked %q: %s", code, out, errOut)
		}
		return out
	}
	first := pick()
	for range 5 {
		if again := pick(); again != first {
			t.Fatalf("same seed, different picks: %q %q", first, again)
		}
	}
}

func TestPickErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"bad line", []string{"--list", write("bad.txt", "http://a UP 1 A\nhttp://b UP lots A\n")}, 1, "line 2: users"},
		{"bad json", []string{"--list", write("bad.json", `{"servers":[{"name":"a","url":"http://a","status":"??","users":1,"priority":"A"}]}`)}, 1, `"??"`},
		{"nothing up", []string{"--list", write("down.txt", "http://a DOWN 1 A\nhttp://b DRAINING 1 A\n")}, 1, "no UP server"},
		{"missing file", []string{"--list", filepath.Join(dir, "nope")}, 1, "no such file"},
		{"unknown policy", []string{"--list", write("ok.txt", "http://a UP 1 A\n"), "--policy", "best"}, 2, "unknown policy"},
		{"no list flag", nil, 2, "list"},
		{"unknown flag", []string{"--lisst", "x"}, 2, "lisst"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, errOut, code := run(t, append([]string{"pick"}, tt.args...)...)
			if tt.code == 2 && strings.Contains(out+errOut, "USAGE:") {
				t.Errorf("a usage error printed the whole help:\n%s%s", out, errOut)
			}
			if code != tt.code || !strings.Contains(errOut, tt.msg) {
				t.Errorf("exit %d, stderr %q; want exit %d mentioning %q", code, errOut, tt.code, tt.msg)
			}
		})
	}
}
