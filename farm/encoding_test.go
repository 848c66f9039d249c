package farm

import (
	"errors"
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// sampleList is one list that exercises every field of the model.
func sampleList() *List {
	return &List{
		Service:     "stream.example.com",
		GeneratedAt: time.Date(2026, 11, 29, 14, 0, 0, 123000000, time.UTC),
		Reporter:    "serverA",
		Servers: []Server{
			{Name: "serverA", URL: "http://serverA.caplin.com", Status: StatusUp, Users: 2963, Priority: 0},
			{Name: "serverB", URL: "http://serverB.caplin.com", Status: StatusDown, Users: 0, Priority: 1},
			{Name: "serverN", URL: "http://serverN.caplin.com", Status: StatusUp, Users: 2979, Priority: 0},
			{Name: "edge1", URL: "https://198.18.0.11:8443", Addrs: []netip.Addr{netip.MustParseAddr("198.18.0.11"), netip.MustParseAddr("2001:db8::11")},
				Status: StatusDraining, Users: 17, Priority: 25, Capacity: 19000, Reason: "health:feed"},
			{Name: "serverF", URL: "http://serverF.caplin.com", Status: StatusDown, Users: 12, Priority: 0, Reason: "health:disk"},
		},
	}
}

func TestPatentLineParses(t *testing.T) {
	s, err := ParseLine("http://serverA.caplin.com UP 2963 A")
	if err != nil {
		t.Fatal(err)
	}
	want := Server{Name: "serverA", URL: "http://serverA.caplin.com", Status: StatusUp, Users: 2963, Priority: 0}
	if !reflect.DeepEqual(s, want) {
		t.Fatalf("got %+v, want %+v", s, want)
	}
	if got := FormatLine(s); got != "http://serverA.caplin.com UP 2963 A" {
		t.Fatalf("FormatLine = %q", got)
	}
}

// TestRoundTrip sends the same list through all three encodings, and through
// each into the others, and expects the list back every time.
func TestRoundTrip(t *testing.T) {
	lists := map[string]*List{
		"sample":      sampleList(),
		"empty":       {Servers: []Server{}},
		"no header":   {Servers: sampleList().Servers[:3]},
		"26 groups":   manyGroups(),
		"100 servers": bigList(100),
	}
	for name, l := range lists {
		t.Run(name, func(t *testing.T) {
			viaText := mustText(t, l)
			viaJSON := mustJSON(t, l)
			viaTXT := mustTXT(t, l)
			for enc, got := range map[string]*List{"text": viaText, "json": viaJSON, "txt": viaTXT,
				"json>text": mustText(t, viaJSON), "txt>json": mustJSON(t, viaTXT), "text>txt": mustTXT(t, viaText)} {
				if !reflect.DeepEqual(got, l) {
					t.Errorf("%s: got\n%+v\nwant\n%+v", enc, got, l)
				}
			}
		})
	}
}

func mustText(t *testing.T, l *List) *List {
	t.Helper()
	b, err := MarshalText(l)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseText(b)
	if err != nil {
		t.Fatalf("ParseText(%q): %v", b, err)
	}
	return got
}

func mustJSON(t *testing.T, l *List) *List {
	t.Helper()
	b, err := MarshalJSON(l)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseJSON(b)
	if err != nil {
		t.Fatalf("ParseJSON(%s): %v", b, err)
	}
	return got
}

func mustTXT(t *testing.T, l *List) *List {
	t.Helper()
	strs, err := MarshalTXT(l)
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range strs {
		if len(s) >= 255 {
			t.Fatalf("TXT string %d is %d bytes", i, len(s))
		}
	}
	got, err := ParseTXT(strs)
	if err != nil {
		t.Fatalf("ParseTXT(%q): %v", strs, err)
	}
	return got
}

func manyGroups() *List {
	l := &List{Servers: []Server{}}
	for p := PriorityHighest; p <= PriorityLowest; p++ {
		name := "s" + p.String()
		l.Servers = append(l.Servers, Server{Name: name, URL: "http://" + name + ".example.com:8080", Status: Status(int(p) % 3), Users: int(p) * 7, Priority: p})
	}
	return l
}

func bigList(n int) *List {
	l := &List{Service: "stream.example.com", Servers: []Server{}}
	for i := range n {
		name := "server" + strings.Repeat("x", i%5) + string(rune('a'+i%26)) + strconv.Itoa(i)
		l.Servers = append(l.Servers, Server{Name: name, URL: "https://" + name + ".stream.example.com",
			Addrs: []netip.Addr{netip.AddrFrom4([4]byte{198, 18, byte(i / 250), byte(i%250 + 1)})}, Status: StatusUp, Users: i * 31, Priority: Priority(i % 3)})
	}
	return l
}

// TestGolden keeps the encodings' exact bytes stable: a change to them is a
// change of wire format, to be made on purpose (go test -update).
func TestGolden(t *testing.T) {
	l := sampleList()
	text, err := MarshalText(l)
	if err != nil {
		t.Fatal(err)
	}
	js, err := MarshalJSON(l)
	if err != nil {
		t.Fatal(err)
	}
	strs, err := MarshalTXT(l)
	if err != nil {
		t.Fatal(err)
	}
	var pres strings.Builder
	pres.WriteString("_farm.stream.example.com. 5 IN TXT")
	for _, s := range strs {
		pres.WriteString(` "` + s + `"`)
	}
	pres.WriteString("\n")
	for file, got := range map[string][]byte{"sample.txt": text, "sample.json": append(js, '\n'), "sample.dig": []byte(pres.String())} {
		path := filepath.Join("testdata", file)
		if *update {
			if err := os.WriteFile(path, got, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != string(want) {
			t.Errorf("%s changed:\n%s\nwant:\n%s", path, got, want)
		}
		back, f, err := Decode(want)
		if err != nil {
			t.Fatalf("Decode(%s): %v", path, err)
		}
		if !reflect.DeepEqual(back, l) {
			t.Errorf("Decode(%s) as %s: got %+v", path, f, back)
		}
	}
}

func TestDetectFormat(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want Format
	}{
		{"patent text", "http://serverA.caplin.com UP 2963 A\n", FormatText},
		{"text with header", "# farm service=x\nhttp://a UP 1 A\n", FormatText},
		{"json", "  {\"servers\":[]}", FormatJSON},
		{"dig output", ";; ANSWER SECTION:\n_farm.x. 5 IN TXT \"http://a UP 1 A\"\n", FormatTXT},
		{"bare quoted strings", "\"http://a UP 1 A\" \"http://b UP 2 A\"", FormatTXT},
		{"empty", "", FormatText},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := DetectFormat([]byte(tt.in)); got != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
		})
	}
}

