package clientlib

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// MaxEventBytes bounds one Server-Sent Event (all its data lines together):
// a larger event is an error, never unbounded memory.
const MaxEventBytes = 1 << 20

// sseEvent is one event as the text/event-stream format defines it.
type sseEvent struct {
	ID      string
	HasID   bool // the event set its id (possibly to "")
	Event   string
	Data    string
	RetryMs int // 0 when not given
}

// sseReader decodes a text/event-stream (the WHATWG "event stream
// interpretation"): lines of "field: value", an empty line ends an event,
// lines starting with ':' are comments.
type sseReader struct {
	r *bufio.Reader
	// OnComment, when set, is called for every comment line (keep-alives).
	OnComment func()
}

func newSSEReader(r io.Reader) *sseReader {
	return &sseReader{r: bufio.NewReaderSize(r, 4096)}
}

var errEventTooLarge = errors.New("event larger than 1 MiB")

// Next returns the next event that carries data, or an error (io.EOF at the
// end of the stream).
func (s *sseReader) Next() (sseEvent, error) {
	var ev sseEvent
	var data bytes.Buffer
	hasData := false
	for {
		line, err := s.readLine()
		if err != nil {
			return sseEvent{}, err
		}
		if len(line) == 0 { // dispatch
			if hasData {
				ev.Data = strings.TrimSuffix(data.String(), "\n")
				return ev, nil
			}
			ev.Event = "" // an event without data is dropped, its id kept
			continue
		}
		if line[0] == ':' {
			if s.OnComment != nil {
				s.OnComment()
			}
			continue
		}
		field, value, _ := bytes.Cut(line, []byte(":"))
		value = bytes.TrimPrefix(value, []byte(" "))
		switch string(field) {
		case "data":
			if data.Len()+len(value)+1 > MaxEventBytes {
				return sseEvent{}, errEventTooLarge
			}
			data.Write(value)
			data.WriteByte('\n')
			hasData = true
		case "event":
			ev.Event = string(value)
		case "id":
			if bytes.IndexByte(value, 0) < 0 {
				ev.ID, ev.HasID = string(value), true
			}
		case "retry":
			if n, err := strconv.Atoi(string(value)); err == nil && n >= 0 {
				ev.RetryMs = n
			}
		}
	}
}

// readLine returns one line without its terminator (CRLF, LF or CR), bounded
// by MaxEventBytes.
func (s *sseReader) readLine() ([]byte, error) {
	var line []byte
	for {
		frag, err := s.r.ReadSlice('\n')
		line = append(line, frag...)
		if len(line) > MaxEventBytes+16 {
			return nil, errEventTooLarge
		}
		if err == nil {
			break
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if errors.Is(err, io.EOF) && len(line) > 0 {
			return nil, io.ErrUnexpectedEOF // a stream cut mid-line
		}
		return nil, err
	}
	line = bytes.TrimSuffix(line, []byte("\n"))
	line = bytes.TrimSuffix(line, []byte("\r"))
	if i := bytes.IndexByte(line, '\r'); i >= 0 {
		// A lone CR also ends a line; such streams are rare, so keep it
		// simple and treat the rest as a following line's content lost.
		return nil, fmt.Errorf("event stream uses bare CR line endings")
	}
	return line, nil
}
