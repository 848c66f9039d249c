package dnsd

import (
	"bufio"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/miekg/dns"
)

// WriteZone writes the records the server answers from right now as a
// master file (RFC 1035), SOA first: the same data for another server (the
// benchmark loads it into NSD) or for a reader. The service name's addresses
// are written in their stored order; a server rotates them.
//
// A signed zone is written whole: the DNSKEY set, every set's signatures, and
// an NSEC chain (signed as the file is written) in place of the compact
// denial the server answers with, so that the file is a standard signed zone
// that another server can serve and ldns-verify-zone can check.
func (s *Server) WriteZone(w io.Writer) error {
	z := s.zone.Load()
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "; zone %s, serial %d, from a table of %d servers (%d UP)\n", z.cfg.Origin, z.serial, len(z.list.Servers), z.up)
	fmt.Fprintf(bw, "$ORIGIN %s\n", z.cfg.Origin)
	fmt.Fprintln(bw, z.soa.String())
	apex := z.nodes[string(z.origin)]
	for _, sig := range apex.set(dns.TypeSOA).sigs {
		fmt.Fprintln(bw, sig.String())
	}
	nodes := make([]*node, 0, len(z.nodes))
	for _, n := range z.nodes {
		nodes = append(nodes, n)
	}
	// Canonical order (RFC 4034 6.1) keeps the output stable.
	slices.SortFunc(nodes, func(a, b *node) int { return canonicalCompare(a.name, b.name) })
	// Empty non-terminals have no records and no NSEC of their own.
	nodes = slices.DeleteFunc(nodes, func(n *node) bool { return len(n.sets) == 0 })
	for i, n := range nodes {
		for _, set := range n.sets {
			if set.rrtype == dns.TypeSOA {
				continue
			}
			for _, rr := range set.rrs {
				fmt.Fprintln(bw, rr.String())
			}
			for _, sig := range set.sigs {
				fmt.Fprintln(bw, sig.String())
			}
		}
		if z.signer != nil {
			chain, err := z.chainNSEC(n, nodes[(i+1)%len(nodes)].name)
			if err != nil {
				return err
			}
			for _, rr := range chain {
				fmt.Fprintln(bw, rr.String())
			}
		}
	}
	return bw.Flush()
}

// canonicalCompare orders names by their labels from the right.
func canonicalCompare(a, b string) int {
	la, lb := dns.SplitDomainName(a), dns.SplitDomainName(b)
	for i, j := len(la)-1, len(lb)-1; i >= 0 && j >= 0; i, j = i-1, j-1 {
		if c := strings.Compare(strings.ToLower(la[i]), strings.ToLower(lb[j])); c != 0 {
			return c
		}
	}
	return len(la) - len(lb)
}
