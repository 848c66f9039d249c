package pushd

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func FuzzParseCursor(f *testing.F) {
	f.Add("")
	f.Add(Cursor{{Topic: TopicHash("prices"), Epoch: 0x1234567890abcdef, Seq: 42}}.String())
	c := Cursor{{1, 2, 3}, {1, 5, 300}, {7, 1, 1 << 40}}
	f.Add(c.String())
	f.Add("AQ")
	f.Add("not base64!")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseCursor(s)
		if err != nil {
			return
		}
		again, err := ParseCursor(c.String())
		if err != nil {
			t.Fatalf("re-parse of %q: %v", c.String(), err)
		}
		if len(c) != len(again) || (len(c) > 0 && !reflect.DeepEqual(c, again)) {
			t.Fatalf("round trip: %v != %v", c, again)
		}
	})
}

func TestCursorRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		c    Cursor
	}{
		{"one", Cursor{{1, 2, 3}}},
		{"several", Cursor{{1, 2, 3}, {1, 3, 0}, {9, 1, 1<<63 + 5}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseCursor(tc.c.String())
			if err != nil || !reflect.DeepEqual(got, tc.c) {
				t.Fatalf("%v %v", got, err)
			}
		})
	}
	bad := []struct{ name, s string }{
		{"version", Cursor{}.String()[:0] + "Ag"},
		{"truncated", Cursor{{1, 2, 3}}.String()[:10]},
		{"unsorted", Cursor{{9, 1, 1}, {1, 1, 1}}.String()},
		{"repeated", Cursor{{1, 1, 1}, {1, 1, 2}}.String()},
	}
	for _, tc := range bad {
		t.Run("bad "+tc.name, func(t *testing.T) {
			if _, err := ParseCursor(tc.s); err == nil {
				t.Fatal("no error")
			}
		})
	}
}

func FuzzDecodeFrame(f *testing.F) {
	m := &message{Topic: "prices.EURUSD", Origin: "serverA", Epoch: 77, Seq: 5, At: time.Unix(0, 1700000000000000000), Key: "k", Data: []byte("1.0842")}
	f.Add(encodeMessages([]*message{m, m}))
	withDeps := &message{Topic: "prices.EURUSD", Origin: "serverB", Epoch: 78, Seq: 1, At: time.Unix(0, 1700000000000000001), Data: []byte("1.0843"),
		Deps: []dep{{Epoch: 3, Seq: 9}, {Epoch: 77, Seq: 5}, {Epoch: 1 << 60, Seq: 1 << 33}}}
	f.Add(encodeMessages([]*message{withDeps, m}))
	v1 := encodeMessages([]*message{m})
	v1[0] = wireV1
	f.Add(v1[:len(v1)-1]) // version 1: no deps after the data
	f.Add(encodeFill(fill{Topic: "t", Epoch: 9, From: 3, To: 10}))
	f.Add(encodeHaves([]have{{Topic: "t", Origin: "b", Epoch: 9, Base: 1, Head: 4}}))
	f.Add(encodeSync())
	f.Add([]byte{1, 9})
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, err := decodeFrame(b)
		if err != nil {
			return
		}
		var again []byte
		switch {
		case fr.Sync:
			again = encodeSync()
		case fr.Fill != nil:
			again = encodeFill(*fr.Fill)
		case fr.Haves != nil:
			again = encodeHaves(fr.Haves)
		default:
			again = encodeMessages(fr.Messages)
		}
		fr2, err := decodeFrame(again)
		if err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		if !reflect.DeepEqual(fr, fr2) {
			t.Fatalf("round trip differs")
		}
	})
}

