package initd

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"github.com/farmlb/farmlb/appliance"
)

// SupervisorConfig configures a Supervisor. Zero fields take the defaults
// of appliance.DefaultConfig().Restart.
type SupervisorConfig struct {
	// Services are the daemons to run.
	Services []appliance.Service
	// Reaper waits for the children. Required; its Run must be going.
	Reaper *Reaper
	// Output receives every line the services print, prefixed with the
	// service's name. If nil, lines are dropped.
	Output io.Writer
	// Logger reports starts, exits and restarts. If nil, nothing is logged.
	Logger *slog.Logger
	// MinBackoff, MaxBackoff, Stable and StopTimeout are as in
	// appliance.Restart.
	MinBackoff, MaxBackoff, Stable, StopTimeout time.Duration
	// OnEvent, if set, is called (from the service's goroutine) at each
	// start, exit and scheduled restart. Tests use it to follow along.
	OnEvent func(Event)
}

// EventKind says what happened to a service.
type EventKind int

const (
	Started    EventKind = iota // the process is running
	Exited                      // it exited (or could not be started)
	Restarting                  // it will be started again after Event.Backoff
	Stopped                     // it was stopped for good (shutdown)
)

func (k EventKind) String() string {
	return [...]string{"started", "exited", "restarting", "stopped"}[k]
}

// Event is one step in a service's life.
type Event struct {
	Service string
	Kind    EventKind
	Pid     int           // Started
	Err     error         // Exited: how it ended (nil for exit status 0)
	Backoff time.Duration // Restarting
}

// ServiceStatus is what GET /status reports about a service.
type ServiceStatus struct {
	Name      string    `json:"name"`
	State     string    `json:"state"` // starting, running, backoff, stopped
	Pid       int       `json:"pid,omitempty"`
	Starts    int       `json:"starts"`
	LastStart time.Time `json:"last_start,omitzero"`
	LastExit  string    `json:"last_exit,omitempty"`
	NextStart time.Time `json:"next_start,omitzero"`
	Command   []string  `json:"command"`
}

// Supervisor runs services and starts each again when it exits, waiting
// longer after each quick failure (doubling from MinBackoff to MaxBackoff;
// a run that lasted Stable resets the wait).
type Supervisor struct {
	cfg SupervisorConfig
	log *slog.Logger

	mu     sync.Mutex
	status map[string]*ServiceStatus
}

// NewSupervisor checks cfg and fills its defaults.
func NewSupervisor(cfg SupervisorConfig) (*Supervisor, error) {
	if cfg.Reaper == nil {
		return nil, errors.New("supervisor: no Reaper")
	}
	d := appliance.DefaultConfig().Restart
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = d.Min
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = d.Max
	}
	if cfg.MaxBackoff < cfg.MinBackoff {
		cfg.MaxBackoff = cfg.MinBackoff
	}
	if cfg.Stable <= 0 {
		cfg.Stable = d.Stable
	}
	if cfg.StopTimeout <= 0 {
		cfg.StopTimeout = d.Stop
	}
	if cfg.Output == nil {
		cfg.Output = io.Discard
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Supervisor{cfg: cfg, log: log, status: map[string]*ServiceStatus{}}
	for _, svc := range cfg.Services {
		if _, dup := s.status[svc.Name]; dup {
			return nil, fmt.Errorf("supervisor: service %q twice", svc.Name)
		}
		s.status[svc.Name] = &ServiceStatus{Name: svc.Name, State: "starting", Command: append([]string{svc.Path}, svc.Args...)}
	}
	return s, nil
}

// Backoff is the wait before the next start after failures quick failures
// in a row (failures ≥ 1): min, 2·min, 4·min, … capped at max.
func Backoff(failures int, min, max time.Duration) time.Duration {
	d := min
	for i := 1; i < failures && d < max; i++ {
		d *= 2
	}
	return minDur(d, max)
}

func minDur(a, b time.Duration) time.Duration {
	if a < b {
		return a
	}
	return b
}

// Status returns a copy of every service's status, in config order.
func (s *Supervisor) Status() []ServiceStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]ServiceStatus, 0, len(s.cfg.Services))
	for _, svc := range s.cfg.Services {
		out = append(out, *s.status[svc.Name])
	}
	return out
}

func (s *Supervisor) update(name string, f func(*ServiceStatus)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(s.status[name])
}

func (s *Supervisor) emit(e Event) {
	if s.cfg.OnEvent != nil {
		s.cfg.OnEvent(e)
	}
}

// Run supervises every service until ctx ends, then stops them (SIGTERM,
// then SIGKILL after StopTimeout) and returns once all have exited.
func (s *Supervisor) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for _, svc := range s.cfg.Services {
		wg.Go(func() { s.supervise(ctx, svc) })
	}
	wg.Wait()
	<-ctx.Done() // with no services, still run until told to stop
}

