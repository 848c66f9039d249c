// Package proc freezes a process (SIGSTOP, as a hang would) and returns only
// once it is frozen.
package proc

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// Freeze sends SIGSTOP to the process and waits, up to timeout, until every
// one of its threads is stopped. kill(2) returns once the signal is queued;
// the group stop begins only when the thread chosen to take it runs, and
// until then the other threads go on — on a busy host for milliseconds, long
// enough to answer a request sent "after" the freeze.
func Freeze(pid int, timeout time.Duration) error {
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		return fmt.Errorf("SIGSTOP %d: %w", pid, err)
	}
	deadline := time.Now().Add(timeout)
	for {
		stopped, err := Stopped(pid)
		if err != nil || stopped {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("process %d: not every thread stopped %v after SIGSTOP", pid, timeout)
		}
		time.Sleep(time.Millisecond)
	}
}

// Stopped reports whether every thread of the process is stopped (state T
// or t in /proc/PID/task/TID/stat).
func Stopped(pid int) (bool, error) {
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/stat", pid))
	if err != nil {
		return false, err
	}
	if len(tasks) == 0 {
		return false, fmt.Errorf("process %d: no threads (exited?)", pid)
	}
	for _, path := range tasks {
		b, err := os.ReadFile(path)
		if err != nil {
			if os.IsNotExist(err) {
				continue // the thread exited meanwhile
			}
			return false, err
		}
		state, err := threadState(b)
		if err != nil {
			return false, fmt.Errorf("%s: %w", path, err)
		}
		switch state {
		case 'T', 't':
		case 'Z', 'X':
			return false, fmt.Errorf("process %d has exited", pid)
		default:
			return false, nil
		}
	}
	return true, nil
}

// threadState is the state field of a /proc stat line: "TID (COMM) S …",
// where COMM may itself hold spaces and parentheses.
func threadState(stat []byte) (byte, error) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 || i+2 >= len(stat) || stat[i+1] != ' ' {
		return 0, fmt.Errorf("unexpected stat line %q", stat)
	}
	return stat[i+2], nil
}
