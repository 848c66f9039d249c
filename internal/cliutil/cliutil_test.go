package cliutil

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
)

func TestExitCodes(t *testing.T) {
	app := &cli.App{
		Name:   "x",
		Writer: &bytes.Buffer{},
		Commands: []*cli.Command{
			{Name: "run", Flags: []cli.Flag{&cli.StringFlag{Name: "need", Required: true}}, Action: func(*cli.Context) error { return errors.New("boom") }},
			{Name: "group", Subcommands: []*cli.Command{{Name: "sub", Action: func(*cli.Context) error { return nil }}}},
		},
		// Errors are printed by main.
		ExitErrHandler: func(*cli.Context, error) {},
	}
	SetUsageErrors(app)
	tests := []struct {
		name string
		args []string
		code int
	}{
		{"runtime error", []string{"x", "run", "--need", "v"}, 1},
		{"unknown flag", []string{"x", "run", "--nope"}, 2},
		{"missing required flag", []string{"x", "run"}, 2},
		{"unknown command", []string{"x", "nope"}, 2},
		{"unknown subcommand", []string{"x", "group", "nope"}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := app.Run(tt.args)
			if err == nil || ExitCode(err) != tt.code {
				t.Errorf("err %v, exit %d, want %d", err, ExitCode(err), tt.code)
			}
		})
	}
	if err := app.Run([]string{"x", "group", "nope"}); err == nil || err.Error() != `unknown command "nope" (see x group --help)` {
		t.Errorf("unknown subcommand: %v", err)
	}
	// A group named alone shows its help, as before.
	out := app.Writer.(*bytes.Buffer)
	out.Reset()
	if err := app.Run([]string{"x", "group"}); err != nil || !strings.Contains(out.String(), "sub") {
		t.Errorf("x group: %v, printed %q", err, out)
	}
	if ExitCode(Usage("bad %s", "thing")) != 2 {
		t.Error("Usage is not exit 2")
	}
}

func TestPrintError(t *testing.T) {
	for err, want := range map[error]string{
		errors.New("listen: in use"):     "x: listen: in use\n",
		errors.New("x: listen: in use"):  "x: listen: in use\n",
		errors.New("xy: listen: in use"): "x: xy: listen: in use\n",
	} {
		var b bytes.Buffer
		PrintError(&b, "x", err)
		if b.String() != want {
			t.Errorf("PrintError(%q) printed %q, want %q", err, b.String(), want)
		}
	}
}

func TestRequired(t *testing.T) {
	app := &cli.App{
		Name:   "x",
		Writer: &bytes.Buffer{},
		Commands: []*cli.Command{{
			Name: "run",
			Flags: []cli.Flag{
				&cli.StringFlag{Name: "a", EnvVars: []string{"CLIUTIL_TEST_A"}},
				&cli.StringFlag{Name: "b"},
				&cli.IntFlag{Name: "n"},
			},
			Action: func(c *cli.Context) error {
				if err := Required(c, "a", "b", "n"); err != nil {
					return err
				}
				return NoArgs(c)
			},
		}},
		ExitErrHandler: func(*cli.Context, error) {},
	}
	tests := []struct {
		name string
		env  string
		args []string
		want string
	}{
		{"none", "", nil, "--a, --b and --n are required (see x run --help)"},
		{"one missing", "", []string{"--a", "1", "--b", "2"}, "--n is required (see x run --help)"},
		{"empty string", "", []string{"--a", "", "--b", "2", "--n", "0"}, "--a is required"},
		{"empty in env", "", []string{"--b", "2", "--n", "0"}, "--a is required"},
		{"from env", "1", []string{"--b", "2", "--n", "0"}, ""},
		{"all", "", []string{"--a", "1", "--b", "2", "--n", "0"}, ""},
		{"stray argument", "", []string{"--a", "1", "--b", "2", "--n", "0", "extra"}, `unexpected arguments ["extra"] (see x run --help)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("CLIUTIL_TEST_A", tt.env)
			err := app.Run(append([]string{"x", "run"}, tt.args...))
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("err %v, want none", err)
			case tt.want != "" && (err == nil || ExitCode(err) != 2 || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("err %v (exit %d), want exit 2 containing %q", err, ExitCode(err), tt.want)
			}
		})
	}
}