func TestWireGolden(t *testing.T) {
	m := &message{Topic: "t", Origin: "a", Epoch: 1, Seq: 2, At: time.Unix(0, 3), Key: "", Data: []byte("hi"),
		Deps: []dep{{Epoch: 5, Seq: 7}, {Epoch: 9, Seq: 300}}}
	got := encodeMessages([]*message{m})
	head := []byte{1, 1, 't', 1, 'a', 0, 0, 0, 0, 0, 0, 0, 1, 2, 6, 0, 2, 'h', 'i'} // count, then the message up to its data
	want := append([]byte{2, kindMessages}, head...)
	want = append(want, 2, 0, 0, 0, 0, 0, 0, 0, 5, 7, 0, 0, 0, 0, 0, 0, 0, 9, 0xac, 0x02)
	if !bytes.Equal(got, want) {
		t.Fatalf("got %v\nwant %v", got, want)
	}
	// A version 1 frame (a node not yet upgraded) is read, without deps.
	v1 := append([]byte{1, kindMessages}, head...)
	fr, err := decodeFrame(v1)
	if err != nil || len(fr.Messages) != 1 || fr.Messages[0].Deps != nil || string(fr.Messages[0].Data) != "hi" {
		t.Fatalf("version 1: %+v %v", fr, err)
	}
	// Deps: count, then per dep epoch (8 bytes) and seq (uvarint).
	withDeps := func(deps ...byte) []byte {
		return append(append([]byte{2, kindMessages}, head...), deps...)
	}
	tooMany := []byte{maxDeps + 1}
	for i := range maxDeps + 1 {
		tooMany = append(tooMany, 0, 0, 0, 0, 0, 0, 0, byte(10+i), 1)
	}
	errs := []struct {
		name string
		b    []byte
	}{
		{"short", []byte{2}},
		{"version", []byte{3, 1, 0}},
		{"kind", []byte{2, 99}},
		{"trailing", append(append([]byte{}, want...), 0)},
		{"truncated", want[:len(want)-1]},
		{"v1 trailing", append(append([]byte{}, v1...), 0)},
		{"no deps count", withDeps()},
		{"seq zero", []byte{2, kindMessages, 1, 1, 't', 1, 'a', 0, 0, 0, 0, 0, 0, 0, 1, 0, 6, 0, 2, 'h', 'i', 0}},
		{"bad topic", []byte{2, kindMessages, 1, 1, ' ', 1, 'a', 0, 0, 0, 0, 0, 0, 0, 1, 2, 6, 0, 2, 'h', 'i', 0}},
		{"dep seq zero", withDeps(1, 0, 0, 0, 0, 0, 0, 0, 5, 0)},
		{"dep on own epoch", withDeps(1, 0, 0, 0, 0, 0, 0, 0, 1, 3)},
		{"deps unsorted", withDeps(2, 0, 0, 0, 0, 0, 0, 0, 9, 1, 0, 0, 0, 0, 0, 0, 0, 5, 1)},
		{"deps repeated", withDeps(2, 0, 0, 0, 0, 0, 0, 0, 5, 1, 0, 0, 0, 0, 0, 0, 0, 5, 2)},
		{"too many deps", withDeps(tooMany...)},
		{"deps truncated", withDeps(2, 0, 0, 0, 0, 0, 0, 0, 5, 1)},
		{"bad fill", encodeFill(fill{Topic: "t", Epoch: 1, From: 5, To: 4})},
		{"sync with a body", []byte{2, kindSync, 0}},
	}
	for _, tc := range errs {
		t.Run(tc.name, func(t *testing.T) {
			_, err := decodeFrame(tc.b)
			if err == nil {
				t.Fatal("no error")
			}
			t.Log(err)
		})
	}
}

// FuzzStreamRequest fuzzes what the stream handler reads from a request:
// the query (topics, cursor) and the Last-Event-ID header.
func FuzzStreamRequest(f *testing.F) {
	f.Add("topic=a&topic=b", "")
	f.Add("topic=a,b&cursor="+Cursor{{TopicHash("a"), 1, 2}}.String(), "")
	f.Add("topic=farmlb-x", "garbage")
	f.Add("topic=a&event=topic", "")
	f.Add("topic=a&event=bogus", "")
	s := &Server{cfg: DefaultConfig()}
	f.Fuzz(func(t *testing.T, query, lastID string) {
		r := &http.Request{URL: &url.URL{RawQuery: query}, Header: http.Header{}}
		r.Header.Set("Last-Event-ID", lastID)
		topics, _, named, _, err := s.parseStreamRequest(r)
		if err != nil {
			return
		}
		if ev := r.URL.Query().Get("event"); named != (ev == "topic") || ev != "" && ev != "message" && ev != "topic" {
			t.Fatalf("event=%q accepted as named=%v", ev, named)
		}
		if len(topics) == 0 || len(topics) > s.cfg.MaxTopics {
			t.Fatalf("%d topics accepted", len(topics))
		}
		for _, tp := range topics {
			if CheckTopic(tp) != nil {
				t.Fatalf("bad topic %q accepted", tp)
			}
		}
	})
}

// FuzzEventEnvelope checks that any payload a publish accepts (UTF-8 text)
// reaches a stock EventSource whole: the unnamed event is one data line,
// which JSON-decodes to the topic and the payload, byte for byte.
func FuzzEventEnvelope(f *testing.F) {
	f.Add("1.0842")
	f.Add("a\r\nb\n")
	f.Add(`{"x":"</script>\u2028"}`)
	f.Fuzz(func(t *testing.T, data string) {
		if !utf8.ValidString(data) {
			return // refused by publish
		}
		ev := string(appendEvent(nil, nil, &message{Topic: "t.x", Data: []byte(data)}, false))
		body, ok := strings.CutPrefix(ev, "id: AQ\ndata: ")
		if !ok || !strings.HasSuffix(body, "\n\n") || strings.ContainsAny(body[:len(body)-2], "\r\n") {
			t.Fatalf("not one data line: %q", ev)
		}
		var env struct{ Topic, Data string }
		if err := json.Unmarshal([]byte(body[:len(body)-2]), &env); err != nil || env.Topic != "t.x" || env.Data != data {
			t.Fatalf("%q decodes to %+v, %v", body, env, err)
		}
	})
}