// TestParseErrors checks that each kind of bad input is refused with an error
// that names the line and the field.
func TestParseErrors(t *testing.T) {
	tests := []struct {
		name, in string
		line     int
		field    string
		msg      string
	}{
		{"missing priority", "http://a UP 12", 1, "priority", "missing"},
		{"missing everything", "http://a", 1, "status", "missing"},
		{"bad status", "http://a.x UP 1 A\nhttp://b.x SIDEWAYS 1 A", 2, "status", `"SIDEWAYS"`},
		{"negative users", "http://a UP -5 A", 1, "users", `"-5"`},
		{"users not a number", "http://a UP many A", 1, "users", "many"},
		{"users too big", "http://a UP 99999999999 A", 1, "users", "99999999999"},
		{"bad priority", "http://a UP 1 AA", 1, "priority", `"AA"`},
		{"priority digit", "http://a UP 1 1", 1, "priority", `"1"`},
		{"bad scheme", "ftp://a UP 1 A", 1, "url", "scheme"},
		{"no host", "http:// UP 1 A", 1, "url", "no host"},
		{"bad reason", "\n\nhttp://a UP 1 A reason=a,b", 3, "reason", "not allowed"},
		{"empty reason", "http://a UP 1 A reason=", 1, "reason", "empty"},
		{"long reason", "http://a UP 1 A reason=" + strings.Repeat("r", 65), 1, "reason", "at most 64"},
		{"extra without =", "http://a UP 1 A extra", 1, "extra", "key=value"},
		{"bad addr", "http://a UP 1 A addrs=1.2.3.4,nope", 1, "addrs", `"nope"`},
		{"duplicate name", "http://a.x UP 1 A\nhttp://a.y UP 1 A", 2, "name", "repeats line 1"},
		{"field twice", "http://a UP 1 A cap=1 cap=2", 1, "cap", "twice"},
		{"bad header time", "# farm generated=yesterday\nhttp://a UP 1 A", 1, "generated", "RFC 3339"},
		{"unknown header", "# farm colour=blue", 1, "colour", "unknown header field"},
		{"line too long", "http://a UP 1 A name=" + strings.Repeat("n", 300), 1, "", "at most 254"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseText([]byte(tt.in))
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("err = %v, want a *FieldError", err)
			}
			if fe.Line != tt.line || fe.Field != tt.field {
				t.Errorf("line %d field %q, want line %d field %q (%v)", fe.Line, fe.Field, tt.line, tt.field, err)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("%q does not say %q", err, tt.msg)
			}
			if tt.line > 0 && !strings.HasPrefix(err.Error(), "line "+strconv.Itoa(tt.line)+": ") {
				t.Errorf("%q does not start with the line", err)
			}
		})
	}
}

