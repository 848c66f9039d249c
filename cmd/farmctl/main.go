// Command farmctl is the operator's and tester's command line for a farmlb
// farm: pick a server from a list, manage the farm's CA, and (as the parts
// land) watch, publish to and drain the farm.
package main

import (
	"fmt"
	"io"
	"os"

	"github.com/urfave/cli/v2"
)

func main() {
	if err := newApp(os.Stdout, os.Stderr).Run(os.Args); err != nil {
		fmt.Fprintln(os.Stderr, "farmctl:", err)
		os.Exit(exitCode(err))
	}
}

// newApp builds the command line with its output writers passed in, so that
// tests run it in process.
func newApp(stdout, stderr io.Writer) *cli.App {
	return &cli.App{
		Name:      "farmctl",
		Usage:     "inspect and drive a farmlb farm",
		Writer:    stdout,
		ErrWriter: stderr,
		Commands: []*cli.Command{
			pickCommand(),
			caCommand(),
		},
		// Errors are printed once, by main.
		ExitErrHandler: func(*cli.Context, error) {},
	}
}

// exitCode maps an error to the process exit status: 2 for usage errors
// (bad flags or arguments), 1 for everything else.
func exitCode(err error) int {
	var ec cli.ExitCoder
	if errorsAs(err, &ec) {
		return ec.ExitCode()
	}
	return 1
}