func TestAppendEvent(t *testing.T) {
	tests := []struct{ name, data, named, envelope string }{
		{"one line", "x", "data: x\n", `"x"`},
		{"lf", "a\nb", "data: a\ndata: b\n", `"a\nb"`},
		{"crlf", "a\r\nb", "data: a\ndata: b\n", `"a\r\nb"`},
		{"cr", "a\rb", "data: a\ndata: b\n", `"a\rb"`},
		{"empty", "", "data: \n", `""`},
		{"trailing newline", "a\n", "data: a\ndata: \n", `"a\n"`},
		{"json payload", `{"bid":1.08,"s":"<&>"}`, `data: {"bid":1.08,"s":"<&>"}` + "\n", `"{\"bid\":1.08,\"s\":\"<&>\"}"`},
		{"line separators", "a\u2028b", "data: a\u2028b\n", `"a\u2028b"`},
	}
	id := "id: " + Cursor{{1, 2, 3}}.String() + "\n"
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := &message{Topic: "t", Data: []byte(tc.data)}
			if got, want := string(appendEvent(nil, Cursor{{1, 2, 3}}, m, true)), id+"event: t\n"+tc.named+"\n"; got != want {
				t.Errorf("named: got %q want %q", got, want)
			}
			got := string(appendEvent(nil, Cursor{{1, 2, 3}}, m, false))
			if want := id + `data: {"topic":"t","data":` + tc.envelope + "}\n\n"; got != want {
				t.Errorf("envelope: got %q want %q", got, want)
			}
			// What an EventSource's onmessage gets back is the payload.
			var env struct{ Topic, Data string }
			line := strings.TrimSuffix(strings.TrimPrefix(got, id+"data: "), "\n\n")
			if err := json.Unmarshal([]byte(line), &env); err != nil || env.Topic != "t" || env.Data != tc.data {
				t.Errorf("envelope %s decodes to %+v, %v", line, env, err)
			}
		})
	}
}

// TestGoldenFiles pins the encodings other nodes and clients depend on:
// testdata/*.golden hold the hex of a replication frame of each kind and
// of a cursor. FARMLB_UPDATE_GOLDEN=1 rewrites them.
func TestGoldenFiles(t *testing.T) {
	m := &message{Topic: "prices.EURUSD", Origin: "serverA", Epoch: 0x0123456789abcdef, Seq: 300, At: time.Unix(1764403200, 5), Key: "k1", Data: []byte("1.0842"),
		Deps: []dep{{Epoch: 42, Seq: 1}, {Epoch: 0xfedcba9876543210, Seq: 1000}}}
	tests := []struct {
		file string
		got  []byte
	}{
		{"messages.golden", encodeMessages([]*message{m})},
		{"fill.golden", encodeFill(fill{Topic: "prices.EURUSD", Epoch: 0x0123456789abcdef, From: 7, To: 300})},
		{"have.golden", encodeHaves([]have{{Topic: "prices.EURUSD", Origin: "serverB", Epoch: 0x0123456789abcdef, Base: 5, Head: 300}})},
		{"cursor.golden", []byte(Cursor{{TopicHash("prices.EURUSD"), 0x0123456789abcdef, 300}, {TopicHash("prices.GBPUSD"), 42, 1}}.String())},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			path := filepath.Join("testdata", tc.file)
			got := hex.EncodeToString(tc.got) + "\n"
			if os.Getenv("FARMLB_UPDATE_GOLDEN") == "1" {
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if got != string(want) {
				t.Errorf("encoding changed:\n got %s\nwant %s", got, want)
			}
		})
	}
}

// TestGoldenV1 reads a version 1 messages frame, as a node before
// dependencies sent it: the message comes without deps.
func TestGoldenV1(t *testing.T) {
	h, err := os.ReadFile(filepath.Join("testdata", "messages-v1.golden"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := hex.DecodeString(string(bytes.TrimSpace(h)))
	if err != nil {
		t.Fatal(err)
	}
	fr, err := decodeFrame(b)
	if err != nil {
		t.Fatal(err)
	}
	want := []*message{{Topic: "prices.EURUSD", Origin: "serverA", Epoch: 0x0123456789abcdef, Seq: 300, At: time.Unix(1764403200, 5), Key: "k1", Data: []byte("1.0842")}}
	if !reflect.DeepEqual(fr.Messages, want) {
		t.Fatalf("got %+v", fr.Messages)
	}
}
