package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/farmlb/farmlb/dnsd"
	"github.com/farmlb/farmlb/internal/cliutil"
)

// TestDNSSECKeygen makes keys the ways an operator does and reads them back
// as dnsd does: BIND file names, private keys 0600, the DS printed and
// written beside the keys.
func TestDNSSECKeygen(t *testing.T) {
	tests := []struct {
		name  string
		args  []string
		alg   uint8
		flags []uint16
	}{
		{"one combined signing key, ECDSA by default", nil, dns.ECDSAP256SHA256, []uint16{257}},
		{"KSK and ZSK, Ed25519", []string{"--split", "--algorithm", "ed25519"}, dns.ED25519, []uint16{257, 256}},
		{"a new ZSK", []string{"--zsk"}, dns.ECDSAP256SHA256, []uint16{256}},
		{"a new KSK by number", []string{"--ksk", "-a", "13"}, dns.ECDSAP256SHA256, []uint16{257}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			out, err := runFarmctl(t, append(append([]string{"dnssec", "keygen"}, tc.args...), "Stream.FarmLB.test", dir)...)
			if err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			keys, _ := filepath.Glob(filepath.Join(dir, "Kstream.farmlb.test.+*.key"))
			if len(keys) != len(tc.flags) {
				t.Fatalf("key files %v, want %d", keys, len(tc.flags))
			}
			var flags []uint16
			for _, k := range keys {
				base := strings.TrimSuffix(k, ".key")
				ks, err := dnsd.LoadKeys([]string{base}, nil)
				if err != nil {
					t.Fatal(err)
				}
				key := ks.Sign[0].DNSKEY
				if key.Algorithm != tc.alg {
					t.Errorf("%s: algorithm %d, want %d", k, key.Algorithm, tc.alg)
				}
				flags = append(flags, key.Flags)
				if st, err := os.Stat(base + ".private"); err != nil || st.Mode().Perm() != 0o600 {
					t.Errorf("%s.private: %v, want mode 0600", base, err)
				}
				if key.Flags&dns.SEP == 0 {
					continue
				}
				ds := key.ToDS(dns.SHA256).String()
				if !strings.Contains(out, ds) {
					t.Errorf("output does not show the DS %s:\n%s", ds, out)
				}
				if b, err := os.ReadFile(base + ".ds"); err != nil || strings.TrimSpace(string(b)) != ds {
					t.Errorf("%s.ds = %q, %v; want %s", base, b, err, ds)
				}
				got, err := runFarmctl(t, "dnssec", "ds", k)
				if err != nil || strings.TrimSpace(got) != ds {
					t.Errorf("farmctl dnssec ds: %q, %v", got, err)
				}
			}
			for _, f := range tc.flags {
				found := false
				for _, g := range flags {
					found = found || g == f
				}
				if !found {
					t.Errorf("flags %v, want %v", flags, tc.flags)
				}
			}
		})
	}
	t.Run("existing files are kept", func(t *testing.T) {
		dir := t.TempDir()
		k, priv, err := dnsd.GenerateKey("stream.farmlb.test", dns.ECDSAP256SHA256, true)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := dnsd.WriteKey(dir, k, priv, time.Now(), false); err != nil {
			t.Fatal(err)
		}
		if _, err := dnsd.WriteKey(dir, k, priv, time.Now(), false); err == nil || !strings.Contains(err.Error(), "--force") {
			t.Errorf("second write: %v, want an error saying --force", err)
		}
	})
}

func TestDNSSECUsage(t *testing.T) {
	for _, args := range [][]string{
		{"dnssec", "keygen", "stream.farmlb.test"},
		{"dnssec", "keygen", "--algorithm", "rsa", "stream.farmlb.test", "d"},
		{"dnssec", "keygen", "--zsk", "--ksk", "stream.farmlb.test", "d"},
		{"dnssec", "keygen", "not a zone", "d"},
		{"dnssec", "ds"},
	} {
		out, err := runFarmctl(t, args...)
		if err == nil || cliutil.ExitCode(err) != 2 {
			t.Errorf("%v: %v (exit %d), want a usage error\n%s", args, err, cliutil.ExitCode(err), out)
		}
	}
}
