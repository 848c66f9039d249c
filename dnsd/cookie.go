package dnsd

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"net/netip"

	"github.com/dchest/siphash"
	"github.com/miekg/dns"
)

// DNS cookies (RFC 7873) with server cookies made as RFC 9018 says, so that
// any server of the farm given the same secret accepts the others' cookies:
//
//	server cookie = version 1 | reserved 0 0 0 | timestamp (4, Unix seconds) | hash (8)
//	hash = SipHash-2-4(secret; client cookie | version | reserved | timestamp | client IP)
//
// A query that brings back a server cookie this farm made for its source
// address, less than an hour old, proves that the source is real: RRL lets
// it through. A reply to any query with a COOKIE option carries the client's
// cookie and a server cookie (the one it brought, while less than half an
// hour old, else a fresh one). SipHash comes from github.com/dchest/siphash:
// small, stable for a decade, checked against the reference vectors of the
// SipHash paper, and free of allocations.

// CookieConfig configures DNS cookies. The zero value is on, with a random
// secret.
type CookieConfig struct {
	// Off turns cookies off: a COOKIE option is then ignored, as RFC 7873
	// allows a server without cookies to do.
	Off bool
	// Secret is the 16-byte SipHash key server cookies are made and checked
	// with. Every dnsd of a farm given the same secret accepts the others'
	// cookies. If zero, a random secret is drawn at start (cookies then hold
	// for this server alone).
	Secret [16]byte
	// Previous are secrets still accepted but no longer used to make
	// cookies: put the old secret here when rotating. A cookie lives an
	// hour, so an old secret can go an hour after the new one is in place
	// on every server.
	Previous [][16]byte
}

// Cookie lengths (RFC 7873 4).
const (
	clientCookieLen = 8
	serverCookieLen = 16 // what dnsd makes (RFC 9018)
	minServerCookie = 8
	maxServerCookie = 32
	cookieOptLen    = 4 + clientCookieLen + serverCookieLen
)

// Cookie lifetimes (RFC 9018 4.3).
const (
	cookieMaxAge    = 3600 // seconds: older is invalid
	cookieMaxFuture = 300  // seconds a clock ahead of ours may stamp
	cookieRenew     = 1800 // seconds after which a valid cookie is replaced
)

// cookieKeys are the secrets in force: the current one first.
type cookieKeys struct {
	k [][2]uint64
}

func newCookieKeys(c CookieConfig) *cookieKeys {
	secret := c.Secret
	if secret == [16]byte{} {
		_, _ = rand.Read(secret[:])
	}
	ks := &cookieKeys{}
	for _, s := range append([][16]byte{secret}, c.Previous...) {
		ks.k = append(ks.k, [2]uint64{binary.LittleEndian.Uint64(s[:]), binary.LittleEndian.Uint64(s[8:])})
	}
	return ks
}

