package dnsd

import (
	"encoding/binary"
	"slices"
	"sync/atomic"

	"github.com/miekg/dns"
)

// The query path. Every answer is first built by zone.respond with miekg/dns
// (the slow path). When a table changes, the answer to each name and type of
// the zone is built once that way for a lower-case question and kept in wire
// form; a usual query (one question in class IN, at most an EDNS0 OPT record
// without options) is then answered by copying those bytes, writing the
// query's ID, flags and question over them (so the question's case is echoed:
// every name in the answer points at the question), rotating the service
// name's addresses and appending an OPT record. Everything else takes the
// slow path, which is also the reference the tests and the fuzz target hold
// the fast path to.

const (
	headerLen = 12
	optLen    = 11 // an OPT record without options
	tcpMax    = dns.MaxMsgSize
)

// wireAnswer is one precomputed answer.
type wireAnswer struct {
	msg []byte // for the lower-case question, ID 0, no OPT
	// rotating records, when rot is non-nil: rotN records of rotSize bytes
	// each from msg[rotOff]; each is position-independent (its owner is a
	// pointer to the question), so a rotation is a rotation of chunks.
	rotOff, rotSize, rotN int
	rot                   *atomic.Uint64
}

// precompute builds the fast-path answers of one node: for queries without
// the DO bit and, in a signed zone, for queries with it.
func (z *zone) precompute(lname []byte, n *node) {
	n.fast, n.nodata = z.precomputeFor(lname, n, false)
	if z.signer != nil {
		n.fastDO, n.nodataDO = z.precomputeFor(lname, n, true)
	}
}

func (z *zone) precomputeFor(lname []byte, n *node, do bool) (fast []*wireAnswer, nodata *wireAnswer) {
	q := dns.Question{Name: n.name, Qclass: dns.ClassINET}
	req := new(dns.Msg)
	build := func(qtype uint16) *wireAnswer {
		q.Qtype = qtype
		m := z.respond(req, q, lname, false, do)
		msg, err := m.Pack()
		if err != nil || len(msg) > tcpMax-optLen {
			return nil // the slow path answers (and says why it cannot)
		}
		return &wireAnswer{msg: msg}
	}
	fast = make([]*wireAnswer, len(n.sets))
	for i, s := range n.sets {
		w := build(s.rrtype)
		if w != nil && s.rot != nil {
			sigs := 0
			if do {
				sigs = len(s.sigs)
			}
			if !w.setRotation(len(lname), s, sigs) {
				w = nil
			}
		}
		fast[i] = w
	}
	// Any type the node lacks gets the same NODATA: its question is
	// overwritten by the query's. TypeNone is never a set's type.
	return fast, build(dns.TypeNone)
}

// setRotation finds the rotating records in w.msg: the answer section up to
// the sigs signatures that follow them, each record a pointer to the
// question, type, class, TTL, length, address.
func (w *wireAnswer) setRotation(nameLen int, s *rrset, sigs int) bool {
	size := 2 + 10 + 4
	if s.rrtype == dns.TypeAAAA {
		size = 2 + 10 + 16
	}
	off := headerLen + nameLen + 4
	if int(binary.BigEndian.Uint16(w.msg[6:])) != len(s.rrs)+sigs || off+size*len(s.rrs) > len(w.msg) {
		return false
	}
	for i := range s.rrs {
		r := w.msg[off+i*size:]
		if r[0] != 0xC0 || r[1] != headerLen || binary.BigEndian.Uint16(r[10:]) != uint16(size-12) {
			return false
		}
	}
	w.rotOff, w.rotSize, w.rotN, w.rot = off, size, len(s.rrs), s.rot
	return true
}

// result is what one query came to, for the metrics.
type result struct {
	qtype     uint16
	rcode     int  // -1: no reply
	truncated bool // a UDP answer with TC set
	slow      bool // answered by the slow path
	// nxname: a name that does not exist, answered NOERROR with compact
	// denial (a DO query in a signed zone): RRL counts it as NXDOMAIN.
	nxname bool
}

