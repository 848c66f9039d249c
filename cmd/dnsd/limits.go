package main

import (
	"net/netip"
	"time"

	"github.com/farmlb/farmlb/internal/cliutil"
	"github.com/urfave/cli/v2"

	"github.com/farmlb/farmlb/config"
	"github.com/farmlb/farmlb/dnsd"
)

// limitFlags are the flags of what keeps dnsd safe on a public address:
// response rate limiting, DNS cookies and the TCP limits. Each wins over the
// farm file's dns: section.
func limitFlags() []cli.Flag {
	d := dnsd.DefaultConfig()
	const rrl, ck, tcp = "response rate limiting (UDP)", "DNS cookies", "TCP limits"
	return []cli.Flag{
		&cli.IntFlag{Name: "rrl-rate", Usage: "responses per second per client prefix and kind of answer; 0 turns RRL off", Value: d.RRL.Rate, EnvVars: env("RRL_RATE"), Category: rrl},
		&cli.IntFlag{Name: "rrl-slip", Usage: "every Nth response RRL drops goes out truncated (TC), so real clients retry over TCP; 0: drop them all", Value: d.RRL.Slip, EnvVars: env("RRL_SLIP"), Category: rrl},
		&cli.IntFlag{Name: "rrl-ipv4-prefix", Usage: "IPv4 prefix length of a client", Value: d.RRL.IPv4Prefix, EnvVars: env("RRL_IPV4_PREFIX"), Category: rrl},
		&cli.IntFlag{Name: "rrl-ipv6-prefix", Usage: "IPv6 prefix length of a client", Value: d.RRL.IPv6Prefix, EnvVars: env("RRL_IPV6_PREFIX"), Category: rrl},
		&cli.StringSliceFlag{Name: "rrl-allow", Usage: "a prefix never limited, e.g. 192.0.2.0/24 (repeatable)", EnvVars: env("RRL_ALLOW"), Category: rrl},
		&cli.IntFlag{Name: "rrl-table-size", Usage: "RRL buckets: a fixed table of 32 bytes per bucket, allocated at start", Value: d.RRL.TableSize, EnvVars: env("RRL_TABLE_SIZE"), Category: rrl},
		&cli.BoolFlag{Name: "cookies", Usage: "answer DNS cookies (RFC 7873; --cookies=false ignores them)", Value: true, EnvVars: env("COOKIES"), Category: ck},
		&cli.StringFlag{Name: "cookie-secret", Usage: "server cookie secret, 32 hex digits, the same on every dnsd of the farm (prefer the environment variable to the command line; default: the farm file's, else random)", EnvVars: env("COOKIE_SECRET"), Category: ck},
		&cli.StringSliceFlag{Name: "cookie-previous", Usage: "an older cookie secret still accepted, while rotating (repeatable)", EnvVars: env("COOKIE_PREVIOUS"), Category: ck},
		&cli.IntFlag{Name: "tcp-max-conns", Usage: "TCP connections open at once, in all", Value: d.MaxTCPConns, EnvVars: env("TCP_MAX_CONNS"), Category: tcp},
		&cli.IntFlag{Name: "tcp-max-per-prefix", Usage: "TCP connections open at once from one client prefix", Value: d.MaxTCPConnsPerPrefix, EnvVars: env("TCP_MAX_PER_PREFIX"), Category: tcp},
		&cli.IntFlag{Name: "tcp-new-per-second", Usage: "new TCP connections a second from one client prefix", Value: d.TCPConnRate, EnvVars: env("TCP_NEW_PER_SECOND"), Category: tcp},
		&cli.DurationFlag{Name: "tcp-idle-timeout", Usage: "a TCP connection whose next whole query has not arrived within this is closed (silent or a byte at a time)", Value: d.TCPIdleTimeout, EnvVars: env("TCP_IDLE_TIMEOUT"), Category: tcp},
	}
}

// limitsFromFarm puts the farm file's dns: rrl, cookies and tcp settings
// into cfg (validated by config.Load).
func limitsFromFarm(f *config.Farm, cfg *dnsd.Config) {
	r := f.DNS.RRL
	if r.Rate != nil {
		cfg.RRL.Rate = offIfZero(*r.Rate)
	}
	if r.Slip != nil {
		cfg.RRL.Slip = offIfZero(*r.Slip)
	}
	if r.IPv4Prefix != 0 {
		cfg.RRL.IPv4Prefix = r.IPv4Prefix
	}
	if r.IPv6Prefix != 0 {
		cfg.RRL.IPv6Prefix = r.IPv6Prefix
	}
	if r.TableSize != 0 {
		cfg.RRL.TableSize = r.TableSize
	}
	cfg.RRL.Allow = append(cfg.RRL.Allow, r.Allow...)
	cfg.Cookies = cookiesFromFarm(f)
	t := f.DNS.TCP
	for _, v := range []struct {
		from int
		to   *int
	}{{t.MaxConnections, &cfg.MaxTCPConns}, {t.MaxPerPrefix, &cfg.MaxTCPConnsPerPrefix}, {t.NewPerSecond, &cfg.TCPConnRate}} {
		if v.from != 0 {
			*v.to = v.from
		}
	}
	if t.IdleTimeout != 0 {
		cfg.TCPIdleTimeout = t.IdleTimeout
	}
}

