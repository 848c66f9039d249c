// Command farmctl is the operator's and tester's command line for a farmlb
// farm: pick a server from a list, manage the farm's CA, and (as the parts
// land) watch, publish to and drain the farm.
package main

import (
	"context"
	"fmt"
	"github.com/farmlb/farmlb/internal/cliutil"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/urfave/cli/v2"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := newApp(os.Stdout, os.Stderr).RunContext(ctx, os.Args); err != nil {
		fmt.Fprintln(os.Stderr, "farmctl:", err)
		stop()
		os.Exit(cliutil.ExitCode(err))
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
		OnUsageError:   cliutil.UsageError,
	}
	cliutil.SetUsageErrors(app)
	return app
}
