package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/farmlb/farmlb/config"
	"github.com/farmlb/farmlb/dnsd"
	"github.com/farmlb/farmlb/internal/farmtest"
)

// genKey writes a new ECDSA key for the test zone into dir as farmctl
// dnssec keygen does, and returns its path without suffix.
func genKey(t *testing.T, dir string, zone string, sep bool) string {
	t.Helper()
	k, priv, err := dnsd.GenerateKey(zone, dns.ECDSAP256SHA256, sep)
	if err != nil {
		t.Fatal(err)
	}
	base, err := dnsd.WriteKey(dir, k, priv, time.Now(), false)
	if err != nil {
		t.Fatal(err)
	}
	return base
}

// dsOf reads the DS record farmctl wrote beside a key.
func dsOf(t *testing.T, base string) *dns.DS {
	t.Helper()
	b, err := os.ReadFile(base + ".ds")
	if err != nil {
		t.Fatal(err)
	}
	rr, err := dns.NewRR(string(b))
	if err != nil {
		t.Fatal(err)
	}
	return rr.(*dns.DS)
}

// validating is Unbound's configuration to validate with the trust anchor
// in file (DS or DNSKEY records).
func validating(file string) string {
	return fmt.Sprintf("  module-config: \"validator iterator\"\n  trust-anchor-file: %q\n  val-log-level: 2\n", file)
}

// resolve asks a resolver with the DO and AD bits.
func resolve(addr, name string, qtype uint16) (*dns.Msg, error) {
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	m.AuthenticatedData = true
	m.SetEdns0(1232, true)
	c := &dns.Client{Timeout: 5 * time.Second}
	r, _, err := c.Exchange(m, addr)
	if err == nil && r.Truncated {
		c.Net = "tcp"
		r, _, err = c.Exchange(m, addr)
	}
	return r, err
}

// secure asks a validating resolver and fails unless the answer is
// authenticated (AD) and, for a name that exists, NOERROR.
func secure(addr, name string, qtype uint16) (*dns.Msg, error) {
	r, err := resolve(addr, name, qtype)
	if err != nil {
		return nil, err
	}
	if !r.AuthenticatedData || (r.Rcode != dns.RcodeSuccess && r.Rcode != dns.RcodeNameError) {
		return r, fmt.Errorf("%s %s: rcode %s AD %v, want a secure answer", name, dns.TypeToString[qtype], dns.RcodeToString[r.Rcode], r.AuthenticatedData)
	}
	return r, nil
}

func rrStrings(rrs []dns.RR, qtype uint16) []string {
	var out []string
	for _, rr := range rrs {
		if rr.Header().Rrtype != qtype {
			continue
		}
		switch rr := rr.(type) {
		case *dns.A:
			out = append(out, rr.A.String())
		case *dns.AAAA:
			out = append(out, rr.AAAA.String())
		case *dns.SRV:
			out = append(out, strings.ToLower(rr.Target))
		default:
			out = append(out, rr.String())
		}
	}
	slices.Sort(out)
	return out
}

