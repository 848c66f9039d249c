package main

import (
	"strings"
	"testing"
	"time"

	"github.com/farmlb/farmlb/internal/farmtest"
)

// TestStatusShowsReason: farmctl status shows why a node is not UP, from
// the JSON list of a node and from the _farm TXT record of dnsd (whose
// strings carry it as reason=), with real processes.
func TestStatusShowsReason(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	f := farmtest.Start(t, farmtest.Options{
		Nodes:     []farmtest.NodeSpec{{Name: "a", Health: "checks:\n  - {name: broken, command: [\"false\"], interval: 100ms, fall: 1}\n"}, {Name: "b"}},
		Observers: []string{"ns1"},
	})
	ways := map[string][]string{
		"json": {"status", "--url", f.URL("b") + "/farm"},
		"txt":  {"status", "--dns", f.Procs["ns1"].DNS, "--zone", f.Zone},
	}
	for name, args := range ways {
		t.Run(name, func(t *testing.T) {
			var out, errOut, a, b string
			var lines []string
			// Until the view shows a failing and b UP: each member (dnsd
			// too) learns of each node on its own time, so the first
			// answer with a's reason may not have b UP yet.
			deadline := time.Now().Add(30 * time.Second)
			for time.Now().Before(deadline) {
				out, errOut, _ = run(t, args...)
				lines = strings.Split(out, "\n")
				a, b = "", ""
				for _, ln := range lines {
					if f := strings.Fields(ln); len(f) > 0 && f[0] == "a" {
						a = ln
					} else if len(f) > 0 && f[0] == "b" {
						b = ln
					}
				}
				if strings.Contains(a, "health:broken") && strings.Contains(b, " UP ") {
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
			if len(lines) < 4 || !strings.HasSuffix(strings.TrimSpace(lines[1]), "REASON") {
				t.Fatalf("no REASON column:\n%s%s", out, errOut)
			}
			if f := strings.Fields(a); len(f) != 7 || f[1] != "DRAINING" || f[6] != "health:broken" {
				t.Errorf("a's line %q, want DRAINING … health:broken", a)
			}
			if f := strings.Fields(b); len(f) != 7 || f[1] != "UP" || f[6] != "-" {
				t.Errorf("b's line %q, want UP … -", b)
			}
		})
	}
}
