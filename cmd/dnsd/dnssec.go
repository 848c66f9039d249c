package main

import (
	"github.com/urfave/cli/v2"

	"github.com/farmlb/farmlb/config"
	"github.com/farmlb/farmlb/dnsd"
	"github.com/farmlb/farmlb/internal/cliutil"
)

func dnssecFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringSliceFlag{Name: "dnssec-key", Usage: "a key that signs the zone: its BIND key files' path without .key/.private (repeatable; default: the farm file's dns: dnssec: keys)", EnvVars: env("DNSSEC_KEY"), Category: "DNSSEC"},
		&cli.StringSliceFlag{Name: "dnssec-publish", Usage: "a key only published in the DNSKEY set, e.g. a ZSK during a rollover (repeatable; default: the farm file's dns: dnssec: publish)", EnvVars: env("DNSSEC_PUBLISH"), Category: "DNSSEC"},
	}
}

// zoneKeys loads the keys that --dnssec-key and --dnssec-publish name or,
// without --dnssec-key, those of the farm file f (which may be nil). No keys
// means an unsigned zone (nil).
func zoneKeys(c *cli.Context, f *config.Farm) (*dnsd.Keys, error) {
	var sign, publish []string
	if c.IsSet("dnssec-publish") && !c.IsSet("dnssec-key") {
		return nil, cliutil.Usage("--dnssec-publish needs --dnssec-key: a zone needs a key that signs")
	}
	if c.IsSet("dnssec-key") {
		sign, publish = c.StringSlice("dnssec-key"), c.StringSlice("dnssec-publish")
	} else if f != nil {
		sign, publish = f.KeyPaths()
	}
	if len(sign) == 0 && len(publish) == 0 {
		return nil, nil
	}
	return dnsd.LoadKeys(sign, publish)
}
