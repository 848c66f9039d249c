package pushd

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
)

// A Cursor is how far a client has read: for every topic of its stream and
// every origin incarnation (epoch) that published on it, the highest
// sequence number the client has seen. It travels as the SSE event id, which
// a browser's EventSource resends (only the last one) when it reconnects, so
// it must hold the whole position in a few hundred bytes.
//
// Encoding (then base64url without padding):
//
//	version byte (1)
//	per entry, sorted by (topic hash, epoch):
//	  topic hash  4 bytes big-endian (FNV-1a 32 of the topic name)
//	  epoch       8 bytes big-endian (the origin's random incarnation id)
//	  seq         uvarint
//
// A topic is named by its hash, not its name, to keep ids short; a stream
// resolves hashes against the topics it asked for, and ignores entries of
// other topics. An epoch is random per process start, so it names the origin
// and its incarnation at once.
type Cursor []CursorEntry

// CursorEntry is one (topic, epoch) position of a Cursor.
type CursorEntry struct {
	Topic uint32 // TopicHash of the topic name
	Epoch uint64
	Seq   uint64
}

// Limits of the cursor encoding: a cursor of more entries than this is
// refused, which also bounds the work a client can cause with one request.
const (
	cursorVersion    = 1
	MaxCursorEntries = 512
	// MaxCursorLen is the longest encoded cursor accepted (base64 chars).
	MaxCursorLen = 4 * (1 + MaxCursorEntries*22) / 3
)

// TopicHash is the 32-bit FNV-1a hash of a topic name, as cursors carry it.
func TopicHash(topic string) uint32 {
	h := fnv.New32a()
	h.Write([]byte(topic))
	return h.Sum32()
}

var errCursor = errors.New("invalid cursor")

// CursorError says why a cursor could not be parsed.
type CursorError struct{ Reason string }

func (e *CursorError) Error() string { return "invalid cursor: " + e.Reason }
func (e *CursorError) Unwrap() error { return errCursor }

// Append appends the encoding of c (sorted) to b.
func (c Cursor) Append(b []byte) []byte {
	raw := make([]byte, 0, 1+len(c)*16)
	raw = append(raw, cursorVersion)
	for _, e := range c {
		raw = binary.BigEndian.AppendUint32(raw, e.Topic)
		raw = binary.BigEndian.AppendUint64(raw, e.Epoch)
		raw = binary.AppendUvarint(raw, e.Seq)
	}
	return base64.RawURLEncoding.AppendEncode(b, raw)
}

// String returns the encoded cursor.
func (c Cursor) String() string { return string(c.Append(nil)) }

// Sort puts the entries in encoding order.
func (c Cursor) Sort() {
	slices.SortFunc(c, func(a, b CursorEntry) int {
		if a.Topic != b.Topic {
			if a.Topic < b.Topic {
				return -1
			}
			return 1
		}
		if a.Epoch < b.Epoch {
			return -1
		}
		if a.Epoch > b.Epoch {
			return 1
		}
		return 0
	})
}

// ParseCursor decodes a cursor. The empty string is the empty cursor.
// Entries must be sorted and unique, so that each position has one encoding.
func ParseCursor(s string) (Cursor, error) {
	if s == "" {
		return nil, nil
	}
	if len(s) > MaxCursorLen {
		return nil, &CursorError{fmt.Sprintf("%d bytes, at most %d", len(s), MaxCursorLen)}
	}
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return nil, &CursorError{"not base64url"}
	}
	if len(raw) == 0 || raw[0] != cursorVersion {
		return nil, &CursorError{"unknown version"}
	}
	raw = raw[1:]
	var c Cursor
	for len(raw) > 0 {
		if len(c) == MaxCursorEntries {
			return nil, &CursorError{fmt.Sprintf("more than %d entries", MaxCursorEntries)}
		}
		if len(raw) < 13 {
			return nil, &CursorError{"truncated entry"}
		}
		e := CursorEntry{Topic: binary.BigEndian.Uint32(raw), Epoch: binary.BigEndian.Uint64(raw[4:])}
		seq, n := binary.Uvarint(raw[12:])
		if n <= 0 {
			return nil, &CursorError{"bad sequence number"}
		}
		e.Seq = seq
		raw = raw[12+n:]
		if k := len(c); k > 0 {
			p := c[k-1]
			if p.Topic > e.Topic || (p.Topic == e.Topic && p.Epoch >= e.Epoch) {
				return nil, &CursorError{"entries out of order"}
			}
		}
		c = append(c, e)
	}
	return c, nil
}
