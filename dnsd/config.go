package dnsd

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/farmlb/farmlb/farm"
)

// Config configures a Server. The zero value of every field except Zone.Origin
// and Source means its default; DefaultConfig spells the defaults out.
type Config struct {
	// Zone says what the server answers: the zone, the service name, the
	// TTLs and the nameservers. It can be changed while serving with
	// Server.SetZone (dnsd does so on SIGHUP).
	Zone Zone

	// Source is the live farm table the answers come from: a peerlink mesh
	// or a watched list file. Required.
	Source farm.Source

	// HoldLastUp makes the server keep answering from the last table that
	// had an UP server when the source's table has none. Set it for sources
	// that can lose sight of the farm (a mesh observer cut off from the
	// nodes sees every node DOWN); leave it off for sources that state the
	// farm (a list file that says everything is DOWN means it).
	HoldLastUp bool

	// Listen is the address for UDP and TCP, host:port. If empty, defaults
	// to "127.0.0.1:53". Ignored for UDP when PacketConns is set and for TCP
	// when Listener is set.
	Listen string

	// PacketConns, when set, are the UDP sockets to serve (tests inject
	// them); the server takes ownership and closes them.
	PacketConns []net.PacketConn
	// Listener, when set, is the TCP listener to serve; the server takes
	// ownership and closes it.
	Listener net.Listener

	// UDPSockets is how many UDP sockets share the port with SO_REUSEPORT,
	// each read by its own goroutine. If zero, defaults to GOMAXPROCS: one
	// per core, so the kernel spreads clients over every core.
	UDPSockets int

	// UDPSize is the largest UDP answer the server sends and the size it
	// advertises in EDNS0. If zero, defaults to 1232: the DNS Flag Day 2020
	// value, which avoids IP fragmentation on any usual path.
	UDPSize int

	// MaxTCPConns bounds concurrent TCP connections. If zero, defaults to
	// 1000: TCP serves only truncated answers, and each connection costs a
	// file descriptor out of a limit of some thousands.
	MaxTCPConns int
	// TCPIdleTimeout closes a TCP connection that sends no query for this
	// long. If zero, defaults to 10s (RFC 7766 asks for seconds, not
	// minutes, on a busy server).
	TCPIdleTimeout time.Duration
	// MaxTCPConnsPerPrefix bounds the concurrent TCP connections from one
	// client prefix (RRL's prefix lengths, /24 and /56 by default). If zero,
	// defaults to 64: a resolver farm behind one prefix retries truncated
	// answers over TCP, one client must not take every connection.
	MaxTCPConnsPerPrefix int
	// TCPConnRate bounds the new TCP connections per second from one client
	// prefix (with bursts of a second's worth); a connection over it is
	// closed at once. If zero, defaults to 50.
	TCPConnRate int

	// RRL configures response rate limiting of UDP answers (rrl.go); on by
	// default.
	RRL RRLConfig
	// Cookies configures DNS cookies (cookie.go); on by default.
	Cookies CookieConfig

	// Logger receives structured logs. If nil, logs are discarded.
	Logger *slog.Logger
	// Registerer receives the server's metrics (farmlb_dnsd_*). If nil,
	// metrics are kept but not registered anywhere.
	Registerer prometheus.Registerer
	// Now is the clock (for the table age and the SOA serial). If nil,
	// defaults to time.Now.
	Now func() time.Time
}

// Zone is what the server answers for. Zero fields take their defaults.
type Zone struct {
	// Origin is the zone the server is authoritative for, e.g.
	// "stream.example.com". Required.
	Origin string
	// Service is the name clients resolve to reach the farm (A/AAAA, and
	// the _farm TXT and _farmlb._tcp SRV below it). If empty, defaults to
	// Origin; otherwise it must lie inside the zone.
	Service string
	// TTL holds the TTL of each kind of answer.
	TTL TTLs
	// NameServers are the zone's NS records. Names inside the zone get A/AAAA
	// records (glue) from Addrs. If empty, defaults to "ns1.<origin>" with the
	// listen address (when it is a specific IP address).
	NameServers []NameServer
	// Hostmaster is the SOA RNAME, as a mail address or a domain name. If
	// empty, defaults to "hostmaster.<origin>".
	Hostmaster string
	// Keys, when set, sign the zone (DNSSEC): LoadKeys reads them. They
	// must be keys of Origin. If nil, the zone is not signed.
	Keys *Keys
}

