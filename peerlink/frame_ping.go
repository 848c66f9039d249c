package peerlink

// pingFrame asks for an immediate pong (datagram). A member pings a peer it
// suspects, and a member asked to vouch for a peer pings that peer.
type pingFrame struct {
	Nonce uint64
}

func (*pingFrame) frameType() frameType { return typePing }

func (f *pingFrame) appendPayload(b []byte) []byte { return appendU64(b, f.Nonce) }

func (f *pingFrame) parsePayload(p []byte) error {
	r := reader{b: p}
	f.Nonce = r.u64()
	return r.done()
}

// pongFrame answers a ping with its nonce.
type pongFrame struct {
	Nonce uint64
}

func (*pongFrame) frameType() frameType { return typePong }

func (f *pongFrame) appendPayload(b []byte) []byte { return appendU64(b, f.Nonce) }

func (f *pongFrame) parsePayload(p []byte) error {
	r := reader{b: p}
	f.Nonce = r.u64()
	return r.done()
}
