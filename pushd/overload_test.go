package pushd

import (
	"testing"
	"time"
)

func TestFanoutPercentile(t *testing.T) {
	var f fanoutTracker
	take := func(ds ...time.Duration) fanoutCounts {
		for _, d := range ds {
			f.observe(d)
		}
		return f.take()
	}
	ms := time.Millisecond
	cases := []struct {
		name  string
		takes []fanoutCounts
		want  time.Duration
		n     uint64
	}{
		{"nothing", []fanoutCounts{take()}, 0, 0},
		{"one", []fanoutCounts{take(3 * ms)}, 3 * ms, 1},
		{"bucket bound", []fanoutCounts{take(3*ms, 3*ms, 3*ms, 3*ms, 3*ms, 3*ms, 3*ms, 3*ms, 3*ms, 40*ms)}, 5 * ms, 10},
		{"tail over 10%", []fanoutCounts{take(ms, ms, ms, ms, ms, ms, ms, ms, 600*ms, 600*ms)}, 600 * ms, 10},
		{"across takes", []fanoutCounts{take(ms, ms, ms, ms), take(ms, ms, ms, ms), take(700*ms, 700*ms)}, 700 * ms, 10},
		{"beyond the last bucket", []fanoutCounts{take(time.Minute)}, time.Minute, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, n := percentile90(c.takes)
			if got != c.want || n != c.n {
				t.Errorf("p90 %v of %d, want %v of %d", got, n, c.want, c.n)
			}
		})
	}
}

// BenchmarkFanoutObserve is what overload detection adds to the write of
// every event: one bucket count and a maximum, with atomics, from every
// flush worker at once.
func BenchmarkFanoutObserve(b *testing.B) {
	var f fanoutTracker
	b.RunParallel(func(pb *testing.PB) {
		d := 3 * time.Millisecond
		for pb.Next() {
			f.observe(d)
			d = (d + 7*time.Millisecond) % (90 * time.Millisecond)
		}
	})
}
