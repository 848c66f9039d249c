package pushd

import "testing"

// BenchmarkAppendEvent compares the two forms of an event (default: an
// unnamed event with a {"topic","data"} envelope; event=topic: named, raw
// data) for a price tick: "render" is the once-per-message work (a fresh
// message each time), "fanout" what each stream adds per message (the
// rendered bytes are shared).
func BenchmarkAppendEvent(b *testing.B) {
	data := []byte(`{"symbol":"EURUSD","bid":1.08975,"ask":1.08986,"seq":111,"ts":"2026-12-08T02:28:58.104587785Z"}`)
	cur := Cursor{{TopicHash("prices.EURUSD"), 0x0123456789abcdef, 111}, {TopicHash("prices.EURUSD"), 0xfedcba9876543210, 42}}
	for _, form := range []struct {
		name  string
		named bool
	}{{"envelope", false}, {"named", true}} {
		b.Run(form.name+"/render", func(b *testing.B) {
			buf := make([]byte, 0, 512)
			b.ReportAllocs()
			for b.Loop() {
				m := &message{Topic: "prices.EURUSD", Data: data}
				buf = appendEvent(buf[:0], cur, m, form.named)
			}
			b.SetBytes(int64(len(buf)))
		})
		b.Run(form.name+"/fanout", func(b *testing.B) {
			m := &message{Topic: "prices.EURUSD", Data: data}
			buf := make([]byte, 0, 512)
			b.ReportAllocs()
			for b.Loop() {
				buf = appendEvent(buf[:0], cur, m, form.named)
			}
			b.SetBytes(int64(len(buf)))
		})
	}
}
