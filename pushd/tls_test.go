package pushd

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestTLSStreams streams over HTTPS, HTTP/1.1 and HTTP/2: a hijacked TLS
// connection cannot be written without blocking, so every write of it
// takes the blocking path (a goroutine while it writes); a burst must
// arrive whole and in order on both.
func TestTLSStreams(t *testing.T) {
	cert, pool := testCert(t)
	f := newMemFarm("a")
	nodes := startNodes(t, f, func(c *Config) {
		c.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	}, "a")
	base := "https://" + nodes["a"].s.Addr().String()
	for _, proto := range []string{"HTTP/1.1", "HTTP/2.0"} {
		t.Run(proto, func(t *testing.T) {
			var protos http.Protocols
			if proto == "HTTP/1.1" {
				protos.SetHTTP1(true)
			} else {
				protos.SetHTTP2(true)
			}
			tr := &http.Transport{Protocols: &protos, TLSClientConfig: &tls.Config{RootCAs: pool}}
			defer tr.CloseIdleConnections()
			client := &http.Client{Transport: tr}
			topic := "tls" + strconv.Itoa(len(proto))
			c := openStream(t, client, base+"/stream?topic="+topic, "")
			if c.resp.Proto != proto {
				t.Fatalf("proto %s, want %s", c.resp.Proto, proto)
			}
			const n = 200
			for i := range n {
				req, _ := http.NewRequest("POST", base+"/publish/"+topic, strings.NewReader(strconv.Itoa(i)))
				req.Header.Set("Authorization", "Bearer "+testToken)
				resp, err := client.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != 200 {
					t.Fatalf("publish: %s", resp.Status)
				}
			}
			for i, ev := range c.collect(t, n) {
				if ev.Data != strconv.Itoa(i) {
					t.Fatalf("event %d: %+v", i, ev)
				}
			}
			c.expectNothing(t, 100*time.Millisecond)
			c.close()
			waitFor(t, func() bool { return nodes["a"].s.Users() == 0 })
		})
	}
}

// testCert makes a self-signed certificate for 127.0.0.0/8 and a pool
// that trusts it.
func testCert(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "pushd test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 10)},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}
