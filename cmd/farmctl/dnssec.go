package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/miekg/dns"
	"github.com/urfave/cli/v2"

	"github.com/farmlb/farmlb/dnsd"
	"github.com/farmlb/farmlb/internal/cliutil"
)

func dnssecCommand() *cli.Command {
	return &cli.Command{
		Name:      "dnssec",
		Usage:     "make the keys that sign the farm's zone (DNSSEC) and the DS records for its parent",
		UsageText: "farmctl dnssec keygen [flags] ZONE DIR | farmctl dnssec ds KEYFILE...",
		Description: `dnsd signs the zone with the keys the farm file names (dns: dnssec: keys:).
Keys are in BIND's format: DIR/K<zone>.+<alg>+<tag>.key (the DNSKEY record),
.private (the private key, mode 0600) and .ds (the DS record with SHA-256 to
give the parent zone, or a resolver as its trust anchor).

  farmctl dnssec keygen ZONE DIR          one combined signing key (CSK, flags 257)
  farmctl dnssec keygen --split ZONE DIR  a KSK (257) and a ZSK (256)
  farmctl dnssec keygen --zsk ZONE DIR    a new ZSK only (ZSK rollover)
  farmctl dnssec keygen --ksk ZONE DIR    a new KSK or CSK only (KSK rollover)
  farmctl dnssec ds KEYFILE...            the DS record of each key (.key file)

dnsd/README.md describes the rollovers step by step.`,
		Subcommands: []*cli.Command{
			{
				Name:      "keygen",
				Usage:     "create the zone's signing keys in DIR and print the DS record for the parent zone",
				ArgsUsage: "ZONE DIR",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "algorithm", Aliases: []string{"a"}, Value: "ecdsap256sha256", Usage: "ecdsap256sha256 (13) or ed25519 (15)", EnvVars: []string{"FARMLB_DNSSEC_ALGORITHM"}},
					&cli.BoolFlag{Name: "split", Usage: "a KSK and a ZSK instead of one combined signing key", EnvVars: []string{"FARMLB_DNSSEC_SPLIT"}},
					&cli.BoolFlag{Name: "zsk", Usage: "only a new ZSK (flags 256), e.g. for a ZSK rollover", EnvVars: []string{"FARMLB_DNSSEC_ZSK"}},
					&cli.BoolFlag{Name: "ksk", Usage: "only a new KSK/CSK (flags 257), e.g. for a KSK rollover", EnvVars: []string{"FARMLB_DNSSEC_KSK"}},
					&cli.BoolFlag{Name: "force", Usage: "overwrite existing files", EnvVars: []string{"FARMLB_DNSSEC_FORCE"}},
				},
				Action: keygen,
			},
			{
				Name:      "ds",
				Usage:     "print the DS record (SHA-256) of each key",
				ArgsUsage: "KEYFILE...",
				Action: func(c *cli.Context) error {
					if c.NArg() == 0 {
						return cliutil.Usage("usage: farmctl dnssec ds KEYFILE...")
					}
					for _, p := range c.Args().Slice() {
						k, err := dnsd.LoadPublicKey(p)
						if err != nil {
							return err
						}
						fmt.Fprintln(c.App.Writer, k.DNSKEY.ToDS(dns.SHA256).String())
					}
					return nil
				},
			},
		},
	}
}

// parseAlgorithm takes an algorithm's number or mnemonic.
func parseAlgorithm(s string) (uint8, error) {
	switch strings.ToLower(s) {
	case "13", "ecdsap256sha256", "ecdsa", "p256":
		return dns.ECDSAP256SHA256, nil
	case "15", "ed25519":
		return dns.ED25519, nil
	}
	return 0, cliutil.Usage("--algorithm %q: want ecdsap256sha256 (13) or ed25519 (15)", s)
}

func keygen(c *cli.Context) error {
	if c.NArg() != 2 {
		return cliutil.Usage("usage: farmctl dnssec keygen [flags] ZONE DIR")
	}
	zone, dir := c.Args().Get(0), c.Args().Get(1)
	alg, err := parseAlgorithm(c.String("algorithm"))
	if err != nil {
		return err
	}
	n := 0
	for _, f := range []string{"split", "zsk", "ksk"} {
		if c.Bool(f) {
			n++
		}
	}
	if n > 1 {
		return cliutil.Usage("give one of --split, --zsk and --ksk")
	}
	var seps []bool
	switch {
	case c.Bool("split"):
		seps = []bool{true, false}
	case c.Bool("zsk"):
		seps = []bool{false}
	default: // --ksk, or one combined signing key
		seps = []bool{true}
	}
	now := time.Now()
	for _, sep := range seps {
		k, priv, err := dnsd.GenerateKey(zone, alg, sep)
		if err != nil {
			return cliutil.Usage("%v", err)
		}
		base, err := dnsd.WriteKey(dir, k, priv, now, c.Bool("force"))
		if err != nil {
			return err
		}
		printKey(c.App.Writer, base, k, sep && !c.Bool("split") && !c.Bool("ksk"))
	}
	return nil
}

func printKey(w io.Writer, base string, k *dns.DNSKEY, csk bool) {
	role := "ZSK"
	switch {
	case csk:
		role = "CSK"
	case k.Flags&dns.SEP != 0:
		role = "KSK"
	}
	fmt.Fprintf(w, "%s %s (algorithm %d, tag %d): %s.key, %s.private\n", role, k.Hdr.Name, k.Algorithm, k.KeyTag(), base, base)
	if k.Flags&dns.SEP != 0 {
		fmt.Fprintf(w, "DS for the parent zone (also in %s.ds):\n%s\n", base, k.ToDS(dns.SHA256).String())
	}
}
