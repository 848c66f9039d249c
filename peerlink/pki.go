package peerlink

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"time"
)

// The farm's PKI: one CA per farm (ECDSA P-256), and one certificate per
// member whose subject CN and only DNS SAN are the member's name. A member
// proves its name by presenting such a certificate; the config says which
// names are members.

// Default validity periods.
const (
	CAValidity     = 10 * 365 * 24 * time.Hour // the CA outlives the members it signs
	MemberValidity = 2 * 365 * 24 * time.Hour  // reissue members every couple of years
)

// NewCA creates a farm CA certificate and key, PEM-encoded.
func NewCA(farmName string, validity time.Duration) (certPEM, keyPEM []byte, err error) {
	if validity <= 0 {
		validity = CAValidity
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	serial, err := newSerial()
	if err != nil {
		return nil, nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "farmlb CA " + farmName, Organization: []string{"farmlb"}},
		NotBefore:             now.Add(-time.Hour), // tolerate clocks a little behind
		NotAfter:              now.Add(validity),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	return encodePair(der, key)
}

// IssueCert creates a member certificate and key signed by the CA.
func IssueCert(caCertPEM, caKeyPEM []byte, member string, validity time.Duration) (certPEM, keyPEM []byte, err error) {
	if err := checkMemberName(member); err != nil {
		return nil, nil, err
	}
	if validity <= 0 {
		validity = MemberValidity
	}
	ca, err := tls.X509KeyPair(caCertPEM, caKeyPEM)
	if err != nil {
		return nil, nil, fmt.Errorf("load CA: %w", err)
	}
	caCert, err := x509.ParseCertificate(ca.Certificate[0])
	if err != nil {
		return nil, nil, fmt.Errorf("parse CA certificate: %w", err)
	}
	if !caCert.IsCA {
		return nil, nil, errors.New("the CA certificate is not a CA")
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	serial, err := newSerial()
	if err != nil {
		return nil, nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: member, Organization: []string{"farmlb"}},
		DNSNames:     []string{member},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(validity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		// Every member is both client and server of the mesh.
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, ca.PrivateKey)
	if err != nil {
		return nil, nil, err
	}
	return encodePair(der, key)
}

func encodePair(der []byte, key *ecdsa.PrivateKey) (certPEM, keyPEM []byte, err error) {
	kd, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kd}), nil
}

func newSerial() (*big.Int, error) {
	return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
}

// checkMemberName accepts a DNS label, as the config does.
func checkMemberName(s string) error {
	if s == "" || len(s) > 63 {
		return fmt.Errorf("member name %q: want 1 to 63 bytes", s)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' && i > 0 && i < len(s)-1) {
			return fmt.Errorf("member name %q is not a DNS label (letters, digits and inner '-')", s)
		}
	}
	return nil
}

// certName returns the member name a certificate carries: its subject CN,
// which must also be one of its DNS SANs.
func certName(c *x509.Certificate) (string, error) {
	cn := c.Subject.CommonName
	for _, d := range c.DNSNames {
		if strings.EqualFold(d, cn) && cn != "" {
			return cn, nil
		}
	}
	return "", fmt.Errorf("certificate CN %q is not among its DNS names %q", cn, c.DNSNames)
}

// resetKey derives the QUIC stateless reset key from the member's private
// key, so that a restarted member resets its peers' stale connections at
// once (their packets reach a process that knows no such connection) and
// they redial instead of waiting for a timeout.
func resetKey(cert *tls.Certificate) ([32]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		return [32]byte{}, err
	}
	return sha256.Sum256(append([]byte("farmlb-peer stateless reset v1\x00"), der...)), nil
}
