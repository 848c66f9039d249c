package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/farmlb/farmlb/clientlib"
	"github.com/farmlb/farmlb/farm"
	"github.com/urfave/cli/v2"
)

// The farm `make run` starts on loopback: farmctl finds it with no flags.
const (
	localZone     = "stream.farmlb.test"
	localResolver = "127.0.0.1:5354"
)

// localListURLs are the /farm URLs of the three nodes `make run` starts.
func localListURLs() []string {
	return []string{"http://127.0.0.11:8080/farm", "http://127.0.0.12:8080/farm", "http://127.0.0.13:8080/farm"}
}

// farmFlags are the flags every command that talks to a farm shares.
func farmFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringSliceFlag{Name: "url", Usage: "farm list `URL` (e.g. http://serverA:8080/farm); repeat for several", EnvVars: []string{"FARMLB_URL"}},
		&cli.StringFlag{Name: "dns", Usage: "DNS server `ADDR` to ask for the list (host:port; default: the system's resolver when --zone is set)", EnvVars: []string{"FARMLB_DNS"}},
		&cli.StringFlag{Name: "zone", Usage: "the farm's DNS `ZONE` (the list is _farm.ZONE TXT)", EnvVars: []string{"FARMLB_ZONE"}},
		&cli.IntFlag{Name: "http-port", Usage: "`PORT` of /farm on the zone's A-record addresses", Value: 80, EnvVars: []string{"FARMLB_HTTP_PORT"}},
		&cli.DurationFlag{Name: "timeout", Usage: "how long each way of fetching the list may take", Value: 3 * time.Second, EnvVars: []string{"FARMLB_TIMEOUT"}},
	}
}

// clientConfig builds clientlib's discovery settings from the farm flags.
// With none of --url, --dns and --zone it finds the local farm of `make run`.
func clientConfig(c *cli.Context) clientlib.Config {
	cfg := clientlib.Config{
		ListURLs:         c.StringSlice("url"),
		Resolver:         c.String("dns"),
		Zone:             c.String("zone"),
		HTTPPort:         c.Int("http-port"),
		DiscoveryTimeout: c.Duration("timeout"),
	}
	if len(cfg.ListURLs) == 0 && cfg.Resolver == "" && cfg.Zone == "" {
		cfg.ListURLs = localListURLs()
		cfg.Zone, cfg.Resolver, cfg.HTTPPort = localZone, localResolver, 8080
		cfg.DiscoveryTimeout = min(cfg.DiscoveryTimeout, time.Second)
	}
	if cfg.Resolver != "" && cfg.Zone == "" {
		cfg.Zone = localZone
	}
	return cfg
}

func fetchList(c *cli.Context) (*farm.List, error) {
	return clientlib.Discover(c.Context, clientConfig(c))
}

// tokenFlag is the bearer token for publish and admin requests.
func tokenFlag() cli.Flag {
	return &cli.StringFlag{Name: "token", Usage: "bearer `TOKEN` for publish and admin requests (default with the local farm of make run: its token)", EnvVars: []string{"FARMLB_TOKEN"}}
}

// farmToken is --token (FARMLB_TOKEN), or, when farmctl talks to the local
// farm of make run (no --url, --dns or --zone), that run's own token.
func farmToken(c *cli.Context) string {
	if t := c.String("token"); t != "" {
		return t
	}
	if len(c.StringSlice("url")) == 0 && c.String("dns") == "" && c.String("zone") == "" {
		return localToken(os.Getenv("FARMLB_RUN_DIR"))
	}
	return ""
}

// postToNode sends an authenticated POST to a node and returns the body.
func postToNode(ctx context.Context, hc *http.Client, url, token string, body string, header map[string]string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := readAllLimited(resp.Body)
	if err != nil {
		return resp.StatusCode, "", err
	}
	return resp.StatusCode, strings.TrimSpace(string(b)), nil
}

// nodeURL finds a node's URL in the list by name.
func nodeURL(l *farm.List, name string) (string, error) {
	s, ok := l.Find(name)
	if !ok {
		names := make([]string, len(l.Servers))
		for i, s := range l.Servers {
			names[i] = s.Name
		}
		return "", fmt.Errorf("no node %q in the farm (nodes: %s)", name, strings.Join(names, ", "))
	}
	return strings.TrimSuffix(s.URL, "/"), nil
}
