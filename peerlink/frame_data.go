package peerlink

import "fmt"

// openDataFrame is the first frame of a data stream; it tells the data
// stream from the control stream (which opens with hello).
type openDataFrame struct{}

func (*openDataFrame) frameType() frameType          { return typeOpenData }
func (*openDataFrame) appendPayload(b []byte) []byte { return b }
func (*openDataFrame) parsePayload(p []byte) error {
	r := reader{b: p}
	return r.done()
}

// dataFrame is one application message. Seq grows by one per message to
// the peer for the sender's life; the receiver delivers each Seq once, in
// order, and acknowledges it with an ack frame on the same stream.
type dataFrame struct {
	Seq  uint64
	Body []byte // aliases the reader's buffer until the next read
}

func (*dataFrame) frameType() frameType { return typeData }

func (f *dataFrame) appendPayload(b []byte) []byte {
	return append(appendU32(appendU64(b, f.Seq), uint32(len(f.Body))), f.Body...)
}

func (f *dataFrame) parsePayload(p []byte) error {
	r := reader{b: p}
	f.Seq = r.u64()
	n := int(r.u32())
	if r.err == nil && n > MaxMessage {
		return fmt.Errorf("body of %d bytes, at most %d", n, MaxMessage)
	}
	f.Body = r.take(n)
	if f.Body == nil && r.err == nil {
		f.Body = []byte{}
	}
	return r.done()
}

// ackFrame acknowledges data frame Seq: Err is empty when the receiver's
// Handler accepted the message, else the Handler's error text.
type ackFrame struct {
	Seq uint64
	Err string
}

// maxAckErr bounds the error text an ack carries.
const maxAckErr = 512

func (*ackFrame) frameType() frameType { return typeAck }

func (f *ackFrame) appendPayload(b []byte) []byte { return appendStr(appendU64(b, f.Seq), f.Err) }

func (f *ackFrame) parsePayload(p []byte) error {
	r := reader{b: p}
	f.Seq = r.u64()
	f.Err = r.str(maxAckErr)
	return r.done()
}