// NameServer is one NS record of the zone.
type NameServer struct {
	// Name is the nameserver's host name; a name without a dot is taken as a
	// label inside the zone ("ns1" is "ns1.<origin>").
	Name string
	// Addrs are its addresses, served as A/AAAA when Name is in the zone.
	Addrs []netip.Addr
}

// TTLs are the TTLs of each kind of record. Zero means the default.
type TTLs struct {
	// Service is the TTL of the service name's A/AAAA. Default 5s: a server
	// that goes DOWN leaves resolvers' caches within seconds.
	Service time.Duration
	// Farm is the TTL of the _farm TXT list. Default 5s, for the same reason.
	Farm time.Duration
	// SRV is the TTL of the _farmlb._tcp SRV records. Default 5s, likewise.
	SRV time.Duration
	// Server is the TTL of each server's own A/AAAA. Default 60s: a server's
	// address does not change with its status.
	Server time.Duration
	// NS is the TTL of the NS records and their glue. Default 1h: they change
	// only with the configuration.
	NS time.Duration
	// SOA is the TTL of the SOA record. Default 1h, likewise.
	SOA time.Duration
	// Negative is the SOA minimum, the TTL resolvers cache NXDOMAIN and NODATA
	// for. Default 5s: the service name is NODATA while no server is UP, and
	// that answer must not outlive the outage by long.
	Negative time.Duration
}

// DefaultConfig returns the defaults, with Zone.Origin and Source left for the
// caller.
func DefaultConfig() Config {
	return Config{
		Listen:         "127.0.0.1:53",
		UDPSockets:     runtime.GOMAXPROCS(0),
		UDPSize:        1232,
		MaxTCPConns:    1000,
		TCPIdleTimeout: 10 * time.Second,
		Zone:           Zone{TTL: DefaultTTLs()},
		RRL:            DefaultRRLConfig(),

		MaxTCPConnsPerPrefix: 64,
		TCPConnRate:          50,
	}
}

// DefaultTTLs returns the default TTLs (see TTLs for the reasons).
func DefaultTTLs() TTLs {
	return TTLs{
		Service:  5 * time.Second,
		Farm:     5 * time.Second,
		SRV:      5 * time.Second,
		Server:   60 * time.Second,
		NS:       time.Hour,
		SOA:      time.Hour,
		Negative: 5 * time.Second,
	}
}

// populate fills the defaults into a copy of c and checks it.
func (c Config) populate() (Config, error) {
	d := DefaultConfig()
	if c.Source == nil {
		return c, errors.New("dnsd: config: Source is required")
	}
	if c.Listen == "" {
		c.Listen = d.Listen
	}
	if c.UDPSockets <= 0 {
		c.UDPSockets = d.UDPSockets
	}
	if c.UDPSize == 0 {
		c.UDPSize = d.UDPSize
	}
	if c.UDPSize < dns.MinMsgSize || c.UDPSize > dns.MaxMsgSize {
		return c, fmt.Errorf("dnsd: config: UDPSize %d out of range %d..%d", c.UDPSize, dns.MinMsgSize, dns.MaxMsgSize)
	}
	if c.MaxTCPConns <= 0 {
		c.MaxTCPConns = d.MaxTCPConns
	}
	if c.TCPIdleTimeout <= 0 {
		c.TCPIdleTimeout = d.TCPIdleTimeout
	}
	if c.MaxTCPConnsPerPrefix <= 0 {
		c.MaxTCPConnsPerPrefix = d.MaxTCPConnsPerPrefix
	}
	if c.TCPConnRate <= 0 {
		c.TCPConnRate = d.TCPConnRate
	}
	if c.TCPConnRate > maxRate {
		return c, fmt.Errorf("dnsd: config: TCPConnRate %d is more than %d", c.TCPConnRate, maxRate)
	}
	rrl, err := c.RRL.populate()
	if err != nil {
		return c, err
	}
	c.RRL = rrl
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	z, err := c.Zone.populate(c.Listen)
	if err != nil {
		return c, err
	}
	c.Zone = z
	return c, nil
}