// answer writes the reply to query into buf (which it may outgrow) and
// returns it; nil means no reply. udp says the query came over UDP, which
// bounds the reply by the client's buffer (512 without EDNS0) and the
// server's UDPSize.
func (z *zone) answer(buf, query []byte, udp bool) ([]byte, result) {
	if out, res, ok := z.fast(buf, query, udp); ok {
		return out, res
	}
	return z.slow(buf, query, udp)
}

// udpLimit is the largest UDP reply for a query with (edns) or without an OPT
// record advertising size.
func (z *zone) udpLimit(edns bool, size uint16) int {
	if !edns {
		return dns.MinMsgSize
	}
	return int(max(dns.MinMsgSize, min(size, z.udpSize)))
}

// fast answers a usual query from the precomputed answers; ok is false when
// the slow path must answer.
func (z *zone) fast(buf, q []byte, udp bool) (out []byte, res result, ok bool) {
	if len(q) < headerLen+5 ||
		q[2]&0xF8 != 0 || // QR 0 and opcode QUERY
		q[4] != 0 || q[5] != 1 || // one question
		q[6]|q[7]|q[8]|q[9] != 0 || // no answer or authority records
		q[10] != 0 || q[11] > 1 { // at most one additional record (OPT)
		return nil, res, false
	}
	// The name: uncompressed labels, folded into lname.
	var lower [255]byte
	off := headerLen
	for {
		l := int(q[off])
		if l == 0 {
			break
		}
		if l > 63 || off+1+l >= len(q) || off-headerLen+1+l >= len(lower) {
			return nil, res, false
		}
		off += 1 + l
	}
	lname := lowerWire(append(lower[:0], q[headerLen:off+1]...))
	off++
	if off+4 > len(q) {
		return nil, res, false
	}
	qtype := binary.BigEndian.Uint16(q[off:])
	res.qtype = qtype
	if binary.BigEndian.Uint16(q[off+2:]) != dns.ClassINET ||
		qtype == dns.TypeOPT || qtype >= 128 && qtype <= 255 { // meta types
		return nil, res, false
	}
	off += 4
	qEnd := off
	edns, do, size := false, false, uint16(0)
	if q[11] == 1 {
		if off+optLen > len(q) || q[off] != 0 || binary.BigEndian.Uint16(q[off+1:]) != dns.TypeOPT ||
			q[off+6] != 0 { // EDNS version 0 (others get BADVERS from the slow path)
			return nil, res, false
		}
		edns, do, size = true, q[off+7]&0x80 != 0, binary.BigEndian.Uint16(q[off+3:])
		rdlen := int(binary.BigEndian.Uint16(q[off+9:]))
		off += optLen
		if off+rdlen != len(q) || !ignorableOptions(q[off:]) {
			return nil, res, false
		}
		off += rdlen
	}
	if off != len(q) {
		return nil, res, false
	}
	limit := tcpMax
	if udp {
		limit = z.udpLimit(edns, size)
	}

	n, zoneOff, inZone := z.lookup(lname)
	out = buf[:0]
	switch {
	case !inZone:
		out = appendHeader(out, q, 0, dns.RcodeRefused, 1, 0, 0)
		out = append(out, q[headerLen:qEnd]...)
		res.rcode = dns.RcodeRefused
	case n == nil && do && z.signer != nil:
		// Compact denial: NOERROR, SOA, the name's own NSEC, signatures.
		d := z.denial(lname)
		if d == nil {
			return nil, res, false
		}
		k := len(z.nxSigTails)
		out = appendHeader(out, q, 0x04, dns.RcodeSuccess, 1, byte(1+k+len(d.rrs)), 0)
		out = append(out, q[headerLen:qEnd]...)
		ptr := 0xC000 | uint16(headerLen+zoneOff)
		out = append(out, byte(ptr>>8), byte(ptr))
		out = append(out, z.nxTail...)
		for _, t := range z.nxSigTails {
			out = append(out, byte(ptr>>8), byte(ptr))
			out = append(out, t...)
		}
		out = append(out, 0xC0, headerLen)
		out = append(out, d.tail...)
		res.rcode = dns.RcodeSuccess
		res.nxname = true
	case n == nil:
		out = appendHeader(out, q, 0x04, dns.RcodeNameError, 1, 1, 0)
		out = append(out, q[headerLen:qEnd]...)
		ptr := 0xC000 | uint16(headerLen+zoneOff)
		out = append(out, byte(ptr>>8), byte(ptr))
		out = append(out, z.nxTail...)
		res.rcode = dns.RcodeNameError
	default:
		w, ws := n.nodata, n.fast
		if do && z.signer != nil && (qtype == dns.TypeNSEC || qtype == dns.TypeRRSIG) {
			return nil, res, false // rare: the slow path answers them
		}
		if do && z.signer != nil {
			w, ws = n.nodataDO, n.fastDO
		}
		for i, s := range n.sets {
			if s.rrtype == qtype {
				w = ws[i]
				break
			}
		}
		if w == nil || len(w.msg)+optLen > limit {
			return nil, res, false // too large for the client: the slow path truncates
		}
		if w.rot == nil {
			out = append(out, w.msg...)
		} else {
			r := int((w.rot.Add(1) - 1) % uint64(w.rotN))
			cut := w.rotOff + r*w.rotSize
			end := w.rotOff + w.rotN*w.rotSize
			out = append(out, w.msg[:w.rotOff]...)
			out = append(out, w.msg[cut:end]...)
			out = append(out, w.msg[w.rotOff:cut]...)
			out = append(out, w.msg[end:]...)
		}
		copy(out[headerLen:], q[headerLen:qEnd]) // the question, as asked
		out[0], out[1] = q[0], q[1]
		out[2] |= q[2] & 0x01 // RD
		out[3] |= q[3] & 0x10 // CD
		res.rcode = int(out[3] & 0x0F)
	}
	if edns {
		out = appendOPT(out, z.udpSize, do)
		binary.BigEndian.PutUint16(out[10:], binary.BigEndian.Uint16(out[10:])+1)
	}
	if len(out) > limit {
		return nil, res, false
	}
	return out, res, true
}

