package dnsd

import (
	"encoding/binary"
	"io"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/farmlb/farmlb/farm"
)

// probeID marks the query rawExchange sends after the packet under test.
const probeID = 0xBEEF

// rawExchange sends pkt and then a valid probe query on one UDP socket or TCP
// connection, and returns the replies that came before the probe's: the
// server answers one socket's datagrams (and one connection's queries) in
// order, so no reply to pkt shows as none here, without a timeout.
func rawExchange(t *testing.T, s *Server, network string, pkt []byte) [][]byte {
	t.Helper()
	addr := s.Addr().String()
	if network == "tcp" {
		addr = s.TCPAddr().String()
	}
	c, err := net.Dial(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	probe := query(testZone, dns.TypeSOA)
	probe.Id = probeID
	pb, _ := probe.Pack()
	send := func(b []byte) {
		if network == "tcp" {
			b = append(binary.BigEndian.AppendUint16(nil, uint16(len(b))), b...)
		}
		if _, err := c.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	send(pkt)
	send(pb)
	var got [][]byte
	for {
		var b []byte
		if network == "tcp" {
			var l [2]byte
			if _, err := io.ReadFull(c, l[:]); err != nil {
				t.Fatalf("read: %v", err)
			}
			b = make([]byte, binary.BigEndian.Uint16(l[:]))
			if _, err := io.ReadFull(c, b); err != nil {
				t.Fatalf("read: %v", err)
			}
		} else {
			b = make([]byte, 65535)
			n, err := c.Read(b)
			if err != nil {
				t.Fatalf("read: %v", err)
			}
			b = b[:n]
		}
		if len(b) >= 2 && binary.BigEndian.Uint16(b) == probeID {
			return got
		}
		got = append(got, b)
	}
}

func packed(t *testing.T, m *dns.Msg) []byte {
	t.Helper()
	b, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestMalformed sends queries that are wrong on the wire and checks the
// reply, or that there is none.
func TestMalformed(t *testing.T) {
	s := startServer(t, testConfig(newTestSource(testList(t))))
	good := packed(t, query(testZone, dns.TypeA))
	with := func(f func(b []byte) []byte) []byte { return f(slices.Clone(good)) }
	twoOPT := query(testZone, dns.TypeA)
	twoOPT.SetEdns0(1232, false)
	twoOPT.Extra = append(twoOPT.Extra, &dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT}})
	withAnswer := query(testZone, dns.TypeA)
	withAnswer.Answer = []dns.RR{&dns.A{Hdr: dns.RR_Header{Name: testZone, Rrtype: dns.TypeA, Class: dns.ClassINET}, A: net.IPv4(1, 2, 3, 4)}}
	update := query(testZone, dns.TypeSOA)
	update.Opcode = dns.OpcodeUpdate
	notify := query(testZone, dns.TypeSOA)
	notify.Opcode = dns.OpcodeNotify
	tsigQ := query(testZone, dns.TypeTSIG)

	tests := []struct {
		name  string
		pkt   []byte
		reply bool // a reply is expected
		rcode int
	}{
		{name: "shorter than a header: no reply", pkt: good[:7]},
		{name: "a response: no reply", pkt: with(func(b []byte) []byte { b[2] |= 0x80; return b })},
		{name: "header only", pkt: good[:12], reply: true, rcode: dns.RcodeFormatError},
		{name: "two questions announced, one sent", pkt: with(func(b []byte) []byte { b[5] = 2; return b }), reply: true, rcode: dns.RcodeFormatError},
		{name: "no question", pkt: with(func(b []byte) []byte { b[5] = 0; return b[:12] }), reply: true, rcode: dns.RcodeFormatError},
		{name: "label runs past the end", pkt: with(func(b []byte) []byte { b[12] = 60; return b }), reply: true, rcode: dns.RcodeFormatError},
		{name: "compression loop in the name", pkt: append(slices.Clone(good[:12]), 0xC0, 12, 0, 1, 0, 1), reply: true, rcode: dns.RcodeFormatError},
		{name: "question cut short", pkt: good[:len(good)-2], reply: true, rcode: dns.RcodeFormatError},
		{name: "two OPT records", pkt: packed(t, twoOPT), reply: true, rcode: dns.RcodeFormatError},
		{name: "an answer section in a query", pkt: packed(t, withAnswer), reply: true, rcode: dns.RcodeFormatError},
		{name: "TSIG as the question type", pkt: packed(t, tsigQ), reply: true, rcode: dns.RcodeFormatError},
		{name: "UPDATE: not implemented", pkt: packed(t, update), reply: true, rcode: dns.RcodeNotImplemented},
		{name: "NOTIFY: not implemented", pkt: packed(t, notify), reply: true, rcode: dns.RcodeNotImplemented},
		{name: "trailing bytes are ignored", pkt: append(slices.Clone(good), 1, 2, 3), reply: true, rcode: dns.RcodeSuccess},
	}
	for _, network := range []string{"udp", "tcp"} {
		for _, tc := range tests {
			t.Run(network+"/"+tc.name, func(t *testing.T) {
				got := rawExchange(t, s, network, tc.pkt)
				if !tc.reply {
					if len(got) != 0 {
						t.Fatalf("got %d replies, want none", len(got))
					}
					return
				}
				if len(got) != 1 {
					t.Fatalf("got %d replies, want 1", len(got))
				}
				r := new(dns.Msg)
				if err := r.Unpack(got[0]); err != nil {
					t.Fatalf("reply does not parse: %v", err)
				}
				if r.Id != binary.BigEndian.Uint16(tc.pkt) || !r.Response {
					t.Errorf("reply id %d response %v, want id %d and a response", r.Id, r.Response, binary.BigEndian.Uint16(tc.pkt))
				}
				if r.Rcode != tc.rcode {
					t.Errorf("rcode %s, want %s", dns.RcodeToString[r.Rcode], dns.RcodeToString[tc.rcode])
				}
			})
		}
	}
}

// TestCaseEcho checks that the question comes back as asked and that the
// answer's names follow it (resolvers using 0x20 randomisation compare them).
func TestCaseEcho(t *testing.T) {
	s := startServer(t, testConfig(newTestSource(testList(t))))
	tests := []struct {
		name   string
		qname  string
		qtype  uint16
		rcode  int
		owners string // the name every answer record must carry exactly
	}{
		{name: "service A", qname: "StReAm.FaRmLb.TeSt.", qtype: dns.TypeA, owners: "StReAm.FaRmLb.TeSt."},
		{name: "_farm TXT", qname: "_FARM.stream.FARMLB.test.", qtype: dns.TypeTXT, owners: "_FARM.stream.FARMLB.test."},
		{name: "server A", qname: "SERVERA.Stream.Farmlb.Test.", qtype: dns.TypeA, owners: "SERVERA.Stream.Farmlb.Test."},
		{name: "NXDOMAIN", qname: "NoSuch.STREAM.farmlb.TEST.", qtype: dns.TypeA, rcode: dns.RcodeNameError},
		{name: "REFUSED", qname: "WWW.Example.COM.", qtype: dns.TypeA, rcode: dns.RcodeRefused},
	}
	for _, network := range []string{"udp", "tcp"} {
		for _, tc := range tests {
			t.Run(network+"/"+tc.name, func(t *testing.T) {
				r := exchange(t, s, network, query(tc.qname, tc.qtype))
				if r.Rcode != tc.rcode {
					t.Fatalf("rcode %s, want %s", dns.RcodeToString[r.Rcode], dns.RcodeToString[tc.rcode])
				}
				if len(r.Question) != 1 || r.Question[0].Name != tc.qname {
					t.Errorf("question %v, want %q as asked", r.Question, tc.qname)
				}
				if tc.owners != "" && len(r.Answer) == 0 {
					t.Fatal("no answer")
				}
				for _, rr := range r.Answer {
					if rr.Header().Name != tc.owners {
						t.Errorf("answer owner %q, want %q", rr.Header().Name, tc.owners)
					}
				}
			})
		}
	}
}

// TestRotation checks that the service name's addresses rotate on every
// answer, over UDP and TCP: each answer is the same cycle started one server
// further on.
func TestRotation(t *testing.T) {
	l := bigList(t, 5)
	s := startServer(t, testConfig(newTestSource(l)))
	for _, network := range []string{"udp", "tcp"} {
		t.Run(network, func(t *testing.T) {
			var firsts []string
			var base []string
			for i := 0; i < 2*len(l.Servers); i++ {
				r := exchange(t, s, network, query(testZone, dns.TypeA))
				if len(r.Answer) != len(l.Servers) {
					t.Fatalf("%d answers, want %d", len(r.Answer), len(l.Servers))
				}
				var got []string
				for _, rr := range r.Answer {
					got = append(got, rr.(*dns.A).A.String())
				}
				if base == nil {
					base = got
				}
				// got must be base rotated.
				k := slices.Index(base, got[0])
				if want := append(slices.Clone(base[k:]), base[:k]...); !slices.Equal(got, want) {
					t.Fatalf("answer %d is %v, not a rotation of %v", i, got, base)
				}
				firsts = append(firsts, got[0])
			}
			for i := 1; i < len(firsts); i++ {
				if firsts[i] == firsts[i-1] {
					t.Errorf("answers %d and %d start with the same server %s: %v", i-1, i, firsts[i], firsts)
				}
			}
			if n := len(uniq(firsts)); n != len(l.Servers) {
				t.Errorf("%d servers came first over %d answers, want all %d", n, len(firsts), len(l.Servers))
			}
		})
	}
}

func uniq(s []string) []string {
	s = sorted(s)
	return slices.Compact(s)
}

// TestEDNS checks the OPT record of replies and BADVERS.
func TestEDNS(t *testing.T) {
	s := startServer(t, testConfig(newTestSource(testList(t))))
	tests := []struct {
		name    string
		qname   string
		qtype   uint16
		version uint8
		do      bool
		rcode   int
		answers int
	}{
		{name: "EDNS0 answer carries the server's OPT", qname: testZone, qtype: dns.TypeA, rcode: dns.RcodeSuccess, answers: 2},
		{name: "DO is echoed", qname: testZone, qtype: dns.TypeA, do: true, rcode: dns.RcodeSuccess, answers: 2},
		{name: "NXDOMAIN with OPT", qname: "x." + testZone, qtype: dns.TypeA, rcode: dns.RcodeNameError},
		{name: "REFUSED with OPT", qname: "example.org.", qtype: dns.TypeA, rcode: dns.RcodeRefused},
		{name: "version 1: BADVERS", qname: testZone, qtype: dns.TypeA, version: 1, rcode: dns.RcodeBadVers},
	}
	for _, network := range []string{"udp", "tcp"} {
		for _, tc := range tests {
			t.Run(network+"/"+tc.name, func(t *testing.T) {
				m := query(tc.qname, tc.qtype)
				m.SetEdns0(4096, tc.do)
				m.IsEdns0().SetVersion(tc.version)
				r := exchange(t, s, network, m)
				if r.Rcode != tc.rcode {
					t.Fatalf("rcode %s, want %s", dns.RcodeToString[r.Rcode], dns.RcodeToString[tc.rcode])
				}
				if len(r.Answer) != tc.answers {
					t.Errorf("%d answers, want %d", len(r.Answer), tc.answers)
				}
				opt := r.IsEdns0()
				if opt == nil {
					t.Fatal("no OPT record in the reply")
				}
				if opt.Version() != 0 || opt.UDPSize() != 1232 || opt.Do() != tc.do {
					t.Errorf("OPT version %d size %d DO %v, want version 0 size 1232 DO %v", opt.Version(), opt.UDPSize(), opt.Do(), tc.do)
				}
			})
		}
	}
}

// TestTruncation checks that an answer larger than the client's buffer comes
// truncated over UDP, within the buffer, and whole over TCP, for a farm of 100
// servers.
func TestTruncation(t *testing.T) {
	l := bigList(t, 100)
	s := startServer(t, testConfig(newTestSource(l)))
	tests := []struct {
		name  string
		qname string
		qtype uint16
		edns  uint16 // 0: no EDNS0
		limit int    // the largest UDP reply allowed
	}{
		{name: "_farm TXT without EDNS0", qname: "_farm." + testZone, qtype: dns.TypeTXT, limit: 512},
		{name: "_farm TXT with EDNS0 1232", qname: "_farm." + testZone, qtype: dns.TypeTXT, edns: 1232, limit: 1232},
		{name: "_farm TXT with EDNS0 4096 (the server sends 1232 at most)", qname: "_farm." + testZone, qtype: dns.TypeTXT, edns: 4096, limit: 1232},
		{name: "service A without EDNS0", qname: testZone, qtype: dns.TypeA, limit: 512},
		{name: "SRV with EDNS0 1232", qname: "_farmlb._tcp." + testZone, qtype: dns.TypeSRV, edns: 1232, limit: 1232},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := query(tc.qname, tc.qtype)
			if tc.edns > 0 {
				m.SetEdns0(tc.edns, false)
			}
			raw := rawExchange(t, s, "udp", packed(t, m))
			if len(raw) != 1 {
				t.Fatalf("%d UDP replies, want 1", len(raw))
			}
			if len(raw[0]) > tc.limit {
				t.Errorf("UDP reply is %d bytes, more than %d", len(raw[0]), tc.limit)
			}
			r := new(dns.Msg)
			if err := r.Unpack(raw[0]); err != nil {
				t.Fatal(err)
			}
			if !r.Truncated || r.Rcode != dns.RcodeSuccess {
				t.Errorf("UDP reply TC %v rcode %s, want TC and NOERROR", r.Truncated, dns.RcodeToString[r.Rcode])
			}
			if (tc.edns > 0) != (r.IsEdns0() != nil) {
				t.Errorf("UDP reply has OPT %v, want %v", r.IsEdns0() != nil, tc.edns > 0)
			}
			whole := exchange(t, s, "tcp", m)
			if whole.Truncated {
				t.Fatal("TC set over TCP")
			}
			switch tc.qtype {
			case dns.TypeTXT:
				if len(whole.Answer) != 1 {
					t.Fatalf("%d TXT records, want 1", len(whole.Answer))
				}
				got, err := farm.ParseTXT(whole.Answer[0].(*dns.TXT).Txt)
				if err != nil {
					t.Fatalf("the TXT does not parse as a farm list: %v", err)
				}
				if len(got.Servers) != len(l.Servers) {
					t.Errorf("TXT lists %d servers, want %d", len(got.Servers), len(l.Servers))
				}
			default:
				if len(whole.Answer) != len(l.Servers) {
					t.Errorf("%d records over TCP, want %d", len(whole.Answer), len(l.Servers))
				}
			}
		})
	}
}

