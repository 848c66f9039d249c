package dnsd

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
)

// DNSSEC signing. Signatures are made when a table change builds a zone, not
// when a query comes: zone.sign puts an RRSIG beside every record set and an
// NSEC (compact denial, denial.go) beside every name, and the precomputed
// answers for queries with the DO bit carry them. A set that did not change
// since the last build keeps its signatures (a table change re-signs the
// service name's addresses, _farm, SRV and the SOA, not the 800 servers'
// own names), until they come due for refresh.

// Signature timing.
const (
	// sigSkew sets the inception back, so that a validator whose clock is
	// behind still takes a signature made just now.
	sigSkew = time.Hour
	// sigValidity is how long a signature is valid from now.
	sigValidity = 7 * 24 * time.Hour
	// sigRefresh: a signature with less than this left is made again, at
	// the latest by the build that the refresh timer starts. Half the
	// validity leaves days for a server whose table stops changing, far
	// more than any TTL of the zone.
	sigRefresh = sigValidity / 2
)

// signer signs one zone's sets with one set of keys. Builds use it under
// Server.buildMu; only its denial cache is used by queries.
type signer struct {
	keys *Keys
	// zsks sign every set but DNSKEY: the signing keys without SEP, or
	// every signing key when none is without (a combined signing key).
	zsks []Key
	// ksks sign the DNSKEY set: every signing key.
	ksks []Key
	// reuse holds the last build's signatures by set, so that the next
	// build signs only what changed.
	reuse map[string][]dns.RR
	// denials are the signed denials of names that do not exist, shared by
	// the zones built until they come due for refresh.
	denials *denialCache
	// denied counts the denials signed (nil: not counted).
	denied prometheus.Counter
}

// describe lists the keys for the log: what signs and what is published.
func (sg *signer) describe() []string {
	var out []string
	for _, k := range sg.keys.Sign {
		out = append(out, "sign "+k.String())
	}
	for _, k := range sg.keys.Publish {
		out = append(out, "publish "+k.String())
	}
	return out
}

func newSigner(ks *Keys) *signer {
	sg := &signer{keys: ks, ksks: ks.Sign, reuse: map[string][]dns.RR{}}
	for _, k := range ks.Sign {
		if !k.SEP() {
			sg.zsks = append(sg.zsks, k)
		}
	}
	if len(sg.zsks) == 0 {
		sg.zsks = ks.Sign
	}
	return sg
}

// dnskeys returns the DNSKEY set: every key, signing or published.
func (sg *signer) dnskeys(ttl uint32) []dns.RR {
	var out []dns.RR
	for _, k := range append(append([]Key(nil), sg.keys.Sign...), sg.keys.Publish...) {
		c := *k.DNSKEY
		c.Hdr.Ttl = ttl
		out = append(out, &c)
	}
	return out
}

// signSet returns the signatures of one set, made now or reused from the
// last build; next collects what the next build may reuse.
func (sg *signer) signSet(rrs []dns.RR, now time.Time, next map[string][]dns.RR) ([]dns.RR, error) {
	var id strings.Builder
	for _, rr := range rrs {
		id.WriteString(rr.String())
		id.WriteByte('\n')
	}
	if sigs, ok := sg.reuse[id.String()]; ok && fresh(sigs, now) {
		next[id.String()] = sigs
		return sigs, nil
	}
	keys := sg.zsks
	if rrs[0].Header().Rrtype == dns.TypeDNSKEY {
		keys = sg.ksks
	}
	sigs, err := signWith(keys, rrs, now)
	if err != nil {
		return nil, err
	}
	next[id.String()] = sigs
	return sigs, nil
}

// signWith signs rrs with each key, valid from now less sigSkew for
// sigValidity.
func signWith(keys []Key, rrs []dns.RR, now time.Time) ([]dns.RR, error) {
	sigs := make([]dns.RR, 0, len(keys))
	for _, k := range keys {
		sig := k.rrsig(now.Add(-sigSkew), now.Add(sigValidity))
		if err := sig.Sign(k.signer, rrs); err != nil {
			return nil, fmt.Errorf("dnssec: sign %s %s with %s: %w", rrs[0].Header().Name, dns.TypeToString[rrs[0].Header().Rrtype], k.File, err)
		}
		sig.Hdr.Ttl = rrs[0].Header().Ttl
		sigs = append(sigs, sig)
	}
	return sigs, nil
}

// fresh reports whether signatures have more than sigRefresh left.
func fresh(sigs []dns.RR, now time.Time) bool {
	for _, s := range sigs {
		if int64(s.(*dns.RRSIG).Expiration)-now.Unix() <= int64(sigRefresh/time.Second) {
			return false
		}
	}
	return true
}

