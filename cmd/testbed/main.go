// Command testbed builds a network-namespace lab on this machine, runs the
// real farmlb farm in it (pushd, dnsd, Unbound, clients), breaks it on a
// timeline, and reports what the clients felt. It needs root.
package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/farmlb/farmlb/internal/cliutil"
	"github.com/farmlb/farmlb/testbed"
	"github.com/urfave/cli/v2"
)

func main() {
	// A closed stdout or stderr (testbed run … | head) must not kill the
	// testbed before it has removed its lab: writes then just fail.
	signal.Ignore(syscall.SIGPIPE)
	cliutil.Main(newApp(os.Stdout, os.Stderr, os.Stdin))
}

// newApp builds the command line with its streams passed in.
func newApp(stdout, stderr io.Writer, stdin io.Reader) *cli.App {
	prefix := &cli.StringFlag{Name: "prefix", Value: testbed.DefaultPrefix, EnvVars: []string{"FARMLB_TESTBED_PREFIX"},
		Usage: "name `PREFIX` of every namespace and link the lab makes (and down removes)"}
	verbose := &cli.BoolFlag{Name: "verbose", Aliases: []string{"v"}, EnvVars: []string{"FARMLB_TESTBED_VERBOSE"}, Usage: "log the lab's own steps on stderr"}
	logger := func(c *cli.Context) *slog.Logger {
		level := slog.LevelWarn
		if c.Bool("verbose") {
			level = slog.LevelInfo
		}
		return slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	}
	app := &cli.App{
		Name:  "testbed",
		Usage: "a network-namespace lab that runs the real farm, breaks it, and measures what users feel",
		Description: `The lab is one Linux bridge and one network namespace per host, joined by veth
pairs, with addresses in 198.18.0.0/15: the pushd nodes, two dnsd hosts (ns1, ns2),
a resolver host running Unbound with the service zone stub-delegated to ns1 and
ns2, client hosts running many streaming clients each, and a monitor host that
publishes a numbered sequence and polls every member. Every object is named with
--prefix, so "testbed down" removes what a crashed run left behind.

Needs root (it creates namespaces, links and routes). Exit status: 0 ok, 1 a
runtime error or a failed scenario, 2 a usage error.`,
		Writer:         stdout,
		ErrWriter:      stderr,
		Reader:         stdin,
		ExitErrHandler: func(*cli.Context, error) {},
		Commands: []*cli.Command{
			runCommand(prefix, verbose, logger),
			upCommand(prefix, verbose, logger),
			{
				Name:  "down",
				Usage: "remove every namespace and link named with the prefix, killing what still runs in them",
				Flags: []cli.Flag{prefix},
				Action: func(c *cli.Context) error {
					if c.NArg() > 0 {
						return cliutil.Usage("down takes no arguments")
					}
					prefix, err := labPrefix(c)
					if err != nil {
						return err
					}
					r, err := testbed.Down(prefix)
					if errors.Is(err, testbed.ErrNotRoot) {
						return err
					}
					fmt.Fprintf(c.App.Writer, "removed %d processes, %d namespaces, %d links\n", len(r.Processes), len(r.Namespaces), len(r.Links))
					return err
				},
			},
			{
				Name:  "list",
				Usage: "list the scenarios in the scenario folder",
				Flags: []cli.Flag{scenarioDirFlag},
				Action: func(c *cli.Context) error {
					if c.NArg() > 0 {
						return cliutil.Usage("list takes no arguments")
					}
					files, err := scenarioFiles(c.String("scenarios"))
					if err != nil {
						return err
					}
					for _, f := range files {
						s, err := testbed.LoadScenario(f)
						if err != nil {
							return err
						}
						fmt.Fprintf(c.App.Writer, "%-16s %s\n", s.Name, firstSentence(s.Description))
					}
					return nil
				},
			},
			agentCommand(),
			floodCommand(),
		},
	}
	// Bad flags are usage errors (exit 2), like bad arguments.
	cliutil.SetUsageErrors(app)
	return app
}

var scenarioDirFlag = &cli.StringFlag{Name: "scenarios", Value: "testbed/scenarios", EnvVars: []string{"FARMLB_TESTBED_SCENARIOS"},
	Usage: "`DIR` where scenario names are looked up"}

// labPrefix is --prefix, checked before a command does anything with it.
func labPrefix(c *cli.Context) (string, error) {
	prefix := c.String("prefix")
	if err := testbed.ValidatePrefix(prefix); err != nil {
		return "", cliutil.Usage("--prefix: %v", err)
	}
	return prefix, nil
}

// checkLab says, as a usage error, why the lab of scenario s cannot be built
// with the prefix (a host name too long for it): before any lab is built.
func checkLab(s *testbed.Scenario, prefix string) error {
	if err := (testbed.LabConfig{Prefix: prefix, Hosts: testbed.PlanFor(s).Hosts()}).Validate(); err != nil {
		return cliutil.Usage("scenario %s: %v", s.Name, err)
	}
	return nil
}

func firstSentence(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.Index(s, ". "); i > 0 {
		return s[:i+1]
	}
	return s
}

// scenarioFiles lists the scenarios in dir; none is a usage error (a wrong
// --scenarios, most likely), not an empty run.
func scenarioFiles(dir string) ([]string, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, cliutil.Usage("no scenarios (*.yaml) in %s", dir)
	}
	return files, nil
}

// findScenario takes a name from the scenario folder, or a path.
func findScenario(dir, arg string) (string, error) {
	if strings.ContainsAny(arg, "/.") {
		return arg, nil
	}
	path := filepath.Join(dir, arg+".yaml")
	if _, err := os.Stat(path); err != nil {
		return "", cliutil.Usage("no scenario %q in %s (try testbed list)", arg, dir)
	}
	return path, nil
}
