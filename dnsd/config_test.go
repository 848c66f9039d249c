package dnsd

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

// TestZoneDefaults checks the zone's defaults and the errors of bad settings.
func TestZoneDefaults(t *testing.T) {
	tests := []struct {
		name   string
		zone   Zone
		listen string
		check  func(Zone) bool
		err    string
	}{
		{name: "defaults", zone: Zone{Origin: "Stream.Example.COM"}, listen: "192.0.2.53:53", check: func(z Zone) bool {
			return z.Origin == "stream.example.com." && z.Service == z.Origin && z.Hostmaster == "hostmaster.stream.example.com." &&
				len(z.NameServers) == 1 && z.NameServers[0].Name == "ns1.stream.example.com." &&
				z.NameServers[0].Addrs[0] == netip.MustParseAddr("192.0.2.53") && z.TTL == DefaultTTLs()
		}},
		{name: "no glue from an unspecified listen address", zone: Zone{Origin: "s.test"}, listen: "0.0.0.0:53", check: func(z Zone) bool {
			return len(z.NameServers[0].Addrs) == 0
		}},
		{name: "a label is a name in the zone, a dotted name is absolute", zone: Zone{Origin: "s.test", NameServers: []NameServer{{Name: "a"}, {Name: "ns.example.net"}}}, check: func(z Zone) bool {
			return z.NameServers[0].Name == "a.s.test." && z.NameServers[1].Name == "ns.example.net."
		}},
		{name: "hostmaster mail address", zone: Zone{Origin: "s.test", Hostmaster: "dns.admin@example.com"}, check: func(z Zone) bool {
			return z.Hostmaster == `dns\.admin.example.com.`
		}},
		{name: "some TTLs set", zone: Zone{Origin: "s.test", TTL: TTLs{Service: 2 * time.Second}}, check: func(z Zone) bool {
			return z.TTL.Service == 2*time.Second && z.TTL.Farm == 5*time.Second
		}},
		{name: "service below the zone", zone: Zone{Origin: "example.com", Service: "stream.example.com"}, check: func(z Zone) bool {
			return z.Service == "stream.example.com."
		}},
		{name: "no origin", zone: Zone{}, err: "origin is required"},
		{name: "bad origin", zone: Zone{Origin: "a b.test"}, err: "not a domain name"},
		{name: "root", zone: Zone{Origin: "."}, err: "not a domain name"},
		{name: "service outside the zone", zone: Zone{Origin: "s.test", Service: "other.test"}, err: "not inside the zone"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			listen := tc.listen
			if listen == "" {
				listen = "127.0.0.1:53"
			}
			z, err := tc.zone.populate(listen)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !tc.check(z) {
				t.Errorf("unexpected zone %+v", z)
			}
		})
	}
}

// TestConfigErrors checks New's errors.
func TestConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		cfg  func() Config
		err  string
	}{
		{"no source", func() Config { c := testConfig(nil); c.Source = nil; return c }, "Source is required"},
		{"UDP size too small", func() Config { c := testConfig(newTestSource(testList(t))); c.UDPSize = 100; return c }, "UDPSize"},
		{"invalid table", func() Config {
			l := testList(t).Clone()
			l.Servers[1].Name = l.Servers[0].Name
			return testConfig(newTestSource(l))
		}, "repeats"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.cfg())
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("err %v, want %q", err, tc.err)
			}
		})
	}
}
