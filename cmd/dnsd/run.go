package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/farmlb/farmlb/internal/cliutil"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/urfave/cli/v2"

	"github.com/farmlb/farmlb/config"
	"github.com/farmlb/farmlb/dnsd"
)

// shutdownTimeout bounds a clean stop: a DNS server has nothing long-lived
// to drain.
const shutdownTimeout = 5 * time.Second

func newLogger(c *cli.Context) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.String("log-level"))); err != nil {
		return nil, cliutil.Usage("--log-level %q: want debug, info, warn or error", c.String("log-level"))
	}
	opts := &slog.HandlerOptions{Level: level}
	switch c.String("log-format") {
	case "text":
		return slog.New(slog.NewTextHandler(c.App.ErrWriter, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(c.App.ErrWriter, opts)), nil
	}
	return nil, cliutil.Usage("--log-format %q: want text or json", c.String("log-format"))
}

// task is something that runs until ctx ends.
type task struct {
	name string
	run  func(ctx context.Context) error
}

func run(c *cli.Context) error {
	if c.NArg() > 0 {
		return cliutil.Usage("unexpected arguments %q (see --help)", c.Args().Slice())
	}
	log, err := newLogger(c)
	if err != nil {
		return err
	}
	mesh := c.IsSet("config") || c.IsSet("name")
	list := c.IsSet("zone") || c.IsSet("list")
	switch {
	case mesh && list:
		return cliutil.Usage("give --config and --name (mesh mode) or --zone and --list (list mode), not both")
	case mesh && (c.String("config") == "" || c.String("name") == ""):
		return cliutil.Usage("mesh mode needs both --config and --name")
	case list && (c.String("zone") == "" || c.String("list") == ""):
		return cliutil.Usage("list mode needs both --zone and --list")
	case !mesh && !list:
		return cliutil.Usage("give --config and --name (mesh mode) or --zone and --list (list mode); see --help")
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	cfg := dnsd.DefaultConfig()
	cfg.Logger = log
	cfg.Registerer = reg
	cfg.UDPSize = c.Int("udp-size")
	if n := c.Int("udp-sockets"); n > 0 {
		cfg.UDPSockets = n
	}
	var tasks []task
	var reload func() error
	var srv *dnsd.Server

	if list {
		src, err := dnsd.OpenFile(c.String("list"), dnsd.FileConfig{Poll: c.Duration("list-poll"), Logger: log, Registerer: reg})
		if err != nil {
			return err
		}
		cfg.Source = src
		cfg.Listen = "127.0.0.1:53"
		cfg.Zone.Origin = c.String("zone")
		if err := applyFlags(c, &cfg.Zone); err != nil {
			return err
		}
		if cfg.Zone.Keys, err = zoneKeys(c, nil); err != nil {
			return err
		}
		tasks = append(tasks, task{"list file", src.Run})
		reload = func() error {
			if err := src.Reload(); err != nil {
				return err
			}
			if !c.IsSet("dnssec-key") {
				return nil
			}
			// The key files may have changed (a rollover step).
			z := srv.Zone()
			keys, err := zoneKeys(c, nil)
			if err != nil {
				return err
			}
			z.Keys = keys
			return srv.SetZone(z)
		}
	} else {
		path, name := c.String("config"), c.String("name")
		f, err := config.Load(path)
		if err != nil {
			return err
		}
		obs, ok := f.Observer(name)
		if !ok {
			return fmt.Errorf("%s: no observer named %q (dnsd joins the mesh as an observer)", path, name)
		}
		cfg.Listen = obs.DNS
		cfg.Zone = zoneFromFarm(f)
		if err := applyFlags(c, &cfg.Zone); err != nil {
			return err
		}
		if cfg.Zone.Keys, err = zoneKeys(c, f); err != nil {
			return err
		}
		limitsFromFarm(f, &cfg)
		// An observer cut off from the mesh sees every node DOWN: keep
		// answering from the last table that had an UP server.
		cfg.HoldLastUp = true
		m, err := startMesh(f, name, log, reg)
		if err != nil {
			return err
		}
		cfg.Source = m
		tasks = append(tasks, task{"mesh", m.Serve})
		defer func() {
			ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
			defer cancel()
			if err := m.Shutdown(ctx); err != nil {
				log.Warn("mesh shutdown", "err", err)
			}
		}()
		timers := f.Mesh
		reload = func() error {
			f, err := config.Load(path)
			if err != nil {
				return err
			}
			if f.Mesh != timers {
				log.Warn("the farm file's mesh: timers changed; they take effect when dnsd restarts")
			}
			z := zoneFromFarm(f)
			if err := applyFlags(c, &z); err != nil {
				return err
			}
			if z.Keys, err = zoneKeys(c, f); err != nil {
				return err
			}
			if !c.IsSet("cookie-secret") && !c.IsSet("cookie-previous") {
				ck := cookiesFromFarm(f)
				srv.SetCookieSecrets(ck.Secret, ck.Previous)
			}
			return srv.SetZone(z)
		}
	}
	if c.IsSet("listen") {
		cfg.Listen = c.String("listen")
	}
	if err := applyLimitFlags(c, &cfg); err != nil {
		return err
	}

	srv, err = dnsd.New(cfg)
	if err != nil {
		return err
	}
	if c.Bool("print-zone") {
		return srv.WriteZone(c.App.Writer)
	}
	if err := srv.Listen(); err != nil {
		return err
	}
	tasks = append(tasks, task{"dns", srv.Serve})
	if addr := c.String("metrics"); addr != "" {
		t, err := metricsTask(addr, reg, log)
		if err != nil {
			return err
		}
		tasks = append(tasks, t)
	}
	return runTasks(c.Context, log, tasks, reload)
}

// runTasks runs every task until ctx ends (SIGTERM/SIGINT) or one of them
// fails, reloading on SIGHUP, then stops them all and waits for them.
func runTasks(ctx context.Context, log *slog.Logger, tasks []task, reload func() error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	var wg sync.WaitGroup
	failed := make(chan error, len(tasks))
	for _, t := range tasks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := t.run(ctx); err != nil {
				failed <- fmt.Errorf("%s: %w", t.name, err)
			} else if ctx.Err() == nil {
				failed <- fmt.Errorf("%s stopped", t.name)
			}
		}()
	}
	var err error
