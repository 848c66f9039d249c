package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/farmlb/farmlb/internal/proc"
	"github.com/urfave/cli/v2"
)

// The local farm of `make run` (scripts/run.sh) keeps its state in a
// temporary folder, found through a link in the temporary directory:
//
//	run.pid         the pid of run.sh, which supervises the processes
//	procs/NAME.pid  the pid of each running process (serverA, ns1, feed, …)
//	procs/NAME.hold present: run.sh does not start NAME again when it exits
//	control         a FIFO run.sh reads lines from: "start NAME",
//	                "restart NAME", "note TEXT" (shown on its terminal)
//	token           the farm's publish token
//
// farmctl local signals the processes itself (so its errors are its own)
// and asks run.sh, which owns them, to start them.

// localRunLink is where run.sh links its folder: $TMPDIR/farmlb-run-UID.
func localRunLink() string {
	return filepath.Join(os.TempDir(), fmt.Sprintf("farmlb-run-%d", os.Getuid()))
}

func runDirFlag() cli.Flag {
	return &cli.StringFlag{Name: "run-dir", Usage: "the `FOLDER` of the local farm's run (default: the newest make run, via $TMPDIR/farmlb-run-UID)", EnvVars: []string{"FARMLB_RUN_DIR"}}
}

// localRun is a running make run, as farmctl local sees it.
type localRun struct {
	dir string
	pid int // run.sh
}

func openLocalRun(dir string) (*localRun, error) {
	if dir == "" {
		dir = localRunLink()
	}
	if real, err := filepath.EvalSymlinks(dir); err == nil {
		dir = real
	}
	b, err := os.ReadFile(filepath.Join(dir, "run.pid"))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("no local farm is running (no %s): start one with make run", filepath.Join(dir, "run.pid"))
		}
		return nil, err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return nil, fmt.Errorf("%s: not a pid: %q", filepath.Join(dir, "run.pid"), b)
	}
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return nil, fmt.Errorf("the local farm in %s is gone (run.sh, pid %d, is not running)", dir, pid)
	}
	return &localRun{dir: dir, pid: pid}, nil
}

