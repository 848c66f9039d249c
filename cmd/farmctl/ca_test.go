package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/farmlb/farmlb/internal/cliutil"
)

func runFarmctl(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	err := newApp(&out, &errb).Run(append([]string{"farmctl"}, args...))
	return out.String() + errb.String(), err
}

func TestCA(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pki")
	if _, err := runFarmctl(t, "ca", "init", dir); err != nil {
		t.Fatal(err)
	}
	if _, err := runFarmctl(t, "ca", "issue", dir, "serverA"); err != nil {
		t.Fatal(err)
	}
	t.Run("key modes", func(t *testing.T) {
		for _, f := range []string{"ca.key", "serverA.key"} {
			st, err := os.Stat(filepath.Join(dir, f))
			if err != nil {
				t.Fatal(err)
			}
			if st.Mode().Perm() != 0o600 {
				t.Errorf("%s mode %v, want 0600", f, st.Mode().Perm())
			}
		}
	})
	t.Run("member certificate", func(t *testing.T) {
		pair, err := tls.LoadX509KeyPair(filepath.Join(dir, "serverA.crt"), filepath.Join(dir, "serverA.key"))
		if err != nil {
			t.Fatal(err)
		}
		leaf, err := x509.ParseCertificate(pair.Certificate[0])
		if err != nil {
			t.Fatal(err)
		}
		if leaf.Subject.CommonName != "serverA" || len(leaf.DNSNames) != 1 || leaf.DNSNames[0] != "serverA" {
			t.Errorf("CN %q SANs %q, want serverA", leaf.Subject.CommonName, leaf.DNSNames)
		}
		pub, ok := leaf.PublicKey.(*ecdsa.PublicKey)
		if !ok || pub.Curve != elliptic.P256() {
			t.Errorf("key %T, want ECDSA P-256", leaf.PublicKey)
		}
		caPEM, _ := os.ReadFile(filepath.Join(dir, "ca.crt"))
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(caPEM) {
			t.Fatal("bad ca.crt")
		}
		for _, usage := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
			if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: "serverA", KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
				t.Errorf("verify for %v: %v", usage, err)
			}
		}
		block, _ := pem.Decode(caPEM)
		ca, _ := x509.ParseCertificate(block.Bytes)
		if !ca.IsCA {
			t.Error("ca.crt is not a CA")
		}
	})
	cases := []struct {
		name     string
		args     []string
		wantCode int
		wantMsg  string
	}{
		{"init refuses to overwrite", []string{"ca", "init", dir}, 1, "exists"},
		{"issue refuses to overwrite", []string{"ca", "issue", dir, "serverA"}, 1, "exists"},
		{"issue with force", []string{"ca", "issue", "--force", dir, "serverA"}, 0, "created"},
		{"init without dir", []string{"ca", "init"}, 2, "usage"},
		{"issue without name", []string{"ca", "issue", dir}, 2, "usage"},
		{"issue bad name", []string{"ca", "issue", dir, "a.b"}, 2, "DNS label"},
		{"issue name ca", []string{"ca", "issue", dir, "ca"}, 2, "CA's own"},
		{"issue without a CA", []string{"ca", "issue", t.TempDir(), "x"}, 1, "ca init"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out, err := runFarmctl(t, c.args...)
			code := 0
			if err != nil {
				code = cliutil.ExitCode(err)
				out += err.Error()
			}
			if code != c.wantCode || !strings.Contains(out, c.wantMsg) {
				t.Errorf("exit %d output %q, want exit %d containing %q", code, out, c.wantCode, c.wantMsg)
			}
		})
	}
}
