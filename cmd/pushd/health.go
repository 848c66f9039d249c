package main

import (
	"fmt"
	"strings"

	"github.com/farmlb/farmlb/config"
	"github.com/farmlb/farmlb/pushd"
	"github.com/urfave/cli/v2"
)

// healthFlags are the flags of health checks and overload detection. A
// check given by flag replaces the node's checks of the farm file (so that
// one node can be tried with another check without editing the file every
// member reads); the timing and on-fail flags apply to the checks in use.
func healthFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringSliceFlag{Name: "health-http", Usage: "health check: GET `URL`, pass on 2xx (or --health-expect); repeatable", EnvVars: []string{"FARMLB_HEALTH_HTTP"}},
		&cli.IntFlag{Name: "health-expect", Usage: "the `STATUS` the --health-http checks want", DefaultText: "any 2xx", EnvVars: []string{"FARMLB_HEALTH_EXPECT"}},
		&cli.StringSliceFlag{Name: "health-tcp", Usage: "health check: connect to `HOST:PORT`; repeatable", EnvVars: []string{"FARMLB_HEALTH_TCP"}},
		&cli.StringSliceFlag{Name: "health-command", Usage: "health check: run `CMD` with /bin/sh -c, pass on exit 0; repeatable", EnvVars: []string{"FARMLB_HEALTH_COMMAND"}},
		&cli.DurationFlag{Name: "health-interval", Usage: "time between two runs of a check", DefaultText: "the farm file's, else 2s", EnvVars: []string{"FARMLB_HEALTH_INTERVAL"}},
		&cli.DurationFlag{Name: "health-timeout", Usage: "bound on one run", DefaultText: "1s, or the interval when shorter", EnvVars: []string{"FARMLB_HEALTH_TIMEOUT"}},
		&cli.IntFlag{Name: "health-rise", Usage: "passes in a row that end a failure", DefaultText: "2", EnvVars: []string{"FARMLB_HEALTH_RISE"}},
		&cli.IntFlag{Name: "health-fall", Usage: "failures in a row that make one", DefaultText: "3", EnvVars: []string{"FARMLB_HEALTH_FALL"}},
		&cli.StringFlag{Name: "health-on-fail", Usage: "what a failing node becomes: `draining` (keeps its clients, takes no new ones) or down (moves its clients away)", DefaultText: "draining", EnvVars: []string{"FARMLB_HEALTH_ON_FAIL"}},
		&cli.DurationFlag{Name: "overload-fanout-delay", Usage: "overload when the p90 fan-out delay stays over this", DefaultText: "pushd.overload.fanout_delay, else 2s", EnvVars: []string{"FARMLB_OVERLOAD_FANOUT_DELAY"}},
		&cli.Float64Flag{Name: "overload-cpu", Usage: "overload when the process's CPU use, as a `SHARE` of its cores (0-1), stays over this", DefaultText: "off", EnvVars: []string{"FARMLB_OVERLOAD_CPU"}},
		&cli.IntFlag{Name: "overload-streams", Usage: "overload when the open streams stay over `N`", DefaultText: "off", EnvVars: []string{"FARMLB_OVERLOAD_STREAMS"}},
		&cli.BoolFlag{Name: "overload-off", Usage: "turn overload detection off", DefaultText: "no", EnvVars: []string{"FARMLB_OVERLOAD_OFF"}},
	}
}

// applyHealthFlags lays the flags over the node's health and the farm's
// overload settings, and checks the result as the farm file would be.
func applyHealthFlags(c *cli.Context, f *config.Farm, n *config.Node) (*config.Health, config.Overload, error) {
	var h config.Health
	if n.Health != nil {
		h = *n.Health
		h.Checks = append([]config.Check(nil), n.Health.Checks...)
	}
	var flagChecks []config.Check
	for _, u := range c.StringSlice("health-http") {
		flagChecks = append(flagChecks, config.Check{HTTP: u, Expect: c.Int("health-expect")})
	}
	for _, a := range c.StringSlice("health-tcp") {
		flagChecks = append(flagChecks, config.Check{TCP: a})
	}
	for _, cmd := range c.StringSlice("health-command") {
		flagChecks = append(flagChecks, config.Check{Command: []string{"/bin/sh", "-c", cmd}})
	}
	if c.IsSet("health-expect") && len(c.StringSlice("health-http")) == 0 {
		return nil, config.Overload{}, cli.Exit("--health-expect: goes with --health-http", 2)
	}
	if flagChecks != nil {
		h.Checks = flagChecks
	}
	for i := range h.Checks {
		ck := &h.Checks[i]
		if c.IsSet("health-interval") {
			// The timeout the file's check was given by default
			// follows the new interval.
			ck.Interval, ck.Timeout = c.Duration("health-interval"), 0
		}
		if c.IsSet("health-timeout") {
			ck.Timeout = c.Duration("health-timeout")
		}
		if c.IsSet("health-rise") {
			ck.Rise = c.Int("health-rise")
		}
		if c.IsSet("health-fall") {
			ck.Fall = c.Int("health-fall")
		}
	}
	if c.IsSet("health-on-fail") {
		h.OnFail = c.String("health-on-fail")
	}
	if err := h.Validate(); err != nil {
		return nil, config.Overload{}, cli.Exit(fmt.Sprintf("--health-*: %v", strings.TrimPrefix(err.Error(), "health.")), 2)
	}
	o := f.Pushd.Overload
	if c.IsSet("overload-fanout-delay") {
		o.FanoutDelay = c.Duration("overload-fanout-delay")
	}
	if c.IsSet("overload-cpu") {
		o.CPU = c.Float64("overload-cpu")
	}
	if c.IsSet("overload-streams") {
		o.Streams = c.Int("overload-streams")
	}
	if c.Bool("overload-off") {
		o.Off = true
	}
	if err := o.Validate(); err != nil {
		return nil, config.Overload{}, cli.Exit(fmt.Sprintf("--overload-*: %v", strings.TrimPrefix(err.Error(), "overload.")), 2)
	}
	if len(h.Checks) == 0 && !c.IsSet("health-on-fail") {
		return nil, o, nil
	}
	return &h, o, nil
}

// pushdHealth maps the checked health settings onto pushd's.
func pushdHealth(h *config.Health, o config.Overload) (pushd.Health, pushd.Overload) {
	var ph pushd.Health
	if h != nil {
		ph.Down = h.OnFail == "down"
		for _, c := range h.Checks {
			ph.Checks = append(ph.Checks, pushd.Check{Name: c.Name, HTTP: c.HTTP, Expect: c.Expect, TCP: c.TCP, Command: c.Command,
				Interval: c.Interval, Timeout: c.Timeout, Rise: c.Rise, Fall: c.Fall})
		}
	}
	return ph, pushd.Overload{FanoutDelay: o.FanoutDelay, CPU: o.CPU, Streams: o.Streams, Interval: o.Interval,
		OverFor: o.OverFor, UnderFor: o.UnderFor, Off: o.Off}
}
