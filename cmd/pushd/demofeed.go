package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"
)

func demoFeedCommand() *cli.Command {
	return &cli.Command{
		Name:  "demo-feed",
		Usage: "publish simulated price ticks to a farm, for demos",
		Description: `Publishes a random walk of prices, one message per topic every --interval,
as JSON ({"symbol","bid","ask","seq","ts"}; seq counts 1, 2, 3 … per symbol),
on topics prices.SYMBOL. Each publish goes to the next URL of --url in turn;
a URL that fails is skipped until the next round. Stops on SIGINT or SIGTERM.`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "url", Usage: "comma-separated node `URLS` to publish to", Value: "http://127.0.0.11:8080", EnvVars: []string{"FARMLB_FEED_URL"}},
			&cli.StringFlag{Name: "symbols", Usage: "comma-separated `SYMBOLS`", Value: "EURUSD,GBPUSD,USDJPY,BTCUSD", EnvVars: []string{"FARMLB_FEED_SYMBOLS"}},
			&cli.DurationFlag{Name: "interval", Usage: "time between two ticks of one symbol", Value: 500 * time.Millisecond, EnvVars: []string{"FARMLB_FEED_INTERVAL"}},
			&cli.StringFlag{Name: "token", Usage: "publish bearer `TOKEN`", EnvVars: []string{"FARMLB_TOKEN"}},
			&cli.Uint64Flag{Name: "seed", Usage: "`SEED` of the random walk", DefaultText: "random", EnvVars: []string{"FARMLB_SEED"}},
		},
		Action: runDemoFeed,
	}
}

func runDemoFeed(c *cli.Context) error {
	urls, syms := splitList(c.String("url")), splitList(c.String("symbols"))
	if len(urls) == 0 || len(syms) == 0 {
		return cli.Exit("--url and --symbols must not be empty", 2)
	}
	if c.Duration("interval") <= 0 {
		return cli.Exit("--interval must be positive", 2)
	}
	seed := c.Uint64("seed")
	if !c.IsSet("seed") {
		seed = rand.Uint64()
	}
	r := rand.New(rand.NewPCG(seed, 1))
	start := map[string]float64{"EURUSD": 1.0842, "GBPUSD": 1.2671, "USDJPY": 151.32, "BTCUSD": 67250}
	price := map[string]float64{}
	for _, s := range syms {
		if p, ok := start[s]; ok {
			price[s] = p
		} else {
			price[s] = 100
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	client := &http.Client{Timeout: 5 * time.Second}
	tick := time.NewTicker(c.Duration("interval") / time.Duration(len(syms)))
	defer tick.Stop()
	// seq counts per symbol, so that a subscriber of one topic sees 1, 2, 3 …
	// and can tell a gap; round counts ticks over all symbols.
	next, round, failures := 0, 0, 0
	seqs := map[string]int{}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		sym := syms[round%len(syms)]
		round++
		seqs[sym]++
		seq := seqs[sym]
		p := price[sym] * math.Exp(r.NormFloat64()*0.0005)
		price[sym] = p
		digits := 5
		if p > 1000 {
			digits = 2
		} else if p > 100 {
			digits = 3
		}
		spread := p * 0.0001
		body := fmt.Sprintf(`{"symbol":%q,"bid":%s,"ask":%s,"seq":%d,"ts":%q}`, sym,
			strconv.FormatFloat(p, 'f', digits, 64), strconv.FormatFloat(p+spread, 'f', digits, 64), seq, time.Now().UTC().Format(time.RFC3339Nano))
		var err error
		for try := 0; try < len(urls); try++ {
			u := urls[next%len(urls)]
			next++
			if err = publishOnce(ctx, client, u, "prices."+sym, c.String("token"), body, fmt.Sprint("demo-", seed, "-", sym, "-", seq)); err == nil {
				break
			}
		}
		if err != nil && ctx.Err() == nil {
			failures++
			if failures == 1 || failures%20 == 0 {
				fmt.Fprintf(c.App.ErrWriter, "demo-feed: %v (%d failures)\n", err, failures)
			}
		}
	}
}

func publishOnce(ctx context.Context, client *http.Client, base, topic, token, body, key string) error {
	req, err := http.NewRequestWithContext(ctx, "POST", base+"/publish/"+topic, bytes.NewBufferString(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Idempotency-Key", key)
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode != 200 {
		return fmt.Errorf("%s: %s %s", base, resp.Status, bytes.TrimSpace(b))
	}
	return nil
}
