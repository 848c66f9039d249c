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
