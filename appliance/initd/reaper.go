package initd

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"os/signal"
	"sync"
	"syscall"
)

// Reaper is the one place that waits for children. As PID 1 (or a child
// subreaper) the init inherits every orphan, and a zombie that nobody
// waits for stays in the process table for ever. A per-child wait
// (exec.Cmd.Wait) would race with a catch-all wait4(-1), so the Reaper does
// all the waiting and hands each supervised child's status to whoever
// started it through Start. Never call Wait on a command started here.
type Reaper struct {
	// OnOrphan, if set before Run, is called with the pid of each orphan
	// reaped. Tests use it; it must not block.
	OnOrphan func(pid int)

	mu      sync.Mutex
	waiting map[int]chan syscall.WaitStatus
	orphans int
}

// NewReaper returns a Reaper; call Run to start reaping.
func NewReaper() *Reaper {
	return &Reaper{waiting: map[int]chan syscall.WaitStatus{}}
}

// Start starts cmd and returns a channel that receives its exit status
// once. The caller must not call cmd.Wait.
func (r *Reaper) Start(cmd *exec.Cmd) (<-chan syscall.WaitStatus, error) {
	// Hold the lock across Start so that a child that exits at once is
	// registered before the reaper looks it up.
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	ch := make(chan syscall.WaitStatus, 1)
	r.waiting[cmd.Process.Pid] = ch
	return ch, nil
}

// Orphans is how many children the reaper has reaped that were not started
// through Start (orphaned grandchildren).
func (r *Reaper) Orphans() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.orphans
}

// Run reaps children on every SIGCHLD until ctx ends.
func (r *Reaper) Run(ctx context.Context) {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGCHLD)
	defer signal.Stop(sig)
	// A child may have exited before Notify took effect.
	r.reap()
	for {
		select {
		case <-ctx.Done():
			r.reap()
			return
		case <-sig:
			r.reap()
		}
	}
}

// reap collects every child that has exited, without blocking.
func (r *Reaper) reap() {
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if err != nil || pid <= 0 {
			return // ECHILD: no children; 0: none has exited
		}
		if ws.Stopped() || ws.Continued() {
			continue
		}
		r.mu.Lock()
		ch, ok := r.waiting[pid]
		delete(r.waiting, pid)
		if !ok {
			r.orphans++
		}
		r.mu.Unlock()
		if ok {
			ch <- ws
		} else if r.OnOrphan != nil {
			r.OnOrphan(pid)
		}
	}
}
