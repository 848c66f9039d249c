package dnsd

import (
	"crypto"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// A DNSSEC key lives in two files in BIND's format, as dnssec-keygen and
// `farmctl dnssec keygen` write them: K<zone>.+<alg>+<tag>.key holds the
// DNSKEY record, K<zone>.+<alg>+<tag>.private the private key.

// Algorithms dnsd signs with: ECDSA P-256 with SHA-256 (13), the default of
// every current signer, and Ed25519 (15). Both have small keys and
// signatures, so that signed answers stay under 1232 bytes.
var signingAlgorithms = map[uint8]bool{dns.ECDSAP256SHA256: true, dns.ED25519: true}

// Key is one DNSSEC key of the zone.
type Key struct {
	// File is the key's name as given, without .key or .private.
	File string
	// DNSKEY is the public key record.
	DNSKEY *dns.DNSKEY
	// signer is the private key; nil for a key that is only published.
	signer crypto.Signer
}

// Tag is the key's key tag.
func (k Key) Tag() uint16 { return k.DNSKEY.KeyTag() }

// SEP reports whether the key has the secure entry point flag (257): a KSK,
// or a combined signing key, the one the parent's DS names.
func (k Key) SEP() bool { return k.DNSKEY.Flags&dns.SEP != 0 }

// Zone is the zone the key belongs to (its owner name, lower case).
func (k Key) Zone() string { return strings.ToLower(k.DNSKEY.Hdr.Name) }

func (k Key) String() string {
	role := "ZSK"
	if k.SEP() {
		role = "KSK/CSK"
	}
	return fmt.Sprintf("%s (%s, algorithm %d, tag %d)", k.File, role, k.DNSKEY.Algorithm, k.Tag())
}

// Keys are the zone's DNSSEC keys. A nil *Keys means the zone is not signed.
type Keys struct {
	// Sign are the keys that sign and are published in the DNSKEY set.
	Sign []Key
	// Publish are keys that are in the DNSKEY set but do not sign: a new
	// ZSK before it takes over, an old one until the signatures it made
	// have left the caches (the pre-publish rollover).
	Publish []Key
}

// KeyFileBase returns a key file's name without .key or .private, so that
// either file, or the name without a suffix, names the key.
func KeyFileBase(path string) string {
	for _, ext := range []string{".key", ".private"} {
		if strings.HasSuffix(path, ext) {
			return strings.TrimSuffix(path, ext)
		}
	}
	return path
}

// LoadKeys reads the keys that sign (their .key and .private files) and the
// keys that are only published (their .key files). Every key must be of one
// zone and one algorithm, 13 or 15; a private key must match its public
// key. At least one key must sign.
func LoadKeys(sign, publish []string) (*Keys, error) {
	if len(sign) == 0 {
		return nil, errors.New("dnssec: no signing key (a zone with keys to publish needs a key to sign)")
	}
	ks := &Keys{}
	seen := map[uint16]string{}
	for i, paths := range [][]string{sign, publish} {
		for _, p := range paths {
			k, err := loadKey(p, i == 0)
			if err != nil {
				return nil, err
			}
			if prev, ok := seen[k.Tag()]; ok {
				return nil, fmt.Errorf("dnssec: %s and %s have the same key tag %d: give each key once", prev, k.File, k.Tag())
			}
			seen[k.Tag()] = k.File
			if i == 0 {
				ks.Sign = append(ks.Sign, k)
			} else {
				ks.Publish = append(ks.Publish, k)
			}
		}
	}
	first := ks.Sign[0]
	for _, k := range append(ks.Sign[1:], ks.Publish...) {
		if k.Zone() != first.Zone() {
			return nil, fmt.Errorf("dnssec: %s is a key for zone %s, %s for zone %s", k.File, k.Zone(), first.File, first.Zone())
		}
		if k.DNSKEY.Algorithm != first.DNSKEY.Algorithm {
			return nil, fmt.Errorf("dnssec: %s is of algorithm %d, %s of %d: one algorithm per zone (an algorithm rollover is not supported)",
				k.File, k.DNSKEY.Algorithm, first.File, first.DNSKEY.Algorithm)
		}
	}
	return ks, nil
}

// LoadPublicKey reads a key's .key file (the DNSKEY record) and checks it.
func LoadPublicKey(path string) (Key, error) { return loadKey(path, false) }

// loadKey reads one key; withPrivate also reads and checks its private key.
func loadKey(path string, withPrivate bool) (Key, error) {
	base := KeyFileBase(path)
	k := Key{File: base}
	pub, err := os.ReadFile(base + ".key")
	if err != nil {
		return k, fmt.Errorf("dnssec: key %s: %w", base, err)
	}
	var dnskey *dns.DNSKEY
	zp := dns.NewZoneParser(strings.NewReader(string(pub)), "", base+".key")
	for rr, ok := zp.Next(); ok; rr, ok = zp.Next() {
		if d, isKey := rr.(*dns.DNSKEY); isKey && dnskey == nil {
			dnskey = d
			continue
		}
		return k, fmt.Errorf("dnssec: %s.key: want one DNSKEY record, found %s", base, dns.TypeToString[rr.Header().Rrtype])
	}
	if err := zp.Err(); err != nil {
		return k, fmt.Errorf("dnssec: %s.key: %w", base, err)
	}
	if dnskey == nil {
		return k, fmt.Errorf("dnssec: %s.key: no DNSKEY record", base)
	}
	dnskey.Hdr.Name = strings.ToLower(dnskey.Hdr.Name)
	k.DNSKEY = dnskey
	if !signingAlgorithms[dnskey.Algorithm] {
		return k, fmt.Errorf("dnssec: %s: algorithm %d (%s) is not supported: use 13 (ECDSAP256SHA256) or 15 (ED25519)",
			base, dnskey.Algorithm, dns.AlgorithmToString[dnskey.Algorithm])
	}
	if dnskey.Protocol != 3 || dnskey.Flags&dns.ZONE == 0 || dnskey.Flags&dns.REVOKE != 0 {
		return k, fmt.Errorf("dnssec: %s: flags %d, protocol %d: not a zone key (want flags 256 or 257, protocol 3)", base, dnskey.Flags, dnskey.Protocol)
	}
	if !withPrivate {
		return k, nil
	}
	f, err := os.Open(base + ".private")
	if err != nil {
		return k, fmt.Errorf("dnssec: key %s: %w", base, err)
	}
	defer f.Close()
	priv, err := dnskey.ReadPrivateKey(f, base+".private")
	if err != nil {
		return k, fmt.Errorf("dnssec: %s.private: %w", base, err)
	}
	signer, ok := priv.(crypto.Signer)
	if !ok {
		return k, fmt.Errorf("dnssec: %s.private: not a signing key", base)
	}
	k.signer = signer
	// miekg/dns takes the public half from the DNSKEY without checking it
	// against the private key: a signature that verifies proves the pair.
	if err := k.check(); err != nil {
		return k, fmt.Errorf("dnssec: %s: the private key does not match the DNSKEY (%w); are .key and .private of one key?", base, err)
	}
	return k, nil
}

// check signs a record with the private key and verifies it with the DNSKEY.
func (k Key) check() error {
	rr := &dns.TXT{Hdr: dns.RR_Header{Name: k.Zone(), Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 1}, Txt: []string{"check"}}
	now := time.Now()
	sig := k.rrsig(now.Add(-time.Hour), now.Add(time.Hour))
	if err := sig.Sign(k.signer, []dns.RR{rr}); err != nil {
		return err
	}
	return sig.Verify(k.DNSKEY, []dns.RR{rr})
}

// rrsig returns an RRSIG to be signed by k, valid from inception to
// expiration.
func (k Key) rrsig(inception, expiration time.Time) *dns.RRSIG {
	return &dns.RRSIG{
		Hdr:        dns.RR_Header{Rrtype: dns.TypeRRSIG, Class: dns.ClassINET},
		Algorithm:  k.DNSKEY.Algorithm,
		KeyTag:     k.Tag(),
		SignerName: k.Zone(),
		Inception:  uint32(inception.Unix()),
		Expiration: uint32(expiration.Unix()),
	}
}

// checkZone checks that every key is for origin.
func (ks *Keys) checkZone(origin string) error {
	for _, k := range append(append([]Key(nil), ks.Sign...), ks.Publish...) {
		if k.Zone() != origin {
			return fmt.Errorf("dnssec: %s is a key for zone %s, not for %s", k.File, k.Zone(), origin)
		}
	}
	return nil
}
