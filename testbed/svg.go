package testbed

import (
	"fmt"
	"html"
	"math"
	"strings"
)

// The report's charts, drawn as plain SVG: no plotting library, and the
// files open in any browser and render inside report.md on a forge.

const (
	chartW, chartH = 720, 320
	padL, padR     = 60, 130
	padT, padB     = 36, 44
)

var palette = []string{"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"}

// chartMark is a vertical line with a label (a fault on the timeline).
type chartMark struct {
	x     float64
	label string
}

// niceMax rounds v up to 1, 2 or 5 times a power of ten.
func niceMax(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if v <= m*p {
			return m * p
		}
	}
	return 10 * p
}

type frame struct {
	b          strings.Builder
	xMax, yMax float64
}

func newFrame(title, xLabel, yLabel string, xMax, yMax float64) *frame {
	f := &frame{xMax: niceMax(xMax), yMax: niceMax(yMax)}
	fmt.Fprintf(&f.b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", chartW, chartH, chartW, chartH)
	fmt.Fprintf(&f.b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(&f.b, `<text x="%d" y="20" font-size="15" font-weight="bold">%s</text>`+"\n", padL, html.EscapeString(title))
	x0, y0, x1, y1 := padL, chartH-padB, chartW-padR, padT
	for i := 0; i <= 5; i++ {
		y := f.y(f.yMax * float64(i) / 5)
		fmt.Fprintf(&f.b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#ddd"/>`+"\n", x0, y, x1, y)
		fmt.Fprintf(&f.b, `<text x="%d" y="%.1f" text-anchor="end">%s</text>`+"\n", x0-6, y+4, fmtTick(f.yMax*float64(i)/5))
		x := f.x(f.xMax * float64(i) / 5)
		fmt.Fprintf(&f.b, `<text x="%.1f" y="%d" text-anchor="middle">%s</text>`+"\n", x, y0+16, fmtTick(f.xMax*float64(i)/5))
	}
	fmt.Fprintf(&f.b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="black"/>`+"\n", x0, y0, x1, y0)
	fmt.Fprintf(&f.b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="black"/>`+"\n", x0, y0, x0, y1)
	fmt.Fprintf(&f.b, `<text x="%d" y="%d" text-anchor="middle">%s</text>`+"\n", (x0+x1)/2, chartH-8, html.EscapeString(xLabel))
	fmt.Fprintf(&f.b, `<text x="14" y="%d" text-anchor="middle" transform="rotate(-90 14 %d)">%s</text>`+"\n", (y0+y1)/2, (y0+y1)/2, html.EscapeString(yLabel))
	return f
}

func fmtTick(v float64) string {
	if v == math.Trunc(v) {
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.1f", v)
}

func (f *frame) x(v float64) float64 {
	return padL + v/f.xMax*float64(chartW-padL-padR)
}

func (f *frame) y(v float64) float64 {
	return float64(chartH-padB) - v/f.yMax*float64(chartH-padB-padT)
}

func (f *frame) done() string {
	f.b.WriteString("</svg>\n")
	return f.b.String()
}

// lineChart draws one line per series (points are [x, y]), with a legend
// and a dashed vertical line per mark.
func lineChart(title, xLabel, yLabel string, names []string, series map[string][][2]float64, marks []chartMark) string {
	xMax, yMax := 1.0, 1.0
	for _, pts := range series {
		for _, p := range pts {
			if !math.IsNaN(p[1]) {
				xMax, yMax = max(xMax, p[0]), max(yMax, p[1])
			}
		}
	}
	f := newFrame(title, xLabel, yLabel, xMax, yMax*1.1)
	for i, m := range marks {
		x := f.x(m.x)
		fmt.Fprintf(&f.b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#888" stroke-dasharray="4 3"/>`+"\n", x, padT, x, chartH-padB)
		fmt.Fprintf(&f.b, `<text x="%.1f" y="%d" fill="#555" font-size="10">%s</text>`+"\n", x+3, padT+10+12*(i%4), html.EscapeString(m.label))
	}
	for i, name := range names {
		color := palette[i%len(palette)]
		// A NaN (no answer) breaks the line.
		var pts []string
		flush := func() {
			if len(pts) > 0 {
				fmt.Fprintf(&f.b, `<polyline fill="none" stroke="%s" stroke-width="1.5" points="%s"/>`+"\n", color, strings.Join(pts, " "))
			}
			pts = nil
		}
		for _, p := range series[name] {
			if math.IsNaN(p[1]) {
				flush()
				continue
			}
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", f.x(p[0]), f.y(p[1])))
		}
		flush()
		ly := padT + 16*i
		fmt.Fprintf(&f.b, `<rect x="%d" y="%d" width="12" height="3" fill="%s"/>`+"\n", chartW-padR+12, ly+4, color)
		fmt.Fprintf(&f.b, `<text x="%d" y="%d">%s</text>`+"\n", chartW-padR+30, ly+9, html.EscapeString(name))
	}
	return f.done()
}

// histogram draws the distribution of values (milliseconds) in up to 30
// equal bins.
func histogram(title, xLabel, yLabel string, values []int64) string {
	if len(values) == 0 {
		f := newFrame(title, xLabel, yLabel, 1, 1)
		fmt.Fprintf(&f.b, `<text x="%d" y="%d" fill="#555">no reconnects in this run</text>`+"\n", padL+20, padT+40)
		return f.done()
	}
	hi := float64(values[0])
	for _, v := range values {
		hi = max(hi, float64(v))
	}
	top := niceMax(hi + 1)
	const bins = 30
	counts := make([]int, bins)
	for _, v := range values {
		i := int(float64(v) / top * bins)
		counts[min(i, bins-1)]++
	}
	most := 0
	for _, c := range counts {
		most = max(most, c)
	}
	f := newFrame(title, xLabel, yLabel, top, float64(most)*1.1)
	w := f.x(top/bins) - f.x(0)
	for i, c := range counts {
		if c == 0 {
			continue
		}
		x, y := f.x(top*float64(i)/bins), f.y(float64(c))
		fmt.Fprintf(&f.b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%d</title></rect>`+"\n", x+1, y, w-2, float64(chartH-padB)-y, palette[0], c)
	}
	fmt.Fprintf(&f.b, `<text x="%d" y="%d">n = %d</text>`+"\n", chartW-padR+12, padT+10, len(values))
	return f.done()
}

// percentileBars draws labelled bars (milliseconds): the reconnect-time
// distribution as far as `farmctl swarm` reports it (p50, p99, max).
func percentileBars(title, yLabel string, labels []string, values []int64, note string) string {
	hi := 1.0
	for _, v := range values {
		hi = max(hi, float64(v))
	}
	f := newFrame(title, "", yLabel, float64(len(values)), hi*1.1)
	slot := f.x(1) - f.x(0)
	for i, v := range values {
		x, y := f.x(float64(i))+slot*0.2, f.y(float64(v))
		fmt.Fprintf(&f.b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"/>`+"\n", x, y, slot*0.6, float64(chartH-padB)-y, palette[0])
		fmt.Fprintf(&f.b, `<text x="%.1f" y="%.1f" text-anchor="middle">%s: %d ms</text>`+"\n", x+slot*0.3, y-6, html.EscapeString(labels[i]), v)
	}
	fmt.Fprintf(&f.b, `<text x="%d" y="%d" fill="#555" font-size="10">%s</text>`+"\n", padL+8, padT+12, html.EscapeString(note))
	return f.done()
}
