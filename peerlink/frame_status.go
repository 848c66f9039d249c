package peerlink

import (
	"fmt"

	"github.com/farmlb/farmlb/farm"
)

// record is what a member says about itself: its incarnation, a sequence
// number that grows with every change within the incarnation, and the
// fields of the farm list it owns. A record with a higher (Incarnation, Seq)
// replaces a lower one; equal or lower is stale news and is ignored.
//
// On the wire the reason is optional and last: a record without one is
// exactly the record of the first version of this frame (22 bytes), so
// frames from members that predate reasons still parse; a record with one
// adds a length-prefixed string, never empty (one encoding per value). A
// member sends reasons only on links whose ALPN says the peer reads them
// (alpnReasons); an older peer gets the record without its reason.
type record struct {
	Incarnation uint64
	Seq         uint64
	// Status is UP or DRAINING, or DOWN with a Reason (the member lives
	// but sends clients elsewhere); DOWN without a reason is what other
	// members conclude, never sent.
	Status   farm.Status
	Users    uint32
	Priority farm.Priority
	// Reason is farm.Server.Reason; "" for none.
	Reason string
}

// forOldPeer is the record as a peer that predates reasons must see it:
// no reason, and DOWN-with-a-reason as DRAINING, which such a peer reads
// as "alive, takes no new clients" (DOWN would stop its replication to
// this member).
func (r record) forOldPeer() record {
	if r.Status == farm.StatusDown && r.Reason != "" {
		r.Status = farm.StatusDraining
	}
	r.Reason = ""
	return r
}

// newer reports whether r is newer news than o.
func (r record) newer(o record) bool {
	if r.Incarnation != o.Incarnation {
		return r.Incarnation > o.Incarnation
	}
	return r.Seq > o.Seq
}

func (r record) append(b []byte) []byte {
	b = appendU64(appendU64(b, r.Incarnation), r.Seq)
	b = append(b, byte(r.Status))
	b = appendU32(b, r.Users)
	b = append(b, byte(r.Priority))
	if r.Reason != "" {
		b = appendStr(b, r.Reason)
	}
	return b
}

func (r *record) parse(rd *reader) {
	r.Incarnation = rd.u64()
	r.Seq = rd.u64()
	r.Status = farm.Status(rd.u8())
	r.Users = rd.u32()
	r.Priority = farm.Priority(rd.u8())
	if rd.err == nil && len(rd.b) > 0 {
		r.Reason = rd.str(farm.MaxReasonLen)
		if rd.err == nil && r.Reason == "" {
			rd.err = fmt.Errorf("empty reason (a record without one ends after the priority)")
		}
		if rd.err == nil && !validReason(r.Reason) {
			rd.err = fmt.Errorf("reason %q is not a token", r.Reason)
		}
	}
	if rd.err != nil {
		return
	}
	switch {
	case r.Status > farm.StatusDraining:
		rd.err = fmt.Errorf("status %d", r.Status)
	case r.Users > farm.MaxUsers:
		rd.err = fmt.Errorf("users %d out of range", r.Users)
	case r.Priority > farm.PriorityLowest:
		rd.err = fmt.Errorf("priority %d", r.Priority)
	}
}

// statusFrame carries the sender's own record; sent on every change
// (coalesced to one per Config.StatusInterval) and right after hello.
type statusFrame struct {
	Record record
}

func (*statusFrame) frameType() frameType { return typeStatus }

func (f *statusFrame) appendPayload(b []byte) []byte { return f.Record.append(b) }

func (f *statusFrame) parsePayload(p []byte) error {
	r := reader{b: p}
	f.Record.parse(&r)
	return r.done()
}

// validReason reports whether a reason is one the farm list accepts.
func validReason(s string) bool {
	srv := farm.Server{Name: "x", URL: "http://x", Reason: s}
	_, err := srv.Validate()
	return err == nil
}
