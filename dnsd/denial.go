package dnsd

import (
	"sync"
	"time"

	"github.com/miekg/dns"
)

// Authenticated denial: compact denial of existence (RFC 9824, the "black
// lie"). A signed negative answer carries one NSEC whose owner is the name
// asked and whose next name is the name's immediate successor
// (\000.<name>), so it covers nothing but the name itself and reveals no
// other name of the zone (no zone walk):
//
//   - NODATA for a name that exists: its types, RRSIG and NSEC in the
//     bitmap. Made for every name when the zone is signed.
//   - a name that does not exist: NOERROR (not NXDOMAIN) with an NSEC of
//     the types RRSIG, NSEC and NXNAME, the meta type that tells a
//     resolver that knows it the name does not exist. Signed the first
//     time the name is asked, and kept in a bounded cache until the
//     signatures come due for refresh.
//
// dnsd/README.md says why this rather than NSEC3 white lies.

// maxDenials bounds the cache of signed denials. A flood of random names
// fills it; then it is emptied and fills again, so memory stays bounded
// (about 300 bytes a name) and the names asked often come back at once.
const maxDenials = 20000

// denial is the signed denial of one name that does not exist.
type denial struct {
	// rrs are the NSEC and its signatures, named in lower case.
	rrs []dns.RR
	// tail is rrs in wire form, without the first record's owner name
	// and with every later owner a pointer to the question (offset 12), so
	// that it follows any answer's authority section as it is.
	tail []byte
}

type denialCache struct {
	born time.Time // the cache is replaced once its signatures could be due
	mu   sync.RWMutex
	m    map[string]*denial // by lower-case wire name
}

func newDenialCache(now time.Time) *denialCache {
	return &denialCache{born: now, m: map[string]*denial{}}
}

// nsecRecord returns the compact-denial NSEC of name with the given types
// (sorted).
func nsecRecord(name string, ttl uint32, types []uint16) *dns.NSEC {
	next := "\\000." + name
	var buf [256]byte
	if _, err := dns.PackDomainName(next, buf[:], 0, nil, false); err != nil {
		// A name of 254 bytes has no successor one label longer; its own
		// name as the next one still covers only itself.
		next = name
	}
	return &dns.NSEC{
		Hdr:        dns.RR_Header{Name: name, Rrtype: dns.TypeNSEC, Class: dns.ClassINET, Ttl: ttl},
		NextDomain: next,
		TypeBitMap: types,
	}
}

// denial returns the signed denial of lname, a lower-case wire name in the
// zone that does not exist; nil if it cannot be signed.
func (z *zone) denial(lname []byte) *denial {
	c := z.denials
	c.mu.RLock()
	d := c.m[string(lname)]
	c.mu.RUnlock()
	if d != nil {
		return d
	}
	name, _, err := dns.UnpackDomainName(lname, 0)
	if err != nil {
		return nil
	}
	nsec := nsecRecord(name, z.negSOA.Hdr.Ttl, []uint16{dns.TypeRRSIG, dns.TypeNSEC, dns.TypeNXNAME})
	sigs, err := signWith(z.signer.zsks, []dns.RR{nsec}, z.signedAt)
	if err != nil {
		return nil
	}
	if c := z.signer.denied; c != nil {
		c.Inc()
	}
	d = &denial{rrs: append([]dns.RR{nsec}, sigs...)}
	d.tail = nxTail(nsec)
	for _, s := range sigs {
		d.tail = append(d.tail, 0xC0, headerLen)
		d.tail = append(d.tail, nxTail(s)...)
	}
	c.mu.Lock()
	if len(c.m) >= maxDenials {
		clear(c.m)
	}
	c.m[string(lname)] = d
	c.mu.Unlock()
	return d
}
