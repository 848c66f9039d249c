// Command farmctl is the operator's and tester's command line for a farmlb
// farm: pick a server from a list, manage the farm's CA, and (as the parts
// land) watch, publish to and drain the farm.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/urfave/cli/v2"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := newApp(os.Stdout, os.Stderr).RunContext(ctx, os.Args); err != nil {
		fmt.Fprintln(os.Stderr, "farmctl:", err)
		stop()
		os.Exit(exitCode(err))
	}
}

// newApp builds the command line with its output writers passed in, so that
// tests run it in process.
func newApp(stdout, stderr io.Writer) *cli.App {
	app := &cli.App{
		Name:      "farmctl",
		Usage:     "inspect and drive a farmlb farm",
		Writer:    stdout,
		ErrWriter: stderr,
		Commands: []*cli.Command{
			pickCommand(),
			statusCommand(),
			subscribeCommand(),
			publishCommand(),
			drainCommand("drain", "drain a node: it takes no new clients and moves its clients away"),
			drainCommand("undrain", "undo a drain: the node takes new clients again"),
			swarmCommand(),
			caCommand(),
		},
		// Errors are printed once, by main.
		ExitErrHandler: func(*cli.Context, error) {},
		OnUsageError:   usageError,
	}
	setUsageErrors(app.Commands)
	return app
}

// usageError turns a flag-parsing error into exit status 2.
func usageError(_ *cli.Context, err error, _ bool) error { return cli.Exit(err.Error(), 2) }

func setUsageErrors(cmds []*cli.Command) {
	for _, c := range cmds {
		if c.OnUsageError == nil {
			c.OnUsageError = usageError
		}
		setUsageErrors(c.Subcommands)
	}
}

// exitCode maps an error to the process exit status: 2 for usage errors
// (bad flags or arguments), 1 for everything else.
func exitCode(err error) int {
	var ec cli.ExitCoder
	if errors.As(err, &ec) {
		return ec.ExitCode()
	}
	// urfave/cli reports a missing required flag with an unexported type.
	if strings.HasPrefix(err.Error(), "Required flag") {
		return 2
	}
	return 1
}
