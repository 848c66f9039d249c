// Package cliutil holds what every farmlb command line shares: the main
// function, exit statuses (0 ok, 1 runtime error, 2 usage error) and usage
// errors.
package cliutil

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/urfave/cli/v2"
)

// ExitCode maps an error returned by a command to the process exit status:
// the code of a cli.ExitCoder, 2 for the usage errors urfave/cli makes
// itself, 1 for everything else.
func ExitCode(err error) int {
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

// Usage returns a usage error (exit status 2) with the message.
func Usage(format string, args ...any) error {
	return cli.Exit(fmt.Sprintf(format, args...), 2)
}

// UsageError is an OnUsageError handler: a flag-parsing error exits 2.
func UsageError(_ *cli.Context, err error, _ bool) error { return cli.Exit(err.Error(), 2) }

// SetUsageErrors installs UsageError on the app and on every command and
// subcommand that has no handler of its own.
func SetUsageErrors(app *cli.App) {
	if app.OnUsageError == nil {
		app.OnUsageError = UsageError
	}
	var walk func([]*cli.Command)
	walk = func(cmds []*cli.Command) {
		for _, c := range cmds {
			if c.OnUsageError == nil {
				c.OnUsageError = UsageError
			}
			walk(c.Subcommands)
		}
	}
	walk(app.Commands)
}

// Main runs app as a process's main does: with a context that SIGINT and
// SIGTERM cancel, the error printed once as "name: error" on stderr, and the
// exit status from ExitCode. It does not return.
func Main(app *cli.App) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := app.RunContext(ctx, os.Args)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", app.Name, err)
		os.Exit(ExitCode(err))
	}
	os.Exit(0)
}
