package main

import (
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/farmlb/farmlb/internal/cliutil"
	"github.com/farmlb/farmlb/testbed"
	"github.com/urfave/cli/v2"
)

func runCommand(prefix *cli.StringFlag, verbose *cli.BoolFlag, logger func(*cli.Context) *slog.Logger) *cli.Command {
	return &cli.Command{
		Name:      "run",
		Usage:     "run scenarios and write a report for each",
		ArgsUsage: "SCENARIO... (a name from the scenario folder, a path, or \"all\")",
		Description: `For each scenario: build the lab, start the farm and wait until it is whole,
play the timeline (client arrivals, faults) while publishing a numbered sequence
and polling every member, then write OUT/NAME/report.json, report.md,
users.svg and reconnect.svg, one log per host in OUT/NAME/logs, and remove
the lab. Prints progress while it runs and one summary line per scenario,
ending with where its report is.
Exits 1 if any scenario missed its expectations.`,
		Flags: []cli.Flag{
			prefix, verbose, scenarioDirFlag,
			&cli.StringFlag{Name: "out", Value: "build/testbed", EnvVars: []string{"FARMLB_TESTBED_OUT"}, Usage: "`DIR` for the reports (one folder per scenario)"},
			&cli.StringFlag{Name: "bin", Value: "bin", EnvVars: []string{"FARMLB_TESTBED_BIN"}, Usage: "`DIR` holding pushd, dnsd and farmctl"},
			&cli.StringFlag{Name: "unbound", Value: "unbound", EnvVars: []string{"FARMLB_TESTBED_UNBOUND"}, Usage: "the unbound `BINARY` for the resolver host"},
			&cli.Uint64Flag{Name: "seed", Value: 1, EnvVars: []string{"FARMLB_TESTBED_SEED"}, Usage: "`SEED` of the clients' and publisher's choices"},
			&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, EnvVars: []string{"FARMLB_TESTBED_QUIET"}, Usage: "print only the summary lines, not the progress"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() == 0 {
				return cliutil.Usage("run needs at least one scenario (try testbed list)")
			}
			prefix, err := labPrefix(c)
			if err != nil {
				return err
			}
			var paths []string
			for _, arg := range c.Args().Slice() {
				if arg == "all" {
					files, err := scenarioFiles(c.String("scenarios"))
					if err != nil {
						return err
					}
					paths = append(paths, files...)
					continue
				}
				p, err := findScenario(c.String("scenarios"), arg)
				if err != nil {
					return err
				}
				paths = append(paths, p)
			}
			var scenarios []*testbed.Scenario
			for _, p := range paths {
				s, err := testbed.LoadScenario(p)
				if err != nil {
					return cliutil.Usage("%v", err)
				}
				if err := checkLab(s, prefix); err != nil {
					return err
				}
				scenarios = append(scenarios, s)
			}
			if err := testbed.RequireRoot(); err != nil {
				return err
			}
			progress := c.App.ErrWriter
			if c.Bool("quiet") {
				progress = nil
			}
			failed := 0
			for _, s := range scenarios {
				start := time.Now()
				out := filepath.Join(c.String("out"), s.Name)
				rep, err := testbed.Run(c.Context, testbed.RunConfig{
					Scenario: s, BinDir: c.String("bin"), Unbound: c.String("unbound"),
					OutDir: out, Prefix: prefix,
					Progress: progress, Logger: logger(c), Seed: c.Uint64("seed"),
				})
				if c.Context.Err() != nil {
					return errors.New("interrupted; the lab was removed")
				}
				if err != nil || !rep.Pass {
					failed++
				}
				fmt.Fprintln(c.App.Writer, summaryLine(s.Name, rep, err, time.Since(start), out))
			}
			if failed > 0 {
				return fmt.Errorf("%d of %d scenarios failed", failed, len(scenarios))
			}
			return nil
		},
	}
}

// summaryLine is run's line for one scenario: the report's summary and where
// the report is, or the error; and how long it took.
func summaryLine(name string, rep *testbed.Report, err error, took time.Duration, out string) string {
	if err != nil {
		return fmt.Sprintf("%-16s ERROR %v (%.0fs)", name, err, took.Seconds())
	}
	return fmt.Sprintf("%s (%.0fs; report in %s)", rep.Summary(), took.Seconds(), filepath.Join(out, "report.md"))
}

