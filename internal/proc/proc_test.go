package proc

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// TestMain makes the test binary its own subject: with FARMLB_PROC_SPIN set
// it spins on four threads of its own until killed.
func TestMain(m *testing.M) {
	if os.Getenv("FARMLB_PROC_SPIN") != "" {
		var spins atomic.Uint64
		for range 4 {
			go func() {
				runtime.LockOSThread()
				for {
					spins.Add(1)
				}
			}()
		}
		select {}
	}
	os.Exit(m.Run())
}

// TestFreeze freezes a real process with several threads busy on the CPU
// and finds every thread stopped; after SIGCONT it is not.
func TestFreeze(t *testing.T) {
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "FARMLB_PROC_SPIN=1")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	pid := cmd.Process.Pid
	for start := time.Now(); ; time.Sleep(time.Millisecond) {
		if threads, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*", pid)); len(threads) > 4 {
			break
		}
		if time.Since(start) > 10*time.Second {
			t.Fatal("the child did not start its spinning threads")
		}
	}
	if ok, err := Stopped(pid); err != nil || ok {
		t.Fatalf("running process: Stopped = %v, %v", ok, err)
	}
	if err := Freeze(pid, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if ok, err := Stopped(pid); err != nil || !ok {
		t.Fatalf("after Freeze: Stopped = %v, %v", ok, err)
	}
	if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		ok, err := Stopped(pid)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("still stopped 5 s after SIGCONT")
		}
		time.Sleep(time.Millisecond)
	}
	cmd.Process.Kill()
	cmd.Wait()
	if err := Freeze(pid, time.Second); err == nil {
		t.Error("Freeze of an exited process: no error")
	}
}

func TestThreadState(t *testing.T) {
	for line, want := range map[string]byte{
		"1 (init) S 0 1":      'S',
		"42 (a (b) c) T 1 42": 'T',
		"7 (sleep) t 1":       't',
		"9 (x y) R 1":         'R',
	} {
		got, err := threadState([]byte(line))
		if err != nil || got != want {
			t.Errorf("threadState(%q) = %q, %v; want %q", line, got, err, want)
		}
	}
	for _, bad := range []string{"", "1 (x", "1 (x)", "1 (x)S"} {
		if _, err := threadState([]byte(bad)); err == nil {
			t.Errorf("threadState(%q): no error", bad)
		}
	}
}
