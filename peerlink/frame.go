package peerlink

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// The wire format of the mesh. Every frame, on a stream or in a datagram, is
//
//	version (1 byte) | type (1 byte) | payload length (4 bytes, big endian) | payload
//
// Integers in payloads are fixed-width big endian and strings carry a 4-byte
// length, so that every value has exactly one encoding (parse then append
// gives back the input: the fuzz target checks it). Every length is bounded
// by the frame type's maximum, checked before anything is allocated. One file
// per frame type (frame_*.go) holds its fields, append and parse.

// frameVersion is the version of this wire format. A frame of another
// version is an error; the ALPN name changes with an incompatible version.
const frameVersion = 1

// alpn names the mesh protocol and its version in the TLS handshake.
const alpn = "farmlb-peer/1"

// alpnReasons is version 1 with reasons in records (frame_status.go). A
// member offers it first and alpn second, so two members of this version
// agree on alpnReasons and an older member on alpn; a link's records carry
// reasons only when alpnReasons was agreed.
const alpnReasons = "farmlb-peer/1+reason"

const frameHeaderLen = 6

// MaxMessage is the largest body Send accepts.
const MaxMessage = 1 << 20

// maxControlPayload bounds every frame but data: they hold a few numbers and
// at most two names.
const maxControlPayload = 1024

type frameType uint8

const (
	typeHello      frameType = 1 // control stream: who I am
	typeStatus     frameType = 2 // control stream: my users, status, priority
	typeProbeReq   frameType = 3 // control stream: do you hear member X?
	typeProbeReply frameType = 4 // control stream: whether I hear X, and X's record
	typeHeartbeat  frameType = 5 // datagram: I am alive (and RTT echo)
	typePing       frameType = 6 // datagram: answer at once
	typePong       frameType = 7 // datagram: the answer
	typeOpenData   frameType = 8 // data stream: first frame of a data stream
	typeData       frameType = 9 // data stream: an application message
	typeAck        frameType = 10
)

var frameNames = map[frameType]string{
	typeHello: "hello", typeStatus: "status", typeProbeReq: "probe_request",
	typeProbeReply: "probe_reply", typeHeartbeat: "heartbeat", typePing: "ping",
	typePong: "pong", typeOpenData: "open_data", typeData: "data", typeAck: "ack",
}

func (t frameType) String() string {
	if n, ok := frameNames[t]; ok {
		return n
	}
	return fmt.Sprintf("type%d", uint8(t))
}

// frame is one message of the wire format.
type frame interface {
	frameType() frameType
	// appendPayload appends the encoded payload to b.
	appendPayload(b []byte) []byte
	// parsePayload decodes the payload; it returns an error for trailing
	// bytes, out-of-range values or lengths over the frame's bounds.
	parsePayload(p []byte) error
}

// newFrame returns an empty frame of type t, or nil for an unknown type.
func newFrame(t frameType) frame {
	switch t {
	case typeHello:
		return &helloFrame{}
	case typeStatus:
		return &statusFrame{}
	case typeProbeReq:
		return &probeRequestFrame{}
	case typeProbeReply:
		return &probeReplyFrame{}
	case typeHeartbeat:
		return &heartbeatFrame{}
	case typePing:
		return &pingFrame{}
	case typePong:
		return &pongFrame{}
	case typeOpenData:
		return &openDataFrame{}
	case typeData:
		return &dataFrame{}
	case typeAck:
		return &ackFrame{}
	}
	return nil
}

// maxPayload is the largest payload a frame of type t may have.
func maxPayload(t frameType) int {
	if t == typeData {
		return 8 + 4 + MaxMessage
	}
	return maxControlPayload
}

// FrameError is a malformed frame.
type FrameError struct {
	Type frameType
	Err  error
}

func (e *FrameError) Error() string {
	return fmt.Sprintf("peerlink: bad %s frame: %v", e.Type, e.Err)
}

func (e *FrameError) Unwrap() error { return e.Err }

var errTruncated = errors.New("truncated")

// appendFrame appends f with its header to b.
func appendFrame(b []byte, f frame) []byte {
	start := len(b)
	b = append(b, frameVersion, byte(f.frameType()), 0, 0, 0, 0)
	b = f.appendPayload(b)
	binary.BigEndian.PutUint32(b[start+2:], uint32(len(b)-start-frameHeaderLen))
	return b
}

// encodedType is the type of a frame encoded by appendFrame.
func encodedType(b []byte) frameType { return frameType(b[1]) }