func (s *Supervisor) supervise(ctx context.Context, svc appliance.Service) {
	failures := 0
	for {
		began := time.Now()
		err := s.runOnce(ctx, svc)
		if ctx.Err() != nil {
			s.update(svc.Name, func(st *ServiceStatus) { st.State, st.Pid = "stopped", 0 })
			s.emit(Event{Service: svc.Name, Kind: Stopped})
			return
		}
		if time.Since(began) >= s.cfg.Stable {
			failures = 0
		}
		failures++
		wait := Backoff(failures, s.cfg.MinBackoff, s.cfg.MaxBackoff)
		s.log.Warn("service exited; restarting", "service", svc.Name, "err", err, "in", wait)
		s.update(svc.Name, func(st *ServiceStatus) {
			st.State, st.Pid, st.NextStart = "backoff", 0, time.Now().Add(wait)
		})
		s.emit(Event{Service: svc.Name, Kind: Restarting, Backoff: wait})
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			s.update(svc.Name, func(st *ServiceStatus) { st.State, st.NextStart = "stopped", time.Time{} })
			s.emit(Event{Service: svc.Name, Kind: Stopped})
			return
		case <-t.C:
		}
	}
}

// runOnce starts svc, copies its output and waits for it to exit; when ctx
// ends first it stops it. It returns how the run ended.
func (s *Supervisor) runOnce(ctx context.Context, svc appliance.Service) error {
	r, w, err := os.Pipe()
	if err != nil {
		return s.exited(svc.Name, fmt.Errorf("pipe: %w", err))
	}
	cmd := exec.Command(svc.Path, svc.Args...)
	cmd.Env = append(os.Environ(), svc.Env...)
	cmd.Stdout, cmd.Stderr = w, w
	// Its own process group, so that stopping it reaches its children too.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	done, err := s.cfg.Reaper.Start(cmd)
	w.Close() // the child holds its own copy
	if err != nil {
		r.Close()
		return s.exited(svc.Name, err)
	}
	defer cmd.Process.Release()
	pid := cmd.Process.Pid
	s.update(svc.Name, func(st *ServiceStatus) {
		st.State, st.Pid, st.NextStart = "running", pid, time.Time{}
		st.Starts++
		st.LastStart = time.Now()
	})
	s.log.Info("service started", "service", svc.Name, "pid", pid)
	s.emit(Event{Service: svc.Name, Kind: Started, Pid: pid})

	copied := make(chan struct{})
	go func() {
		defer close(copied)
		copyLines(s.cfg.Output, r, svc.Name+": ")
	}()

	var ws syscall.WaitStatus
	select {
	case ws = <-done:
	case <-ctx.Done():
		ws = s.stop(svc.Name, pid, done)
	}
	// The pipe ends when every process holding it has exited; a grandchild
	// that outlives the service must not hold the supervisor up.
	select {
	case <-copied:
	case <-time.After(time.Second):
	}
	r.Close()
	<-copied
	return s.exited(svc.Name, waitError(ws))
}

// stop sends SIGTERM to the service's process group, then SIGKILL after
// StopTimeout, and returns its exit status.
func (s *Supervisor) stop(name string, pid int, done <-chan syscall.WaitStatus) syscall.WaitStatus {
	s.log.Info("stopping service", "service", name, "pid", pid)
	_ = syscall.Kill(-pid, syscall.SIGTERM)
	t := time.NewTimer(s.cfg.StopTimeout)
	defer t.Stop()
	select {
	case ws := <-done:
		return ws
	case <-t.C:
		s.log.Warn("service did not stop in time; killing it", "service", name, "after", s.cfg.StopTimeout)
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		return <-done
	}
}

func (s *Supervisor) exited(name string, err error) error {
	msg := "exit status 0"
	if err != nil {
		msg = err.Error()
	}
	s.update(name, func(st *ServiceStatus) { st.LastExit = msg })
	s.emit(Event{Service: name, Kind: Exited, Err: err})
	return err
}

// waitError describes a wait status as an error, nil for exit status 0.
func waitError(ws syscall.WaitStatus) error {
	switch {
	case ws.Exited() && ws.ExitStatus() == 0:
		return nil
	case ws.Exited():
		return fmt.Errorf("exit status %d", ws.ExitStatus())
	case ws.Signaled():
		return fmt.Errorf("killed by signal %v", ws.Signal())
	default:
		return fmt.Errorf("wait status %#x", uint32(ws))
	}
}

// copyLines copies r to w line by line, each line prefixed and written in
// one Write so that lines of different services do not interleave. Lines
// longer than 64 KiB are cut into pieces.
func copyLines(w io.Writer, r io.Reader, prefix string) {
	br := bufio.NewReaderSize(r, 64<<10)
	line := make([]byte, 0, 256)
	for {
		chunk, err := br.ReadSlice('\n')
		if len(chunk) > 0 {
			line = append(line[:0], prefix...)
			line = append(line, chunk...)
			if line[len(line)-1] != '\n' {
				line = append(line, '\n')
			}
			_, _ = w.Write(line)
		}
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			return
		}
	}
}
