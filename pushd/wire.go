package pushd

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
)

// The replication protocol between pushd nodes rides on peerlink's data
// channel (reliable, ordered per peer). One mesh message is one frame:
//
//	version  byte (2; 1 is still read)
//	kind     byte
//	body     kind-specific, every length bounded
//
// Kinds:
//
//	kindMessages  uvarint count, then count messages (see appendMessage);
//	              version 1 messages end after their data, without deps
//	kindFill      topic, epoch (8), from uvarint, to uvarint: "send me these"
//	kindHave      topic, origin, epoch (8), base uvarint, head uvarint:
//	              "I hold base..head of this epoch" (answer to a fill, and
//	              news that lets a peer notice it is behind)
//	kindSync      no body: "tell me what you hold" (a node that starts asks
//	              each peer it meets, so a restart catches up)
//
// Version 2 added the dependencies to each message. A frame of version 1
// (a node not yet upgraded) is read as before, its messages without
// dependencies; a version 1 node refuses version 2 frames ("unknown
// version 2", counted in its farmlb_pushd_wire_errors_total), so a farm is
// upgraded by restarting every node, not by mixing versions for long.
const (
	wireVersion  = 2
	wireV1       = 1
	kindMessages = 1
	kindFill     = 2
	kindHave     = 3
	kindSync     = 4
)

// Bounds of the wire format.
const (
	MaxTopicLen    = 128
	MaxKeyLen      = 128
	maxOriginLen   = 63
	maxWirePayload = 1 << 20
	maxBatch       = 4096
	maxHaves       = 4096
	// maxDeps bounds a message's dependencies: one per other epoch of
	// its topic, the most recently active first (see topic.depsLocked).
	maxDeps = 64
)

// message is one published message, as every node holds it.
type message struct {
	Topic  string
	Origin string    // the node that accepted the publish
	Epoch  uint64    // the origin's incarnation
	Seq    uint64    // gap-free per (epoch, topic), from 1
	At     time.Time // when the origin accepted it
	Key    string    // the publisher's Idempotency-Key, may be empty
	Data   []byte
	// Deps is what the origin had delivered of the topic's other epochs
	// when it stamped the message, by epoch ascending: a node delivers the
	// message only after those (see hub.deliverReadyLocked), so a
	// publisher that moves from node to node keeps its order on a node
	// that fetches both nodes' messages later. Never changed once
	// stamped.
	Deps []dep

	// At the origin only, guarded by hub.mu: acked is set once a peer
	// holds the message; done is closed once it is delivered.
	acked   bool
	done    chan struct{} // closed once delivered (held twice)
	all     chan struct{} // closed once every peer sent to has settled
	sentTo  int           // peers it was sent to
	settled int           // of those, how many acknowledged or failed

	// local is the message's place in its topic on this node (hub.mu).
	local uint64
	// fetched says it is history this node caught up on (after a restart
	// or being away: another node said it held it, or such history
	// depends on it) rather than news: a new client is not shown fetched
	// messages published before it came.
	fetched bool
	// blocked is when the message, next in its epoch, was first found
	// waiting for a dependency (hub.mu); zero while it is not.
	blocked time.Time
	// twins are the other copies of this message this node holds: the
	// same topic and Idempotency-Key under another (epoch, seq) (hub.mu).
	twins []*message

	bodyOnce sync.Once
	body     []byte // the named event's shared part (sseBody)
	envOnce  sync.Once
	env      []byte // the unnamed event's shared part (sseEnvelope)
}

// dep says that a message comes after seq 1..Seq of another epoch of its
// topic.
type dep struct {
	Epoch uint64
	Seq   uint64
}

// fill asks a peer for the messages from..to (inclusive) of an epoch.
type fill struct {
	Topic    string
	Epoch    uint64
	From, To uint64
}

// have tells a peer which messages of an epoch a node holds.
type have struct {
	Topic  string
	Origin string
	Epoch  uint64
	Base   uint64 // lowest seq held (Head+1 when none)
	Head   uint64 // highest contiguous seq held
}

// frame is a decoded mesh message: exactly one of its fields is set.
type frame struct {
	Messages []*message
	Fill     *fill
	Haves    []have
	Sync     bool
}

func encodeSync() []byte { return []byte{wireVersion, kindSync} }

