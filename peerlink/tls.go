package peerlink

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"
)

// RefusedError is why a peer was refused during the handshake.
type RefusedError struct {
	Remote string // the peer's address
	Name   string // the name its certificate carries, if it got that far
	Err    error
}

func (e *RefusedError) Error() string {
	if e.Name != "" {
		return fmt.Sprintf("peer %s (%q) refused: %v", e.Remote, e.Name, e.Err)
	}
	return fmt.Sprintf("peer %s refused: %v", e.Remote, e.Err)
}

func (e *RefusedError) Unwrap() error { return e.Err }

// loadIdentity returns the member's certificate and the farm CA pool, from
// the Config or from the files the farm file names.
func (c *Config) loadIdentity() (*tls.Certificate, *x509.CertPool, error) {
	cert, pool := c.Certificate, c.CA
	if cert == nil {
		cf, kf := c.Farm.TLS.CertFile(c.Self), c.Farm.TLS.KeyFile(c.Self)
		if cf == "" || kf == "" {
			return nil, nil, errors.New("peerlink: the farm file names no tls.cert and tls.key")
		}
		pair, err := tls.LoadX509KeyPair(cf, kf)
		if err != nil {
			return nil, nil, fmt.Errorf("peerlink: load the member certificate: %w", err)
		}
		cert = &pair
	}
	if cert.Leaf == nil && len(cert.Certificate) > 0 {
		leaf, err := x509.ParseCertificate(cert.Certificate[0])
		if err != nil {
			return nil, nil, fmt.Errorf("peerlink: parse the member certificate: %w", err)
		}
		cert.Leaf = leaf
	}
	if cert.Leaf == nil {
		return nil, nil, errors.New("peerlink: empty member certificate")
	}
	if name, err := certName(cert.Leaf); err != nil || !strings.EqualFold(name, c.Self) {
		return nil, nil, fmt.Errorf("peerlink: the certificate is for %q, not for %q", cert.Leaf.Subject.CommonName, c.Self)
	}
	if pool == nil {
		if c.Farm.TLS.CA == "" {
			return nil, nil, errors.New("peerlink: the farm file names no tls.ca")
		}
		pem, err := os.ReadFile(c.Farm.TLS.CA)
		if err != nil {
			return nil, nil, fmt.Errorf("peerlink: read the farm CA: %w", err)
		}
		pool = x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, nil, fmt.Errorf("peerlink: %s holds no PEM certificate", c.Farm.TLS.CA)
		}
	}
	return cert, pool, nil
}

// verifier checks a peer's certificate chain against the farm CA and its
// name against the farm's members.
type verifier struct {
	pool     *x509.CertPool
	isMember func(name string) (canonical string, ok bool)
	now      func() time.Time
}

// verify returns the member name the peer proved. want, if not empty, is
// the member the caller dialed.
func (v *verifier) verify(cs tls.ConnectionState, want string) (string, error) {
	if len(cs.PeerCertificates) == 0 {
		return "", errors.New("no certificate")
	}
	leaf := cs.PeerCertificates[0]
	inter := x509.NewCertPool()
	for _, c := range cs.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{
		Roots: v.pool, Intermediates: inter, CurrentTime: v.now(),
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth},
	}); err != nil {
		return "", fmt.Errorf("certificate not from the farm CA: %w", err)
	}
	name, err := certName(leaf)
	if err != nil {
		return "", err
	}
	canon, ok := v.isMember(name)
	if !ok {
		return name, fmt.Errorf("%q is not a member of the farm", name)
	}
	if want != "" && !strings.EqualFold(canon, want) {
		return canon, fmt.Errorf("dialed %q but the certificate is for %q", want, canon)
	}
	return canon, nil
}

// tlsConfigs builds the server and client TLS configurations. Both sides
// present a certificate and verify the other's against the farm CA; the
// standard verification is replaced by verifier so that every refusal is
// seen, logged and counted (with standard verification a failed client
// certificate never reaches the application). onRefuse is called for each.
func tlsConfigs(cert *tls.Certificate, v *verifier, onRefuse func(*RefusedError)) (server *tls.Config, client func(want string) *tls.Config) {
	return tlsConfigsWith(cert, v, onRefuse, []string{alpnReasons, alpn})
}

// tlsConfigsWith is tlsConfigs offering the given ALPN names, in order of
// preference.
func tlsConfigsWith(cert *tls.Certificate, v *verifier, onRefuse func(*RefusedError), protos []string) (server *tls.Config, client func(want string) *tls.Config) {
	base := &tls.Config{
		Certificates: []tls.Certificate{*cert},
		NextProtos:   protos,
		MinVersion:   tls.VersionTLS13,
	}
	server = base.Clone()
	server.ClientAuth = tls.RequireAnyClientCert
	server.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
		remote := "?"
		if hello.Conn != nil {
			remote = hello.Conn.RemoteAddr().String()
		}
		c := base.Clone()
		c.ClientAuth = tls.RequireAnyClientCert
		c.VerifyConnection = func(cs tls.ConnectionState) error {
			name, err := v.verify(cs, "")
			if err != nil {
				re := &RefusedError{Remote: remote, Name: name, Err: err}
				onRefuse(re)
				return re
			}
			return nil
		}
		return c, nil
	}
	client = func(want string) *tls.Config {
		c := base.Clone()
		c.ServerName = want
		c.InsecureSkipVerify = true // verified below, against the farm CA and the dialed name
		c.VerifyConnection = func(cs tls.ConnectionState) error {
			name, err := v.verify(cs, want)
			if err != nil {
				re := &RefusedError{Remote: want, Name: name, Err: err}
				onRefuse(re)
				return re
			}
			return nil
		}
		return c
	}
	return server, client
}

// nameOf returns the verified member name of a completed handshake.
func nameOf(cs tls.ConnectionState, isMember func(string) (string, bool)) (string, error) {
	if len(cs.PeerCertificates) == 0 {
		return "", errors.New("no peer certificate")
	}
	n, err := certName(cs.PeerCertificates[0])
	if err != nil {
		return "", err
	}
	canon, ok := isMember(n)
	if !ok {
		return "", fmt.Errorf("%q is not a member", n)
	}
	return canon, nil
}
