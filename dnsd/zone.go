package dnsd

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"

	"github.com/farmlb/farmlb/farm"
)

// Bounds on what one answer holds, so that every answer fits a TCP message
// (64 KiB) and the zone's memory stays proportional to the farm.
const (
	// maxAddrRecords bounds the A (and the AAAA) records of the service
	// name: no resolver or client uses more, and 512 of them already need
	// TCP.
	maxAddrRecords = 512
	// maxSRVRecords bounds the SRV records, for the same reason.
	maxSRVRecords = 512
	// maxTXTBytes bounds the _farm TXT record's data, leaving room in a
	// 64 KiB message for the header, the question and an OPT record.
	maxTXTBytes = 60000
)

// Labels of the names dnsd serves below the service name.
const (
	farmLabel = "_farm"         // TXT: the farm list
	srvLabels = "_farmlb._tcp." // SRV: one record per UP server
)

// zone is one immutable snapshot of everything the server answers, built from
// one farm table and one Zone whenever either changes. Queries read it through
// an atomic.Pointer; after build nothing in it changes but the rotation
// counters.
type zone struct {
	cfg    Zone
	list   *farm.List
	serial uint32
	// up is how many servers of the table are UP.
	up int
	// origin is the zone's name in lower-case wire form.
	origin []byte
	// nodes holds every name of the zone (including empty non-terminals),
	// keyed by its lower-case wire form.
	nodes map[string]*node
	// soa is the apex SOA; negSOA the copy that goes in the authority
	// section of negative answers, its TTL the negative TTL (RFC 2308).
	soa, negSOA *dns.SOA
	// nxTail is the negative SOA record in wire form after its owner name,
	// names uncompressed, so the fast path can put it after any question.
	nxTail []byte
	// udpSize is the EDNS0 UDP size the server advertises.
	udpSize uint16
	// notes are what the build left out, for the server to log.
	notes []string

	// DNSSEC (dnssec.go, denial.go); signer is nil in an unsigned zone.
	signer *signer
	// negSOASigs sign negSOA; nxSigTails are them in wire form after
	// their owner names, as nxTail.
	negSOASigs []dns.RR
	nxSigTails [][]byte
	denials    *denialCache
	// signedAt is when the zone was signed; refreshAt when its first
	// signature comes due to be made again.
	signedAt, refreshAt time.Time
}

// node is one name of the zone.
type node struct {
	name string // lower-case FQDN
	sets []*rrset
	// fast holds the precomputed wire answers, one per set; nodata is the
	// NODATA answer for any other type. A nil entry is left to the slow path.
	fast   []*wireAnswer
	nodata *wireAnswer
	// In a signed zone: nsec is the name's NSEC and its signatures (the
	// NODATA proof); fastDO and nodataDO are the answers to queries with
	// the DO bit.
	nsec     []dns.RR
	fastDO   []*wireAnswer
	nodataDO *wireAnswer
}

// rrset is the records of one type at one name.
type rrset struct {
	rrtype uint16
	rrs    []dns.RR
	// rot, when non-nil, rotates the set by one on every answer. It is the
	// one thing in a zone written after build: an atomic counter, because
	// the records themselves are shared and are never reordered in place.
	rot *atomic.Uint64
	// sigs are the set's RRSIGs in a signed zone.
	sigs []dns.RR
}

func (n *node) set(t uint16) *rrset {
	for _, s := range n.sets {
		if s.rrtype == t {
			return s
		}
	}
	return nil
}

func (n *node) add(rr dns.RR) {
	t := rr.Header().Rrtype
	s := n.set(t)
	if s == nil {
		s = &rrset{rrtype: t}
		n.sets = append(n.sets, s)
	}
	for _, have := range s.rrs {
		if dns.IsDuplicate(have, rr) {
			return
		}
	}
	s.rrs = append(s.rrs, rr)
}

// zoneBuilder collects the records of a zone by name.
type zoneBuilder struct {
	z *zone
}

func (b *zoneBuilder) node(name string) *node {
	key := string(wireName(name))
	n := b.z.nodes[key]
	if n == nil {
		n = &node{name: name}
		b.z.nodes[key] = n
	}
	return n
}

func (b *zoneBuilder) note(format string, args ...any) {
	b.z.notes = append(b.z.notes, fmt.Sprintf(format, args...))
}

