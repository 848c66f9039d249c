package peerlink

import (
	"fmt"

	"github.com/farmlb/farmlb/farm"
)

// record is what a member says about itself: its incarnation, a sequence
// number that grows with every change within the incarnation, and the
// fields of the farm list it owns. A record with a higher (Incarnation, Seq)
// replaces a lower one; equal or lower is stale news and is ignored.
type record struct {
	Incarnation uint64
	Seq         uint64
	Status      farm.Status // UP or DRAINING (DOWN is what others conclude)
	Users       uint32
	Priority    farm.Priority
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
	return append(b, byte(r.Priority))
}

func (r *record) parse(rd *reader) {
	r.Incarnation = rd.u64()
	r.Seq = rd.u64()
	r.Status = farm.Status(rd.u8())
	r.Users = rd.u32()
	r.Priority = farm.Priority(rd.u8())
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
