package testbed

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/farmlb/farmlb/internal/proc"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// Host is one namespace of the lab, joined to the bridge by a veth pair.
type Host struct {
	Name string
	Addr netip.Addr
	NS   string // the named namespace, under /var/run/netns
	Veth string // the bridge-side end of the veth pair; the host's end is eth0
	lab  *Lab
}

// LogPath is the host's own log file: every process started on the host
// writes its stdout and stderr there, after a line naming it.
func (h *Host) LogPath() string { return filepath.Join(h.lab.cfg.LogDir, h.Name+".log") }

// withHandle runs fn with a netlink handle bound to the host's namespace. A
// handle's socket lives in the namespace it was opened in, so no thread has
// to switch namespaces for it.
func (h *Host) withHandle(fn func(*netlink.Handle) error) error {
	ns, err := netns.GetFromName(h.NS)
	if err != nil {
		return fmt.Errorf("open namespace %s: %w", h.NS, err)
	}
	defer ns.Close()
	nh, err := netlink.NewHandleAt(ns)
	if err != nil {
		return fmt.Errorf("netlink in %s: %w", h.NS, err)
	}
	defer nh.Close()
	return fn(nh)
}

// Do runs fn on an OS thread switched into the host's namespace. Anything fn
// creates that is bound to a namespace at creation — sockets, child
// processes — stays in the host's namespace after Do returns. The goroutine
// is locked to its thread for the duration (a namespace belongs to a thread,
// not to a process); if the thread cannot be switched back it stays locked,
// so the Go runtime ends it with the goroutine instead of reusing it.
func (h *Host) Do(fn func() error) error {
	ns, err := netns.GetFromName(h.NS)
	if err != nil {
		return fmt.Errorf("open namespace %s: %w", h.NS, err)
	}
	defer ns.Close()
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return err
	}
	defer orig.Close()
	if err := netns.Set(ns); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("enter namespace %s: %w", h.NS, err)
	}
	ferr := fn()
	if err := netns.Set(orig); err != nil {
		return errors.Join(ferr, fmt.Errorf("leave namespace %s: %w", h.NS, err))
	}
	runtime.UnlockOSThread()
	return ferr
}

// DialContext dials from inside the host: the socket is created on a thread
// in the host's namespace, so the connection belongs to the host.
func (h *Host) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	var c net.Conn
	err := h.Do(func() error {
		var err error
		c, err = (&net.Dialer{Timeout: 2 * time.Second}).DialContext(ctx, network, addr)
		return err
	})
	return c, err
}

// HTTPClient returns a client whose connections are made from the host.
// Keep-alives are off: a poller must notice a dead peer on its next request,
// not reuse a connection to it.
func (h *Host) HTTPClient(timeout time.Duration) *http.Client {
	return &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			DialContext:       h.DialContext,
			DisableKeepAlives: true,
		},
	}
}

// Proc is a process running inside a host.
type Proc struct {
	Name string
	Host *Host
	Argv []string
	Env  []string
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// Start starts argv as a process inside the host, with stdout and stderr
// appended to the host's log file.
//
// How a process gets into a namespace: the calling goroutine locks its OS
// thread and setns(2)s that thread into the host's namespace (Do), then
// os/exec forks from that very thread, and a child inherits the network
// namespace of the thread that forked it — the same thing `ip netns exec`
// does with setns before exec. SysProcAttr has no setns field, and
// Cloneflags=CLONE_NEWNET would give an empty new namespace instead of the
// host's. Pdeathsig kills the child if the testbed dies, so a crash leaves
// no daemon running; `testbed down` also kills whatever lives in a prefixed
// namespace.
func (h *Host) Start(name string, argv []string, env []string) (*Proc, error) {
	return h.StartIO(name, argv, env, nil, nil)
}

// StartIO is Start with the process's stdin read from stdin and its stdout
// written to stdout instead of the log (nil: no stdin; the log).
func (h *Host) StartIO(name string, argv []string, env []string, stdin, stdout *os.File) (*Proc, error) {
	if len(argv) == 0 {
		return nil, errors.New("start: empty command")
	}
	logf, err := os.OpenFile(h.LogPath(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(logf, "=== %s %s: %s\n", time.Now().UTC().Format(time.RFC3339Nano), name, strings.Join(argv, " "))
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout = logf
	cmd.Stderr = logf
	if stdin != nil {
		cmd.Stdin = stdin
	}
	if stdout != nil {
		cmd.Stdout = stdout
	}
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	err = h.Do(cmd.Start)
	if err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s on %s: %w", name, h.Name, err)
	}
	p := &Proc{Name: name, Host: h, Argv: argv, Env: env, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		fmt.Fprintf(logf, "=== %s %s exited: %v\n", time.Now().UTC().Format(time.RFC3339Nano), name, cmd.ProcessState)
		logf.Close()
		close(p.done)
	}()
	h.lab.mu.Lock()
	h.lab.procs = append(h.lab.procs, p)
	h.lab.mu.Unlock()
	return p, nil
}

// Pid is the process id.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Done is closed once the process has exited and been reaped.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Err is the process's exit error, valid once Done is closed.
func (p *Proc) Err() error { return p.err }

// Signal sends sig to the process.
func (p *Proc) Signal(sig syscall.Signal) error {
	select {
	case <-p.done:
		return fmt.Errorf("%s on %s has already exited", p.Name, p.Host.Name)
	default:
	}
	return p.cmd.Process.Signal(sig)
}

// Freeze stops the process with SIGSTOP, as a hang would, and returns once
// every thread of it is stopped (kill(2) alone returns before that).
func (p *Proc) Freeze() error {
	select {
	case <-p.done:
		return fmt.Errorf("%s on %s has already exited", p.Name, p.Host.Name)
	default:
	}
	return proc.Freeze(p.cmd.Process.Pid, 5*time.Second)
}

// kill sends SIGCONT then SIGKILL (a stopped process still dies on SIGKILL,
// the SIGCONT is for tidiness) and does not wait.
func (p *Proc) kill() {
	_ = p.cmd.Process.Signal(syscall.SIGCONT)
	_ = p.cmd.Process.Kill()
}

// Stop ends the process: sig, then SIGKILL if it has not exited within
// grace. It returns once the process has been reaped.
func (p *Proc) Stop(sig syscall.Signal, grace time.Duration) {
	_ = p.cmd.Process.Signal(sig)
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-p.done:
	case <-t.C:
		p.kill()
		<-p.done
	}
}

// pidsInNamespace lists the processes whose network namespace is the one
// bind-mounted at path (what `ip netns pids` does).
func pidsInNamespace(path string) ([]int, error) {
	var want syscall.Stat_t
	if err := syscall.Stat(path, &want); err != nil {
		return nil, err
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		var st syscall.Stat_t
		if syscall.Stat(filepath.Join("/proc", e.Name(), "ns", "net"), &st) != nil {
			continue
		}
		if st.Dev == want.Dev && st.Ino == want.Ino {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

func prefixNet(p netip.Prefix) *net.IPNet {
	a := p.Addr()
	bits := 32
	if a.Is6() {
		bits = 128
	}
	return &net.IPNet{IP: a.AsSlice(), Mask: net.CIDRMask(p.Bits(), bits)}
}
