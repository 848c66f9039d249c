// Package cliutil holds what every farmlb command line shares: the main
// function, exit statuses (0 ok, 1 runtime error, 2 usage error) and usage
// errors.
package cliutil

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

// Required returns a usage error naming those of the flags that c was not
// given, on the command line or in their EnvVars, or was given empty. Use it
// in an action in place of a flag's Required, for which urfave/cli prints
// the whole help before the error.
func Required(c *cli.Context, flags ...string) error {
	var missing []string
	for _, name := range flags {
		if s, isString := c.Value(name).(string); !c.IsSet(name) || isString && s == "" {
			missing = append(missing, "--"+name)
		}
	}
	switch len(missing) {
	case 0:
		return nil
	case 1:
		return Usage("%s is required (see %s --help)", missing[0], c.Command.HelpName)
	}
	return Usage("%s and %s are required (see %s --help)", strings.Join(missing[:len(missing)-1], ", "), missing[len(missing)-1], c.Command.HelpName)
}

// NoArgs returns a usage error if c has arguments: a command that takes
// none would otherwise ignore a mistyped flag value or a stray word.
func NoArgs(c *cli.Context) error {
	if c.Args().Present() {
		return Usage("unexpected arguments %q (see %s --help)", c.Args().Slice(), c.Command.HelpName)
	}
	return nil
}

// UsageError is an OnUsageError handler: a flag-parsing error exits 2.
func UsageError(_ *cli.Context, err error, _ bool) error { return cli.Exit(err.Error(), 2) }

// SetUsageErrors installs UsageError on the app and on every command and
// subcommand that has no handler of its own, and makes an unknown command
// name a usage error too (urfave/cli would answer "No help topic", exit 3).
func SetUsageErrors(app *cli.App) {
	if app.OnUsageError == nil {
		app.OnUsageError = UsageError
	}
	if app.Action == nil && len(app.Commands) > 0 {
		app.Action = unknownCommand(cli.ShowAppHelp, func(c *cli.Context) string { return c.App.Name })
	}
	var walk func([]*cli.Command)
	walk = func(cmds []*cli.Command) {
		for _, c := range cmds {
			if c.OnUsageError == nil {
				c.OnUsageError = UsageError
			}
			if c.Action == nil && len(c.Subcommands) > 0 {
				c.Action = unknownCommand(cli.ShowSubcommandHelp, func(c *cli.Context) string { return c.Command.HelpName })
			}
			walk(c.Subcommands)
		}
	}
	walk(app.Commands)
}

// unknownCommand is the action of an app or command that only groups
// others: with no argument it shows the help, with one it is not a command
// it knows.
func unknownCommand(help func(*cli.Context) error, name func(*cli.Context) string) cli.ActionFunc {
	return func(c *cli.Context) error {
		if !c.Args().Present() {
			return help(c)
		}
		return Usage("unknown command %q (see %s --help)", c.Args().First(), name(c))
	}
}

// PrintError prints a command's error once on w as "name: error", without
// doubling a prefix the error already has ("dnsd: listen …").
func PrintError(w io.Writer, name string, err error) {
	msg := err.Error()
	if !strings.HasPrefix(msg, name+": ") {
		msg = name + ": " + msg
	}
	fmt.Fprintln(w, msg)
}

// Main runs app as a process's main does: with a context that SIGINT and
// SIGTERM cancel, the error printed once as "name: error" on stderr, and the
// exit status from ExitCode. It does not return.
func Main(app *cli.App) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := app.RunContext(ctx, os.Args)
	stop()
	if err != nil {
		PrintError(os.Stderr, app.Name, err)
		os.Exit(ExitCode(err))
	}
	os.Exit(0)
}