loop:
	for {
		select {
		case <-hup:
			log.Info("SIGHUP: reloading")
			if rerr := reload(); rerr != nil {
				log.Error("reload failed: answers stay as they were", "err", rerr)
			} else {
				log.Info("reloaded")
			}
		case <-ctx.Done():
			log.Info("stopping")
			break loop
		case err = <-failed:
			break loop
		}
	}
	cancel()
	wg.Wait()
	return err
}

// metricsTask serves /metrics from reg on addr.
func metricsTask(addr string, reg *prometheus.Registry, log *slog.Logger) (task, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return task{}, fmt.Errorf("metrics: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	log.Info("metrics", "addr", "http://"+ln.Addr().String()+"/metrics")
	return task{"metrics", func(ctx context.Context) error {
		done := make(chan error, 1)
		go func() { done <- hs.Serve(ln) }()
		select {
		case err := <-done:
			return err
		case <-ctx.Done():
		}
		sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
		defer cancel()
		err := hs.Shutdown(sctx)
		if serr := <-done; !errors.Is(serr, http.ErrServerClosed) && err == nil {
			err = serr
		}
		return err
	}}, nil
}

// zoneFromFarm returns the zone a farm file describes: its zone and service,
// its dns: section, and its observers as the nameservers (each observer's
// name in the zone, its dns: address as glue).
func zoneFromFarm(f *config.Farm) dnsd.Zone {
	z := dnsd.Zone{
		Origin:     f.Zone,
		Service:    f.Service,
		Hostmaster: f.DNS.Hostmaster,
		TTL: dnsd.TTLs{
			Service:  f.DNS.TTL.Service,
			Farm:     f.DNS.TTL.Farm,
			SRV:      f.DNS.TTL.SRV,
			Server:   f.DNS.TTL.Server,
			NS:       f.DNS.TTL.NS,
			SOA:      f.DNS.TTL.SOA,
			Negative: f.DNS.TTL.Negative,
		},
	}
	for _, o := range f.Observers {
		ns := dnsd.NameServer{Name: o.Name}
		if host, _, err := net.SplitHostPort(o.DNS); err == nil {
			if a, err := netip.ParseAddr(host); err == nil && !a.IsUnspecified() {
				ns.Addrs = []netip.Addr{a}
			}
		}
		z.NameServers = append(z.NameServers, ns)
	}
	return z
}
