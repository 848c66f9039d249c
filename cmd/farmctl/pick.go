package main

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"text/tabwriter"

	"github.com/farmlb/farmlb/farm"
	"github.com/farmlb/farmlb/internal/cliutil"
	"github.com/urfave/cli/v2"
)

func pickCommand() *cli.Command {
	return &cli.Command{
		Name:  "pick",
		Usage: "choose a server from a farm list file, as a client would",
		Description: `Reads a farm list in any of its three encodings (the patent's text lines,
JSON as GET /farm returns it, or DNS TXT records as dig prints them; the
encoding is detected), applies a selection policy and prints the chosen
server's line. With --explain it prints every server with its probability of
being chosen under the policy.

Policies: ` + fmt.Sprint(farm.PolicyNames()) + ` (the first is the default).

Exit status: 0 on success, 1 when the list cannot be read or offers no
server to pick, 2 on a usage error.`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "list", Aliases: []string{"l"}, Usage: "farm list `FILE` (- for standard input); required", EnvVars: []string{"FARMLB_LIST"}},
			&cli.StringFlag{Name: "policy", Aliases: []string{"p"}, Usage: "selection `NAME`", Value: farm.DefaultPolicy, EnvVars: []string{"FARMLB_POLICY"}},
			&cli.BoolFlag{Name: "explain", Usage: "print every server with its probability of being picked", EnvVars: []string{"FARMLB_EXPLAIN"}},
			&cli.Uint64Flag{Name: "seed", Usage: "seed the random choice so that it repeats", DefaultText: "random", EnvVars: []string{"FARMLB_SEED"}},
			&cli.IntFlag{Name: "samples", Usage: "picks simulated to estimate probabilities for policies without a closed form", Value: 100000, EnvVars: []string{"FARMLB_SAMPLES"}},
		},
		Action: runPick,
	}
}

func runPick(c *cli.Context) error {
	if err := cliutil.Required(c, "list"); err != nil {
		return err
	}
	pol, err := farm.NewPolicy(c.String("policy"))
	if err != nil {
		return cli.Exit(err.Error(), 2)
	}
	var data []byte
	name := c.String("list")
	if name == "-" {
		data, err = readAllLimited(os.Stdin)
	} else {
		data, err = readFileLimited(name)
	}
	if err != nil {
		return err
	}
	list, format, err := farm.Decode(data)
	if err != nil {
		return fmt.Errorf("%s (%s): %w", name, format, err)
	}
	seed := c.Uint64("seed")
	if !c.IsSet("seed") {
		seed = rand.Uint64()
	}
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	out := c.App.Writer
	if c.Bool("explain") {
		probs, estimated, err := probabilities(pol, list, r, c.Int("samples"))
		if err != nil && !errors.Is(err, farm.ErrNoServer) {
			return err
		}
		if estimated {
			fmt.Fprintf(out, "policy %s: probabilities estimated from %d simulated picks\n", pol.Name(), c.Int("samples"))
		} else {
			fmt.Fprintf(out, "policy %s: exact probabilities\n", pol.Name())
		}
		tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tSTATUS\tUSERS\tPRIORITY\tP")
		for i, s := range list.Servers {
			p := 0.0
			if probs != nil {
				p = probs[i]
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%.3f\n", s.Name, s.Status, s.Users, s.Priority, p)
		}
		tw.Flush()
	}
	s, err := pol.Pick(list, r)
	if err != nil {
		return err
	}
	if c.Bool("explain") {
		fmt.Fprint(out, "picked: ")
	}
	fmt.Fprintln(out, farm.FormatLine(s))
	return nil
}

// probabilities returns each server's chance of being picked: exact when the
// policy has a closed form, otherwise estimated from samples picks.
func probabilities(pol farm.Policy, l *farm.List, r *rand.Rand, samples int) (p []float64, estimated bool, err error) {
	if pr, ok := pol.(farm.Prober); ok {
		p, err = pr.Probabilities(l)
		return p, false, err
	}
	if samples <= 0 {
		return nil, true, fmt.Errorf("--samples must be positive")
	}
	index := make(map[string]int, len(l.Servers))
	for i, s := range l.Servers {
		index[s.Name] = i
	}
	counts := make([]float64, len(l.Servers))
	for range samples {
		s, err := pol.Pick(l, r)
		if err != nil {
			return nil, true, err
		}
		counts[index[s.Name]]++
	}
	for i := range counts {
		counts[i] /= float64(samples)
	}
	return counts, true, nil
}
