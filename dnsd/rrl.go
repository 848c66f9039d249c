package dnsd

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"net/netip"
	"sync"

	"github.com/dchest/siphash"
	"github.com/miekg/dns"
)

// Response rate limiting (RRL), as NSD, Knot and BIND do it: every UDP
// response is counted in a bucket keyed by the client's prefix and by the kind
// of response — the same answer (qname and type), a NODATA at one name,
// NXDOMAIN (the zone), an error — and a bucket past its rate has its
// responses dropped, every Slip-th of them sent instead as an empty
// truncated reply (TC) so that a real client behind the prefix retries over
// TCP, which is never limited. A forged source thus gets at most Rate
// responses a second of each kind, and never more bytes than it sent beyond
// that.
//
// The buckets live in a table of fixed size allocated once, so that no
// flood, from however many forged sources, grows the server's memory: a new
// key takes the place of the least busy of the four entries of its set.

// RRLConfig configures response rate limiting. The zero value is on with the
// defaults.
type RRLConfig struct {
	// Rate is the responses per second allowed per bucket (a client prefix
	// and a kind of response), with bursts of up to one second's worth. If
	// zero, defaults to 200 (NSD's default); negative turns RRL off.
	Rate int
	// Slip sends every Slip-th response the limit drops as an empty
	// truncated reply (or BADCOOKIE when the query carries a client cookie),
	// so that a real client retries over TCP. 1 slips every one. If zero,
	// defaults to 2 (NSD's default: half the drops are answered at a size
	// no larger than the query); negative drops them all.
	Slip int
	// IPv4Prefix and IPv6Prefix are the client prefix lengths a bucket
	// counts. If zero, default to 24 and 56 (NSD's): a forger varies the
	// low bits of a victim's address at will.
	IPv4Prefix, IPv6Prefix int
	// Allow lists prefixes that are never limited (the farm's own
	// resolvers, monitoring).
	Allow []netip.Prefix
	// TableSize is the number of buckets, rounded up to a power of two. If
	// zero, defaults to 262144 (8.5 MiB, allocated at start): at 200
	// responses a second per bucket, room for far more client prefixes than
	// one server answers at once.
	TableSize int
}

// DefaultRRLConfig returns the RRL defaults.
func DefaultRRLConfig() RRLConfig {
	return RRLConfig{Rate: 200, Slip: 2, IPv4Prefix: 24, IPv6Prefix: 56, TableSize: 1 << 18}
}

func (c RRLConfig) populate() (RRLConfig, error) {
	d := DefaultRRLConfig()
	if c.Rate == 0 {
		c.Rate = d.Rate
	}
	if c.Slip == 0 {
		c.Slip = d.Slip
	}
	if c.IPv4Prefix == 0 {
		c.IPv4Prefix = d.IPv4Prefix
	}
	if c.IPv6Prefix == 0 {
		c.IPv6Prefix = d.IPv6Prefix
	}
	if c.TableSize == 0 {
		c.TableSize = d.TableSize
	}
	switch {
	case c.Rate > maxRate:
		return c, fmt.Errorf("dnsd: config: RRL rate %d is more than %d", c.Rate, maxRate)
	case c.IPv4Prefix < 1 || c.IPv4Prefix > 32:
		return c, fmt.Errorf("dnsd: config: RRL IPv4 prefix length %d out of range 1..32", c.IPv4Prefix)
	case c.IPv6Prefix < 1 || c.IPv6Prefix > 128:
		return c, fmt.Errorf("dnsd: config: RRL IPv6 prefix length %d out of range 1..128", c.IPv6Prefix)
	case c.TableSize < minTable || c.TableSize > maxTable:
		return c, fmt.Errorf("dnsd: config: RRL table size %d out of range %d..%d", c.TableSize, minTable, maxTable)
	}
	for _, p := range c.Allow {
		if !p.IsValid() {
			return c, fmt.Errorf("dnsd: config: RRL allow: invalid prefix")
		}
	}
	return c, nil
}

const (
	maxRate  = 1_000_000 // responses/s; tokens are kept in thousandths in an int32
	minTable = 16
	maxTable = 1 << 26 // 2 GiB of buckets: more is a typo
	setWays  = 4
)

