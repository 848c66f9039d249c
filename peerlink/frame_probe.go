package peerlink

// probeRequestFrame asks a member whether it still hears Target: sent to
// every other member when the sender stops hearing Target ("a simple
// negotiation" before declaring it DOWN).
type probeRequestFrame struct {
	ID     uint64
	Target string
}

func (*probeRequestFrame) frameType() frameType { return typeProbeReq }

func (f *probeRequestFrame) appendPayload(b []byte) []byte {
	return appendStr(appendU64(b, f.ID), f.Target)
}

func (f *probeRequestFrame) parsePayload(p []byte) error {
	r := reader{b: p}
	f.ID = r.u64()
	f.Target = r.str(maxNameLen)
	return r.done()
}

// probeReplyFrame answers a probe request: Heard is true when the replier
// heard Target after the request arrived; Record is the replier's latest
// record of Target (so a member cut off from Target still sees its load).
type probeReplyFrame struct {
	ID     uint64
	Target string
	Heard  bool
	Record record
}

func (*probeReplyFrame) frameType() frameType { return typeProbeReply }

func (f *probeReplyFrame) appendPayload(b []byte) []byte {
	b = appendStr(appendU64(b, f.ID), f.Target)
	return f.Record.append(appendBool(b, f.Heard))
}

func (f *probeReplyFrame) parsePayload(p []byte) error {
	r := reader{b: p}
	f.ID = r.u64()
	f.Target = r.str(maxNameLen)
	f.Heard = r.boolean()
	f.Record.parse(&r)
	return r.done()
}