// ignorableOptions reports whether opts, the data of an OPT record, holds
// only options the server ignores and whose data cannot be malformed: NSID,
// COOKIE (resolvers such as BIND and dig send one on every query; a server
// without cookies ignores it, RFC 7873 5.2.1) and PADDING. Anything else
// takes the slow path.
func ignorableOptions(opts []byte) bool {
	for len(opts) > 0 {
		if len(opts) < 4 {
			return false
		}
		code, n := binary.BigEndian.Uint16(opts), int(binary.BigEndian.Uint16(opts[2:]))
		if n > len(opts)-4 {
			return false
		}
		switch code {
		case dns.EDNS0NSID, dns.EDNS0COOKIE, dns.EDNS0PADDING:
		default:
			return false
		}
		opts = opts[4+n:]
	}
	return true
}

// appendHeader appends a reply header for query q: its ID, opcode, RD and CD,
// with the given AA flag (0x04 or 0), rcode and counts (no answers).
func appendHeader(out, q []byte, aa byte, rcode int, qdcount, nscount, arcount byte) []byte {
	return append(out,
		q[0], q[1],
		0x80|q[2]&0x78|aa|q[2]&0x01, q[3]&0x10|byte(rcode&0x0F),
		0, qdcount, 0, 0, 0, nscount, 0, arcount)
}

// appendOPT appends an OPT record: root owner, the server's UDP size,
// extended rcode 0, version 0, the DO bit echoed, no options.
func appendOPT(out []byte, size uint16, do bool) []byte {
	flags := byte(0)
	if do {
		flags = 0x80
	}
	return append(out, 0, 0, byte(dns.TypeOPT), byte(size>>8), byte(size), 0, 0, flags, 0, 0, 0)
}

