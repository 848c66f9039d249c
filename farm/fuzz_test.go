package farm

import (
	"reflect"
	"strings"
	"testing"
)

// Every decoder of the farm list has a fuzz target. Each checks that the
// decoder never panics and that whatever it accepts encodes and decodes back
// to the same list.

func seedFiles(f *testing.F) {
	for _, name := range []string{"patent.txt", "sample.txt", "sample.json", "sample.dig"} {
		b, err := readTestdata(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
}

func FuzzParseText(f *testing.F) {
	seedFiles(f)
	f.Add([]byte("http://serverA.caplin.com UP 2963 A"))
	f.Add([]byte("# farm service=s generated=2026-01-01T00:00:00Z reporter=r\nhttp://a UP 1 B name=x addrs=::1 cap=3\n"))
	f.Add([]byte("http://a DOWN 7 A reason=health:feed later=1\nhttp://b DRAINING 0 A cap=9 reason=overload:fanout\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		l, err := ParseText(data)
		if err != nil {
			return
		}
		checkReencodes(t, l)
	})
}

func FuzzParseJSON(f *testing.F) {
	seedFiles(f)
	f.Add([]byte(`{"servers":[{"name":"a","url":"http://a","status":"UP","users":1,"priority":"A"}]}`))
	f.Add([]byte(`{"servers":[{"name":"a","url":"http://a","status":"DOWN","users":1,"priority":"A","reason":"health:x"}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		l, err := ParseJSON(data)
		if err != nil {
			return
		}
		checkReencodes(t, l)
	})
}

func FuzzParseTXT(f *testing.F) {
	f.Add("http://serverA.caplin.com UP 2963 A", "# farm reporter=x", "http://b UP 0 Z cap=1")
	f.Add("http://a DOWN 3 A reason=health:feed", "http://b DRAINING 1 A reason=drain", "http://c UP 0 B later=x")
	f.Fuzz(func(t *testing.T, a, b, c string) {
		l, err := ParseTXT([]string{a, b, c})
		if err != nil {
			return
		}
		checkReencodes(t, l)
	})
}

func FuzzParseTXTPresentation(f *testing.F) {
	seedFiles(f)
	f.Add([]byte(`x. 5 IN TXT "http://a UP 1 A name=\097\"" "http://b UP 2 A"`))
	f.Fuzz(func(t *testing.T, data []byte) {
		l, err := ParseTXTPresentation(data)
		if err != nil {
			return
		}
		checkReencodes(t, l)
	})
}

// checkReencodes asserts that an accepted list goes through all three
// encodings unchanged.
func checkReencodes(t *testing.T, l *List) {
	t.Helper()
	if err := l.Validate(); err != nil {
		t.Fatalf("decoder accepted an invalid list: %v", err)
	}
	text, err := MarshalText(l)
	if err != nil {
		t.Fatalf("MarshalText of an accepted list: %v", err)
	}
	back, err := ParseText(text)
	if err != nil {
		t.Fatalf("ParseText(MarshalText) = %v\n%s", err, text)
	}
	norm := func(x *List) *List {
		x = x.Clone()
		x.GeneratedAt = x.GeneratedAt.UTC()
		for i := range x.Servers {
			if len(x.Servers[i].Addrs) == 0 {
				x.Servers[i].Addrs = nil
			}
		}
		return x
	}
	if !reflect.DeepEqual(norm(back), norm(l)) {
		t.Fatalf("text round trip changed the list:\n%+v\n%+v", back, l)
	}
	js, err := MarshalJSON(l)
	if err != nil {
		t.Fatal(err)
	}
	if back, err = ParseJSON(js); err != nil || !reflect.DeepEqual(norm(back), norm(l)) {
		t.Fatalf("json round trip: %v\n%s", err, js)
	}
	if strs, err := MarshalTXT(l); err == nil {
		for _, s := range strs {
			if len(s) > 254 || strings.ContainsAny(s, "\r\n") {
				t.Fatalf("bad TXT string %q", s)
			}
		}
	}
}
