package clientlib

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/farmlb/farmlb/farm"
	"github.com/miekg/dns"
)

// maxListBytes bounds a list fetched over HTTP.
const maxListBytes = 8 << 20

// DiscoveryError lists why every way of finding the farm list failed.
type DiscoveryError struct {
	Tried []error // one per source tried, in order
}

func (e *DiscoveryError) Error() string {
	if len(e.Tried) == 0 {
		return "clientlib: no way to find the farm list: set Zone or ListURLs"
	}
	parts := make([]string, len(e.Tried))
	for i, err := range e.Tried {
		parts[i] = err.Error()
	}
	return "clientlib: cannot find the farm list: " + strings.Join(parts, "; ")
}

// Discover fetches the farm list, trying in turn: the list URLs given in
// cfg, the _farm.<zone> TXT record, the _farmlb._tcp.<zone> SRV records (the
// list from /farm on one of their targets, or a list made from the records
// themselves), and /farm on the addresses of the zone's A records. Each try
// has cfg.DiscoveryTimeout.
func Discover(ctx context.Context, cfg Config) (*farm.List, error) {
	cfg = cfg.withDefaults()
	var derr DiscoveryError
	for _, u := range cfg.ListURLs {
		l, err := fetchList(ctx, cfg, u)
		if err == nil {
			return l, nil
		}
		derr.Tried = append(derr.Tried, err)
	}
	if cfg.Zone == "" {
		return nil, &derr
	}
	server, err := cfg.resolverAddr()
	if err != nil {
		derr.Tried = append(derr.Tried, err)
		return nil, &derr
	}
	zone := dns.Fqdn(cfg.Zone)
	if l, err := discoverTXT(ctx, cfg, server, zone); err == nil {
		return l, nil
	} else {
		derr.Tried = append(derr.Tried, err)
	}
	if l, err := discoverSRV(ctx, cfg, server, zone); err == nil {
		return l, nil
	} else {
		derr.Tried = append(derr.Tried, err)
	}
	if l, err := discoverA(ctx, cfg, server, zone); err == nil {
		return l, nil
	} else {
		derr.Tried = append(derr.Tried, err)
	}
	return nil, &derr
}

// resolverAddr is the DNS server to ask: cfg.Resolver, or the first
// nameserver of /etc/resolv.conf.
func (c Config) resolverAddr() (string, error) {
	if c.Resolver != "" {
		if _, _, err := net.SplitHostPort(c.Resolver); err != nil {
			return net.JoinHostPort(c.Resolver, "53"), nil
		}
		return c.Resolver, nil
	}
	rc, err := dns.ClientConfigFromFile("/etc/resolv.conf")
	if err != nil || len(rc.Servers) == 0 {
		return "", fmt.Errorf("system resolver: no nameserver in /etc/resolv.conf (%v)", err)
	}
	return net.JoinHostPort(rc.Servers[0], rc.Port), nil
}

// query asks server one question over UDP with a 4096-byte EDNS buffer, and
// again over TCP when the answer comes back truncated.
func query(ctx context.Context, cfg Config, server, name string, qtype uint16) (*dns.Msg, error) {
	ctx, cancel := context.WithTimeout(ctx, cfg.DiscoveryTimeout)
	defer cancel()
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	m.SetEdns0(4096, false)
	c := &dns.Client{Net: "udp", UDPSize: 4096}
	in, _, err := c.ExchangeContext(ctx, m, server)
	if err == nil && in.Truncated {
		c.Net = "tcp"
		in, _, err = c.ExchangeContext(ctx, m, server)
	}
	if err != nil {
		return nil, fmt.Errorf("%s %s @%s: %w", dns.TypeToString[qtype], name, server, err)
	}
	if in.Rcode != dns.RcodeSuccess {
		return nil, fmt.Errorf("%s %s @%s: %s", dns.TypeToString[qtype], name, server, dns.RcodeToString[in.Rcode])
	}
	return in, nil
}

func discoverTXT(ctx context.Context, cfg Config, server, zone string) (*farm.List, error) {
	name := "_farm." + zone
	in, err := query(ctx, cfg, server, name, dns.TypeTXT)
	if err != nil {
		return nil, err
	}
	var strs []string
	for _, rr := range in.Answer {
		if t, ok := rr.(*dns.TXT); ok {
			strs = append(strs, t.Txt...)
		}
	}
	if len(strs) == 0 {
		return nil, fmt.Errorf("TXT %s: no records", name)
	}
	l, err := farm.ParseTXT(strs)
	if err != nil {
		return nil, fmt.Errorf("TXT %s: %w", name, err)
	}
	return l, nil
}