// cookiesFromFarm returns the farm file's cookie settings.
func cookiesFromFarm(f *config.Farm) dnsd.CookieConfig {
	c := dnsd.CookieConfig{Off: f.DNS.Cookies.Off}
	if s := f.DNS.Cookies.Secret; s != "" {
		c.Secret, _ = dnsd.ParseCookieSecret(s) // checked by config.Load
	}
	for _, p := range f.DNS.Cookies.Previous {
		s, _ := dnsd.ParseCookieSecret(p)
		c.Previous = append(c.Previous, s)
	}
	return c
}

// offIfZero maps the farm file's and the flags' 0 (off, never) to dnsd's
// negative value (its zero means the default).
func offIfZero(n int) int {
	if n == 0 {
		return -1
	}
	return n
}

// applyLimitFlags puts the limit flags given on the command line over cfg.
func applyLimitFlags(c *cli.Context, cfg *dnsd.Config) error {
	ints := []struct {
		name     string
		lo, hi   int
		to       *int
		zeroOff  bool
		meanZero string
	}{
		{"rrl-rate", 0, 1_000_000, &cfg.RRL.Rate, true, " (0 turns RRL off)"},
		{"rrl-slip", 0, 100, &cfg.RRL.Slip, true, " (0: drop every limited response)"},
		{"rrl-ipv4-prefix", 1, 32, &cfg.RRL.IPv4Prefix, false, ""},
		{"rrl-ipv6-prefix", 1, 128, &cfg.RRL.IPv6Prefix, false, ""},
		{"rrl-table-size", 16, 1 << 26, &cfg.RRL.TableSize, false, ""},
		{"tcp-max-conns", 1, 1 << 20, &cfg.MaxTCPConns, false, ""},
		{"tcp-max-per-prefix", 1, 1 << 20, &cfg.MaxTCPConnsPerPrefix, false, ""},
		{"tcp-new-per-second", 1, 1_000_000, &cfg.TCPConnRate, false, ""},
	}
	for _, f := range ints {
		if !c.IsSet(f.name) {
			continue
		}
		n := c.Int(f.name)
		if n < f.lo || n > f.hi {
			return cliutil.Usage("--%s %d: out of range %d..%d%s", f.name, n, f.lo, f.hi, f.meanZero)
		}
		if f.zeroOff {
			n = offIfZero(n)
		}
		*f.to = n
	}
	if c.IsSet("rrl-allow") {
		cfg.RRL.Allow = nil
		for _, s := range c.StringSlice("rrl-allow") {
			p, err := netip.ParsePrefix(s)
			if err != nil {
				return cliutil.Usage("--rrl-allow %q: not a prefix such as 192.0.2.0/24", s)
			}
			cfg.RRL.Allow = append(cfg.RRL.Allow, p.Masked())
		}
	}
	if c.IsSet("cookies") {
		cfg.Cookies.Off = !c.Bool("cookies")
	}
	if c.IsSet("cookie-secret") {
		s, err := dnsd.ParseCookieSecret(c.String("cookie-secret"))
		if err != nil {
			return cliutil.Usage("--cookie-secret: %v", err)
		}
		cfg.Cookies.Secret = s
	}
	if c.IsSet("cookie-previous") {
		cfg.Cookies.Previous = nil
		for _, p := range c.StringSlice("cookie-previous") {
			s, err := dnsd.ParseCookieSecret(p)
			if err != nil {
				return cliutil.Usage("--cookie-previous: %v", err)
			}
			cfg.Cookies.Previous = append(cfg.Cookies.Previous, s)
		}
	}
	if c.IsSet("tcp-idle-timeout") {
		d := c.Duration("tcp-idle-timeout")
		if d < 100*time.Millisecond || d > time.Hour {
			return cliutil.Usage("--tcp-idle-timeout %v: out of range 100ms..1h", d)
		}
		cfg.TCPIdleTimeout = d
	}
	return nil
}
