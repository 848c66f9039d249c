package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/farmlb/farmlb/clientlib"
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
			&cli.BoolFlag{Name: "changes", Usage: "print one line per change of a node's status or group (with everyone's users), until interrupted", EnvVars: []string{"FARMLB_CHANGES"}},
			&cli.DurationFlag{Name: "watch", Usage: "print the farm again every `INTERVAL` until interrupted (e.g. 1s)", EnvVars: []string{"FARMLB_WATCH"}},
		),
		Action: func(c *cli.Context) error {
			if c.Bool("changes") {
				return watchChanges(c)
			}
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

// watchChanges prints one line for the farm as it is, then one line per
// change of any node's status or priority group (with every node's users at
// that moment), until interrupted. A farm that no longer answers is said
// once, and watched on.
func watchChanges(c *cli.Context) error {
	every := c.Duration("watch")
	if every <= 0 {
		every = time.Second
	}
	w := c.App.Writer
	var last *farm.List
	lost := false
	for {
		l, err := farmView(c)
		now := time.Now().Format(time.TimeOnly)
		switch {
		case err != nil && !lost:
			fmt.Fprintf(w, "%s farm: no list: %v\n", now, err)
			lost = true
		case err == nil:
			if lost || last == nil {
				fmt.Fprintf(w, "%s farm: %s%s\n", now, nodeSummary(l, true), viewOf(l))
			} else if ch := listChanges(last, l); ch != "" {
				fmt.Fprintf(w, "%s farm: %s; users %s%s\n", now, ch, nodeSummary(l, false), viewOf(l))
			}
			last, lost = l, false
		}
		select {
		case <-c.Context.Done():
			return nil
		case <-time.After(every):
		}
	}
}

// farmView fetches the list from every --url at once and gives each node
// the status most of the answering nodes see (a node that has just started
// sees its peers DOWN until the mesh joins; one slow voice should not make
// the farm flap). Without --url it is fetchList.
func farmView(c *cli.Context) (*farm.List, error) {
	urls := c.StringSlice("url")
	if len(urls) < 2 {
		return fetchList(c)
	}
	lists := make([]*farm.List, len(urls))
	errs := make([]error, len(urls))
	var wg sync.WaitGroup
	for i, u := range urls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cfg := clientConfig(c)
			cfg.ListURLs = []string{u}
			lists[i], errs[i] = clientlib.Discover(c.Context, cfg)
		}()
	}
	wg.Wait()
	var views []*farm.List
	for _, l := range lists {
		if l != nil {
			views = append(views, l)
		}
	}
	if len(views) == 0 {
		return nil, errors.Join(errs...)
	}
	out := views[0].Clone()
	var reporters []string
	for _, v := range views {
		reporters = append(reporters, v.Reporter)
	}
	out.Reporter = strings.Join(reporters, ", ")
	for i, s := range out.Servers {
		votes := map[farm.Status]int{}
		for _, v := range views {
			if o, ok := v.Find(s.Name); ok {
				votes[o.Status]++
			}
		}
		for st, n := range votes {
			if n > votes[out.Servers[i].Status] {
				out.Servers[i].Status = st
			}
		}
	}
	return out, nil
}

// listChanges says how each node's status or group changed from a to b,
// or "" when neither did.
func listChanges(a, b *farm.List) string {
	var out []string
	for _, s := range b.Servers {
		old, ok := a.Find(s.Name)
		switch {
		case !ok:
			out = append(out, fmt.Sprintf("%s joined %s", s.Name, s.Status))
		case old.Status != s.Status:
			out = append(out, fmt.Sprintf("%s %s → %s", s.Name, old.Status, s.Status))
		}
		if ok && old.Priority != s.Priority {
			out = append(out, fmt.Sprintf("%s group %s → %s", s.Name, old.Priority, s.Priority))
		}
	}
	for _, s := range a.Servers {
		if _, ok := b.Find(s.Name); !ok {
			out = append(out, s.Name+" left the list")
		}
	}
	return strings.Join(out, ", ")
}

// nodeSummary is "serverA UP 3, serverB DOWN 0, …" (with status) or
// "serverA 3, serverB 0, …".
func nodeSummary(l *farm.List, status bool) string {
	parts := make([]string, len(l.Servers))
	for i, s := range l.Servers {
		if status {
			parts[i] = fmt.Sprintf("%s %s (%d users)", s.Name, s.Status, s.Users)
		} else {
			parts[i] = fmt.Sprintf("%s %d", s.Name, s.Users)
		}
	}
	return strings.Join(parts, ", ")
}

func viewOf(l *farm.List) string {
	if l.Reporter == "" {
		return ""
	}
	if strings.Contains(l.Reporter, ",") {
		return " (as " + l.Reporter + " see it)"
	}
	return " (as " + l.Reporter + " sees it)"
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
