package main

import (
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"time"

	"github.com/farmlb/farmlb/clientlib"
	"github.com/farmlb/farmlb/farm"
	"github.com/urfave/cli/v2"
)

func subscribeCommand() *cli.Command {
	return &cli.Command{
		Name:      "subscribe",
		Usage:     "stream events of one or more topics, following failovers",
		ArgsUsage: "TOPIC...",
		Description: `Prints each event as one line: topic, id and data, separated by tabs. A reset
event (the node's history no longer covered the cursor) prints as topic
"farmlb-reset". With --verbose every connect and failover is printed on stderr
with the node's name.`,
		Flags: append(farmFlags(),
			&cli.StringFlag{Name: "policy", Usage: "selection policy `NAME`", Value: farm.DefaultPolicy, EnvVars: []string{"FARMLB_POLICY"}},
			&cli.StringFlag{Name: "cursor", Usage: "resume after this event `ID`", EnvVars: []string{"FARMLB_CURSOR"}},
			&cli.BoolFlag{Name: "relist-at-once", Usage: "on failure fetch a fresh list at once instead of retrying the same node", EnvVars: []string{"FARMLB_RELIST_AT_ONCE"}},
			&cli.BoolFlag{Name: "verbose", Aliases: []string{"v"}, Usage: "print connects and failovers on stderr", EnvVars: []string{"FARMLB_VERBOSE"}},
			&cli.IntFlag{Name: "count", Usage: "exit after `N` events (0: never)", EnvVars: []string{"FARMLB_COUNT"}},
		),
		Action: runSubscribe,
	}
}

func runSubscribe(c *cli.Context) error {
	if c.NArg() == 0 {
		return cli.Exit("subscribe: name at least one topic", 2)
	}
	pol, err := farm.NewPolicy(c.String("policy"))
	if err != nil {
		return cli.Exit(err.Error(), 2)
	}
	cfg := clientConfig(c)
	cfg.Topics = c.Args().Slice()
	cfg.Policy = pol
	cfg.Cursor = c.String("cursor")
	cfg.RelistAtOnce = c.Bool("relist-at-once")
	if c.Bool("verbose") {
		cfg.Logger = slog.New(slog.NewTextHandler(c.App.ErrWriter, nil))
	}
	cl, err := clientlib.Subscribe(c.Context, cfg)
	if err != nil {
		return err
	}
	defer cl.Close()
	n := 0
	for ev := range cl.Events() {
		topic := ev.Topic
		if ev.Reset {
			topic = "farmlb-reset"
		}
		fmt.Fprintf(c.App.Writer, "%s\t%s\t%s\n", topic, ev.ID, ev.Data)
		n++
		if c.Int("count") > 0 && n >= c.Int("count") {
			return nil
		}
	}
	if err := cl.Err(); err != nil && c.Context.Err() == nil {
		return err
	}
	return nil
}

func publishCommand() *cli.Command {
	return &cli.Command{
		Name:      "publish",
		Usage:     "publish one message on a topic",
		ArgsUsage: "TOPIC DATA",
		Description: `Sends DATA to a node of the farm (chosen from the list), which replicates it
and answers with the event id once two nodes hold it. A failed attempt is
retried on another node with the same idempotency key, so the message is
published once.`,
		Flags: append(farmFlags(), tokenFlag(),
			&cli.StringFlag{Name: "idempotency-key", Usage: "`KEY` that makes a retried publish count once (default: random)", EnvVars: []string{"FARMLB_IDEMPOTENCY_KEY"}},
		),
		Action: func(c *cli.Context) error {
			if c.NArg() != 2 {
				return cli.Exit("publish: want TOPIC DATA", 2)
			}
			l, err := fetchList(c)
			if err != nil {
				return err
			}
			key := c.String("idempotency-key")
			if key == "" {
				var b [12]byte
				_, _ = crand.Read(b[:])
				key = hex.EncodeToString(b[:])
			}
			hc := &http.Client{Timeout: 10 * time.Second}
			r := rand.New(rand.NewPCG(rand.Uint64(), 1))
			var errs []error
			for attempt := 0; attempt < 3; attempt++ {
				s, err := farm.Random{}.Pick(l, r)
				if err != nil {
					return err
				}
				code, body, err := postToNode(c.Context, hc, s.URL+"/publish/"+c.Args().Get(0), farmToken(c), c.Args().Get(1),
					map[string]string{"Idempotency-Key": key, "Content-Type": "text/plain"})
				switch {
				case err != nil:
					errs = append(errs, fmt.Errorf("%s: %w", s.Name, err))
				case code == http.StatusOK:
					fmt.Fprintln(c.App.Writer, body)
					return nil
				case code >= 400 && code < 500:
					return fmt.Errorf("%s refused the message: %d %s", s.Name, code, body)
				default:
					errs = append(errs, fmt.Errorf("%s: %d %s", s.Name, code, body))
				}
			}
			return errors.Join(errs...)
		},
	}
}

func drainCommand(name, verb string) *cli.Command {
	return &cli.Command{
		Name:      name,
		Usage:     verb,
		ArgsUsage: "NODE",
		Flags:     append(farmFlags(), tokenFlag()),
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return cli.Exit(name+": want NODE", 2)
			}
			l, err := fetchList(c)
			if err != nil {
				return err
			}
			u, err := nodeURL(l, c.Args().First())
			if err != nil {
				return err
			}
			code, body, err := postToNode(c.Context, &http.Client{Timeout: 10 * time.Second}, u+"/admin/"+name, farmToken(c), "", nil)
			if err != nil {
				return err
			}
			if code != http.StatusOK {
				return fmt.Errorf("%s %s: %d %s", name, c.Args().First(), code, body)
			}
			fmt.Fprintln(c.App.Writer, body)
			return nil
		},
	}
}