// buildZone builds the unsigned snapshot for one table. cfg must be
// populated.
func buildZone(cfg Zone, l *farm.List, serial uint32, udpSize int) (*zone, error) {
	return buildSignedZone(cfg, l, serial, udpSize, nil, time.Time{})
}

// buildSignedZone builds the snapshot for one table, signed by sg at now
// unless sg is nil.
func buildSignedZone(cfg Zone, l *farm.List, serial uint32, udpSize int, sg *signer, now time.Time) (*zone, error) {
	if l == nil {
		return nil, errors.New("no table")
	}
	if err := l.Validate(); err != nil {
		return nil, fmt.Errorf("invalid table: %w", err)
	}
	z := &zone{
		cfg:     cfg,
		list:    l,
		serial:  serial,
		origin:  wireName(cfg.Origin),
		nodes:   map[string]*node{},
		udpSize: uint16(udpSize),
	}
	z.up = countUp(l)
	b := &zoneBuilder{z: z}
	ttl := cfg.TTL
	hdr := func(name string, t uint16, d time.Duration) dns.RR_Header {
		return dns.RR_Header{Name: name, Rrtype: t, Class: dns.ClassINET, Ttl: seconds(d)}
	}

	// The apex: SOA and NS, with glue for nameservers inside the zone.
	apex := b.node(cfg.Origin)
	z.soa = &dns.SOA{
		Hdr:     hdr(cfg.Origin, dns.TypeSOA, ttl.SOA),
		Ns:      cfg.NameServers[0].Name,
		Mbox:    cfg.Hostmaster,
		Serial:  serial,
		Refresh: 3600,   // the zone has no secondaries; nominal values
		Retry:   600,    //
		Expire:  604800, //
		Minttl:  seconds(ttl.Negative),
	}
	apex.add(z.soa)
	neg := *z.soa
	neg.Hdr.Ttl = min(z.soa.Hdr.Ttl, z.soa.Minttl)
	z.negSOA = &neg
	for _, ns := range cfg.NameServers {
		apex.add(&dns.NS{Hdr: hdr(cfg.Origin, dns.TypeNS, ttl.NS), Ns: ns.Name})
		if !dns.IsSubDomain(cfg.Origin, ns.Name) {
			continue
		}
		n := b.node(ns.Name)
		if len(ns.Addrs) == 0 {
			b.note("nameserver %s is inside the zone but has no address (no glue)", ns.Name)
		}
		for _, a := range ns.Addrs {
			n.add(addrRR(hdr(ns.Name, 0, ttl.NS), a))
		}
	}

	// Each server's own name, whatever its status.
	names := make([]string, len(l.Servers)) // "" for servers without a DNS name
	for i, s := range l.Servers {
		if !isHostLabel(s.Name) {
			b.note("server %q: name is not a DNS label; it is left out of DNS but for _farm", s.Name)
			continue
		}
		names[i] = strings.ToLower(s.Name) + "." + cfg.Origin
		n := b.node(names[i])
		for _, a := range serverAddrs(s) {
			n.add(addrRR(hdr(names[i], 0, ttl.Server), a))
		}
	}

	// The service name: the servers a client may pick.
	svc := b.node(cfg.Service)
	cut := false
	for _, i := range serviceServers(l) {
		for _, a := range serverAddrs(l.Servers[i]) {
			if s := svc.set(addrType(a)); s != nil && len(s.rrs) >= maxAddrRecords {
				cut = true
				continue
			}
			svc.add(addrRR(hdr(cfg.Service, 0, ttl.Service), a))
		}
	}
	if cut {
		b.note("more than %d addresses for the service name; it answers with the first %d of each type", maxAddrRecords, maxAddrRecords)
	}
	for _, t := range []uint16{dns.TypeA, dns.TypeAAAA} {
		if s := svc.set(t); s != nil && len(s.rrs) > 1 {
			s.rot = new(atomic.Uint64)
		}
	}

	// _farm TXT: the whole list, one character-string per server.
	strs, err := farm.MarshalTXT(l)
	if err != nil {
		return nil, fmt.Errorf("encode the list as TXT: %w", err)
	}
	size := 0
	for i, s := range strs {
		size += 1 + len(s)
		if size > maxTXTBytes {
			b.note("the farm list is larger than %d bytes; _farm TXT holds the first %d of %d strings", maxTXTBytes, i, len(strs))
			strs = strs[:i]
			break
		}
	}
	if len(strs) == 0 {
		// A TXT record holds at least one string; an empty one reads
		// back as an empty list.
		strs = []string{""}
	}
	farmName := farmLabel + "." + cfg.Service
	b.node(farmName).add(&dns.TXT{Hdr: hdr(farmName, dns.TypeTXT, ttl.Farm), Txt: strs})

	// _farmlb._tcp SRV: every UP server, priority from its group, weight
	// from its room.
	srvName := srvLabels + cfg.Service
	srvNode := b.node(srvName)
	for _, r := range srvRecords(l) {
		if names[r.i] == "" {
			continue
		}
		if s := srvNode.set(dns.TypeSRV); s != nil && len(s.rrs) >= maxSRVRecords {
			b.note("more than %d UP servers; SRV lists the first %d", maxSRVRecords, maxSRVRecords)
			break
		}
		srvNode.add(&dns.SRV{Hdr: hdr(srvName, dns.TypeSRV, ttl.SRV), Priority: r.priority, Weight: r.weight, Port: r.port, Target: names[r.i]})
	}

	// Empty non-terminals (e.g. _tcp.<service>) exist: they are NODATA, not
	// NXDOMAIN (RFC 8020).
	for _, n := range b.z.nodes {
		for name := n.name; name != cfg.Origin; {
			i := strings.IndexByte(name, '.')
			name = name[i+1:]
			if name == "" || !dns.IsSubDomain(cfg.Origin, name) {
				break
			}
			if _, ok := z.nodes[string(wireName(name))]; !ok {
				b.node(name)
			}
		}
	}

	z.nxTail = nxTail(z.negSOA)
	if sg != nil {
		if err := z.sign(sg, now); err != nil {
			return nil, err
		}
	}
	for key, n := range z.nodes {
		z.precompute([]byte(key), n)
	}
	return z, nil
}

