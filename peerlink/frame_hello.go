package peerlink

// helloFrame opens a control stream, in both directions: the member's name
// (which must match its certificate) and its incarnation, which grows with
// every start so that news about an earlier life of the member loses.
type helloFrame struct {
	Name        string
	Incarnation uint64
}

func (*helloFrame) frameType() frameType { return typeHello }

func (f *helloFrame) appendPayload(b []byte) []byte {
	return appendU64(appendStr(b, f.Name), f.Incarnation)
}

func (f *helloFrame) parsePayload(p []byte) error {
	r := reader{b: p}
	f.Name = r.str(maxNameLen)
	f.Incarnation = r.u64()
	return r.done()
}

// maxNameLen is the longest member name on the wire (a DNS label).
const maxNameLen = 63
