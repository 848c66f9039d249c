package main

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/farmlb/farmlb/internal/cliutil"
)

// Not PID 1, a config the init cannot use is an error at once (exit 1):
// there is no console to keep saying what to fix and no one to reboot.
func TestConfigErrorExits(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nonexistent.yaml")
	var out, errw bytes.Buffer
	done := make(chan error, 1)
	go func() { done <- newApp(&out, &errw).Run([]string{"farmlb-init", "--config", missing}) }()
	select {
	case err := <-done:
		if err == nil || cliutil.ExitCode(err) != 1 || !strings.Contains(err.Error(), missing) {
			t.Errorf("err = %v (exit %d), want exit 1 naming %s", err, cliutil.ExitCode(err), missing)
		}
		if strings.Contains(errw.String(), "reboot") {
			t.Errorf("a workstation was told to reboot:\n%s", errw.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("still running 10s after a config error: it waits for a signal")
	}
}

// A usage error is one line and exit 2, as with pushd, dnsd and farmctl:
// not urfave/cli's "Incorrect Usage" with the whole help, exit 1.
func TestUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"unknown flag", []string{"--bogus"}, "flag provided but not defined: -bogus"},
		{"no config", nil, "--config is required"},
		{"empty config", []string{"--config", ""}, "--config is required"},
		{"stray argument", []string{"--config", "a.yaml", "extra"}, `unexpected arguments ["extra"]`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("FARMLB_APPLIANCE_CONFIG", "")
			var out, errw bytes.Buffer
			err := newApp(&out, &errw).Run(append([]string{"farmlb-init"}, tc.args...))
			if err == nil || cliutil.ExitCode(err) != 2 || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v (exit %d), want exit 2 containing %q", err, cliutil.ExitCode(err), tc.want)
			}
			if out.Len()+errw.Len() > 0 {
				t.Errorf("printed more than the error:\n%s%s", out.String(), errw.String())
			}
		})
	}
}