// parseHeader checks a frame header and returns the type and payload length.
func parseHeader(h []byte) (frameType, int, error) {
	if len(h) < frameHeaderLen {
		return 0, 0, &FrameError{Err: errTruncated}
	}
	t := frameType(h[1])
	if h[0] != frameVersion {
		return t, 0, &FrameError{Type: t, Err: fmt.Errorf("version %d, want %d", h[0], frameVersion)}
	}
	if newFrame(t) == nil {
		return t, 0, &FrameError{Type: t, Err: errors.New("unknown frame type")}
	}
	n := binary.BigEndian.Uint32(h[2:])
	if int64(n) > int64(maxPayload(t)) {
		return t, 0, &FrameError{Type: t, Err: fmt.Errorf("payload of %d bytes, at most %d", n, maxPayload(t))}
	}
	return t, int(n), nil
}

// parseFrame decodes exactly one frame from b (a datagram).
func parseFrame(b []byte) (frame, error) {
	t, n, err := parseHeader(b)
	if err != nil {
		return nil, err
	}
	if len(b) != frameHeaderLen+n {
		return nil, &FrameError{Type: t, Err: fmt.Errorf("%d bytes after the header, length says %d", len(b)-frameHeaderLen, n)}
	}
	f := newFrame(t)
	if err := f.parsePayload(b[frameHeaderLen:]); err != nil {
		return nil, &FrameError{Type: t, Err: err}
	}
	return f, nil
}

// frameReader reads frames from a stream, reusing one buffer.
type frameReader struct {
	r   io.Reader
	buf []byte
	// max bounds the payload on this stream, below the type's own bound
	// (control streams never carry data frames).
	max int
	// n is the size of the last frame read, header included, for metrics.
	n int
}

func (fr *frameReader) read() (frame, error) {
	var h [frameHeaderLen]byte
	if _, err := io.ReadFull(fr.r, h[:]); err != nil {
		return nil, err
	}
	t, n, err := parseHeader(h[:])
	if err != nil {
		return nil, err
	}
	if n > fr.max {
		return nil, &FrameError{Type: t, Err: fmt.Errorf("payload of %d bytes, at most %d on this stream", n, fr.max)}
	}
	if cap(fr.buf) < n {
		fr.buf = make([]byte, n)
	}
	p := fr.buf[:n]
	if _, err := io.ReadFull(fr.r, p); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	fr.n = frameHeaderLen + n
	f := newFrame(t)
	if err := f.parsePayload(p); err != nil {
		return nil, &FrameError{Type: t, Err: err}
	}
	return f, nil
}

// reader decodes a payload: fixed-width integers and length-prefixed
// strings, with the first error sticking.
type reader struct {
	b   []byte
	err error
}

func (r *reader) take(n int) []byte {
	if r.err != nil {
		return nil
	}
	if len(r.b) < n {
		r.err = errTruncated
		r.b = nil
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) u8() uint8 {
	if v := r.take(1); v != nil {
		return v[0]
	}
	return 0
}

func (r *reader) u32() uint32 {
	if v := r.take(4); v != nil {
		return binary.BigEndian.Uint32(v)
	}
	return 0
}

func (r *reader) u64() uint64 {
	if v := r.take(8); v != nil {
		return binary.BigEndian.Uint64(v)
	}
	return 0
}

func (r *reader) boolean() bool {
	v := r.u8()
	if v > 1 && r.err == nil {
		r.err = fmt.Errorf("boolean byte %d", v)
	}
	return v == 1
}

// str reads a string of at most max bytes.
func (r *reader) str(max int) string {
	n := int(r.u32())
	if r.err != nil {
		return ""
	}
	if n > max {
		r.err = fmt.Errorf("string of %d bytes, at most %d", n, max)
		return ""
	}
	return string(r.take(n))
}

// done reports the first error, or an error for trailing bytes.
func (r *reader) done() error {
	if r.err == nil && len(r.b) > 0 {
		return fmt.Errorf("%d trailing bytes", len(r.b))
	}
	return r.err
}

func appendU32(b []byte, v uint32) []byte { return binary.BigEndian.AppendUint32(b, v) }
func appendU64(b []byte, v uint64) []byte { return binary.BigEndian.AppendUint64(b, v) }
func appendBool(b []byte, v bool) []byte {
	if v {
		return append(b, 1)
	}
	return append(b, 0)
}
func appendStr(b []byte, s string) []byte { return append(appendU32(b, uint32(len(s))), s...) }