// serviceServers returns the indexes of the servers the service name
// resolves to: the servers a client may pick (farm.Candidates: UP and not
// full, of the best priority group that has one); when every UP server is
// full, the UP servers of the best priority group with an UP server.
func serviceServers(l *farm.List) []int {
	if idx, err := farm.Candidates(l); err == nil {
		return idx
	}
	best := farm.Priority(255)
	for _, s := range l.Servers {
		if s.Status == farm.StatusUp && s.Priority < best {
			best = s.Priority
		}
	}
	var idx []int
	for i, s := range l.Servers {
		if s.Status == farm.StatusUp && s.Priority == best {
			idx = append(idx, i)
		}
	}
	return idx
}

type srvRecord struct {
	i                      int // index into the list
	priority, weight, port uint16
}

// srvRecords returns one record per UP server, ordered by priority group
// then list order. The priority is the group (A is 0). Within a group, when
// every server states a capacity the weight is its spare capacity (scaled
// into 16 bits); otherwise it is 10000 times the patent's probability
// p_i = (1 − u_i/U)/(n − 1), uniform when U is 0.
func srvRecords(l *farm.List) []srvRecord {
	var out []srvRecord
	for g := farm.PriorityHighest; g <= farm.PriorityLowest; g++ {
		var idx []int
		for i, s := range l.Servers {
			if s.Status == farm.StatusUp && s.Priority == g {
				idx = append(idx, i)
			}
		}
		if len(idx) == 0 {
			continue
		}
		for k, w := range srvWeights(l, idx) {
			i := idx[k]
			out = append(out, srvRecord{i: i, priority: uint16(g), weight: w, port: urlPort(l.Servers[i].URL)})
		}
	}
	return out
}