// populate fills the zone's defaults, turns names into lower-case FQDNs and
// checks them. listen supplies the default nameserver's address.
func (z Zone) populate(listen string) (Zone, error) {
	if z.Origin == "" {
		return z, errors.New("dnsd: zone: origin is required")
	}
	origin, err := fqdn(z.Origin)
	if err != nil {
		return z, fmt.Errorf("dnsd: zone: origin: %w", err)
	}
	z.Origin = origin
	if z.Service == "" {
		z.Service = origin
	}
	if z.Service, err = fqdn(z.Service); err != nil {
		return z, fmt.Errorf("dnsd: zone: service: %w", err)
	}
	if !dns.IsSubDomain(z.Origin, z.Service) {
		return z, fmt.Errorf("dnsd: zone: service %q is not inside the zone %q", z.Service, z.Origin)
	}
	z.TTL = z.TTL.populate()
	if len(z.NameServers) == 0 {
		ns := NameServer{Name: "ns1." + origin}
		if host, _, err := net.SplitHostPort(listen); err == nil {
			if a, err := netip.ParseAddr(host); err == nil && !a.IsUnspecified() {
				ns.Addrs = []netip.Addr{a.Unmap()}
			}
		}
		z.NameServers = []NameServer{ns}
	}
	nss := make([]NameServer, len(z.NameServers))
	for i, ns := range z.NameServers {
		name := ns.Name
		if name != "" && !strings.Contains(strings.TrimSuffix(name, "."), ".") && !strings.HasSuffix(name, ".") {
			name += "." + origin
		}
		if name, err = fqdn(name); err != nil {
			return z, fmt.Errorf("dnsd: zone: nameserver %d: %w", i, err)
		}
		addrs := make([]netip.Addr, 0, len(ns.Addrs))
		for _, a := range ns.Addrs {
			if !a.IsValid() {
				return z, fmt.Errorf("dnsd: zone: nameserver %s: invalid address", name)
			}
			addrs = append(addrs, a.Unmap())
		}
		nss[i] = NameServer{Name: name, Addrs: addrs}
	}
	z.NameServers = nss
	if z.Hostmaster == "" {
		z.Hostmaster = "hostmaster." + origin
	}
	hm := z.Hostmaster
	if user, domain, ok := strings.Cut(hm, "@"); ok {
		hm = strings.ReplaceAll(user, ".", `\.`) + "." + domain
	}
	if z.Hostmaster, err = mailbox(hm); err != nil {
		return z, fmt.Errorf("dnsd: zone: hostmaster: %w", err)
	}
	if z.Keys != nil {
		if err := z.Keys.checkZone(z.Origin); err != nil {
			return z, fmt.Errorf("dnsd: zone: %w", err)
		}
	}
	return z, nil
}

func (t TTLs) populate() TTLs {
	d := DefaultTTLs()
	for _, p := range []struct{ v, def *time.Duration }{
		{&t.Service, &d.Service}, {&t.Farm, &d.Farm}, {&t.SRV, &d.SRV}, {&t.Server, &d.Server},
		{&t.NS, &d.NS}, {&t.SOA, &d.SOA}, {&t.Negative, &d.Negative},
	} {
		if *p.v <= 0 {
			*p.v = *p.def
		}
	}
	return t
}

// seconds turns a TTL into whole seconds for the wire, at least 0 and at
// most 2^31-1 (RFC 2181).
func seconds(d time.Duration) uint32 {
	s := d / time.Second
	switch {
	case s < 0:
		return 0
	case s > 1<<31-1:
		return 1<<31 - 1
	}
	return uint32(s)
}

// fqdn checks a host-style domain name (letters, digits, '-' and '_' in
// labels of 1 to 63 bytes) and returns it in lower case with the final dot.
func fqdn(name string) (string, error) {
	for _, l := range strings.Split(strings.TrimSuffix(name, "."), ".") {
		if l == "" || len(l) > 63 || strings.IndexFunc(l, func(r rune) bool {
			return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_')
		}) >= 0 {
			return "", fmt.Errorf("%q is not a domain name (labels of letters, digits, '-' and '_')", name)
		}
	}
	return mailbox(name)
}

// mailbox checks a domain name that may hold escapes (an SOA mailbox such as
// dns\.admin.example.com) and returns it in lower case with the final dot.
func mailbox(name string) (string, error) {
	if name == "" {
		return "", errors.New("empty name")
	}
	if _, ok := dns.IsDomainName(name); !ok {
		return "", fmt.Errorf("%q is not a domain name", name)
	}
	n := strings.ToLower(dns.Fqdn(name))
	if n == "." {
		return "", errors.New("the root zone is not served")
	}
	buf := make([]byte, 256)
	if _, err := dns.PackDomainName(n, buf, 0, nil, false); err != nil {
		return "", fmt.Errorf("%q: %w", name, err)
	}
	return n, nil
}
