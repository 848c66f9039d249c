// Command farmlb-init is the appliance's /init (PID 1): see package
// appliance/initd. Run as PID 1 it ignores its arguments (the kernel hands
// init whatever words of its command line it does not know) and powers the
// machine off or reboots it when Boot returns. Run as an ordinary process
// it supervises the services of --config until SIGTERM or SIGINT, which is
// how to try a config on a workstation; a config it cannot use is an error
// at once (exit 1), where PID 1 would stay up and wait.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/farmlb/farmlb/appliance/initd"
	"github.com/farmlb/farmlb/internal/cliutil"
	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"
)

func main() {
	if os.Getpid() == 1 {
		pid1()
	}
	// Not cliutil.Main: Boot watches the signals itself (SIGINT reboots).
	if err := newApp(os.Stdout, os.Stderr).Run(os.Args); err != nil {
		cliutil.PrintError(os.Stderr, "farmlb-init", err)
		os.Exit(cliutil.ExitCode(err))
	}
}

func pid1() {
	console := consoles()
	// As PID 1, Boot reports a config error on the console and stays up.
	outcome, _ := initd.Boot(context.Background(), initd.Options{Pid1: true, Console: console})
	unix.Sync()
	// Give the console a moment to drain its last lines; nothing else waits.
	time.Sleep(100 * time.Millisecond)
	cmd := unix.LINUX_REBOOT_CMD_POWER_OFF
	if outcome == initd.Reboot {
		cmd = unix.LINUX_REBOOT_CMD_RESTART
	}
	err := unix.Reboot(cmd)
	// PID 1 must never exit: the kernel would panic.
	fmt.Fprintln(console, "farmlb-init: reboot:", err)
	select {}
}

// consoles writes to every console of the kernel command line (the screen
// and the serial port), not only to /dev/console, which is the last one.
func consoles() io.Writer {
	var ws []io.Writer
	if b, err := os.ReadFile("/sys/class/tty/console/active"); err == nil {
		for _, name := range strings.Fields(string(b)) {
			if f, err := os.OpenFile("/dev/"+name, os.O_WRONLY|unix.O_NOCTTY, 0); err == nil {
				ws = append(ws, f)
			}
		}
	}
	if len(ws) == 0 {
		if f, err := os.OpenFile("/dev/console", os.O_WRONLY|unix.O_NOCTTY, 0); err == nil {
			return f
		}
		return os.Stderr
	}
	return io.MultiWriter(ws...)
}

func newApp(stdout, stderr io.Writer) *cli.App {
	app := &cli.App{
		Name:      "farmlb-init",
		Usage:     "the farmlb appliance's /init; as an ordinary process, supervise the services of an appliance.yaml",
		Writer:    stdout,
		ErrWriter: stderr,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "config", Usage: "appliance.yaml to run (required)", EnvVars: []string{"FARMLB_APPLIANCE_CONFIG"}},
			&cli.StringFlag{Name: "bin", Usage: "folder holding pushd and dnsd", Value: "bin", EnvVars: []string{"FARMLB_APPLIANCE_BIN"}},
		},
		Action: func(c *cli.Context) error {
			if err := cliutil.Required(c, "config"); err != nil {
				return err
			}
			if err := cliutil.NoArgs(c); err != nil {
				return err
			}
			_, err := initd.Boot(c.Context, initd.Options{ConfigPath: c.String("config"), BinDir: c.String("bin"), Console: stderr})
			return err
		},
		// Errors are printed by main.
		ExitErrHandler: func(*cli.Context, error) {},
	}
	cliutil.SetUsageErrors(app)
	return app
}