// slow answers any query with miekg/dns: it parses the whole message and
// checks it strictly.
func (z *zone) slow(buf, q []byte, udp bool) ([]byte, result) {
	res := result{slow: true, rcode: -1}
	if len(q) < headerLen || q[2]&0x80 != 0 {
		return nil, res // no ID to answer, or a response: never answer those
	}
	headerOnly := func(rcode int) ([]byte, result) {
		res.rcode = rcode
		return appendHeader(buf[:0], q, 0, rcode, 0, 0, 0), res
	}
	if opcode := int(q[2]>>3) & 0x0F; opcode != dns.OpcodeQuery {
		return headerOnly(dns.RcodeNotImplemented)
	}
	req := new(dns.Msg)
	if err := req.Unpack(q); err != nil {
		return headerOnly(dns.RcodeFormatError)
	}
	// miekg/dns trusts nothing in the counts and stops early; a query whose
	// counts do not match its records is malformed.
	counts := func(i int) int { return int(binary.BigEndian.Uint16(q[4+2*i:])) }
	if len(req.Question) != counts(0) || len(req.Answer) != counts(1) || len(req.Ns) != counts(2) || len(req.Extra) != counts(3) ||
		len(req.Question) != 1 || len(req.Answer) != 0 || len(req.Ns) != 0 {
		return headerOnly(dns.RcodeFormatError)
	}
	// miekg/dns also takes a question without its type or class.
	if _, end, err := dns.UnpackDomainName(q, headerLen); err != nil || end+4 > len(q) {
		return headerOnly(dns.RcodeFormatError)
	}
	var opt *dns.OPT
	for _, rr := range req.Extra {
		if o, ok := rr.(*dns.OPT); ok {
			if opt != nil || o.Hdr.Name != "." {
				return headerOnly(dns.RcodeFormatError) // RFC 6891 6.1.1
			}
			opt = o
		}
	}
	question := req.Question[0]
	res.qtype = question.Qtype
	limit := tcpMax
	if udp {
		size := uint16(0)
		if opt != nil {
			size = opt.UDPSize()
		}
		limit = z.udpLimit(opt != nil, size)
	}
	var m *dns.Msg
	switch {
	case opt != nil && opt.Version() != 0:
		m = new(dns.Msg)
		m.SetRcode(req, dns.RcodeBadVers)
		m.Authoritative = false
	case question.Qtype == dns.TypeOPT || question.Qtype == dns.TypeTSIG || question.Qtype == dns.TypeTKEY:
		m = new(dns.Msg)
		m.SetRcode(req, dns.RcodeFormatError)
		m.Authoritative = false
	case question.Qclass != dns.ClassINET || question.Qtype == dns.TypeAXFR || question.Qtype == dns.TypeIXFR:
		m = new(dns.Msg)
		m.SetRcode(req, dns.RcodeRefused)
		m.Authoritative = false
	default:
		var nb [256]byte
		n, err := dns.PackDomainName(question.Name, nb[:], 0, nil, false)
		if err != nil {
			return headerOnly(dns.RcodeFormatError)
		}
		m = z.respond(req, question, lowerWire(nb[:n]), true, opt != nil && opt.Do())
		res.nxname = m.Rcode == dns.RcodeSuccess && deniesName(m.Ns)
	}
	m.CheckingDisabled = req.CheckingDisabled
	if opt != nil {
		m.SetEdns0(z.udpSize, opt.Do())
	}
	if udp {
		m.Truncate(limit)
		m.Compress = true // Truncate turns it off when the answer fits without
	}
	out, err := m.PackBuffer(buf)
	if err != nil || len(out) > limit {
		return headerOnly(dns.RcodeServerFailure)
	}
	res.rcode = m.Rcode
	res.truncated = m.Truncated
	return out, res
}

// deniesName reports whether ns, the authority section of an answer, holds
// the compact denial of a name that does not exist: an NSEC with NXNAME.
func deniesName(ns []dns.RR) bool {
	for _, rr := range ns {
		if n, ok := rr.(*dns.NSEC); ok && slices.Contains(n.TypeBitMap, dns.TypeNXNAME) {
			return true
		}
	}
	return false
}
