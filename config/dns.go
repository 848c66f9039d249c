package config

import (
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// DNS is dnsd's section of the farm file ("dns:"). Every field is optional;
// zero means dnsd's default.
//
//	dns:
//	  ttl:
//	    service: 5s      # A/AAAA of the service name
//	    farm: 5s         # _farm TXT
//	    srv: 5s          # _farmlb._tcp SRV
//	    server: 60s      # each server's own A/AAAA
//	    ns: 1h           # NS and glue
//	    soa: 1h          # SOA
//	    negative: 5s     # SOA minimum: how long NXDOMAIN/NODATA is cached
//	  hostmaster: hostmaster@example.com
//	  dnssec:            # sign the zone (config/dnssec.go)
//	    keys: [keys/Kstream.example.com.+013+12345]
//	  rrl:                 # response rate limiting of UDP answers (on by default)
//	    rate: 200          # responses/s per client prefix and kind of answer; 0 turns RRL off
//	    slip: 2            # every 2nd response it drops goes out truncated; 0: none
//	    ipv4_prefix: 24
//	    ipv6_prefix: 56
//	    allow: [192.0.2.0/24]   # prefixes never limited
//	    table_size: 262144      # buckets, a fixed table (32 bytes each)
//	  cookies:             # DNS cookies (RFC 7873, RFC 9018)
//	    secret: 0123456789abcdef0123456789abcdef   # 16 bytes in hex, the same on every dnsd of the farm
//	    previous: [...]    # older secrets still accepted (rotation)
//	    off: false
//	  tcp:
//	    max_connections: 1000
//	    max_per_prefix: 64       # open connections from one client prefix
//	    new_per_second: 50       # new connections a second from one client prefix
//	    idle_timeout: 10s        # a whole query must arrive within this
//
// The zone's NS records are the observers: each observer's name in the zone
// (e.g. ns1.<zone>), with its dns: address as glue.
type DNS struct {
	// TTL holds the TTL of each kind of answer.
	TTL DNSTTL `yaml:"ttl"`
	// Hostmaster is the SOA's responsible mailbox, as a mail address or a
	// domain name; default hostmaster.<zone>.
	Hostmaster string `yaml:"hostmaster"`
	// DNSSEC, when present, names the keys that sign the zone
	// (config/dnssec.go).
	DNSSEC *DNSSEC `yaml:"dnssec"`
	// RRL is response rate limiting (dnsd.RRLConfig).
	RRL DNSRRL `yaml:"rrl"`
	// Cookies are DNS cookies (dnsd.CookieConfig).
	Cookies DNSCookies `yaml:"cookies"`
	// TCP holds the TCP limits.
	TCP DNSTCP `yaml:"tcp"`
}

// DNSRRL is dnsd's response rate limiting; absent keys take dnsd's
// defaults. Rate and Slip are pointers because 0 means something (off,
// never), as in NSD's rrl-ratelimit and rrl-slip.
type DNSRRL struct {
	Rate       *int           `yaml:"rate"`
	Slip       *int           `yaml:"slip"`
	IPv4Prefix int            `yaml:"ipv4_prefix"`
	IPv6Prefix int            `yaml:"ipv6_prefix"`
	Allow      []netip.Prefix `yaml:"allow"`
	TableSize  int            `yaml:"table_size"`
}

// DNSCookies are dnsd's DNS cookie settings.
type DNSCookies struct {
	// Off turns cookies off.
	Off bool `yaml:"off"`
	// Secret is the server secret as 32 hex digits, shared by every dnsd of
	// the farm so that each accepts the others' cookies. Empty: each dnsd
	// draws its own at start.
	Secret string `yaml:"secret"`
	// Previous are older secrets still accepted (rotation).
	Previous []string `yaml:"previous"`
}

// DNSTCP are dnsd's TCP limits; zero means dnsd's default.
type DNSTCP struct {
	MaxConnections int           `yaml:"max_connections"`
	MaxPerPrefix   int           `yaml:"max_per_prefix"`
	NewPerSecond   int           `yaml:"new_per_second"`
	IdleTimeout    time.Duration `yaml:"idle_timeout"`
}

// Bounds of the DNS limits: beyond them a value is a typo.
const (
	maxRRLRate  = 1_000_000
	maxRRLTable = 1 << 26
	maxTCPConns = 1 << 20
)

// validate checks the section; path is its key ("dns.rrl").
func (r *DNSRRL) validate(path string) error {
	if r.Rate != nil && (*r.Rate < 0 || *r.Rate > maxRRLRate) {
		return keyErr(path+".rate", 0, "%d out of range 0..%d (0 turns RRL off)", *r.Rate, maxRRLRate)
	}
	if r.Slip != nil && (*r.Slip < 0 || *r.Slip > 100) {
		return keyErr(path+".slip", 0, "%d out of range 0..100 (0: drop every limited response)", *r.Slip)
	}
	if r.IPv4Prefix < 0 || r.IPv4Prefix > 32 {
		return keyErr(path+".ipv4_prefix", 0, "%d out of range 1..32", r.IPv4Prefix)
	}
	if r.IPv6Prefix < 0 || r.IPv6Prefix > 128 {
		return keyErr(path+".ipv6_prefix", 0, "%d out of range 1..128", r.IPv6Prefix)
	}
	if r.TableSize != 0 && (r.TableSize < 16 || r.TableSize > maxRRLTable) {
		return keyErr(path+".table_size", 0, "%d out of range 16..%d", r.TableSize, maxRRLTable)
	}
	for i, p := range r.Allow {
		if p != p.Masked() {
			return keyErr(fmt.Sprintf("%s.allow[%d]", path, i), 0, "%v has host bits set (did you mean %v?)", p, p.Masked())
		}
	}
	return nil
}

// validate checks the section; path is its key ("dns.cookies").
func (c *DNSCookies) validate(path string) error {
	if c.Secret == "" && len(c.Previous) > 0 {
		return keyErr(path+".previous", 0, "previous secrets without a secret")
	}
	if c.Secret != "" {
		if err := checkSecret(c.Secret); err != nil {
			return keyErr(path+".secret", 0, "%v", err)
		}
	}
	for i, p := range c.Previous {
		if err := checkSecret(p); err != nil {
			return keyErr(fmt.Sprintf("%s.previous[%d]", path, i), 0, "%v", err)
		}
	}
	return nil
}

// checkSecret checks a cookie secret: 32 hex digits, not all zero.
func checkSecret(s string) error {
	if len(s) != 32 {
		return fmt.Errorf("want 32 hexadecimal digits (16 bytes), not %d characters", len(s))
	}
	if _, err := hex.DecodeString(s); err != nil {
		return fmt.Errorf("%q is not hexadecimal", s)
	}
	if strings.Trim(s, "0") == "" {
		return errors.New("all zeros is not a secret")
	}
	return nil
}

// validate checks the section; path is its key ("dns.tcp").
func (t *DNSTCP) validate(path string) error {
	for _, v := range []struct {
		key string
		n   int
	}{{"max_connections", t.MaxConnections}, {"max_per_prefix", t.MaxPerPrefix}, {"new_per_second", t.NewPerSecond}} {
		if v.n < 0 || v.n > maxTCPConns {
			return keyErr(path+"."+v.key, 0, "%d out of range 1..%d", v.n, maxTCPConns)
		}
	}
	if t.MaxPerPrefix > 0 && t.MaxConnections > 0 && t.MaxPerPrefix > t.MaxConnections {
		return keyErr(path+".max_per_prefix", 0, "%d is more than max_connections (%d)", t.MaxPerPrefix, t.MaxConnections)
	}
	if t.IdleTimeout < 0 || t.IdleTimeout > time.Hour {
		return keyErr(path+".idle_timeout", 0, "%v out of range 0..1h", t.IdleTimeout)
	}
	return nil
}

// DNSTTL are the TTLs of dnsd's answers; zero means dnsd's default (see
// dnsd.TTLs for the defaults and the reasons).
type DNSTTL struct {
	Service  time.Duration `yaml:"service"`
	Farm     time.Duration `yaml:"farm"`
	SRV      time.Duration `yaml:"srv"`
	Server   time.Duration `yaml:"server"`
	NS       time.Duration `yaml:"ns"`
	SOA      time.Duration `yaml:"soa"`
	Negative time.Duration `yaml:"negative"`
}

// maxTTL is the largest TTL DNS carries (RFC 2181: 2^31 − 1 seconds).
const maxTTL = (1<<31 - 1) * time.Second

// validate checks the section; path is its key ("dns").
func (d *DNS) validate(f *Farm, path string) error {
	for _, t := range []struct {
		key string
		v   time.Duration
	}{
		{"service", d.TTL.Service}, {"farm", d.TTL.Farm}, {"srv", d.TTL.SRV}, {"server", d.TTL.Server},
		{"ns", d.TTL.NS}, {"soa", d.TTL.SOA}, {"negative", d.TTL.Negative},
	} {
		p := path + ".ttl." + t.key
		switch {
		case t.v < 0:
			return keyErr(p, 0, "%v is negative", t.v)
		case t.v > maxTTL:
			return keyErr(p, 0, "%v is more than DNS carries (2^31-1 seconds)", t.v)
		case t.v != 0 && t.v%time.Second != 0:
			return keyErr(p, 0, "%v is not whole seconds: DNS TTLs are seconds", t.v)
		}
	}
	if h := d.Hostmaster; h != "" {
		domain := h
		if user, dom, ok := strings.Cut(h, "@"); ok {
			if user == "" || strings.ContainsAny(user, " \t\"\\") {
				return keyErr(path+".hostmaster", 0, "%q is not a mail address", h)
			}
			domain = dom
		}
		if _, err := checkDomain(strings.TrimSuffix(domain, ".")); err != nil {
			return keyErr(path+".hostmaster", 0, "%s", fmt.Sprint(err))
		}
	}
	if d.DNSSEC != nil {
		if err := d.DNSSEC.validate(path + ".dnssec"); err != nil {
			return err
		}
	}
	if err := d.RRL.validate(path + ".rrl"); err != nil {
		return err
	}
	if err := d.Cookies.validate(path + ".cookies"); err != nil {
		return err
	}
	return d.TCP.validate(path + ".tcp")
}