// TestOtherQueries covers classes, ANY and a name server list from an
// unspecified listen address.
func TestOtherQueries(t *testing.T) {
	s := startServer(t, testConfig(newTestSource(testList(t))))
	tests := []struct {
		name  string
		m     func() *dns.Msg
		rcode int
		types []uint16 // the types in the answer, in order
	}{
		{name: "class CH: REFUSED", m: func() *dns.Msg {
			m := query(testZone, dns.TypeTXT)
			m.Question[0].Qclass = dns.ClassCHAOS
			return m
		}, rcode: dns.RcodeRefused},
		{name: "ANY at the apex: every set", m: func() *dns.Msg { return query(testZone, dns.TypeANY) }, types: []uint16{dns.TypeSOA, dns.TypeNS, dns.TypeA, dns.TypeA, dns.TypeAAAA}},
		{name: "ANY at a server", m: func() *dns.Msg { return query("servern."+testZone, dns.TypeANY) }, types: []uint16{dns.TypeA, dns.TypeAAAA}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := exchange(t, s, "udp", tc.m())
			if r.Rcode != tc.rcode {
				t.Fatalf("rcode %s, want %s", dns.RcodeToString[r.Rcode], dns.RcodeToString[tc.rcode])
			}
			var got []uint16
			for _, rr := range r.Answer {
				got = append(got, rr.Header().Rrtype)
			}
			if !slices.Equal(got, tc.types) {
				t.Errorf("answer types %v, want %v", got, tc.types)
			}
		})
	}
}

