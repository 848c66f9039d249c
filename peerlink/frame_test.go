package peerlink

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/farmlb/farmlb/farm"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// realFrames is one real value of every frame type, named for its golden file.
func realFrames() map[string]frame {
	rec := record{Incarnation: 1764400000123456789, Seq: 42, Status: farm.StatusDraining, Users: 2963, Priority: 1}
	recReason := record{Incarnation: 1764400000123456789, Seq: 43, Status: farm.StatusDown, Users: 2963, Priority: 1, Reason: "health:feed"}
	return map[string]frame{
		"hello": &helloFrame{Name: "serverA", Incarnation: 1764400000123456789},
		// status.bin is the frame of the version before reasons: it must
		// still parse, byte for byte.
		"status":             &statusFrame{Record: rec},
		"status_reason":      &statusFrame{Record: recReason},
		"probe_reply_reason": &probeReplyFrame{ID: 8, Target: "serverB", Heard: true, Record: recReason},
		"probe_request":      &probeRequestFrame{ID: 7, Target: "serverC"},
		"probe_reply":        &probeReplyFrame{ID: 7, Target: "serverC", Heard: true, Record: rec},
		"heartbeat":          &heartbeatFrame{Incarnation: 1764400000123456789, Seq: 1000, SentNanos: 5_000_000_000, EchoNanos: 4_999_000_000, EchoDelay: 20_000_000},
		"ping":               &pingFrame{Nonce: 99},
		"pong":               &pongFrame{Nonce: 99},
		"open_data":          &openDataFrame{},
		"data":               &dataFrame{Seq: 3, Body: []byte(`{"topic":"prices","payload":"hello"}`)},
		"data_empty":         &dataFrame{Seq: 4, Body: []byte{}},
		"ack":                &ackFrame{Seq: 3},
		"ack_error":          &ackFrame{Seq: 4, Err: "history full"},
	}
}

func TestFrameGolden(t *testing.T) {
	for name, f := range realFrames() {
		t.Run(name, func(t *testing.T) {
			b := appendFrame(nil, f)
			path := filepath.Join("testdata", "frames", name+".bin")
			if *update {
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, b, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -update once)", err)
			}
			if !bytes.Equal(b, want) {
				t.Errorf("encoding changed:\n got %x\nwant %x\n(a wire change needs a new frameVersion)", b, want)
			}
			got, err := parseFrame(want)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, f) {
				t.Errorf("parse(golden) = %#v, want %#v", got, f)
			}
			// The same through a stream reader, two frames in a row.
			fr := frameReader{r: bytes.NewReader(append(append([]byte(nil), want...), want...)), max: maxPayload(f.frameType())}
			for i := 0; i < 2; i++ {
				got, err := fr.read()
				if err != nil || !reflect.DeepEqual(got, f) {
					t.Fatalf("stream read %d: %#v, %v", i, got, err)
				}
			}
		})
	}
}

func TestFrameBad(t *testing.T) {
	hb := appendFrame(nil, &heartbeatFrame{Seq: 1})
	st := appendFrame(nil, &statusFrame{Record: record{Incarnation: 1, Seq: 1, Status: farm.StatusUp}})
	set := func(b []byte, i int, v byte) []byte {
		c := append([]byte(nil), b...)
		c[i] = v
		return c
	}
	cases := []struct {
		name string
		in   []byte
		want string
	}{
		{"empty", nil, "truncated"},
		{"short header", []byte{1, 5, 0}, "truncated"},
		{"version 2", set(hb, 0, 2), "version 2"},
		{"unknown type", set(hb, 1, 200), "unknown frame type"},
		{"length too large", set(hb, 2, 0x7f), "at most"},
		{"length says more", hb[:len(hb)-1], "length says"},
		{"trailing bytes", append(appendFrame(nil, &pingFrame{Nonce: 1})[:2:2], 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 1, 7), "trailing"},
		{"truncated payload", append([]byte{1, byte(typePing), 0, 0, 0, 4}, 1, 2, 3, 4), "truncated"},
		{"bad status", set(st, frameHeaderLen+16, 9), "status 9"},
		{"bad priority", set(st, len(st)-1, 26), "priority 26"},
		{"users too large", set(st, frameHeaderLen+17, 0x80), "users"},
		{"bad bool", set(appendFrame(nil, &probeReplyFrame{Target: "x"}), frameHeaderLen+8+4+1, 2), "boolean"},
		{"name too long", appendFrame(nil, &helloFrame{Name: strings.Repeat("a", 64)}), "at most 63"},
		{"empty reason", append(set(st, 5, byte(len(st)-frameHeaderLen+4)), 0, 0, 0, 0), "empty reason"},
		{"reason not a token", appendFrame(nil, &statusFrame{Record: record{Incarnation: 1, Status: farm.StatusDown, Reason: "a b"}}), "not a token"},
		{"reason too long", appendFrame(nil, &statusFrame{Record: record{Incarnation: 1, Status: farm.StatusDown, Reason: strings.Repeat("r", 65)}}), "at most 64"},
		{"ack error too long", appendFrame(nil, &ackFrame{Err: strings.Repeat("e", maxAckErr+1)}), "at most"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f, err := parseFrame(c.in)
			if err == nil {
				t.Fatalf("parsed %#v", f)
			}
			var fe *FrameError
			if !errors.As(err, &fe) || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %v, want a *FrameError containing %q", err, c.want)
			}
		})
	}
	t.Run("data frame over the control stream bound", func(t *testing.T) {
		b := appendFrame(nil, &dataFrame{Seq: 1, Body: make([]byte, 2000)})
		fr := frameReader{r: bytes.NewReader(b), max: maxControlPayload}
		if _, err := fr.read(); err == nil || !strings.Contains(err.Error(), "on this stream") {
			t.Errorf("error %v", err)
		}
	})
	t.Run("data frame over MaxMessage", func(t *testing.T) {
		b := []byte{frameVersion, byte(typeData), 0, 0x10, 0, 13}
		if _, _, err := parseHeader(b); err == nil {
			t.Error("accepted a payload over the data bound")
		}
	})
}

// FuzzParseFrame: parsing never panics, and whatever parses re-encodes to
// exactly the input (every value has one encoding).
func FuzzParseFrame(f *testing.F) {
	for _, fr := range realFrames() {
		f.Add(appendFrame(nil, fr))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, err := parseFrame(b)
		if err != nil {
			return
		}
		if out := appendFrame(nil, fr); !bytes.Equal(out, b) {
			t.Fatalf("round trip changed the frame:\n in %x\nout %x", b, out)
		}
		// A stream reader agrees with the datagram parser.
		sr := frameReader{r: bytes.NewReader(b), max: maxPayload(fr.frameType())}
		fr2, err := sr.read()
		if err != nil || !reflect.DeepEqual(fr, fr2) {
			t.Fatalf("stream reader: %#v, %v; datagram parser: %#v", fr2, err, fr)
		}
	})
}
