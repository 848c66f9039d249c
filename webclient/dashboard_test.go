package webclient_test

import (
	"context"
	"encoding/json"
	"fmt"
	"image/png"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/farmlb/farmlb/clientlib"
	"github.com/farmlb/farmlb/internal/farmtest"
)

// TestDashboardChart opens the dashboard of a real farm in headless
// Chromium, kills the node that holds the most clients (clientlib clients,
// which fail over), and checks what the operator sees: a line of users per
// node with a point a second, a status strip per node that turns DOWN for
// the victim, a failover mark at the victim naming the users it had, and
// the others' users summing to every client again. A screenshot goes to the
// test's temporary folder (or FARMLB_SCREENSHOT_DIR), and its pixels must
// show the DOWN red and the UP green.
func TestDashboardChart(t *testing.T) {
	chromium := needBrowser(t)
	names := []string{"serverA", "serverB", "serverC"}
	f := farmtest.Start(t, farmtest.Options{Nodes: []farmtest.NodeSpec{{Name: "serverA"}, {Name: "serverB"}, {Name: "serverC"}}})
	f.WaitUp(15 * time.Second)

	const clients = 9
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for range clients {
		c, err := clientlib.Subscribe(ctx, clientlib.Config{ListURLs: f.ListURLs(), Topics: []string{"chart"}, RetryDelay: 100 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
	}
	users := func(from string) map[string]int {
		l, err := f.List(ctx, from)
		if err != nil {
			return nil
		}
		out := map[string]int{}
		for _, s := range l.Servers {
			if s.Status.String() == "UP" {
				out[s.Name] = s.Users
			}
		}
		return out
	}
	sum := func(m map[string]int) (n int) {
		for _, u := range m {
			n += u
		}
		return n
	}
	waitFor(t, "every client counted", 20*time.Second, func() bool { return sum(users("serverA")) == clients })
	before := users("serverA")
	victim := names[0]
	for _, n := range names {
		if before[n] > before[victim] {
			victim = n
		}
	}
	watcher := "serverA"
	if victim == watcher {
		watcher = "serverB"
	}

	d := startDriver(t, chromium)
	d.do(t, map[string]any{"op": "open", "url": f.URL(watcher) + "/"})
	eval := func(js string, v any) {
		t.Helper()
		raw := d.do(t, map[string]any{"op": "eval", "js": js})
		if err := json.Unmarshal(raw, v); err != nil {
			t.Fatalf("%s: %s: %v", js, raw, err)
		}
	}
	points := func() map[string]int {
		m := map[string]int{}
		eval(`Object.fromEntries([...document.querySelectorAll("#timeline polyline.users")].map((p) => [p.dataset.node, Number(p.dataset.points)]))`, &m)
		return m
	}
	waitFor(t, "a few seconds of chart, and the dashboard's own stream counted", 20*time.Second, func() bool {
		if sum(users(watcher)) != clients+1 {
			return false
		}
		p := points()
		return p["serverA"] >= 3 && p["serverB"] >= 3 && p["serverC"] >= 3
	})

	// The dashboard streams too (its live events), so count again.
	before = users(watcher)
	total := sum(before)
	t.Logf("users %v: killing %s (%d users); dashboard on %s", before, victim, before[victim], watcher)
	f.Kill(victim)
	var marks []mark
	markJS := `[...document.querySelectorAll("#timeline g.mark")].map((g) => ({node: g.dataset.node, to: g.dataset.to, users: g.dataset.users, failover: g.dataset.failover, label: g.textContent}))`
	legend := map[string]string{}
	waitFor(t, "the failover on the chart and the clients on the other nodes", 30*time.Second, func() bool {
		eval(markJS, &marks)
		eval(`Object.fromEntries([...document.querySelectorAll("#chart-legend .legend")].map((s) => [s.dataset.node, s.textContent]))`, &legend)
		moved := 0
		for _, n := range names {
			if n != victim {
				var u int
				if _, err := fmt.Sscan(strings.TrimPrefix(legend[n], n+" "), &u); err == nil {
					moved += u
				}
			}
		}
		for _, m := range marks {
			if m.Node == victim && m.To == "DOWN" && m.Failover == "true" {
				return moved == total
			}
		}
		return false
	})
	for _, m := range marks {
		if m.Node == victim && m.To == "DOWN" {
			if want := strconv.Itoa(before[victim]); m.Users != want {
				t.Errorf("failover mark of %s says %s users, want %s", victim, m.Users, want)
			}
			if !strings.Contains(m.Label, victim+" DOWN: "+strconv.Itoa(before[victim])+" user") {
				t.Errorf("failover mark's text %q does not name %s DOWN and its users", m.Label, victim)
			}
		}
	}
	var strips []struct{ Node, Status string }
	eval(`[...document.querySelectorAll("#timeline rect.status")].map((r) => ({node: r.dataset.node, status: r.dataset.status}))`, &strips)
	seen := map[string]bool{}
	for _, s := range strips {
		seen[s.Node+" "+s.Status] = true
	}
	if n := len(marks); n == 0 || countDown(marks, victim) != 1 {
		t.Errorf("marks %+v: want one DOWN mark of %s", marks, victim)
	}
	if !seen[victim+" UP"] || !seen[victim+" DOWN"] || !seen[watcher+" UP"] {
		t.Errorf("status strips %v: want %s UP then DOWN, %s UP", strips, victim, watcher)
	}
	var box struct{ W, H, Top float64 }
	eval(`(() => { const r = document.getElementById("timeline").getBoundingClientRect(); return {w: r.width, h: r.height, top: r.top}; })()`, &box)
	if box.W < 500 || box.H < 150 || box.Top > 700 {
		t.Errorf("chart box %+v: not a visible chart on the first screen", box)
	}

	dir := os.Getenv("FARMLB_SCREENSHOT_DIR")
	if dir == "" {
		dir = t.TempDir()
	}
	shot := filepath.Join(dir, "dashboard-chart.png")
	d.do(t, map[string]any{"op": "shot", "path": shot})
	red, green := countColors(t, shot)
	t.Logf("dashboard chart screenshot: %s (%d DOWN-red, %d UP-green pixels)", shot, red, green)
	if red < 50 || green < 500 {
		t.Errorf("screenshot %s shows %d DOWN-red and %d UP-green pixels: the strips and the mark are not drawn", shot, red, green)
	}
}

// mark is a status change drawn on the chart, as the page's DOM has it.
type mark struct {
	Node, To, Users string
	Failover        string
	Label           string
}

func countDown(marks []mark, node string) int {
	n := 0
	for _, m := range marks {
		if m.Node == node && m.To == "DOWN" {
			n++
		}
	}
	return n
}

// countColors counts the pixels of the chart's DOWN red (#c62828) and UP
// green (#2e9e4f) in a PNG, within a small tolerance.
func countColors(t *testing.T, path string) (red, green int) {
	t.Helper()
	fh, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	img, err := png.Decode(fh)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	near := func(c [3]uint32, r, g, b uint32) bool {
		d := func(a, b uint32) uint32 {
			if a > b {
				return a - b
			}
			return b - a
		}
		return d(c[0], r) < 12 && d(c[1], g) < 12 && d(c[2], b) < 12
	}
	bounds := img.Bounds()
	for y := bounds.Min.Y; y < bounds.Max.Y; y++ {
		for x := bounds.Min.X; x < bounds.Max.X; x++ {
			r, g, b, _ := img.At(x, y).RGBA()
			c := [3]uint32{r >> 8, g >> 8, b >> 8}
			switch {
			case near(c, 0xc6, 0x28, 0x28):
				red++
			case near(c, 0x2e, 0x9e, 0x4f):
				green++
			}
		}
	}
	return red, green
}
