package config

import (
	"errors"
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
		{name: "absent: every default", in: "", check: func(d DNS) bool { return d.TTL == DNSTTL{} && d.Hostmaster == "" && d.DNSSEC == nil }},
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