// WireError says why a frame from a peer could not be decoded.
type WireError struct{ Reason string }

func (e *WireError) Error() string { return "pushd wire: " + e.Reason }

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// appendMessage appends one message: topic, origin (uvarint length and
// bytes), epoch (8 bytes), seq (uvarint), publish time (varint ns), key,
// data (uvarint length and bytes), then — since version 2 — the deps: a
// uvarint count (≤ maxDeps) and per dep its epoch (8 bytes, ascending) and
// seq (uvarint, ≥ 1).
func appendMessage(b []byte, m *message) []byte {
	b = appendString(b, m.Topic)
	b = appendString(b, m.Origin)
	b = binary.BigEndian.AppendUint64(b, m.Epoch)
	b = binary.AppendUvarint(b, m.Seq)
	b = binary.AppendVarint(b, m.At.UnixNano())
	b = appendString(b, m.Key)
	b = binary.AppendUvarint(b, uint64(len(m.Data)))
	b = append(b, m.Data...)
	b = binary.AppendUvarint(b, uint64(len(m.Deps)))
	for _, d := range m.Deps {
		b = binary.BigEndian.AppendUint64(b, d.Epoch)
		b = binary.AppendUvarint(b, d.Seq)
	}
	return b
}

// messageSize is an upper bound of appendMessage's output.
func messageSize(m *message) int {
	return 5*binary.MaxVarintLen64 + 8 + len(m.Topic) + len(m.Origin) + len(m.Key) + len(m.Data) + 3 +
		len(m.Deps)*(8+binary.MaxVarintLen64)
}

func encodeMessages(ms []*message) []byte {
	n := 2 + binary.MaxVarintLen64
	for _, m := range ms {
		n += messageSize(m)
	}
	b := make([]byte, 0, n)
	b = append(b, wireVersion, kindMessages)
	b = binary.AppendUvarint(b, uint64(len(ms)))
	for _, m := range ms {
		b = appendMessage(b, m)
	}
	return b
}

func encodeFill(f fill) []byte {
	b := []byte{wireVersion, kindFill}
	b = appendString(b, f.Topic)
	b = binary.BigEndian.AppendUint64(b, f.Epoch)
	b = binary.AppendUvarint(b, f.From)
	return binary.AppendUvarint(b, f.To)
}

func encodeHaves(hs []have) []byte {
	b := []byte{wireVersion, kindHave}
	b = binary.AppendUvarint(b, uint64(len(hs)))
	for _, h := range hs {
		b = appendString(b, h.Topic)
		b = appendString(b, h.Origin)
		b = binary.BigEndian.AppendUint64(b, h.Epoch)
		b = binary.AppendUvarint(b, h.Base)
		b = binary.AppendUvarint(b, h.Head)
	}
	return b
}

// decoder reads a frame, remembering the first error.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = &WireError{fmt.Sprintf(format, args...)}
	}
}

func (d *decoder) uvarint(what string) uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("%s: bad varint", what)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint(what string) int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail("%s: bad varint", what)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) u64(what string) uint64 {
	if d.err != nil {
		return 0
	}
	if len(d.b) < 8 {
		d.fail("%s: truncated", what)
		return 0
	}
	v := binary.BigEndian.Uint64(d.b)
	d.b = d.b[8:]
	return v
}