// refreshAt is when the first of sigs comes due for refresh.
func refreshAt(sigs []dns.RR) time.Time {
	var at time.Time
	for _, s := range sigs {
		t := time.Unix(int64(s.(*dns.RRSIG).Expiration), 0).Add(-sigRefresh)
		if at.IsZero() || t.Before(at) {
			at = t
		}
	}
	return at
}

// sign adds the DNSKEY set at the apex, signs every set of the zone and gives
// every name its NSEC (the NODATA proof). It runs after the zone's records
// are complete and before the answers are precomputed.
func (z *zone) sign(sg *signer, now time.Time) error {
	z.signer = sg
	apex := z.nodes[string(z.origin)]
	for _, rr := range sg.dnskeys(seconds(z.cfg.TTL.SOA)) {
		apex.add(rr)
	}
	next := map[string][]dns.RR{}
	negTTL := z.negSOA.Hdr.Ttl
	var due time.Time
	note := func(sigs []dns.RR) {
		if t := refreshAt(sigs); due.IsZero() || t.Before(due) {
			due = t
		}
	}
	for _, n := range z.nodes {
		types := []uint16{dns.TypeRRSIG, dns.TypeNSEC}
		for _, s := range n.sets {
			sigs, err := sg.signSet(s.rrs, now, next)
			if err != nil {
				return err
			}
			s.sigs = sigs
			note(sigs)
			types = append(types, s.rrtype)
		}
		slices.Sort(types)
		n.nsec = []dns.RR{nsecRecord(n.name, negTTL, types)}
		sigs, err := sg.signSet(n.nsec, now, next)
		if err != nil {
			return err
		}
		n.nsec = append(n.nsec, sigs...)
		note(sigs)
	}
	// The negative answers' SOA has the negative TTL; its signature, made
	// over the SOA with its own TTL (the RRSIG's original TTL), still
	// verifies.
	for _, sig := range z.nodes[string(z.origin)].set(dns.TypeSOA).sigs {
		c := *sig.(*dns.RRSIG)
		c.Hdr.Ttl = negTTL
		z.negSOASigs = append(z.negSOASigs, &c)
		z.nxSigTails = append(z.nxSigTails, nxTail(&c))
	}
	sg.reuse = next
	if sg.denials == nil || !sg.denials.born.Add(sigRefresh).After(now) {
		sg.denials = newDenialCache(now)
	}
	z.denials = sg.denials
	z.signedAt = now
	z.refreshAt = due
	if t := sg.denials.born.Add(sigRefresh); t.Before(due) {
		z.refreshAt = t
	}
	return nil
}

// withSigs returns rrs followed by copies of sigs named name (the question's
// case).
func withSigs(rrs, sigs []dns.RR, name string) []dns.RR {
	for _, s := range sigs {
		c := dns.Copy(s)
		c.Header().Name = name
		rrs = append(rrs, c)
	}
	return rrs
}

// resignDue reports whether the zone answered from has a signature due for
// refresh at now. Called under buildMu.
func (s *Server) resignDue(now time.Time) bool {
	z := s.zone.Load()
	return z != nil && z.signer != nil && !now.Before(z.refreshAt)
}

// refreshIn is how long until the zone's first signature comes due, by the
// server's clock; an hour when the zone is not signed (the timer then only
// finds nothing to do).
func (s *Server) refreshIn() time.Duration {
	z := s.zone.Load()
	if z == nil || z.signer == nil {
		return time.Hour
	}
	return max(z.refreshAt.Sub(s.cfg.Now()), time.Second)
}

// chainNSEC returns n's NSEC of a standard chain, next naming the following
// name in canonical order, and its signatures (for WriteZone).
func (z *zone) chainNSEC(n *node, next string) ([]dns.RR, error) {
	types := []uint16{dns.TypeRRSIG, dns.TypeNSEC}
	for _, s := range n.sets {
		types = append(types, s.rrtype)
	}
	slices.Sort(types)
	nsec := nsecRecord(n.name, z.negSOA.Hdr.Ttl, types)
	nsec.NextDomain = next
	sigs, err := signWith(z.signer.zsks, []dns.RR{nsec}, z.signedAt)
	if err != nil {
		return nil, err
	}
	return append([]dns.RR{nsec}, sigs...), nil
}

// dnssecRecords answers a query with DO for the type NSEC (the name's NSEC
// and its signatures) or RRSIG (every signature at the name), named as asked.
func (z *zone) dnssecRecords(n *node, q dns.Question) []dns.RR {
	if q.Qtype == dns.TypeNSEC {
		return withSigs(nil, n.nsec, q.Name)
	}
	var sigs []dns.RR
	for _, s := range n.sets {
		sigs = append(sigs, s.sigs...)
	}
	return withSigs(nil, append(sigs, n.nsec[1:]...), q.Name)
}
