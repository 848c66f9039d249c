// Command farmctl is the operator's and tester's command line for a farmlb
// farm: pick a server from a list, manage the farm's CA, and (as the parts
// land) watch, publish to and drain the farm.
package main

import (
	"io"
	"os"

	"github.com/farmlb/farmlb/internal/cliutil"
	"github.com/urfave/cli/v2"
)

func main() { cliutil.Main(newApp(os.Stdout, os.Stderr)) }

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
			dnssecCommand(),
			localCommand(),
		},
		// Errors are printed once, by main.
		ExitErrHandler: func(*cli.Context, error) {},
		OnUsageError:   cliutil.UsageError,
	}
	cliutil.SetUsageErrors(app)
	return app
}