// ParseCookieSecret reads a cookie secret written as 32 hexadecimal digits.
func ParseCookieSecret(s string) ([16]byte, error) {
	var out [16]byte
	if len(s) != 32 {
		return out, fmt.Errorf("want 32 hexadecimal digits (16 bytes), got %d characters", len(s))
	}
	for i := range out {
		hi, ok1 := unhex(s[2*i])
		lo, ok2 := unhex(s[2*i+1])
		if !ok1 || !ok2 {
			return out, fmt.Errorf("%q is not hexadecimal", s)
		}
		out[i] = hi<<4 | lo
	}
	if out == [16]byte{} {
		return out, fmt.Errorf("all zeros is not a secret")
	}
	return out, nil
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// hash is the RFC 9018 hash of a server cookie with key k.
func cookieHash(k [2]uint64, client []byte, ts uint32, src netip.Addr) uint64 {
	var in [8 + 8 + 16]byte
	copy(in[:8], client)
	in[8] = 1 // version; reserved stays 0
	binary.BigEndian.PutUint32(in[12:], ts)
	n := 16
	if src.Is4() {
		a := src.As4()
		n += copy(in[16:], a[:])
	} else {
		a := src.As16()
		n += copy(in[16:], a[:])
	}
	return siphash.Hash(k[0], k[1], in[:n])
}

// appendServerCookie appends a fresh server cookie for client and src made
// at ts with the current secret.
func (ks *cookieKeys) appendServerCookie(out, client []byte, ts uint32, src netip.Addr) []byte {
	out = append(out, 1, 0, 0, 0, byte(ts>>24), byte(ts>>16), byte(ts>>8), byte(ts))
	return binary.LittleEndian.AppendUint64(out, cookieHash(ks.k[0], client, ts, src))
}

// check says whether server is a valid server cookie for client and src at
// now (Unix seconds), and whether it is young enough to be sent back as it is.
func (ks *cookieKeys) check(server, client []byte, now uint32, src netip.Addr) (valid, keep bool) {
	if len(server) != serverCookieLen || server[0] != 1 {
		return false, false
	}
	ts := binary.BigEndian.Uint32(server[4:])
	age := int32(now - ts) // serial number arithmetic (RFC 1982)
	if age > cookieMaxAge || age < -cookieMaxFuture {
		return false, false
	}
	h := binary.LittleEndian.Uint64(server[8:])
	for _, k := range ks.k {
		if cookieHash(k, client, ts, src) == h {
			return true, age <= cookieRenew && k == ks.k[0]
		}
	}
	return false, false
}

// queryCookie is what a query's COOKIE option holds.
type queryCookie struct {
	present   bool   // an OPT record with a COOKIE option
	malformed bool   // a COOKIE option of a length RFC 7873 forbids, or two of them
	client    []byte // the client cookie (8 bytes), within the query
	server    []byte // the server cookie (8..32 bytes) or nil, within the query
	size      uint16 // the OPT record's UDP size
	do        bool   // the OPT record's DO bit
}

// parseCookie finds the COOKIE option of q. It reads only the usual shape —
// one question, no answer or authority records, an OPT record among at most
// a few additional ones — and reports nothing for anything else, which the
// answer path then judges on its own.
func parseCookie(q []byte) (c queryCookie) {
	if len(q) < headerLen || q[4] != 0 || q[5] != 1 || q[6]|q[7]|q[8]|q[9] != 0 || q[10] != 0 || q[11] == 0 || q[11] > 3 {
		return c
	}
	off := skipName(q, headerLen)
	if off < 0 || off+4 > len(q) {
		return c
	}
	off += 4
	for range q[11] {
		off = skipName(q, off)
		if off < 0 || off+10 > len(q) {
			return queryCookie{}
		}
		rtype := binary.BigEndian.Uint16(q[off:])
		size := binary.BigEndian.Uint16(q[off+2:])
		rdlen := int(binary.BigEndian.Uint16(q[off+8:]))
		off += 10
		if off+rdlen > len(q) {
			return queryCookie{}
		}
		if rtype == dns.TypeOPT {
			c.size = size
			c.do = q[off-4]&0x80 != 0 // the TTL's flags: DO
			if !c.options(q[off : off+rdlen]) {
				return queryCookie{}
			}
		}
		off += rdlen
	}
	return c
}

// options reads the options of an OPT record into c; false means they do
// not parse.
func (c *queryCookie) options(opts []byte) bool {
	for len(opts) > 0 {
		if len(opts) < 4 {
			return false
		}
		code, n := binary.BigEndian.Uint16(opts), int(binary.BigEndian.Uint16(opts[2:]))
		if n > len(opts)-4 {
			return false
		}
		if code == dns.EDNS0COOKIE {
			if c.present || n < clientCookieLen || n > clientCookieLen && n < clientCookieLen+minServerCookie || n > clientCookieLen+maxServerCookie {
				c.malformed = true
			}
			c.present = true
			if !c.malformed {
				c.client = opts[4 : 4+clientCookieLen]
				if n > clientCookieLen {
					c.server = opts[4+clientCookieLen : 4+n]
				}
			}
		}
		opts = opts[4+n:]
	}
	return true
}

// skipName returns the offset just past the name at off in msg, or -1.
func skipName(msg []byte, off int) int {
	for hops := 0; hops < 128; hops++ {
		if off >= len(msg) {
			return -1
		}
		l := int(msg[off])
		switch {
		case l == 0:
			return off + 1
		case l&0xC0 == 0xC0:
			if off+2 > len(msg) {
				return -1
			}
			return off + 2
		case l > 63:
			return -1
		}
		off += 1 + l
	}
	return -1
}

// endsInOPT reports whether reply's last record is an OPT record without
// options, as both answer paths put last in every reply to a query with one.
func endsInOPT(reply []byte) bool {
	n := len(reply)
	return n >= headerLen+optLen && reply[10]|reply[11] != 0 &&
		reply[n-optLen] == 0 && binary.BigEndian.Uint16(reply[n-optLen+1:]) == dns.TypeOPT &&
		reply[n-2]|reply[n-1] == 0
}

// appendCookieOption appends a COOKIE option to reply, which ends in an OPT
// record without options, and sets the record's length.
func appendCookieOption(reply, client, server []byte) []byte {
	total := 4 + len(client) + len(server)
	reply = append(reply, 0, dns.EDNS0COOKIE, 0, byte(len(client)+len(server)))
	reply = append(reply, client...)
	reply = append(reply, server...)
	binary.BigEndian.PutUint16(reply[len(reply)-total-2:], uint16(total))
	return reply
}