// bucket is one entry of a bucketTable: a token bucket in thousandths of a
// response, refilled by rate thousandths per millisecond.
type bucket struct {
	key     uint64 // the hash of what it counts; 0: free
	last    int64  // milliseconds of the last refill
	tokens  int32
	drops   uint32 // responses dropped since the bucket was last full, for slip
	limited bool   // dropping since it was last full
}

// bucketSet is one set of the table, with its own lock: two queries
// contend only when their keys share a set.
type bucketSet struct {
	mu sync.Mutex
	b  [setWays]bucket
}

// bucketTable is a fixed-size, set-associative table of token buckets.
type bucketTable struct {
	sets []bucketSet
	mask uint64
	rate int64 // thousandths of a response per millisecond = responses/s
	full int32 // a second's worth: the burst
	k0   uint64
	k1   uint64
}

func newBucketTable(size, rate int) *bucketTable {
	n := 1
	for n*setWays < size {
		n <<= 1
	}
	t := &bucketTable{sets: make([]bucketSet, n), mask: uint64(n - 1), rate: int64(rate), full: int32(rate) * 1000}
	var k [16]byte
	_, _ = rand.Read(k[:])
	t.k0, t.k1 = binary.LittleEndian.Uint64(k[:]), binary.LittleEndian.Uint64(k[8:])
	return t
}

// size is the number of buckets.
func (t *bucketTable) size() int { return len(t.sets) * setWays }

// hash keys the table: SipHash with a random key, so that a forger cannot
// aim many sources at one set.
func (t *bucketTable) hash(b []byte) uint64 {
	return siphash.Hash(t.k0, t.k1, b) | 1
}

// take takes one response from the bucket of key at now (milliseconds). ok
// says it may go; otherwise drops counts the responses dropped since the
// bucket was last full (this one included) and started says this drop begins
// a spell of limiting.
func (t *bucketTable) take(key uint64, now int64) (ok bool, drops uint32, started bool) {
	s := &t.sets[key&t.mask]
	s.mu.Lock()
	defer s.mu.Unlock()
	var b *bucket
	best := int64(-1)
	for i := range s.b {
		e := &s.b[i]
		if e.key == key {
			b = e
			break
		}
		// The victim is the fullest bucket once refilled: the least busy.
		if f := t.refilled(e, now); f > best {
			b, best = e, f
		}
	}
	if b.key != key {
		*b = bucket{key: key, last: now, tokens: t.full}
	} else if now > b.last {
		b.tokens = int32(t.refilled(b, now))
		b.last = now
	}
	if b.tokens == t.full {
		b.limited, b.drops = false, 0
	}
	if b.tokens >= 1000 {
		b.tokens -= 1000
		return true, 0, false
	}
	b.drops++
	started = !b.limited
	b.limited = true
	return false, b.drops, started
}

// refilled is what e's tokens come to at now; a free bucket counts as more
// than full.
func (t *bucketTable) refilled(e *bucket, now int64) int64 {
	if e.key == 0 {
		return int64(t.full) + 1
	}
	f := int64(e.tokens)
	if now > e.last {
		f += min(now-e.last, 1000) * t.rate
	}
	return min(f, int64(t.full))
}

// inUse counts the buckets that took a response in the last window
// milliseconds before now.
func (t *bucketTable) inUse(now, window int64) int {
	n := 0
	for i := range t.sets {
		s := &t.sets[i]
		s.mu.Lock()
		for j := range s.b {
			if s.b[j].key != 0 && now-s.b[j].last < window {
				n++
			}
		}
		s.mu.Unlock()
	}
	return n
}

// Kinds of response, each counted apart (NSD's and BIND's classes, those a
// zone without delegations or wildcards gives).
const (
	kindAnswer   byte = iota + 1 // records for the qname and type
	kindNoData                   // NOERROR, no records: per qname
	kindNXDomain                 // per zone (dnsd serves one)
	kindError                    // REFUSED, FORMERR, SERVFAIL, NOTIMP, BADCOOKIE...
)

