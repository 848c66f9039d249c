package main

import (
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/farmlb/farmlb/farm"
	"github.com/urfave/cli/v2"
)

func statusCommand() *cli.Command {
	return &cli.Command{
		Name:  "status",
		Usage: "show the farm: every node's status, users, priority group and URL",
		Description: `Fetches the farm list from DNS (--dns ADDR --zone ZONE), from a list URL
(--url), or, with neither, from the local farm that 'make run' starts.`,
		Flags: append(farmFlags(),
			&cli.BoolFlag{Name: "json", Usage: "print the list as JSON, for scripts", EnvVars: []string{"FARMLB_JSON"}},
			&cli.DurationFlag{Name: "watch", Usage: "print the farm again every `INTERVAL` until interrupted (e.g. 1s)", EnvVars: []string{"FARMLB_WATCH"}},
		),
		Action: func(c *cli.Context) error {
			for {
				l, err := fetchList(c)
				if err != nil {
					return err
				}
				if err := printStatus(c.App.Writer, l, c.Bool("json")); err != nil {
					return err
				}
				if c.Duration("watch") <= 0 {
					return nil
				}
				select {
				case <-c.Context.Done():
					return nil
				case <-time.After(c.Duration("watch")):
				}
				fmt.Fprintln(c.App.Writer)
			}
		},
	}
}

func printStatus(w io.Writer, l *farm.List, asJSON bool) error {
	if asJSON {
		b, err := farm.MarshalJSON(l)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(w, "%s\n", b)
		return err
	}
	total := 0
	for _, s := range l.Servers {
		total += s.Users
	}
	head := l.Service
	if head == "" {
		head = "farm"
	}
	fmt.Fprintf(w, "%s: %d nodes, %d users", head, len(l.Servers), total)
	if l.Reporter != "" {
		fmt.Fprintf(w, ", as %s saw it", l.Reporter)
	}
	if !l.GeneratedAt.IsZero() {
		fmt.Fprintf(w, " at %s", l.GeneratedAt.Local().Format(time.TimeOnly))
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSTATUS\tUSERS\tCAPACITY\tPRIORITY\tURL\tREASON")
	for _, s := range l.Servers {
		capacity := "-"
		if s.Capacity > 0 {
			capacity = fmt.Sprint(s.Capacity)
		}
		reason := s.Reason
		if reason == "" {
			reason = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%s\n", s.Name, s.Status, s.Users, capacity, s.Priority, s.URL, reason)
	}
	return tw.Flush()
}

// jsonLine writes v as one line of JSON.
func jsonLine(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}