func srvWeights(l *farm.List, idx []int) []uint16 {
	w := make([]uint16, len(idx))
	allCap := true
	maxSpare, users := 0, 0
	for _, i := range idx {
		s := l.Servers[i]
		if s.Capacity <= 0 {
			allCap = false
		}
		maxSpare = max(maxSpare, s.Capacity-s.Users)
		users += s.Users
	}
	if allCap {
		for k, i := range idx {
			spare := max(0, l.Servers[i].Capacity-l.Servers[i].Users)
			if maxSpare > math.MaxUint16 {
				spare = int(int64(spare) * math.MaxUint16 / int64(maxSpare))
			}
			w[k] = uint16(spare)
		}
		return w
	}
	n := len(idx)
	for k, i := range idx {
		var p float64
		switch {
		case n == 1:
			p = 1
		case users == 0:
			p = 1 / float64(n)
		default:
			p = (1 - float64(l.Servers[i].Users)/float64(users)) / float64(n-1)
		}
		w[k] = uint16(math.Round(10000 * p))
	}
	return w
}

// urlPort is the port of a server URL: explicit, or the scheme's default.
func urlPort(raw string) uint16 {
	u, err := url.Parse(raw)
	if err != nil {
		return 0
	}
	if p := u.Port(); p != "" {
		n, err := strconv.ParseUint(p, 10, 16)
		if err == nil {
			return uint16(n)
		}
		return 0
	}
	if u.Scheme == "https" {
		return 443
	}
	return 80
}

// serverAddrs returns a server's addresses: its Addrs, or its URL's host when
// that is an IP address.
func serverAddrs(s farm.Server) []netip.Addr {
	if len(s.Addrs) > 0 {
		return s.Addrs
	}
	u, err := url.Parse(s.URL)
	if err != nil {
		return nil
	}
	if a, err := netip.ParseAddr(u.Hostname()); err == nil && a.Zone() == "" {
		return []netip.Addr{a}
	}
	return nil
}

func addrType(a netip.Addr) uint16 {
	if a.Unmap().Is4() {
		return dns.TypeA
	}
	return dns.TypeAAAA
}

// addrRR returns an A or AAAA record for a with the given header (its type
// is set from a).
func addrRR(h dns.RR_Header, a netip.Addr) dns.RR {
	a = a.Unmap()
	h.Rrtype = addrType(a)
	if a.Is4() {
		return &dns.A{Hdr: h, A: a.AsSlice()}
	}
	return &dns.AAAA{Hdr: h, AAAA: a.AsSlice()}
}