func discoverSRV(ctx context.Context, cfg Config, server, zone string) (*farm.List, error) {
	name := "_farmlb._tcp." + zone
	in, err := query(ctx, cfg, server, name, dns.TypeSRV)
	if err != nil {
		return nil, err
	}
	var srvs []*dns.SRV
	for _, rr := range in.Answer {
		if s, ok := rr.(*dns.SRV); ok {
			srvs = append(srvs, s)
		}
	}
	if len(srvs) == 0 {
		return nil, fmt.Errorf("SRV %s: no records", name)
	}
	// The live list from any target is better than what SRV can say. The
	// targets' addresses come in the additional section (dnsd puts them
	// there), so no second lookup through another resolver is needed.
	addrs := map[string]string{}
	for _, rr := range in.Extra {
		switch a := rr.(type) {
		case *dns.A:
			addrs[strings.ToLower(a.Hdr.Name)] = a.A.String()
		case *dns.AAAA:
			if _, ok := addrs[strings.ToLower(a.Hdr.Name)]; !ok {
				addrs[strings.ToLower(a.Hdr.Name)] = a.AAAA.String()
			}
		}
	}
	hostOf := func(s *dns.SRV) string {
		if ip, ok := addrs[strings.ToLower(s.Target)]; ok {
			return ip
		}
		return strings.TrimSuffix(s.Target, ".")
	}
	for _, s := range srvs {
		u := "http://" + net.JoinHostPort(hostOf(s), strconv.Itoa(int(s.Port))) + "/farm"
		if l, err := fetchList(ctx, cfg, u); err == nil {
			return l, nil
		}
	}
	// Otherwise a list from the records: UP servers, the SRV priorities
	// ranked into groups A, B, …, users unknown (0), so the choice is even.
	prios := map[uint16]bool{}
	for _, s := range srvs {
		prios[s.Priority] = true
	}
	ranked := make([]int, 0, len(prios))
	for p := range prios {
		ranked = append(ranked, int(p))
	}
	sort.Ints(ranked)
	group := map[uint16]farm.Priority{}
	for i, p := range ranked {
		group[uint16(p)] = farm.Priority(min(i, int(farm.PriorityLowest)))
	}
	l := &farm.List{Service: strings.TrimSuffix(zone, "."), GeneratedAt: time.Now()}
	for _, s := range srvs {
		l.Servers = append(l.Servers, farm.Server{
			Name:     farm.NameFromURL("http://" + strings.TrimSuffix(s.Target, ".")),
			URL:      "http://" + net.JoinHostPort(hostOf(s), strconv.Itoa(int(s.Port))),
			Status:   farm.StatusUp,
			Priority: group[s.Priority],
		})
	}
	if err := l.Validate(); err != nil {
		return nil, fmt.Errorf("SRV %s: %w", name, err)
	}
	return l, nil
}

func discoverA(ctx context.Context, cfg Config, server, zone string) (*farm.List, error) {
	var errs []error
	for _, qt := range []uint16{dns.TypeA, dns.TypeAAAA} {
		in, err := query(ctx, cfg, server, zone, qt)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, rr := range in.Answer {
			var ip net.IP
			switch a := rr.(type) {
			case *dns.A:
				ip = a.A
			case *dns.AAAA:
				ip = a.AAAA
			default:
				continue
			}
			u := (&url.URL{Scheme: "http", Host: net.JoinHostPort(ip.String(), strconv.Itoa(cfg.HTTPPort)), Path: "/farm"}).String()
			l, err := fetchList(ctx, cfg, u)
			if err == nil {
				return l, nil
			}
			errs = append(errs, err)
		}
	}
	if len(errs) == 0 {
		return nil, fmt.Errorf("address records of %s: none", zone)
	}
	return nil, fmt.Errorf("address records of %s: %w", zone, errors.Join(errs...))
}

// fetchList GETs a farm list (any encoding) from a URL.
func fetchList(ctx context.Context, cfg Config, u string) (*farm.List, error) {
	ctx, cancel := context.WithTimeout(ctx, cfg.DiscoveryTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", u, err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := cfg.HTTPClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", u, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("list %s: %s", u, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxListBytes+1))
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", u, err)
	}
	if len(body) > maxListBytes {
		return nil, fmt.Errorf("list %s: larger than %d bytes", u, maxListBytes)
	}
	l, _, err := farm.Decode(body)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", u, err)
	}
	return l, nil
}
