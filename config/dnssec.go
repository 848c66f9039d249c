package config

import (
	"strconv"
	"strings"
)

// DNSSEC names the keys that sign the zone ("dns: dnssec:"), in BIND's
// format as `farmctl dnssec keygen` writes them. Every dnsd of the farm signs
// with the same keys.
//
//	dns:
//	  dnssec:
//	    keys:      # sign and are published: a CSK, or a KSK and a ZSK
//	      - keys/Kstream.example.com.+013+12345
//	    publish:   # published only: a ZSK before or after its turn (rollover)
//	      - keys/Kstream.example.com.+013+54321
//
// A key is named by its files' path without suffix (.key or .private are
// taken off when given); relative paths are relative to the farm file.
type DNSSEC struct {
	Keys    []string `yaml:"keys"`
	Publish []string `yaml:"publish"`
}

// KeyPaths returns the signing and the published keys' paths resolved
// against the farm file's directory.
func (f *Farm) KeyPaths() (sign, publish []string) {
	if f.DNS.DNSSEC == nil {
		return nil, nil
	}
	for _, p := range f.DNS.DNSSEC.Keys {
		sign = append(sign, f.Path(p))
	}
	for _, p := range f.DNS.DNSSEC.Publish {
		publish = append(publish, f.Path(p))
	}
	return sign, publish
}

// validate checks the section; path is its key ("dns.dnssec"). The files
// themselves are read and checked by dnsd.
func (d *DNSSEC) validate(path string) error {
	if len(d.Keys) == 0 {
		return keyErr(path+".keys", 0, "no signing key: name at least one key file (farmctl dnssec keygen writes them)")
	}
	seen := map[string]string{}
	for _, l := range []struct {
		key   string
		paths []string
	}{{"keys", d.Keys}, {"publish", d.Publish}} {
		for i, p := range l.paths {
			at := path + "." + l.key + "[" + strconv.Itoa(i) + "]"
			if strings.TrimSpace(p) == "" {
				return keyErr(at, 0, "empty path")
			}
			base := strings.TrimSuffix(strings.TrimSuffix(p, ".key"), ".private")
			if prev, ok := seen[base]; ok {
				return keyErr(at, 0, "%q is already named at %s", p, prev)
			}
			seen[base] = at
		}
	}
	return nil
}
