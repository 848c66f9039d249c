package config

import (
	"fmt"
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
		return d.DNSSEC.validate(path + ".dnssec")
	}
	return nil
}