// TestDNSSECThroughResolvers runs dnsd as a process following a real mesh,
// signing with the keys its farm file names, behind a validating Unbound
// whose trust anchor is the KSK's DS (and behind BIND's delv): every kind of
// answer is secure; a node that leaves the mesh leaves the validated answer
// within detection and TTL (a node killed: cmd/farmctl's TestDNSSECNodeKilled); a trust anchor for another key gets SERVFAIL; a SIGHUP
// with a bad key keeps the last good keys; and neither a ZSK rollover
// (pre-publish) nor a KSK rollover (double-DS), each step a change of the
// farm file and a SIGHUP, fails a query on the way.
func TestDNSSECThroughResolvers(t *testing.T) {
	const zone = "stream.farmlb.test."
	const ttl = 2 * time.Second // the service name's, _farm's and SRV's
	obsIP := "127.0.0.73"
	dir, y := writeFarm(t, []member{{"serverA", "127.0.0.71"}, {"serverB", "127.0.0.72"}}, []member{{"ns1", obsIP}}, "")
	for _, ip := range []string{"71", "72"} {
		y = strings.Replace(y, "url: 'http://127.0.0."+ip+":8080',", "url: 'http://127.0.0."+ip+":8080', addrs: [127.0.0."+ip+", 'fd00::"+ip+"'],", 1)
	}
	keys := filepath.Join(dir, "keys")
	ksk, zsk1 := genKey(t, keys, zone, true), genKey(t, keys, zone, false)
	zsk := zsk1 // the ZSK that signs, after each subtest
	path := filepath.Join(dir, "farm.yaml")
	writeFarmKeys := func(sign, publish []string) {
		t.Helper()
		rel := func(ps []string) string {
			var q []string
			for _, p := range ps {
				r, _ := filepath.Rel(dir, p)
				q = append(q, "'"+r+"'")
			}
			return "[" + strings.Join(q, ", ") + "]"
		}
		s := y + "dns:\n  ttl: {service: 2s, farm: 2s, srv: 2s, server: 2s, ns: 3s, soa: 3s, negative: 2s}\n" +
			"  dnssec:\n    keys: " + rel(sign) + "\n    publish: " + rel(publish) + "\n"
		if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writeFarmKeys([]string{ksk, zsk1}, nil)
	f, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	meshes := startNodes(t, f, "serverA", "serverB")
	p, addr := startDnsd(t, "--config", path, "--name", "ns1")
	waitA(t, addr, zone, []string{"127.0.0.71", "127.0.0.72"}, 20*time.Second)

	anchor := filepath.Join(dir, "anchor.ds")
	if err := os.WriteFile(anchor, []byte(dsOf(t, ksk).String()+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	resolver := farmtest.StartUnbound(t, "127.0.0.74", map[string]string{zone: addr}, validating(anchor))

	type tc struct {
		name   string
		qname  string
		qtype  uint16
		answer []string // nil: a negative answer
	}
	names := []tc{
		{"service A", zone, dns.TypeA, []string{"127.0.0.71", "127.0.0.72"}},
		{"service AAAA", "Stream.FarmLB.test.", dns.TypeAAAA, []string{"fd00::71", "fd00::72"}},
		{"_farm TXT", "_farm." + zone, dns.TypeTXT, nil},
		{"SRV", "_farmlb._tcp." + zone, dns.TypeSRV, []string{"servera." + zone, "serverb." + zone}},
		{"a server's own name", "serverA." + zone, dns.TypeA, []string{"127.0.0.71"}},
		{"NXDOMAIN", "nosuch." + zone, dns.TypeA, nil},
		{"NODATA: MX at the apex", zone, dns.TypeMX, nil},
		{"NODATA: _tcp.<service>", "_tcp." + zone, dns.TypeA, nil},
	}
	t.Run("unbound", func(t *testing.T) {
		for _, c := range names {
			t.Run(c.name, func(t *testing.T) {
				r, err := secure(resolver, c.qname, c.qtype)
				if err != nil {
					t.Fatal(err)
				}
				got := rrStrings(r.Answer, c.qtype)
				switch {
				case c.qtype == dns.TypeTXT && (len(got) != 1 || !strings.Contains(got[0], "127.0.0.72:8080 UP")):
					t.Errorf("_farm %v, want the list with serverB UP", got)
				case c.answer != nil && !slices.Equal(got, c.answer):
					t.Errorf("answer %v, want %v", got, c.answer)
				case c.answer == nil && c.qtype != dns.TypeTXT && len(got) != 0:
					t.Errorf("answer %v, want none", got)
				}
			})
		}
	})

	delvAnchors := filepath.Join(dir, "anchors.conf")
	t.Run("delv", func(t *testing.T) {
		if _, err := exec.LookPath("delv"); err != nil {
			t.Skip("delv is not installed: run `make deps` (Debian package bind9-dnsutils)")
		}
		ds := dsOf(t, ksk)
		conf := fmt.Sprintf("trust-anchors {\n  %s static-ds %d %d %d \"%s\";\n};\n", zone, ds.KeyTag, ds.Algorithm, ds.DigestType, ds.Digest)
		if err := os.WriteFile(delvAnchors, []byte(conf), 0o644); err != nil {
			t.Fatal(err)
		}
		for _, c := range names {
			t.Run(c.name, func(t *testing.T) { delv(t, delvAnchors, addr, c.qname, c.qtype) })
		}
	})

	t.Run("trust anchor for another key: SERVFAIL", func(t *testing.T) {
		wrong := genKey(t, t.TempDir(), zone, true)
		bad := farmtest.StartUnbound(t, "127.0.0.75", map[string]string{zone: addr}, validating(wrong+".ds"))
		r, err := resolve(bad, zone, dns.TypeA)
		if err != nil {
			t.Fatal(err)
		}
		if r.Rcode != dns.RcodeServerFailure || len(r.Answer) != 0 {
			t.Errorf("rcode %s answer %v, want SERVFAIL (bogus)", dns.RcodeToString[r.Rcode], r.Answer)
		}
	})

	// keepResolving asks the resolver, until d has passed, for names whose
	// answers leave its cache within seconds and for a name never asked
	// before (validated afresh each time): every answer must be secure.
	seq := 0
	keepResolving := func(t *testing.T, resolver string, d time.Duration) {
		t.Helper()
		for end := time.Now().Add(d); time.Now().Before(end); {
			seq++
			for _, q := range []struct {
				name  string
				qtype uint16
			}{{zone, dns.TypeA}, {"_farm." + zone, dns.TypeTXT}, {zone, dns.TypeDNSKEY}, {fmt.Sprintf("nx%d.%s", seq, zone), dns.TypeA}} {
				if _, err := secure(resolver, q.name, q.qtype); err != nil {
					t.Fatal(err)
				}
			}
			time.Sleep(100 * time.Millisecond) // the pace of the queries, not a wait for readiness
		}
	}

	t.Run("a node leaves: the new answer validates within detection + TTL", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		killed := time.Now()
		if err := meshes["serverB"].Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
		var detected, validated time.Duration
		for deadline := killed.Add(30 * time.Second); time.Now().Before(deadline) && validated == 0; {
			if detected == 0 {
				if got, err := serviceA(addr, zone); err == nil && slices.Equal(got, []string{"127.0.0.71"}) {
					detected = time.Since(killed)
				}
			}
			r, err := secure(resolver, zone, dns.TypeA)
			if err != nil {
				t.Fatalf("%v after %v", err, time.Since(killed))
			}
			if slices.Equal(rrStrings(r.Answer, dns.TypeA), []string{"127.0.0.71"}) {
				validated = time.Since(killed)
				// dnsd changed first, between two of our queries to it.
				if detected == 0 {
					detected = validated
				}
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Logf("serverB left: dnsd answered without it after %v, the validating resolver after %v (TTL %v)", detected, validated, ttl)
		if validated == 0 || detected == 0 {
			t.Fatal("the answer still names serverB after 30s")
		}
		// The resolver may hold the last answer with serverB for its TTL
		// from the moment dnsd stops giving it; Unbound counts TTLs in
		// whole seconds (up to a second more), and the polling adds its
		// step.
		if validated > detected+ttl+time.Second {
			t.Errorf("validated answer without serverB after %v, want within detection %v + TTL %v", validated, detected, ttl)
		}
	})

	t.Run("SIGHUP with a bad key keeps the last good keys", func(t *testing.T) {
		other := genKey(t, t.TempDir(), "other.test.", true)
		for _, bad := range []struct {
			key, err string
		}{
			{other, "is a key for zone other.test., not for " + zone},
			{filepath.Join(keys, "Knone"), "no such file"},
		} {
			writeFarmKeys([]string{bad.key}, nil)
			if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
				t.Fatal(err)
			}
			line := p.waitLog(t, "reload failed")
			if !strings.Contains(line, bad.err) {
				t.Errorf("log %q, want it to say %q", line, bad.err)
			}
			if tags := sigTags(t, addr, zone, dns.TypeA); !slices.Equal(tags, []uint16{dsOf(t, zsk1).KeyTag}) {
				t.Errorf("signed by %v after the bad reload, want the ZSK %d", tags, dsOf(t, zsk1).KeyTag)
			}
			keepResolving(t, resolver, 0)
		}
		writeFarmKeys([]string{ksk, zsk1}, nil)
	})

	t.Run("ZSK rollover, pre-publish", func(t *testing.T) {
		zsk2 := genKey(t, keys, zone, false)
		tag1, tag2 := dsOf(t, zsk1).KeyTag, dsOf(t, zsk2).KeyTag
		step := func(sign, publish []string, dnskeys int, signer uint16) {
			t.Helper()
			writeFarmKeys(sign, publish)
			if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
				t.Fatal(err)
			}
			p.waitLog(t, "msg=reloaded")
			if n := len(direct(t, addr, zone, dns.TypeDNSKEY).Answer) - len(sigTags(t, addr, zone, dns.TypeDNSKEY)); n != dnskeys {
				t.Errorf("%d DNSKEYs, want %d", n, dnskeys)
			}
			if tags := sigTags(t, addr, zone, dns.TypeA); !slices.Equal(tags, []uint16{signer}) {
				t.Errorf("A signed by %v, want %d", tags, signer)
			}
		}
		// 1. Publish the new ZSK; wait until every cached DNSKEY set has
		// it (the DNSKEY TTL, the SOA's: 3s).
		step([]string{ksk, zsk1}, []string{zsk2}, 3, tag1)
		keepResolving(t, resolver, 4*time.Second)
		// 2. Sign with the new ZSK, keep the old one published until the
		// signatures it made have left the caches (the largest TTL: 3s).
		step([]string{ksk, zsk2}, []string{zsk1}, 3, tag2)
		keepResolving(t, resolver, 4*time.Second)
		// 3. Remove the old ZSK.
		step([]string{ksk, zsk2}, nil, 2, tag2)
		zsk = zsk2
		keepResolving(t, resolver, 4*time.Second)
		if _, err := exec.LookPath("delv"); err == nil {
			delv(t, delvAnchors, addr, zone, dns.TypeA)
		}
	})

	t.Run("KSK rollover, double-DS", func(t *testing.T) {
		ksk2 := genKey(t, keys, zone, true)
		// 1. The parent publishes the new KSK's DS beside the old one: a
		// resolver that has both (here its trust anchors) validates
		// either KSK. Wait the DS TTL (a resolver started now has it).
		both := filepath.Join(t.TempDir(), "both.ds")
		if err := os.WriteFile(both, []byte(dsOf(t, ksk).String()+"\n"+dsOf(t, ksk2).String()+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		r2 := farmtest.StartUnbound(t, "127.0.0.77", map[string]string{zone: addr}, validating(both))
		keepResolving(t, r2, 0)
		// 2. Swap the KSK in the farm file; wait the DNSKEY TTL (3s).
		writeFarmKeys([]string{ksk2, zsk}, nil)
		if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		p.waitLog(t, "msg=reloaded")
		if tags := sigTags(t, addr, zone, dns.TypeDNSKEY); !slices.Contains(tags, dsOf(t, ksk2).KeyTag) || slices.Contains(tags, dsOf(t, ksk).KeyTag) {
			t.Errorf("DNSKEY signed by %v, want the new KSK %d and not the old", tags, dsOf(t, ksk2).KeyTag)
		}
		keepResolving(t, r2, 4*time.Second)
		// 3. The parent removes the old DS: a resolver with only the new
		// one validates.
		r3 := farmtest.StartUnbound(t, "127.0.0.78", map[string]string{zone: addr}, validating(ksk2+".ds"))
		keepResolving(t, r3, 0)
	})
}

// direct asks dnsd itself with the DO bit.
func direct(t *testing.T, addr, name string, qtype uint16) *dns.Msg {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	m.SetEdns0(1232, true)
	c := &dns.Client{Net: "tcp", Timeout: 5 * time.Second}
	r, _, err := c.Exchange(m, addr)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// sigTags returns the key tags of the signatures in dnsd's answer.
func sigTags(t *testing.T, addr, name string, qtype uint16) []uint16 {
	t.Helper()
	var tags []uint16
	for _, rr := range direct(t, addr, name, qtype).Answer {
		if s, ok := rr.(*dns.RRSIG); ok {
			tags = append(tags, s.KeyTag)
		}
	}
	slices.Sort(tags)
	return tags
}

// delv validates a name with BIND's delv against dnsd, the zone its own
// trust anchor's root.
func delv(t *testing.T, anchors, addr, name string, qtype uint16) {
	t.Helper()
	host, port, _ := strings.Cut(addr, ":")
	out, err := exec.Command("delv", "@"+host, "-p", port, "-a", anchors, "+root=stream.farmlb.test",
		name, dns.TypeToString[qtype]).CombinedOutput()
	if err != nil && !strings.Contains(string(out), "negative response, fully validated") {
		t.Fatalf("delv: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "; fully validated") && !strings.Contains(string(out), "; negative response, fully validated") {
		t.Errorf("delv did not validate %s %s:\n%s", name, dns.TypeToString[qtype], out)
	}
}

// TestDNSSECStartErrors checks that dnsd refuses to start, with an error
// that names the key and the fault, on a key for another zone or of an
// algorithm it does not sign with.
func TestDNSSECStartErrors(t *testing.T) {
	dir := t.TempDir()
	list := writeList(t, dir, farmText)
	other := genKey(t, dir, "other.test.", true)
	rsa := filepath.Join(dir, "Kz.test.+008+00001")
	if err := os.WriteFile(rsa+".key", []byte("z.test. 3600 IN DNSKEY 257 3 8 AwEAAcUlFV1vhmqx6NSOUOq2R/dsR7Xm3upJj7IommWSpJABVfW8Q0rO vXdM6kzt+TAu92L9AbsUdblMFin8CVF3n4s=\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, key, want string }{
		{"key for another zone", other, other + " is a key for zone other.test., not for z.test."},
		{"wrong algorithm", rsa, "algorithm 8 (RSASHA256) is not supported"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, errOut := runApp(t, "--zone", "z.test", "--list", list, "--dnssec-key", tc.key, "--print-zone")
			if code != 1 || !strings.Contains(errOut, tc.want) {
				t.Errorf("exit %d, %q; want 1 and %q", code, errOut, tc.want)
			}
		})
	}
}

// TestPrintSignedZone checks `dnsd --print-zone` of a signed zone with
// ldns-verify-zone (Debian package ldnsutils): every signature verifies with
// the zone's DNSKEYs and the NSEC chain is complete, for a combined signing
// key and for a KSK and a ZSK.
func TestPrintSignedZone(t *testing.T) {
	if _, err := exec.LookPath("ldns-verify-zone"); err != nil {
		t.Skip("ldns-verify-zone is not installed: run `make deps` (Debian package ldnsutils)")
	}
	dir := t.TempDir()
	list := writeList(t, dir, farmText)
	csk := genKey(t, filepath.Join(dir, "csk"), "stream.farmlb.test.", true)
	ksk := genKey(t, filepath.Join(dir, "split"), "stream.farmlb.test.", true)
	zsk := genKey(t, filepath.Join(dir, "split"), "stream.farmlb.test.", false)
	for name, keys := range map[string][]string{"CSK": {csk}, "KSK and ZSK": {ksk, zsk}} {
		t.Run(name, func(t *testing.T) {
			args := []string{"--zone", "stream.farmlb.test", "--list", list, "--print-zone"}
			for _, k := range keys {
				args = append(args, "--dnssec-key", k)
			}
			code, out, errOut := runApp(t, args...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			for _, want := range []string{"\tDNSKEY\t257 3 13 ", "\tRRSIG\tA 13 3 ", "\tNSEC\t"} {
				if !strings.Contains(out, want) {
					t.Errorf("zone has no %q:\n%s", want, out)
				}
			}
			path := filepath.Join(t.TempDir(), "zone")
			if err := os.WriteFile(path, []byte(out), 0o644); err != nil {
				t.Fatal(err)
			}
			res, err := exec.Command("ldns-verify-zone", path).CombinedOutput()
			if err != nil || !strings.Contains(string(res), "Zone is verified and complete") {
				t.Errorf("ldns-verify-zone: %v\n%s\nzone:\n%s", err, res, out)
			}
		})
	}
}

// TestKeyFilesForOtherTools: the key files are BIND's format, so ldns reads
// them: ldns-key2ds derives the DS farmctl wrote, and ldns-signzone signs the
// unsigned zone with the private key (as bench/dnsd.sh does for NSD).
func TestKeyFilesForOtherTools(t *testing.T) {
	for _, tool := range []string{"ldns-key2ds", "ldns-signzone", "ldns-verify-zone"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed: run `make deps` (Debian package ldnsutils)", tool)
		}
	}
	dir := t.TempDir()
	for _, alg := range []uint8{dns.ECDSAP256SHA256, dns.ED25519} {
		t.Run(dns.AlgorithmToString[alg], func(t *testing.T) {
			k, priv, err := dnsd.GenerateKey("stream.farmlb.test", alg, true)
			if err != nil {
				t.Fatal(err)
			}
			base, err := dnsd.WriteKey(dir, k, priv, time.Now(), false)
			if err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command("ldns-key2ds", "-n", "-2", base+".key").CombinedOutput()
			if err != nil {
				t.Fatalf("ldns-key2ds: %v\n%s", err, out)
			}
			if got, want := strings.ToUpper(strings.TrimSpace(string(out))), strings.ToUpper(dsOf(t, base).String()); got != want {
				t.Errorf("ldns-key2ds: %s\nfarmctl's .ds: %s", got, want)
			}
			code, zone, errOut := runApp(t, "--zone", "stream.farmlb.test", "--list", writeList(t, t.TempDir(), farmText), "--print-zone")
			if code != 0 {
				t.Fatal(errOut)
			}
			unsigned := filepath.Join(t.TempDir(), "zone")
			if err := os.WriteFile(unsigned, []byte(zone), 0o644); err != nil {
				t.Fatal(err)
			}
			if out, err := exec.Command("ldns-signzone", "-f", unsigned+".signed", unsigned, base).CombinedOutput(); err != nil {
				t.Fatalf("ldns-signzone: %v\n%s", err, out)
			}
			if out, err := exec.Command("ldns-verify-zone", unsigned+".signed").CombinedOutput(); err != nil {
				t.Errorf("ldns-verify-zone of ldns-signzone's zone: %v\n%s", err, out)
			}
		})
	}
}