func (d *decoder) bytes(what string, max int) []byte {
	n := d.uvarint(what + " length")
	if d.err != nil {
		return nil
	}
	if n > uint64(max) {
		d.fail("%s: %d bytes, at most %d", what, n, max)
		return nil
	}
	if n > uint64(len(d.b)) {
		d.fail("%s: truncated", what)
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) topic() string {
	t := string(d.bytes("topic", MaxTopicLen))
	if d.err == nil {
		if err := CheckTopic(t); err != nil {
			d.fail("%v", err)
		}
	}
	return t
}

func (d *decoder) message(version byte) *message {
	m := &message{}
	m.Topic = d.topic()
	m.Origin = string(d.bytes("origin", maxOriginLen))
	m.Epoch = d.u64("epoch")
	m.Seq = d.uvarint("seq")
	m.At = time.Unix(0, d.varint("time"))
	m.Key = string(d.bytes("key", MaxKeyLen))
	if data := d.bytes("data", maxWirePayload); data != nil {
		m.Data = append([]byte(nil), data...) // the frame's buffer belongs to the mesh
	}
	if d.err == nil && m.Seq == 0 {
		d.fail("seq 0")
	}
	if version > wireV1 {
		m.Deps = d.deps(m.Epoch)
	}
	return m
}

// deps reads a message's dependencies: at most maxDeps, epochs ascending
// (so each is named once and the encoding is unique), none the message's
// own epoch, no seq 0.
func (d *decoder) deps(own uint64) []dep {
	n := d.uvarint("deps count")
	if d.err != nil || n == 0 {
		return nil
	}
	if n > maxDeps {
		d.fail("%d deps, at most %d", n, maxDeps)
		return nil
	}
	ds := make([]dep, 0, n)
	for i := uint64(0); i < n && d.err == nil; i++ {
		x := dep{Epoch: d.u64("dep epoch"), Seq: d.uvarint("dep seq")}
		switch {
		case d.err != nil:
		case x.Seq == 0:
			d.fail("dep on seq 0")
		case x.Epoch == own:
			d.fail("dep on the message's own epoch")
		case i > 0 && x.Epoch <= ds[i-1].Epoch:
			d.fail("deps not in ascending epoch order")
		}
		ds = append(ds, x)
	}
	return ds
}

// decodeFrame parses one mesh message. It never panics and copies what it
// keeps, so body may be reused by the caller.
func decodeFrame(body []byte) (frame, error) {
	var f frame
	if len(body) < 2 {
		return f, &WireError{"short frame"}
	}
	version := body[0]
	if version != wireVersion && version != wireV1 {
		return f, &WireError{fmt.Sprintf("unknown version %d (this node reads %d and %d)", version, wireV1, wireVersion)}
	}
	d := &decoder{b: body[2:]}
	switch body[1] {
	case kindMessages:
		n := d.uvarint("count")
		if n > maxBatch {
			d.fail("%d messages, at most %d", n, maxBatch)
		}
		for i := uint64(0); i < n && d.err == nil; i++ {
			m := d.message(version)
			if d.err == nil {
				f.Messages = append(f.Messages, m)
			}
		}
	case kindFill:
		fl := &fill{Topic: d.topic(), Epoch: d.u64("epoch"), From: d.uvarint("from"), To: d.uvarint("to")}
		if d.err == nil && (fl.From == 0 || fl.To < fl.From) {
			d.fail("bad fill range %d..%d", fl.From, fl.To)
		}
		f.Fill = fl
	case kindHave:
		n := d.uvarint("count")
		if n > maxHaves {
			d.fail("%d haves, at most %d", n, maxHaves)
		}
		for i := uint64(0); i < n && d.err == nil; i++ {
			h := have{Topic: d.topic(), Origin: string(d.bytes("origin", maxOriginLen)), Epoch: d.u64("epoch"), Base: d.uvarint("base"), Head: d.uvarint("head")}
			if d.err == nil && h.Base > h.Head+1 {
				d.fail("bad have range %d..%d", h.Base, h.Head)
			}
			f.Haves = append(f.Haves, h)
		}
	case kindSync:
		f.Sync = true
	default:
		return f, &WireError{fmt.Sprintf("unknown kind %d", body[1])}
	}
	if d.err == nil && len(d.b) > 0 {
		d.fail("%d bytes after the frame", len(d.b))
	}
	if d.err != nil {
		return frame{}, d.err
	}
	return f, nil
}

var errTopic = errors.New("invalid topic")

// CheckTopic reports whether a topic name follows the rules: 1 to 128
// characters of A–Z a–z 0–9 . _ -, not starting with "farmlb-" (reserved for
// the server's own events).
func CheckTopic(t string) error {
	if t == "" {
		return fmt.Errorf("%w: empty", errTopic)
	}
	if len(t) > MaxTopicLen {
		return fmt.Errorf("%w: %d bytes, at most %d", errTopic, len(t), MaxTopicLen)
	}
	for i := 0; i < len(t); i++ {
		c := t[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("%w: %q has character %q (allowed: A-Z a-z 0-9 . _ -)", errTopic, t, c)
		}
	}
	if len(t) >= 7 && strings.EqualFold(t[:7], "farmlb-") {
		return fmt.Errorf("%w: %q: names starting with farmlb- are reserved", errTopic, t)
	}
	return nil
}
