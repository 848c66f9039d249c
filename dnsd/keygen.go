package dnsd

import (
	"crypto"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/miekg/dns"
)

// KeyTTL is the TTL written into a new key's DNSKEY record. dnsd serves the
// DNSKEY set with the zone's SOA TTL whatever the file says.
const KeyTTL = 3600

// GenerateKey makes a new key for zone: algorithm 13 (ECDSA P-256) or 15
// (Ed25519); sep makes it a KSK or a combined signing key (flags 257),
// otherwise a ZSK (256).
func GenerateKey(zone string, algorithm uint8, sep bool) (*dns.DNSKEY, crypto.PrivateKey, error) {
	origin, err := fqdn(zone)
	if err != nil {
		return nil, nil, fmt.Errorf("zone: %w", err)
	}
	bits := 0
	switch algorithm {
	case dns.ECDSAP256SHA256:
		bits = 256
	case dns.ED25519:
		bits = 256
	default:
		return nil, nil, fmt.Errorf("algorithm %d is not supported: use 13 (ECDSAP256SHA256) or 15 (ED25519)", algorithm)
	}
	k := &dns.DNSKEY{
		Hdr:       dns.RR_Header{Name: origin, Rrtype: dns.TypeDNSKEY, Class: dns.ClassINET, Ttl: KeyTTL},
		Flags:     dns.ZONE,
		Protocol:  3,
		Algorithm: algorithm,
	}
	if sep {
		k.Flags |= dns.SEP
	}
	priv, err := k.Generate(bits)
	if err != nil {
		return nil, nil, err
	}
	return k, priv, nil
}

// KeyFileName is the BIND name of a key's files without the suffix:
// K<zone>.+<alg>+<tag>.
func KeyFileName(k *dns.DNSKEY) string {
	return fmt.Sprintf("K%s+%03d+%05d", dns.Fqdn(k.Hdr.Name), k.Algorithm, k.KeyTag())
}

// WriteKey writes a key's files into dir in BIND's format: <base>.key (the
// DNSKEY, mode 0644), <base>.private (mode 0600) and <base>.ds (its DS
// record with SHA-256, for the parent zone, mode 0644). It returns the path
// without suffix. Existing files are kept unless force.
func WriteKey(dir string, k *dns.DNSKEY, priv crypto.PrivateKey, now time.Time, force bool) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	base := filepath.Join(dir, KeyFileName(k))
	role := "zone-signing key"
	if k.Flags&dns.SEP != 0 {
		role = "key-signing key (or combined signing key)"
	}
	stamp := now.UTC().Format("20060102150405")
	files := []struct {
		ext  string
		mode os.FileMode
		data string
	}{
		{".private", 0o600, k.PrivateKeyString(priv) + "Created: " + stamp + "\nPublish: " + stamp + "\nActivate: " + stamp + "\n"},
		{".key", 0o644, fmt.Sprintf("; This is a %s, keyid %d, for %s\n; Created: %s (%s)\n%s\n",
			role, k.KeyTag(), k.Hdr.Name, stamp, now.UTC().Format(time.ANSIC), k.String())},
		{".ds", 0o644, k.ToDS(dns.SHA256).String() + "\n"},
	}
	flag := os.O_WRONLY | os.O_CREATE | os.O_EXCL
	if force {
		flag = os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	}
	for _, f := range files {
		fh, err := os.OpenFile(base+f.ext, flag, f.mode)
		if errors.Is(err, fs.ErrExist) {
			return "", fmt.Errorf("%s exists (give --force to overwrite)", base+f.ext)
		}
		if err != nil {
			return "", err
		}
		if err := fh.Chmod(f.mode); err != nil { // also when it existed with another mode
			fh.Close()
			return "", err
		}
		if _, err := fh.WriteString(f.data); err != nil {
			fh.Close()
			return "", err
		}
		if err := fh.Close(); err != nil {
			return "", err
		}
	}
	return base, nil
}
