package main

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/farmlb/farmlb/internal/farmtest"
)

// TestDNSSECNodeKilled signs a farm's zone with keys `farmctl dnssec keygen`
// made, every process real (pushd nodes, a dnsd observer, Unbound validating
// with the DS farmctl printed as its trust anchor), and kills a node with
// SIGKILL: the validated answer drops it within the mesh's detection plus the
// TTL, and no answer on the way fails validation.
func TestDNSSECNodeKilled(t *testing.T) {
	const zone = "stream.farmlb.test."
	const ttl = 2 * time.Second
	keys := filepath.Join(t.TempDir(), "keys")
	out, err := runFarmctl(t, "dnssec", "keygen", "stream.farmlb.test", keys)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	dsFiles, _ := filepath.Glob(filepath.Join(keys, "*.ds"))
	if len(dsFiles) != 1 {
		t.Fatalf("DS files %v, want one", dsFiles)
	}
	base := strings.TrimSuffix(dsFiles[0], ".ds")
	f := farmtest.Start(t, farmtest.Options{
		Nodes:     []farmtest.NodeSpec{{Name: "serverA"}, {Name: "serverB"}},
		Observers: []string{"ns1"},
		Extra:     fmt.Sprintf("dns:\n  ttl: {service: 2s, negative: 2s}\n  dnssec:\n    keys: [%q]\n", base),
	})
	f.WaitUp(15 * time.Second)
	dnsAddr := f.Procs["ns1"].DNS
	hostOf := func(name string) string {
		h, _, _ := strings.Cut(strings.TrimPrefix(f.URL(name), "http://"), ":")
		return h
	}
	both := []string{hostOf("serverA"), hostOf("serverB")}
	slices.Sort(both)

	resolver := farmtest.StartUnbound(t, "127.0.0.76", map[string]string{zone: dnsAddr},
		fmt.Sprintf("  module-config: \"validator iterator\"\n  trust-anchor-file: %q\n", dsFiles[0]))
	ask := func(addr string, validate bool) ([]string, error) {
		m := new(dns.Msg)
		m.SetQuestion(zone, dns.TypeA)
		m.SetEdns0(1232, true)
		m.AuthenticatedData = validate
		r, _, err := (&dns.Client{Timeout: 5 * time.Second}).Exchange(m, addr)
		if err != nil {
			return nil, err
		}
		if validate && (r.Rcode != dns.RcodeSuccess || !r.AuthenticatedData) {
			return nil, fmt.Errorf("rcode %s AD %v, want a secure answer", dns.RcodeToString[r.Rcode], r.AuthenticatedData)
		}
		var got []string
		for _, rr := range r.Answer {
			if a, ok := rr.(*dns.A); ok {
				got = append(got, a.A.String())
			}
		}
		slices.Sort(got)
		return got, nil
	}
	// Both nodes in the validated answer first (the observer may still be
	// joining the mesh).
	for deadline := time.Now().Add(20 * time.Second); ; {
		got, err := ask(resolver, true)
		if err != nil {
			t.Fatal(err)
		}
		if slices.Equal(got, both) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("validated answer %v, want %v", got, both)
		}
		time.Sleep(50 * time.Millisecond)
	}

	killed := time.Now()
	f.Kill("serverB")
	want := []string{hostOf("serverA")}
	var detected, validated time.Duration
	for deadline := killed.Add(30 * time.Second); validated == 0 && time.Now().Before(deadline); {
		if detected == 0 {
			if got, err := ask(dnsAddr, false); err == nil && slices.Equal(got, want) {
				detected = time.Since(killed)
			}
		}
		got, err := ask(resolver, true)
		if err != nil {
			t.Fatalf("%v, %v after the kill", err, time.Since(killed))
		}
		if slices.Equal(got, want) {
			validated = time.Since(killed)
			// dnsd changed first, between two of our queries to it.
			if detected == 0 {
				detected = validated
			}
		}
		time.Sleep(20 * time.Millisecond) // the pace of the queries
	}
	t.Logf("serverB killed: dnsd answered without it after %v (detection), the validating resolver after %v (TTL %v)", detected, validated, ttl)
	if detected == 0 || validated == 0 {
		t.Fatal("the answer still names serverB 30s after the kill")
	}
	// The resolver may hold the last answer with serverB for its TTL from
	// the moment dnsd stops giving it; Unbound counts TTLs in whole seconds
	// (up to a second more), and the polling adds its step.
	if validated > detected+ttl+time.Second {
		t.Errorf("validated answer without serverB after %v, want within detection %v + TTL %v", validated, detected, ttl)
	}
}
