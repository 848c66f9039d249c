package main

import (
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/farmlb/farmlb/internal/cliutil"
	"github.com/urfave/cli/v2"

	"github.com/farmlb/farmlb/dnsd"
)

func env(name string) []string { return []string{"FARMLB_DNSD_" + name} }

// ttlFlags name the TTL flags, their environment variables and where each
// lands in dnsd.TTLs (whose defaults their help shows).
var ttlFlags = []struct {
	name, env, usage string
	field            func(*dnsd.TTLs) *time.Duration
}{
	{"ttl-service", "TTL_SERVICE", "TTL of the service name's A/AAAA", func(t *dnsd.TTLs) *time.Duration { return &t.Service }},
	{"ttl-farm", "TTL_FARM", "TTL of the _farm TXT list", func(t *dnsd.TTLs) *time.Duration { return &t.Farm }},
	{"ttl-srv", "TTL_SRV", "TTL of the _farmlb._tcp SRV records", func(t *dnsd.TTLs) *time.Duration { return &t.SRV }},
	{"ttl-server", "TTL_SERVER", "TTL of each server's own A/AAAA", func(t *dnsd.TTLs) *time.Duration { return &t.Server }},
	{"ttl-ns", "TTL_NS", "TTL of the NS records and their glue", func(t *dnsd.TTLs) *time.Duration { return &t.NS }},
	{"ttl-soa", "TTL_SOA", "TTL of the SOA record", func(t *dnsd.TTLs) *time.Duration { return &t.SOA }},
	{"ttl-negative", "TTL_NEGATIVE", "SOA minimum: how long resolvers cache NXDOMAIN and NODATA", func(t *dnsd.TTLs) *time.Duration { return &t.Negative }},
}

func flags() []cli.Flag {
	fs := []cli.Flag{
		&cli.StringFlag{Name: "config", Usage: "the farm file (mesh mode, with --name)", EnvVars: []string{"FARMLB_DNSD_CONFIG", "FARMLB_CONFIG"}, Category: "mesh mode"},
		&cli.StringFlag{Name: "name", Usage: "this dnsd's observer name in the farm file (mesh mode)", EnvVars: env("NAME"), Category: "mesh mode"},
		&cli.StringFlag{Name: "zone", Usage: "the zone to serve (list mode)", EnvVars: env("ZONE"), Category: "list mode"},
		&cli.StringFlag{Name: "list", Usage: "the list file: text lines, JSON (GET /farm) or TXT records (list mode)", EnvVars: env("LIST"), Category: "list mode"},
		&cli.DurationFlag{Name: "list-poll", Usage: "how often the list file is checked for a change", Value: time.Second, EnvVars: env("LIST_POLL"), Category: "list mode"},
		&cli.StringFlag{Name: "service", Usage: "the service name, inside the zone (default: the zone, or the farm file's service)", EnvVars: env("SERVICE")},
		&cli.StringSliceFlag{Name: "ns", Usage: "a nameserver of the zone, NAME[=ADDR,...] (repeatable; default: ns1.<zone> at the listen address, or the farm file's observers)", EnvVars: env("NS")},
		&cli.StringFlag{Name: "hostmaster", Usage: "the SOA mailbox, e.g. hostmaster@example.com (default hostmaster.<zone>)", EnvVars: env("HOSTMASTER")},
		&cli.StringFlag{Name: "listen", Usage: "UDP and TCP address (default: the observer's dns: address, or 127.0.0.1:53)", EnvVars: env("LISTEN")},
		&cli.IntFlag{Name: "udp-sockets", Usage: "UDP sockets sharing the port (SO_REUSEPORT); 0 means one per core", EnvVars: env("UDP_SOCKETS")},
		&cli.IntFlag{Name: "udp-size", Usage: "largest UDP answer, advertised in EDNS0", Value: 1232, EnvVars: env("UDP_SIZE")},
		&cli.StringFlag{Name: "metrics", Usage: "address for Prometheus /metrics over HTTP (empty: off)", EnvVars: env("METRICS")},
		&cli.StringFlag{Name: "log-level", Usage: "debug, info, warn or error", Value: "info", EnvVars: env("LOG_LEVEL")},
		&cli.StringFlag{Name: "log-format", Usage: "text or json", Value: "text", EnvVars: env("LOG_FORMAT")},
		&cli.BoolFlag{Name: "print-zone", Usage: "print the zone as a master file and exit (e.g. to load the same records into another server)", EnvVars: env("PRINT_ZONE")},
	}
	fs = append(fs, limitFlags()...)
	fs = append(fs, dnssecFlags()...)
	def := dnsd.DefaultTTLs()
	for _, t := range ttlFlags {
		fs = append(fs, &cli.DurationFlag{Name: t.name, Usage: t.usage, DefaultText: ttlText(*t.field(&def)), EnvVars: env(t.env), Category: "TTLs"})
	}
	return fs
}

// ttlText writes a default TTL as its help shows it: whole hours as "1h",
// anything else in seconds ("60s" rather than "1m0s").
func ttlText(d time.Duration) string {
	if d%time.Hour == 0 {
		return fmt.Sprintf("%dh", d/time.Hour)
	}
	return fmt.Sprintf("%ds", d/time.Second)
}

// parseNS parses --ns values: NAME or NAME=ADDR[,ADDR...].
func parseNS(vals []string) ([]dnsd.NameServer, error) {
	var out []dnsd.NameServer
	for _, v := range vals {
		name, addrs, _ := strings.Cut(v, "=")
		ns := dnsd.NameServer{Name: name}
		if addrs != "" {
			for _, a := range strings.Split(addrs, ",") {
				ip, err := netip.ParseAddr(a)
				if err != nil {
					return nil, fmt.Errorf("--ns %q: %q is not an IP address", v, a)
				}
				ns.Addrs = append(ns.Addrs, ip)
			}
		}
		out = append(out, ns)
	}
	return out, nil
}

// applyFlags puts the zone flags given on the command line over z.
func applyFlags(c *cli.Context, z *dnsd.Zone) error {
	if c.IsSet("service") {
		z.Service = c.String("service")
	}
	if c.IsSet("hostmaster") {
		z.Hostmaster = c.String("hostmaster")
	}
	if c.IsSet("ns") {
		ns, err := parseNS(c.StringSlice("ns"))
		if err != nil {
			return cliutil.Usage("%v", err)
		}
		z.NameServers = ns
	}
	for _, t := range ttlFlags {
		if c.IsSet(t.name) {
			d := c.Duration(t.name)
			if d < time.Second || d%time.Second != 0 {
				return cliutil.Usage("--%s %v: TTLs are whole seconds, at least 1s", t.name, d)
			}
			*t.field(&z.TTL) = d
		}
	}
	return nil
}
