package cliutil

import (
	"bytes"
	"errors"
	"testing"

	"github.com/urfave/cli/v2"
)

func TestExitCodes(t *testing.T) {
	app := &cli.App{
		Name:     "x",
		Writer:   &bytes.Buffer{},
		Commands: []*cli.Command{{Name: "run", Flags: []cli.Flag{&cli.StringFlag{Name: "need", Required: true}}, Action: func(*cli.Context) error { return errors.New("boom") }}},
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
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := app.Run(tt.args)
			if err == nil || ExitCode(err) != tt.code {
				t.Errorf("err %v, exit %d, want %d", err, ExitCode(err), tt.code)
			}
		})
	}
	if ExitCode(Usage("bad %s", "thing")) != 2 {
		t.Error("Usage is not exit 2")
	}
}
