package config

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestDNSSection parses dnsd's section of the farm file, good and bad.
func TestDNSSection(t *testing.T) {
	cases := []struct {
		name  string
		in    string
		check func(DNS) bool
		err   string // substring of the error; "" for none
		path  string // KeyError.Path
	}{
		{name: "absent: every default", in: "", check: func(d DNS) bool { return reflect.DeepEqual(d, DNS{}) }},
		{name: "ttls", in: "dns:\n  ttl:\n    service: 3s\n    farm: 4s\n    srv: 6s\n    server: 1m\n    ns: 2h\n    soa: 3h\n    negative: 10s\n",
			check: func(d DNS) bool {
				return d.TTL == DNSTTL{Service: 3 * time.Second, Farm: 4 * time.Second, SRV: 6 * time.Second, Server: time.Minute,
					NS: 2 * time.Hour, SOA: 3 * time.Hour, Negative: 10 * time.Second}
			}},
		{name: "hostmaster as a mail address", in: "dns:\n  hostmaster: dns.admin@example.com\n", check: func(d DNS) bool { return d.Hostmaster == "dns.admin@example.com" }},
		{name: "hostmaster as a domain name", in: "dns:\n  hostmaster: hostmaster.example.com.\n", check: func(d DNS) bool { return d.Hostmaster != "" }},
		{name: "negative ttl", in: "dns:\n  ttl:\n    service: -5s\n", err: "negative", path: "dns.ttl.service"},
		{name: "fraction of a second", in: "dns:\n  ttl:\n    farm: 1500ms\n", err: "whole seconds", path: "dns.ttl.farm"},
		{name: "too long", in: "dns:\n  ttl:\n    soa: 1000000h\n", err: "more than DNS carries", path: "dns.ttl.soa"},
		{name: "not a duration", in: "dns:\n  ttl:\n    ns: soon\n", err: "not a duration", path: "dns.ttl.ns"},
		{name: "unknown ttl", in: "dns:\n  ttl:\n    mx: 5s\n", err: "unknown key", path: "dns.ttl.mx"},
		{name: "bad hostmaster", in: "dns:\n  hostmaster: \"not a name\"\n", err: "not a domain name", path: "dns.hostmaster"},
		{name: "dnssec keys", in: "dns:\n  dnssec:\n    keys: [keys/Ka.+013+00001]\n    publish: [keys/Ka.+013+00002.key]\n",
			check: func(d DNS) bool { return d.DNSSEC != nil && len(d.DNSSEC.Keys) == 1 && len(d.DNSSEC.Publish) == 1 }},
		{name: "dnssec without a signing key", in: "dns:\n  dnssec:\n    publish: [k]\n", err: "no signing key", path: "dns.dnssec.keys"},
		{name: "dnssec key twice", in: "dns:\n  dnssec:\n    keys: [k]\n    publish: [k.key]\n", err: "already named at dns.dnssec.keys[0]", path: "dns.dnssec.publish[0]"},
		{name: "dnssec unknown key", in: "dns:\n  dnssec:\n    ksk: [k]\n", err: "unknown key", path: "dns.dnssec.ksk"},
		{name: "rrl", in: "dns:\n  rrl:\n    rate: 0\n    slip: 1\n    ipv4_prefix: 32\n    ipv6_prefix: 64\n    allow: [192.0.2.0/24, \"2001:db8::/32\"]\n    table_size: 1024\n",
			check: func(d DNS) bool {
				return *d.RRL.Rate == 0 && *d.RRL.Slip == 1 && d.RRL.IPv4Prefix == 32 && d.RRL.IPv6Prefix == 64 && len(d.RRL.Allow) == 2 && d.RRL.TableSize == 1024
			}},
		{name: "cookies", in: "dns:\n  cookies:\n    secret: e5e973e5a6b2a43f48e7dc849e37bfcf\n    previous: [dd3bdf9344b678b185a6f5cb60fca715]\n",
			check: func(d DNS) bool { return d.Cookies.Secret != "" && len(d.Cookies.Previous) == 1 }},
		{name: "tcp", in: "dns:\n  tcp:\n    max_connections: 100\n    max_per_prefix: 10\n    new_per_second: 5\n    idle_timeout: 3s\n",
			check: func(d DNS) bool {
				return d.TCP == DNSTCP{MaxConnections: 100, MaxPerPrefix: 10, NewPerSecond: 5, IdleTimeout: 3 * time.Second}
			}},
		{name: "negative rate", in: "dns:\n  rrl:\n    rate: -1\n", err: "out of range", path: "dns.rrl.rate"},
		{name: "rate not a number", in: "dns:\n  rrl:\n    rate: lots\n", err: "not an integer", path: "dns.rrl.rate"},
		{name: "slip too large", in: "dns:\n  rrl:\n    slip: 1000\n", err: "out of range", path: "dns.rrl.slip"},
		{name: "ipv4 prefix", in: "dns:\n  rrl:\n    ipv4_prefix: 33\n", err: "out of range", path: "dns.rrl.ipv4_prefix"},
		{name: "table size", in: "dns:\n  rrl:\n    table_size: 3\n", err: "out of range", path: "dns.rrl.table_size"},
		{name: "allow not a prefix", in: "dns:\n  rrl:\n    allow: [192.0.2.1]\n", err: "no '/'", path: "dns.rrl.allow[0]"},
		{name: "allow host bits", in: "dns:\n  rrl:\n    allow: [192.0.2.1/24]\n", err: "host bits", path: "dns.rrl.allow[0]"},
		{name: "short secret", in: "dns:\n  cookies:\n    secret: abcd\n", err: "32 hexadecimal digits", path: "dns.cookies.secret"},
		{name: "secret not hex", in: "dns:\n  cookies:\n    secret: zz3bdf9344b678b185a6f5cb60fca715\n", err: "not hexadecimal", path: "dns.cookies.secret"},
		{name: "zero secret", in: "dns:\n  cookies:\n    secret: \"00000000000000000000000000000000\"\n", err: "all zeros", path: "dns.cookies.secret"},
		{name: "bad previous", in: "dns:\n  cookies:\n    secret: e5e973e5a6b2a43f48e7dc849e37bfcf\n    previous: [x]\n", err: "32 hexadecimal", path: "dns.cookies.previous[0]"},
		{name: "per prefix over total", in: "dns:\n  tcp:\n    max_connections: 10\n    max_per_prefix: 20\n", err: "more than max_connections", path: "dns.tcp.max_per_prefix"},
		{name: "negative tcp", in: "dns:\n  tcp:\n    new_per_second: -2\n", err: "out of range", path: "dns.tcp.new_per_second"},
		{name: "idle timeout", in: "dns:\n  tcp:\n    idle_timeout: 2h\n", err: "out of range", path: "dns.tcp.idle_timeout"},
		{name: "empty mailbox", in: "dns:\n  hostmaster: \"@example.com\"\n", err: "not a mail address", path: "dns.hostmaster"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f, err := Parse([]byte(minimal + c.in))
			if c.err != "" {
				var ke *KeyError
				if err == nil || !strings.Contains(err.Error(), c.err) || !errors.As(err, &ke) || ke.Path != c.path {
					t.Fatalf("err %v, want a KeyError at %q containing %q", err, c.path, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !c.check(f.DNS) {
				t.Errorf("unexpected section: %+v", f.DNS)
			}
		})
	}
}

// TestKeyPaths: the dnssec keys' paths are relative to the farm file.
func TestKeyPaths(t *testing.T) {
	f, err := Parse([]byte(minimal + "dns:\n  dnssec:\n    keys: [keys/Ka.+013+00001, /abs/Ka.+013+00003]\n    publish: [keys/Ka.+013+00002]\n"))
	if err != nil {
		t.Fatal(err)
	}
	f.Dir = "/etc/farmlb"
	sign, publish := f.KeyPaths()
	if want := []string{"/etc/farmlb/keys/Ka.+013+00001", "/abs/Ka.+013+00003"}; !slices.Equal(sign, want) {
		t.Errorf("keys %v, want %v", sign, want)
	}
	if want := []string{"/etc/farmlb/keys/Ka.+013+00002"}; !slices.Equal(publish, want) {
		t.Errorf("publish %v, want %v", publish, want)
	}
	if s, p := (&Farm{}).KeyPaths(); s != nil || p != nil {
		t.Errorf("no dnssec section: %v %v", s, p)
	}
}

// TestDNSLimitsNameTheLine checks that a bad RRL, cookie or TCP value is
// refused with its key and its line.
func TestDNSLimitsNameTheLine(t *testing.T) {
	base := strings.Count(minimal, "\n")
	for _, tc := range []struct{ in, want string }{
		{"dns:\n  rrl:\n    rate: -1\n", fmt.Sprintf("dns.rrl.rate: -1 out of range 0..1000000 (0 turns RRL off) (line %d)", base+3)},
		{"dns:\n  cookies:\n    secret: abc\n", fmt.Sprintf("dns.cookies.secret: want 32 hexadecimal digits (16 bytes), not 3 characters (line %d)", base+3)},
		{"dns:\n  tcp:\n    max_per_prefix: 5\n    idle_timeout: 3h\n", fmt.Sprintf("dns.tcp.idle_timeout: 3h0m0s out of range 0..1h (line %d)", base+4)},
	} {
		_, err := Parse([]byte(minimal + tc.in))
		if err == nil || err.Error() != tc.want {
			t.Errorf("%q: error %v, want %q", tc.in, err, tc.want)
		}
	}
}
