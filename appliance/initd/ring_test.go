package initd

import (
	"strings"
	"sync"
	"testing"
)

func TestRing(t *testing.T) {
	for _, tc := range []struct {
		name   string
		size   int
		writes []string
		want   string
	}{
		{"empty", 16, nil, ""},
		{"fits", 16, []string{"a\n", "b\n"}, "a\nb\n"},
		{"exactly full", 4, []string{"a\n", "b\n"}, "b\n"},
		{"wraps, drops the cut line", 10, []string{"one\n", "two\n", "three\n"}, "three\n"},
		{"wraps mid write", 8, []string{"abc\n", "defgh\n"}, "defgh\n"},
		{"write larger than ring", 6, []string{"x\n", "0123456789\nyz\n"}, "yz\n"},
		{"no newline after wrap", 4, []string{"abcdefgh"}, "efgh"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := NewRing(tc.size)
			for _, w := range tc.writes {
				if n, err := r.Write([]byte(w)); n != len(w) || err != nil {
					t.Fatalf("Write = %d, %v", n, err)
				}
			}
			if got := string(r.Bytes()); got != tc.want {
				t.Errorf("Bytes = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestRingConcurrentWholeLines(t *testing.T) {
	r := NewRing(1 << 10)
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			line := strings.Repeat(string(rune('a'+i)), 9) + "\n"
			for range 500 {
				_, _ = r.Write([]byte(line))
			}
		})
	}
	wg.Wait()
	for _, l := range strings.Split(strings.TrimSuffix(string(r.Bytes()), "\n"), "\n") {
		if len(l) != 9 || strings.Count(l, l[:1]) != 9 {
			t.Fatalf("torn line %q", l)
		}
	}
}

// FuzzRing checks the ring against a plain buffer: what it returns is
// always a suffix of everything written, at most Size bytes.
func FuzzRing(f *testing.F) {
	f.Add(7, []byte("one\ntwo\nthree\n"), 3)
	f.Fuzz(func(t *testing.T, size int, data []byte, step int) {
		size = 1 + abs(size)%64
		step = 1 + abs(step)%16
		r := NewRing(size)
		for i := 0; i < len(data); i += step {
			_, _ = r.Write(data[i:min(i+step, len(data))])
		}
		got := r.Bytes()
		if len(got) > size || !strings.HasSuffix(string(data), string(got)) {
			t.Fatalf("ring of %d returned %q, not a suffix of %q", size, got, data)
		}
	})
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}