// TestNoServerUp checks what is answered when no server is UP: the service
// name is NODATA, each server's own name and _farm still answer, and with
// HoldLastUp the last table with an UP server stays in use.
func TestNoServerUp(t *testing.T) {
	allDown := func() *farm.List {
		l := testList(t).Clone()
		for i := range l.Servers {
			l.Servers[i].Status = farm.StatusDown
		}
		return l
	}
	tests := []struct {
		name     string
		hold     bool
		wantA    int // service A records after the farm goes DOWN
		wantHeld float64
	}{
		{name: "without HoldLastUp: NODATA", hold: false, wantA: 0},
		{name: "with HoldLastUp: the last table with an UP server", hold: true, wantA: 2, wantHeld: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src := newTestSource(testList(t))
			cfg := testConfig(src)
			cfg.HoldLastUp = tc.hold
			s := startServer(t, cfg)
			tables := s.watchTables(t)
			down := allDown()
			src.Set(down)
			waitTable(t, tables, down)
			r := exchange(t, s, "udp", query(testZone, dns.TypeA))
			if r.Rcode != dns.RcodeSuccess || len(r.Answer) != tc.wantA {
				t.Fatalf("service A: rcode %s, %d answers; want NOERROR and %d", dns.RcodeToString[r.Rcode], len(r.Answer), tc.wantA)
			}
			if tc.wantA == 0 && (len(r.Ns) != 1 || r.Ns[0].Header().Rrtype != dns.TypeSOA) {
				t.Errorf("NODATA without the SOA: %v", r.Ns)
			}
			if got := exchange(t, s, "udp", query("serverA."+testZone, dns.TypeA)); len(got.Answer) != 1 {
				t.Errorf("server's own name: %d answers, want 1", len(got.Answer))
			}
			txt := exchange(t, s, "udp", query("_farm."+testZone, dns.TypeTXT))
			if len(txt.Answer) != 1 {
				t.Fatalf("_farm: %d answers", len(txt.Answer))
			}
			if got := s.metrics.tableHeld; gaugeValue(t, got) != tc.wantHeld {
				t.Errorf("table_held %v, want %v", gaugeValue(t, got), tc.wantHeld)
			}
			held := strings.Contains(strings.Join(txt.Answer[0].(*dns.TXT).Txt, "\n"), " UP ")
			if held != tc.hold {
				t.Errorf("_farm shows UP servers: %v, want %v", held, tc.hold)
			}
			// The farm comes back: answers follow at once.
			back := testList(t)
			src.Set(back)
			waitTable(t, tables, back)
			if r := exchange(t, s, "udp", query(testZone, dns.TypeA)); len(r.Answer) != 2 {
				t.Errorf("after recovery: %d answers, want 2", len(r.Answer))
			}
			if gaugeValue(t, s.metrics.tableHeld) != 0 {
				t.Error("table_held still 1 after recovery")
			}
		})
	}
}
