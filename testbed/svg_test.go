package testbed

import (
	"encoding/xml"
	"math"
	"strings"
	"testing"
)

// Every chart must be well-formed XML (a browser shows nothing otherwise)
// and show its data.
func TestChartsAreWellFormedSVG(t *testing.T) {
	series := map[string][][2]float64{"serverA": {{0, 0}, {1, 50}, {1.5, math.NaN()}, {2, 100}, {2.5, 100}}, "serverB": {{0, 0}, {2, 80}}}
	for _, tc := range []struct {
		name, svg string
		want      []string
	}{
		{"a gap breaks the line", lineChart("u", "s", "u", []string{"serverA"}, series, nil), []string{"<polyline"}},
		{"users", lineChart("Users <per> node", "seconds", "users", []string{"serverA", "serverB"}, series, []chartMark{{1.5, "kill serverA"}}), []string{"serverA", "kill serverA", "polyline", "Users &lt;per&gt; node"}},
		{"histogram", histogram("Reconnect", "ms", "n", []int64{5, 10, 10, 200, 1500}), []string{"n = 5", "<rect x="}},
		{"empty histogram", histogram("Reconnect", "ms", "n", nil), []string{"no reconnects"}},
		{"percentiles", percentileBars("Reconnect", "ms", []string{"p50", "p99", "max"}, []int64{100, 900, 1200}, "note"), []string{"p99: 900 ms"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dec := xml.NewDecoder(strings.NewReader(tc.svg))
			for {
				_, err := dec.Token()
				if err != nil {
					if err.Error() != "EOF" {
						t.Fatalf("not well-formed: %v", err)
					}
					break
				}
			}
			if strings.Contains(tc.svg, "NaN") {
				t.Error("NaN in the drawing")
			}
			if tc.name == "a gap breaks the line" && strings.Count(tc.svg, "<polyline") != 2 {
				t.Errorf("%d lines, want 2 around the gap", strings.Count(tc.svg, "<polyline"))
			}
			for _, w := range tc.want {
				if !strings.Contains(tc.svg, w) {
					t.Errorf("lacks %q", w)
				}
			}
		})
	}
}

func TestNiceMax(t *testing.T) {
	for _, tc := range []struct{ in, want float64 }{{0, 1}, {1, 1}, {3, 5}, {7, 10}, {120, 200}, {1001, 2000}} {
		if got := niceMax(tc.in); got != tc.want {
			t.Errorf("niceMax(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
}
