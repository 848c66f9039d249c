// Command pushd is one node of a farmlb farm: it serves Server-Sent Events
// streams, accepts publishes and replicates them over the mesh, answers the
// farm list, and drains on request or on SIGTERM.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/farmlb/farmlb/config"
	"github.com/farmlb/farmlb/internal/cliutil"
	"github.com/farmlb/farmlb/pushd"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/urfave/cli/v2"
)

func main() {
	if err := newApp(os.Stdout, os.Stderr).Run(os.Args); err != nil {
		cliutil.PrintError(os.Stderr, "pushd", err)
		os.Exit(cliutil.ExitCode(err))
	}
}

// newApp builds the command line with its writers passed in.
func newApp(stdout, stderr io.Writer) *cli.App {
	app := &cli.App{
		Name:      "pushd",
		Usage:     "a node of a farmlb farm: SSE streams, publish, farm list, drain",
		Writer:    stdout,
		ErrWriter: stderr,
		Description: `pushd --config farm.yaml --node NAME serves the node NAME of the farm file:
GET /stream (Server-Sent Events), POST /publish/{topic}, GET /farm, GET /,
/healthz, /metrics, POST /admin/drain and /admin/undrain.

GET /stream?topic=T sends every message as an unnamed event (EventSource's
onmessage) with data {"topic":T,"data":PAYLOAD}; GET /stream?topic=T&event=topic
names each event by its topic (addEventListener(T)) with the payload as data.

The mesh's failure-detection timers (heartbeat, suspect_after, ...) come from
the farm file's mesh: section, the same for every member; no flag overrides
them, so that the members of a farm cannot disagree on them.

SIGTERM drains the node (status DRAINING, clients told to move, spread over
pushd.drain_window) and then exits; SIGINT, or a second signal, exits at once.

Health checks (the node's health: in the farm file, or --health-*): a node
whose check fails is DRAINING (--health-on-fail draining: keeps its clients,
takes no new ones) or DOWN for clients (down: its clients are moved as in a
drain), reason health:NAME, until the check passes rise times in a row.
Overload (pushd.overload in the farm file, or --overload-*): a node whose p90
fan-out delay (default over 2s), CPU share or open streams stay over their
thresholds asks for no new clients (DRAINING, reason overload:SIGNAL), unless
it is the last node of its priority group that could take them.

Exit status: 0 after a clean stop, 1 on a runtime error, 2 on a usage error.`,
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "config", Aliases: []string{"c"}, Usage: "farm `FILE` (YAML)", EnvVars: []string{"FARMLB_CONFIG"}},
			&cli.StringFlag{Name: "node", Aliases: []string{"n"}, Usage: "this node's `NAME` in the farm file", EnvVars: []string{"FARMLB_NODE"}},
			&cli.StringFlag{Name: "token", Usage: "publish bearer `TOKEN`; overrides tokens.publish of the farm file", EnvVars: []string{"FARMLB_TOKEN"}},
			&cli.StringFlag{Name: "listen", Usage: "HTTP listen `ADDR`; overrides the node's listen in the farm file", EnvVars: []string{"FARMLB_LISTEN"}},
			&cli.StringFlag{Name: "tls-cert", Usage: "serve HTTPS (HTTP/1.1 and HTTP/2) with this certificate `FILE` (PEM); default: cleartext HTTP/1.1 and h2c", EnvVars: []string{"FARMLB_TLS_CERT"}},
			&cli.StringFlag{Name: "tls-key", Usage: "the private key `FILE` (PEM) of --tls-cert", EnvVars: []string{"FARMLB_TLS_KEY"}},
			&cli.BoolFlag{Name: "standalone", Usage: "run without the mesh, as a farm of one (development, benchmarks)", EnvVars: []string{"FARMLB_STANDALONE"}},
			&cli.StringFlag{Name: "pprof", Usage: "serve Go's profiler (net/http/pprof) on `ADDR`, e.g. 127.0.0.1:6060 (off by default)", EnvVars: []string{"FARMLB_PPROF"}},
			&cli.StringFlag{Name: "log-level", Usage: "debug, info, warn or error", Value: "info", EnvVars: []string{"FARMLB_LOG_LEVEL"}},
			&cli.StringFlag{Name: "log-format", Usage: "text or json", Value: "text", EnvVars: []string{"FARMLB_LOG_FORMAT"}},
		}, healthFlags()...),
		Action: run,
		Commands: []*cli.Command{
			demoFeedCommand(),
		},
		ExitErrHandler: func(*cli.Context, error) {},
	}
	cliutil.SetUsageErrors(app)
	return app
}

