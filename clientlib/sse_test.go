package clientlib

import (
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
)

func TestSSEReader(t *testing.T) {
	tests := []struct {
		name     string
		in       string
		want     []sseEvent
		comments int
		err      error
	}{
		{"one event", "id: 1\nevent: prices\ndata: {\"p\":1}\n\n", []sseEvent{{ID: "1", HasID: true, Event: "prices", Data: `{"p":1}`}}, 0, io.EOF},
		{"multi-line data", "data: a\ndata: b\n\n", []sseEvent{{Data: "a\nb"}}, 0, io.EOF},
		{"CRLF", "id: x\r\ndata: y\r\n\r\n", []sseEvent{{ID: "x", HasID: true, Data: "y"}}, 0, io.EOF},
		{"comments and keep-alives", ": keepalive\n\n: hi\ndata: z\n\n", []sseEvent{{Data: "z"}}, 2, io.EOF},
		{"no space after colon", "data:tight\n\n", []sseEvent{{Data: "tight"}}, 0, io.EOF},
		{"event without data is dropped", "event: x\n\ndata: y\n\n", []sseEvent{{Data: "y"}}, 0, io.EOF},
		{"retry", "retry: 3000\ndata: r\n\n", []sseEvent{{Data: "r", RetryMs: 3000}}, 0, io.EOF},
		{"unknown field ignored", "foo: bar\ndata: d\n\n", []sseEvent{{Data: "d"}}, 0, io.EOF},
		{"cut mid-line", "data: partial", nil, 0, io.ErrUnexpectedEOF},
		{"cut before the blank line", "id: 9\ndata: x\n", nil, 0, io.EOF},
		{"too large", "data: " + strings.Repeat("x", MaxEventBytes+10) + "\n\n", nil, 0, errEventTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newSSEReader(strings.NewReader(tt.in))
			comments := 0
			r.OnComment = func() { comments++ }
			var got []sseEvent
			var err error
			for {
				var ev sseEvent
				if ev, err = r.Next(); err != nil {
					break
				}
				got = append(got, ev)
			}
			if !errors.Is(err, tt.err) {
				t.Errorf("err = %v, want %v", err, tt.err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
			if comments != tt.comments {
				t.Errorf("%d comments, want %d", comments, tt.comments)
			}
		})
	}
}

// FuzzSSEReader: any bytes from a server end in events or an error, never a
// panic, and no event is larger than MaxEventBytes.
func FuzzSSEReader(f *testing.F) {
	f.Add([]byte("id: 1\nevent: prices\ndata: {\"p\":1}\n\n: keepalive\n\n"))
	f.Add([]byte("event: farmlb-move\ndata: {\"reason\":\"drain\",\"url\":\"http://127.0.0.12:8080\",\"delay_ms\":500}\n\n"))
	f.Add([]byte("retry: 10\r\ndata: a\r\ndata: b\r\n\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r := newSSEReader(strings.NewReader(string(data)))
		for range 1000 {
			ev, err := r.Next()
			if err != nil {
				return
			}
			if len(ev.Data) > MaxEventBytes {
				t.Fatalf("event of %d bytes", len(ev.Data))
			}
		}
	})
}
