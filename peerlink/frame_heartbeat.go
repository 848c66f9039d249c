package peerlink

// heartbeatFrame travels in a QUIC datagram every Config.HeartbeatInterval.
// It says the sender is alive and carries what the receiver needs to measure
// the round-trip time: the send time (sender's monotonic clock) of the last
// heartbeat the sender got from the receiver, and how long ago it got it.
type heartbeatFrame struct {
	Incarnation uint64
	Seq         uint64
	SentNanos   uint64 // sender's clock
	EchoNanos   uint64 // receiver's clock, from its last heartbeat; 0 if none yet
	EchoDelay   uint64 // nanoseconds the sender held that heartbeat
}

func (*heartbeatFrame) frameType() frameType { return typeHeartbeat }

func (f *heartbeatFrame) appendPayload(b []byte) []byte {
	b = appendU64(appendU64(b, f.Incarnation), f.Seq)
	return appendU64(appendU64(appendU64(b, f.SentNanos), f.EchoNanos), f.EchoDelay)
}

func (f *heartbeatFrame) parsePayload(p []byte) error {
	r := reader{b: p}
	f.Incarnation = r.u64()
	f.Seq = r.u64()
	f.SentNanos = r.u64()
	f.EchoNanos = r.u64()
	f.EchoDelay = r.u64()
	return r.done()
}