// TestLaterFieldsSkipped: a key=value field this version does not know is
// skipped, so that a parser of today reads the lines of a later version
// (as this version's reason= is read by a parser that knows only the
// patent's four fields).
func TestLaterFieldsSkipped(t *testing.T) {
	l, err := ParseText([]byte("http://a UP 1 A colour=red cap=5 weight=3\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := Server{Name: "a", URL: "http://a", Status: StatusUp, Users: 1, Capacity: 5}
	if !reflect.DeepEqual(l.Servers[0], want) {
		t.Errorf("got %+v, want %+v", l.Servers[0], want)
	}
}

// TestReasonKeepsPatentFields: a line with a reason still starts with the
// patent's four fields, so that a parser reading only those sees the
// server's status unchanged.
func TestReasonKeepsPatentFields(t *testing.T) {
	for _, s := range sampleList().Servers {
		f := strings.Fields(FormatLine(s))
		if f[0] != s.URL || f[1] != s.Status.String() || f[2] != strconv.Itoa(s.Users) || f[3] != s.Priority.String() {
			t.Errorf("line %q does not start with URL STATUS USERS PRIORITY", FormatLine(s))
		}
		if s.Reason != "" && f[len(f)-1] != "reason="+s.Reason {
			t.Errorf("line %q does not end with reason=%s", FormatLine(s), s.Reason)
		}
	}
}

func TestJSONErrors(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"bad status", `{"servers":[{"name":"a","url":"http://a","status":"MAYBE","users":1,"priority":"A"}]}`, `"MAYBE"`},
		{"negative users", `{"servers":[{"name":"a","url":"http://a","status":"UP","users":-1,"priority":"A"}]}`, "server 0: users"},
		{"users is a string", `{"servers":[{"name":"a","url":"http://a","status":"UP","users":"1","priority":"A"}]}`, "servers.users"},
		{"no name", `{"servers":[{"url":"http://a","status":"UP","users":1,"priority":"A"}]}`, "server 0: name: empty"},
		{"bad addr", `{"servers":[{"name":"a","url":"http://a","addrs":["x"],"status":"UP","users":1,"priority":"A"}]}`, "x"},
		{"duplicate", `{"servers":[{"name":"a","url":"http://a","status":"UP","users":1,"priority":"A"},{"name":"A","url":"http://b","status":"UP","users":1,"priority":"A"}]}`, "server 1: name"},
		{"trailing junk", `{"servers":[]} {}`, "after the list"},
		{"bad reason", `{"servers":[{"name":"a","url":"http://a","status":"DOWN","users":1,"priority":"A","reason":"no way"}]}`, "server 0: reason"},
		{"truncated", `{"servers":[`, "json"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseJSON([]byte(tt.in))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tt.want)
			}
		})
	}
}

func TestTXTErrors(t *testing.T) {
	if _, err := ParseTXT([]string{"http://a UP 1 A", "http://b UP x A"}); err == nil || !strings.HasPrefix(err.Error(), "line 2: users") {
		t.Errorf("err = %v", err)
	}
	if _, err := ParseTXT([]string{"http://a UP 1 A\nhttp://b UP 1 A"}); err == nil {
		t.Error("a line break inside a string was accepted")
	}
	if _, err := ParseTXTPresentation([]byte(`x TXT "http://a UP 1 A`)); err == nil || !strings.Contains(err.Error(), "unterminated") {
		t.Errorf("err = %v", err)
	}
	l, err := ParseTXTPresentation([]byte(`x TXT "http://a UP 1 A name=\097b" ; comment` + "\n"))
	if err != nil || l.Servers[0].Name != "ab" {
		t.Errorf("escapes: %v %+v", err, l)
	}
}

func TestMarshalRefusesInvalid(t *testing.T) {
	l := sampleList()
	l.Servers[1].Users = -1
	if _, err := MarshalText(l); err == nil || !strings.Contains(err.Error(), "server 1: users") {
		t.Errorf("MarshalText: %v", err)
	}
	l = sampleList()
	l.Servers[0].URL = "http://" + strings.Repeat("a", 200)
	if _, err := MarshalTXT(l); err == nil || !strings.Contains(err.Error(), "url") {
		t.Errorf("MarshalTXT: %v", err)
	}
}

func readTestdata(name string) ([]byte, error) { return os.ReadFile(filepath.Join("testdata", name)) }