// names lists the processes run.sh started, running or not.
func (r *localRun) names() []string {
	seen := map[string]bool{}
	for _, pat := range []string{"*.pid", "*.hold"} {
		m, _ := filepath.Glob(filepath.Join(r.dir, "procs", pat))
		for _, f := range m {
			seen[strings.TrimSuffix(filepath.Base(f), filepath.Ext(f))] = true
		}
	}
	// A process that exited has no pid file but a log.
	logs, _ := filepath.Glob(filepath.Join(r.dir, "*.log"))
	for _, f := range logs {
		seen[strings.TrimSuffix(filepath.Base(f), ".log")] = true
	}
	var out []string
	for n := range seen {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// proc returns the pid of a running process of the run, or 0 when it is
// not running. It checks that the pid is still run.sh's child, so a pid
// reused by another program is never signalled.
func (r *localRun) proc(name string) (int, error) {
	if !r.known(name) {
		return 0, cli.Exit(fmt.Sprintf("no process %q in the local farm (processes: %s)", name, strings.Join(r.names(), ", ")), 2)
	}
	b, err := os.ReadFile(filepath.Join(r.dir, "procs", name+".pid"))
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("%s.pid: not a pid: %q", name, b)
	}
	if ppid, _, err := procStat(pid); err != nil || ppid != r.pid {
		return 0, nil // exited; run.sh has not noticed yet
	}
	return pid, nil
}

func (r *localRun) known(name string) bool {
	for _, n := range r.names() {
		if n == name {
			return true
		}
	}
	return false
}

// procStat reads a process's parent pid and state from /proc/PID/stat.
func procStat(pid int) (ppid int, state byte, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, err
	}
	// "PID (COMM) S PPID …", COMM may hold spaces and parentheses.
	i := strings.LastIndexByte(string(b), ')')
	f := strings.Fields(string(b[i+1:]))
	if i < 0 || len(f) < 2 {
		return 0, 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	ppid, err = strconv.Atoi(f[1])
	return ppid, f[0][0], err
}

// tell writes one line to run.sh's control FIFO, never blocking: with
// run.sh gone there is no reader, and the open fails.
func (r *localRun) tell(line string) error {
	f, err := os.OpenFile(filepath.Join(r.dir, "control"), os.O_WRONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return fmt.Errorf("cannot reach run.sh (pid %d): %w", r.pid, err)
	}
	defer f.Close()
	_, err = f.WriteString(line + "\n")
	return err
}

func (r *localRun) holdPath(name string) string { return filepath.Join(r.dir, "procs", name+".hold") }

func localCommand() *cli.Command {
	one := func(name, usage, desc string, flags []cli.Flag, act func(c *cli.Context, r *localRun, name string) error) *cli.Command {
		return &cli.Command{
			Name:        name,
			Usage:       usage,
			UsageText:   "farmctl local " + name + " [--run-dir FOLDER] NAME",
			Description: desc,
			Flags:       append([]cli.Flag{runDirFlag()}, flags...),
			Action: func(c *cli.Context) error {
				if c.NArg() != 1 {
					return cli.Exit(fmt.Sprintf("usage: farmctl local %s NAME (serverA, serverB, serverC, ns1, feed)", name), 2)
				}
				r, err := openLocalRun(c.String("run-dir"))
				if err != nil {
					return err
				}
				return act(c, r, c.Args().First())
			},
		}
	}
	signal := func(c *cli.Context, r *localRun, name string, sig syscall.Signal, what string) error {
		pid, err := r.proc(name)
		if err != nil {
			return err
		}
		if pid == 0 {
			return fmt.Errorf("%s is not running (farmctl local start %s)", name, name)
		}
		_ = r.tell(fmt.Sprintf("note farmctl local: %s %s (pid %d)", what, name, pid))
		if sig == syscall.SIGSTOP {
			err = proc.Freeze(pid, 5*time.Second)
		} else {
			err = syscall.Kill(pid, sig)
		}
		if err != nil {
			return fmt.Errorf("%s %s (pid %d): %w", what, name, pid, err)
		}
		fmt.Fprintf(c.App.Writer, "%s %s (pid %d)\n", what, name, pid)
		return nil
	}
	return &cli.Command{
		Name:  "local",
		Usage: "break and mend the local farm of make run: kill, hang, resume, restart, start its processes",
		Description: `Acts on the processes of the farm that 'make run' (scripts/run.sh) runs on
this machine: serverA, serverB, serverC (pushd), ns1 (dnsd) and feed (the demo feed).
make run reports on its terminal every process that exits, starts it again after
its --restart delay (5 s by default), and prints the farm's status changes as the
mesh sees them, so the effect of each command here can be watched there.

   farmctl local status              every process: pid, running, hung, down, held
   farmctl local kill serverB        SIGKILL, as a crash; make run starts it again
   farmctl local kill --hold serverB ... and keep it down until 'local start'
   farmctl local hang serverB        SIGSTOP: alive but silent, as a hung machine
   farmctl local resume serverB      SIGCONT: the hang ends
   farmctl local restart serverB     SIGINT (a clean exit), then started at once
   farmctl local start serverB       start a process that is down

farmctl drain NAME / undrain NAME drain a node of any farm, this one included.
The run is found through $TMPDIR/farmlb-run-UID (the newest make run), or
--run-dir.`,
		Subcommands: []*cli.Command{
			{
				Name:      "status",
				Usage:     "list the local farm's processes and their state",
				UsageText: "farmctl local status [--run-dir FOLDER]",
				Flags:     []cli.Flag{runDirFlag()},
				Action: func(c *cli.Context) error {
					if c.NArg() != 0 {
						return cli.Exit("usage: farmctl local status (it takes no arguments)", 2)
					}
					r, err := openLocalRun(c.String("run-dir"))
					if err != nil {
						return err
					}
					fmt.Fprintf(c.App.Writer, "make run in %s (run.sh pid %d)\n", r.dir, r.pid)
					tw := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
					fmt.Fprintln(tw, "NAME\tPID\tSTATE")
					for _, n := range r.names() {
						pid, err := r.proc(n)
						if err != nil {
							return err
						}
						state := "running"
						switch {
						case pid == 0 && fileExists(r.holdPath(n)):
							state = "down, held (farmctl local start " + n + ")"
						case pid == 0:
							state = "down (make run starts it again)"
						default:
							if stopped, _ := proc.Stopped(pid); stopped {
								state = "hung (farmctl local resume " + n + ")"
							}
						}
						p := "-"
						if pid > 0 {
							p = strconv.Itoa(pid)
						}
						fmt.Fprintf(tw, "%s\t%s\t%s\n", n, p, state)
					}
					return tw.Flush()
				},
			},
			one("kill", "SIGKILL a process of the local farm, as a crash (make run starts it again)",
				"With --hold, make run keeps it down until 'farmctl local start NAME'.",
				[]cli.Flag{&cli.BoolFlag{Name: "hold", Usage: "keep it down until farmctl local start", EnvVars: []string{"FARMLB_HOLD"}}},
				func(c *cli.Context, r *localRun, name string) error {
					if _, err := r.proc(name); err != nil {
						return err
					}
					if c.Bool("hold") {
						if err := os.WriteFile(r.holdPath(name), nil, 0o644); err != nil {
							return err
						}
					}
					return signal(c, r, name, syscall.SIGKILL, "killed")
				}),
			one("hang", "SIGSTOP a process of the local farm: it stays alive but silent, as a hung machine", "", nil,
				func(c *cli.Context, r *localRun, name string) error {
					return signal(c, r, name, syscall.SIGSTOP, "hung")
				}),
			one("resume", "SIGCONT a hung process of the local farm", "", nil,
				func(c *cli.Context, r *localRun, name string) error {
					return signal(c, r, name, syscall.SIGCONT, "resumed")
				}),
			one("restart", "stop a process of the local farm (SIGINT) and start it again at once", "", nil,
				func(c *cli.Context, r *localRun, name string) error {
					if _, err := r.proc(name); err != nil {
						return err
					}
					os.Remove(r.holdPath(name))
					if err := r.tell("restart " + name); err != nil {
						return err
					}
					fmt.Fprintf(c.App.Writer, "make run restarts %s (see its terminal)\n", name)
					return nil
				}),
			one("start", "start a process of the local farm that is down (held, or waiting to be started again)", "", nil,
				func(c *cli.Context, r *localRun, name string) error {
					pid, err := r.proc(name)
					if err != nil {
						return err
					}
					os.Remove(r.holdPath(name))
					if pid != 0 {
						return fmt.Errorf("%s runs already (pid %d)", name, pid)
					}
					if err := r.tell("start " + name); err != nil {
						return err
					}
					fmt.Fprintf(c.App.Writer, "make run starts %s (see its terminal)\n", name)
					return nil
				}),
		},
	}
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// localToken is the publish token of the local farm's run, or "".
func localToken(dir string) string {
	if dir == "" {
		dir = localRunLink()
	}
	b, err := os.ReadFile(filepath.Join(dir, "token"))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}