func newLogger(c *cli.Context) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.String("log-level"))); err != nil {
		return nil, cli.Exit(fmt.Sprintf("--log-level: %v", err), 2)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch c.String("log-format") {
	case "text":
		return slog.New(slog.NewTextHandler(c.App.ErrWriter, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(c.App.ErrWriter, opts)), nil
	}
	return nil, cli.Exit("--log-format: want text or json", 2)
}

// pushdConfig maps the farm file's pushd section onto pushd.Config. Zero
// means default on both sides, so the values are copied as they are and
// pushd.New fills in what the file left out.
func pushdConfig(f *config.Farm, n *config.Node) pushd.Config {
	p := f.Pushd
	return pushd.Config{
		Listen:         n.Listen,
		PublishToken:   f.Tokens.Publish,
		AdminToken:     f.Tokens.Admin,
		Capacity:       n.Capacity,
		HistorySize:    p.HistorySize,
		HistoryAge:     p.HistoryAge,
		KeepAlive:      p.KeepAlive,
		MaxPayload:     p.MaxPayload,
		MaxTopics:      p.MaxTopics,
		DrainWindow:    p.DrainWindow,
		MoveGrace:      p.MoveGrace,
		PublishTimeout: p.PublishTimeout,
		WriteTimeout:   p.WriteTimeout,
		ReplicaWait:    p.ReplicaWait,
	}
}

func run(c *cli.Context) error {
	if c.Args().Len() > 0 {
		return cli.Exit(fmt.Sprintf("unexpected argument %q", c.Args().First()), 2)
	}
	if c.String("config") == "" || c.String("node") == "" {
		return cli.Exit("--config and --node are required (see --help)", 2)
	}
	log, err := newLogger(c)
	if err != nil {
		return err
	}
	f, err := config.Load(c.String("config"))
	if err != nil {
		return err
	}
	node, ok := f.Node(c.String("node"))
	if !ok {
		return cli.Exit(fmt.Sprintf("--node: %q is not a node of %s", c.String("node"), c.String("config")), 2)
	}
	log = log.With("node", node.Name)
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	cfg := pushdConfig(f, node)
	if t := c.String("token"); t != "" {
		if f.Tokens.Admin == "" || f.Tokens.Admin == f.Tokens.Publish {
			cfg.AdminToken = t
		}
		cfg.PublishToken = t
	}
	if l := c.String("listen"); l != "" {
		cfg.Listen = l
	}
	health, overload, err := applyHealthFlags(c, f, node)
	if err != nil {
		return err
	}
	cfg.Health, cfg.Overload = pushdHealth(health, overload)
	cfg.Logger = log
	cfg.Registerer = reg
	if crt, key := c.String("tls-cert"), c.String("tls-key"); crt != "" || key != "" {
		if crt == "" || key == "" {
			return cli.Exit("--tls-cert and --tls-key go together", 2)
		}
		pair, err := tls.LoadX509KeyPair(crt, key)
		if err != nil {
			return fmt.Errorf("--tls-cert/--tls-key: %w", err)
		}
		cfg.TLS = &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}
	}

	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	var srv *pushd.Server
	mesh, err := newMesh(c, f, node.Name, log, reg, func(from string, body []byte) error { return srv.HandlePeer(from, body) })
	if err != nil {
		return err
	}
	cfg.Mesh = mesh
	srv, err = pushd.New(cfg)
	if err != nil {
		return err
	}
	if err := mesh.Listen(); err != nil {
		return err
	}
	if err := srv.Listen(); err != nil {
		return err
	}
	if addr := c.String("pprof"); addr != "" {
		stopProf, err := servePprof(addr)
		if err != nil {
			return err
		}
		defer stopProf()
	}
	meshDone := make(chan error, 1)
	go func() { meshDone <- mesh.Serve(ctx) }()
	srvDone := make(chan error, 1)
	go func() { srvDone <- srv.Serve(ctx) }()
	log.Info("pushd serving", "http", srv.Addr().String(), "url", node.URL, "standalone", c.Bool("standalone"))

	sig := make(chan os.Signal, 2)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sig)
	var runErr error
	select {
	case s := <-sig:
		if s == syscall.SIGTERM {
			log.Info("SIGTERM: draining, then exiting", "window", cfg.DrainWindow)
			srv.Drain()
			dctx, cancel := context.WithTimeout(ctx, cfg.DrainWindow+cfg.MoveGrace+time.Second)
			go func() {
				select {
				case <-sig:
					log.Info("second signal: exiting now")
					cancel()
				case <-dctx.Done():
				}
			}()
			srv.WaitDrained(dctx)
			cancel()
		} else {
			log.Info("interrupted: exiting")
		}
	case err := <-srvDone:
		runErr = err
		srvDone <- nil
	case err := <-meshDone:
		runErr = fmt.Errorf("mesh: %w", err)
		meshDone <- nil
	}
	// The server and the mesh each get their own budget, the mesh's
	// after the server's: however long the server took, the mesh still
	// has the time to tell its peers it is leaving (they turn it DOWN at
	// once instead of after failure detection).
	sctx, cancel := context.WithTimeout(context.Background(), serverShutdownBudget)
	if err := srv.Shutdown(sctx); err != nil {
		runErr = errors.Join(runErr, fmt.Errorf("shutdown: %w", err))
	}
	cancel()
	mctx, cancel := context.WithTimeout(context.Background(), meshShutdownBudget)
	if err := mesh.Shutdown(mctx); err != nil {
		runErr = errors.Join(runErr, fmt.Errorf("mesh shutdown: %w", err))
	}
	cancel()
	stop()
	<-srvDone
	<-meshDone
	if runErr != nil {
		return runErr // main prints it, once
	}
	log.Info("stopped")
	return nil
}

// Shutdown budgets. The server's covers closing every stream and waiting
// for its goroutines (the drain, if any, is over by then); the mesh's
// covers sending the "leaving" close to each peer and waiting for its
// goroutines, which takes milliseconds unless a peer is unreachable.
const (
	serverShutdownBudget = 5 * time.Second
	meshShutdownBudget   = 2 * time.Second
)

// meshRunner is the mesh as pushd's main drives it.
type meshRunner interface {
	pushd.Mesh
	Listen() error
	Serve(ctx context.Context) error
	Shutdown(ctx context.Context) error
}

// localRunner runs a LocalMesh (--standalone).
type localRunner struct{ *pushd.LocalMesh }

func (localRunner) Listen() error { return nil }
func (localRunner) Serve(ctx context.Context) error {
	<-ctx.Done()
	return nil
}
func (localRunner) Shutdown(context.Context) error { return nil }

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
