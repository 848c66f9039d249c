package pushd

import "testing"

func BenchmarkCursorAppend(b *testing.B) {
	c := Cursor{{1, 2, 300}, {1, 3, 70000}, {5, 9, 12}}
	buf := make([]byte, 0, 256)
	b.ReportAllocs()
	for b.Loop() {
		buf = c.Append(buf[:0])
	}
}