var kindNames = [...]string{kindAnswer: "answer", kindNoData: "nodata", kindNXDomain: "nxdomain", kindError: "error"}

// rrl is the response rate limiter of one server.
type rrl struct {
	cfg   RRLConfig
	table *bucketTable
}

func newRRL(cfg RRLConfig) *rrl {
	return &rrl{cfg: cfg, table: newBucketTable(cfg.TableSize, cfg.Rate)}
}

// allowed reports whether src is on the allow list.
func (r *rrl) allowed(src netip.Addr) bool {
	for _, p := range r.cfg.Allow {
		if p.Contains(src) {
			return true
		}
	}
	return false
}

// prefix is src cut to the configured prefix length.
func (r *rrl) prefix(src netip.Addr) netip.Prefix {
	bits := r.cfg.IPv6Prefix
	if src.Is4() {
		bits = r.cfg.IPv4Prefix
	}
	p, _ := src.Prefix(bits)
	return p
}

// verdict is what RRL does with one response.
type verdict uint8

const (
	pass verdict = iota
	dropIt
	slipIt
)

// check counts reply, the response to go to src at now (milliseconds), and
// says whether it may go. nxname says reply denies that its name exists
// with compact denial (NOERROR, result.nxname): it counts as NXDOMAIN, or
// a flood of random names with DO would get a bucket per name. kind is the
// kind it was counted as; started says this response begins a spell of
// limiting for its bucket.
func (r *rrl) check(src netip.Addr, reply []byte, nxname bool, now int64) (v verdict, kind byte, started bool) {
	var key [16 + 1 + 255 + 2]byte
	a := r.prefix(src).Addr().As16()
	copy(key[:], a[:])
	kind, n := classify(reply, key[17:])
	if nxname && kind != kindError {
		kind, n = kindNXDomain, 0
	}
	key[16] = kind
	ok, drops, started := r.table.take(r.table.hash(key[:17+n]), now)
	switch {
	case ok:
		return pass, kind, false
	case r.cfg.Slip > 0 && drops%uint32(r.cfg.Slip) == 0:
		return slipIt, kind, started
	}
	return dropIt, kind, started
}

// classify says what kind of response reply is and writes what else keys
// its bucket into key (the lower-case qname and the type for an answer, the
// qname for NODATA), returning its length.
func classify(reply []byte, key []byte) (kind byte, n int) {
	if len(reply) < headerLen || reply[5] != 1 || reply[4] != 0 {
		return kindError, 0
	}
	switch reply[3] & 0x0F {
	case dns.RcodeSuccess:
	case dns.RcodeNameError:
		return kindNXDomain, 0
	default:
		return kindError, 0
	}
	end := questionEnd(reply)
	if end < 0 {
		return kindError, 0
	}
	name := reply[headerLen : end-4]
	n = copy(key, name)
	lowerWire(key[:n])
	if reply[6]|reply[7] == 0 && reply[2]&0x02 == 0 { // no answer, not truncated
		return kindNoData, n
	}
	key[n], key[n+1] = reply[end-4], reply[end-3]
	return kindAnswer, n + 2
}

// questionEnd returns the offset just past the first question of msg, whose
// name must be uncompressed (the question of every reply dnsd builds), or -1.
func questionEnd(msg []byte) int {
	off := headerLen
	for {
		if off >= len(msg) {
			return -1
		}
		l := int(msg[off])
		if l == 0 {
			break
		}
		if l > 63 || off-headerLen+l+1 > 254 {
			return -1
		}
		off += 1 + l
	}
	off += 1 + 4
	if off > len(msg) {
		return -1
	}
	return off
}

// appendSlip appends to out the slipped form of reply: its header and
// question with TC set and no records, as small as the query was.
func appendSlip(out, reply []byte) []byte {
	end := questionEnd(reply)
	if end < 0 {
		end = headerLen
	}
	out = append(out, reply[:end]...)
	out[2] |= 0x02 // TC
	out[4], out[5] = 0, 0
	if end > headerLen {
		out[5] = 1
	}
	clear(out[6:12])
	return out
}