func upCommand(prefix *cli.StringFlag, verbose *cli.BoolFlag, logger func(*cli.Context) *slog.Logger) *cli.Command {
	return &cli.Command{
		Name:      "up",
		Usage:     "build the hosts of a scenario's lab (with --farm: and start the farm) and keep them until Ctrl-C",
		ArgsUsage: "[SCENARIO]",
		Description: `Builds the bridge, the namespaces and the links of a scenario's lab (default:
failover) with nothing running in them, prints each host with its namespace and
address, and waits. With --farm it also starts the scenario's farm (pushd, dnsd,
Unbound) and waits until it is whole. Try e.g. "ip netns exec flb-mon curl
http://198.18.1.1:8080/farm". Ctrl-C (or SIGTERM) removes everything; after a
crash, "testbed down" does.`,
		Flags: []cli.Flag{prefix, verbose, scenarioDirFlag,
			&cli.BoolFlag{Name: "farm", EnvVars: []string{"FARMLB_TESTBED_FARM"}, Usage: "also start the farm in the lab"},
			&cli.StringFlag{Name: "bin", Value: "bin", EnvVars: []string{"FARMLB_TESTBED_BIN"}, Usage: "`DIR` holding pushd, dnsd and farmctl (with --farm)"},
			&cli.StringFlag{Name: "out", Value: "build/testbed/up", EnvVars: []string{"FARMLB_TESTBED_OUT"}, Usage: "`DIR` for the farm's files and logs (with --farm)"},
			&cli.StringFlag{Name: "logs", EnvVars: []string{"FARMLB_TESTBED_LOGS"}, Usage: "`DIR` for the hosts' log files (default: a new temporary folder)"}},
		Action: func(c *cli.Context) error {
			if c.NArg() > 1 {
				return cliutil.Usage("up takes at most one scenario")
			}
			prefix, err := labPrefix(c)
			if err != nil {
				return err
			}
			name := "failover"
			if c.NArg() == 1 {
				name = c.Args().First()
			}
			path, err := findScenario(c.String("scenarios"), name)
			if err != nil {
				return err
			}
			s, err := testbed.LoadScenario(path)
			if err != nil {
				return cliutil.Usage("%v", err)
			}
			if err := checkLab(s, prefix); err != nil {
				return err
			}
			if err := testbed.RequireRoot(); err != nil {
				return err
			}
			if c.Bool("farm") {
				f, err := testbed.StartFarm(c.Context, testbed.RunConfig{Scenario: s, BinDir: c.String("bin"), OutDir: c.String("out"),
					Prefix: prefix, Progress: c.App.ErrWriter, Logger: logger(c)})
				if err != nil {
					return err
				}
				f.Describe(c.App.Writer)
				fmt.Fprintln(c.App.Writer, "farm up; Ctrl-C removes it")
				<-c.Context.Done()
				return f.Close()
			}
			lab, err := testbed.Up(testbed.LabConfig{Prefix: prefix, Hosts: testbed.PlanFor(s).Hosts(), LogDir: c.String("logs"), Logger: logger(c)})
			if err != nil {
				return err
			}
			for _, h := range lab.Hosts() {
				fmt.Fprintf(c.App.Writer, "%-10s %-16s %s\n", h.Name, h.NS, h.Addr)
			}
			fmt.Fprintf(c.App.Writer, "lab up (logs in %s); Ctrl-C removes it\n", lab.LogDir())
			<-c.Context.Done()
			return lab.Close()
		},
	}
}

func agentCommand() *cli.Command {
	return &cli.Command{
		Name:   "agent",
		Usage:  "(run by the lab inside a client host) many streaming clients; reads \"arrive N OVER\" lines on stdin",
		Hidden: true,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "resolver", EnvVars: []string{"FARMLB_AGENT_RESOLVER"}, Usage: "DNS resolver `HOST:PORT` for the _farm TXT list"},
			&cli.StringFlag{Name: "service", Value: testbed.Service, EnvVars: []string{"FARMLB_AGENT_SERVICE"}, Usage: "service `NAME`"},
			&cli.IntFlag{Name: "http-port", Value: 8080, EnvVars: []string{"FARMLB_AGENT_HTTP_PORT"}, Usage: "`PORT` of /farm on the service's A records"},
			&cli.StringSliceFlag{Name: "list", EnvVars: []string{"FARMLB_AGENT_LIST"}, Usage: "farm list `URL` (…/farm; repeat)"},
			&cli.StringFlag{Name: "topic", Value: "seq", EnvVars: []string{"FARMLB_AGENT_TOPIC"}, Usage: "`TOPIC` to stream"},
			&cli.DurationFlag{Name: "idle", EnvVars: []string{"FARMLB_AGENT_IDLE"}, Usage: "a stream silent this long is hung (0: clientlib's default)"},
			&cli.StringFlag{Name: "out", Required: true, EnvVars: []string{"FARMLB_AGENT_OUT"}, Usage: "`FILE` for the JSON-lines records"},
			&cli.Uint64Flag{Name: "seed", Value: 1, EnvVars: []string{"FARMLB_AGENT_SEED"}, Usage: "`SEED` of the clients' choices"},
		},
		Action: func(c *cli.Context) error {
			cfg := testbed.AgentConfig{Resolver: c.String("resolver"), Service: c.String("service"), HTTPPort: c.Int("http-port"), Lists: c.StringSlice("list"),
				Topic: c.String("topic"), Idle: c.Duration("idle"), Seed: c.Uint64("seed"),
				Logger: slog.New(slog.NewTextHandler(c.App.ErrWriter, nil))}
			if cfg.Resolver == "" && len(cfg.Lists) == 0 {
				return cliutil.Usage("agent needs --resolver or --list")
			}
			return testbed.AgentMain(c.Context, cfg, c.String("out"), c.App.Reader)
		},
	}
}

func floodCommand() *cli.Command {
	return &cli.Command{
		Name:   "flood",
		Usage:  "(run by the lab on the monitor host for dns-flood) TXT _farm queries at a dnsd host until SIGTERM, then one line of figures",
		Hidden: true,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "target", Required: true, EnvVars: []string{"FARMLB_FLOOD_TARGET"}, Usage: "the dnsd host, `HOST:PORT`"},
			&cli.IntFlag{Name: "rate", EnvVars: []string{"FARMLB_FLOOD_RATE"}, Usage: "queries a second (0: 5000)"},
		},
		Action: func(c *cli.Context) error {
			if c.Int("rate") < 0 {
				return cliutil.Usage("--rate %d is negative", c.Int("rate"))
			}
			return testbed.FloodMain(c.Context, testbed.FloodConfig{Target: c.String("target"), Rate: c.Int("rate")}, c.App.Writer)
		},
	}
}
