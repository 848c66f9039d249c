// Command dnsd is farmlb's authoritative DNS server for a farm's zone. It
// answers from the live farm table: as an observer in the farm's mesh
// (--config farm.yaml --name ns1) or from a list file it watches (--zone Z
// --list FILE).
package main

import (
	"io"
	"os"

	"github.com/farmlb/farmlb/internal/cliutil"
	"github.com/urfave/cli/v2"
)

func main() { cliutil.Main(newApp(os.Stdout, os.Stderr)) }

// newApp builds the command line with its writers passed in, so tests run it
// in process.
func newApp(stdout, stderr io.Writer) *cli.App {
	return &cli.App{
		Name:  "dnsd",
		Usage: "authoritative DNS for a farmlb farm's zone",
		UsageText: `dnsd --config farm.yaml --name ns1            follow the farm's mesh as observer ns1
   dnsd --zone Z --list FILE [--listen ADDR]     answer from a list file, reloaded when it changes`,
		Description: `dnsd answers for the zone of a farm's service name from the live farm table:
  <service>               A/AAAA: the UP servers of the best priority group, rotated per answer
  _farm.<service>         TXT: the whole farm list, one string per server ("URL STATUS USERS GROUP")
  _farmlb._tcp.<service>  SRV: every UP server, priority = group, weight = room
  <server>.<zone>         A/AAAA of each server, whatever its status
  <zone>                  SOA and NS (with glue)
Other names in the zone are NXDOMAIN, names outside it REFUSED.

For a public address, response rate limiting (200 UDP answers a second per
client /24 and kind of answer, every 2nd one over it truncated), DNS cookies
(RFC 7873/9018; give every dnsd of the farm the same secret) and TCP limits
per client prefix are on by default; the farm file's dns: rrl, cookies and
tcp keys set them, and so do the flags below.

In mesh mode the failure-detection timers come from the farm file's mesh:
section, as in every member of the farm (no flag overrides them).

Signals: SIGHUP reloads the farm file (TTLs, hostmaster, nameservers; the
mesh: timers take effect at the next start) or the list file; SIGTERM and
SIGINT stop the server cleanly.

Every flag can also be set from the environment variable named beside it.`,
		Writer:         stdout,
		ErrWriter:      stderr,
		Flags:          flags(),
		Action:         run,
		OnUsageError:   cliutil.UsageError,
		ExitErrHandler: func(*cli.Context, error) {}, // errors are printed once, by main
	}
}