// isHostLabel reports whether s can be a host name's label: letters, digits
// and inner hyphens, 1 to 63 bytes.
func isHostLabel(s string) bool {
	if len(s) == 0 || len(s) > 63 || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// wireName returns a checked FQDN in lower-case wire form.
func wireName(name string) []byte {
	buf := make([]byte, 256)
	n, err := dns.PackDomainName(name, buf, 0, nil, false)
	if err != nil {
		panic(fmt.Sprintf("dnsd: wireName(%q): %v", name, err)) // names are checked before
	}
	return lowerWire(buf[:n])
}

// lowerWire lower-cases a wire-form name in place. Length bytes are at most
// 63, below 'A', so the whole name can be folded byte by byte.
func lowerWire(b []byte) []byte {
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return b
}

// lookup finds the node of a lower-case wire name. inZone is false when the
// name is outside the zone; zoneOff is where the origin starts in the name.
func (z *zone) lookup(lname []byte) (n *node, zoneOff int, inZone bool) {
	zoneOff = len(lname) - len(z.origin)
	if n := z.nodes[string(lname)]; n != nil {
		return n, zoneOff, true
	}
	if zoneOff < 0 || !bytes.Equal(lname[zoneOff:], z.origin) {
		return nil, 0, false
	}
	off := 0
	for off < zoneOff {
		off += 1 + int(lname[off])
	}
	return nil, zoneOff, off == zoneOff
}

// respond builds the answer to a QUERY in class IN whose question is q and
// whose lower-case wire name is lname. When advance is true a rotating set
// moves on by one; otherwise it is answered in its stored order. Answer names
// are the question's, so its case is echoed. do (the query's DO bit) adds the
// signatures and the denial proofs of a signed zone.
func (z *zone) respond(req *dns.Msg, q dns.Question, lname []byte, advance, do bool) *dns.Msg {
	do = do && z.signer != nil
	m := new(dns.Msg)
	m.Id = req.Id
	m.Response = true
	m.Opcode = dns.OpcodeQuery
	m.RecursionDesired = req.RecursionDesired
	m.CheckingDisabled = req.CheckingDisabled
	m.Compress = true
	m.Question = []dns.Question{q}
	n, zoneOff, inZone := z.lookup(lname)
	if !inZone {
		m.Rcode = dns.RcodeRefused
		return m
	}
	m.Authoritative = true
	if n == nil {
		soa := z.authoritySOA(q.Name, lname, zoneOff)
		m.Ns = []dns.RR{soa}
		if !do {
			m.Rcode = dns.RcodeNameError
			return m
		}
		// Compact denial: NOERROR, the name's own NSEC.
		d := z.denial(lname)
		if d == nil {
			m.Rcode = dns.RcodeServerFailure
			m.Ns = nil
			return m
		}
		m.Ns = withSigs(m.Ns, z.negSOASigs, soa.Header().Name)
		m.Ns = withSigs(m.Ns, d.rrs, q.Name)
		return m
	}
	if do && (q.Qtype == dns.TypeNSEC || q.Qtype == dns.TypeRRSIG) {
		// The NSEC bitmap says both types exist at every name.
		m.Answer = z.dnssecRecords(n, q)
		return m
	}
	for _, s := range n.sets {
		if q.Qtype != dns.TypeANY && q.Qtype != s.rrtype {
			continue
		}
		rrs := s.rrs
		if s.rot != nil && len(rrs) > 1 {
			r := 0
			if advance {
				r = int((s.rot.Add(1) - 1) % uint64(len(rrs)))
			}
			// A rotated copy: the zone's slice is shared by every query.
			rrs = append(append(make([]dns.RR, 0, len(rrs)), rrs[r:]...), rrs[:r]...)
		}
		for _, rr := range rrs {
			c := dns.Copy(rr)
			c.Header().Name = q.Name
			m.Answer = append(m.Answer, c)
		}
		if do {
			// A signature covers the set in canonical order, whatever the
			// rotation.
			m.Answer = withSigs(m.Answer, s.sigs, q.Name)
		}
	}
	if len(m.Answer) == 0 {
		soa := z.authoritySOA(q.Name, lname, zoneOff)
		m.Ns = []dns.RR{soa}
		if do {
			m.Ns = withSigs(m.Ns, z.negSOASigs, soa.Header().Name)
			m.Ns = withSigs(m.Ns, n.nsec, q.Name)
		}
		return m
	}
	m.Extra = z.additional(m.Answer, do)
	return m
}

// authoritySOA is the SOA for a negative answer, its owner the zone's part of
// the question's name (so the case is the question's).
func (z *zone) authoritySOA(qname string, lname []byte, zoneOff int) dns.RR {
	soa := *z.negSOA
	buf := make([]byte, 256)
	if n, err := dns.PackDomainName(qname, buf, 0, nil, false); err == nil && n == len(lname) {
		if owner, _, err := dns.UnpackDomainName(buf[:n], zoneOff); err == nil {
			soa.Hdr.Name = owner
		}
	}
	return &soa
}

// additional returns the addresses of the names that NS and SRV records in
// the answer point to, when the zone holds them, with their signatures when
// do is set.
func (z *zone) additional(answer []dns.RR, do bool) []dns.RR {
	var extra []dns.RR
	seen := map[string]bool{}
	for _, rr := range answer {
		var target string
		switch rr := rr.(type) {
		case *dns.NS:
			target = rr.Ns
		case *dns.SRV:
			target = rr.Target
		default:
			continue
		}
		if seen[target] {
			continue
		}
		seen[target] = true
		n := z.nodes[string(wireName(target))]
		if n == nil {
			continue
		}
		for _, t := range []uint16{dns.TypeA, dns.TypeAAAA} {
			if s := n.set(t); s != nil {
				extra = append(extra, s.rrs...)
				if do {
					extra = append(extra, s.sigs...)
				}
			}
		}
	}
	return extra
}

// nxTail returns a record in wire form without its owner name, names
// uncompressed.
func nxTail(rr dns.RR) []byte {
	buf := make([]byte, dns.Len(rr)+256)
	n, err := dns.PackRR(rr, buf, 0, nil, false)
	if err != nil {
		panic(fmt.Sprintf("dnsd: pack %v: %v", rr, err)) // built from checked names
	}
	owner := len(wireName(rr.Header().Name))
	return append([]byte(nil), buf[owner:n]...)
}
