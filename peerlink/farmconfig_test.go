package peerlink

import (
	"testing"
	"time"

	"github.com/farmlb/farmlb/config"
)

// TestFarmConfig: the mesh: section of the farm file reaches the timers a
// member runs with (after populate, as New sees them), and whatever the
// config package accepts, New accepts.
func TestFarmConfig(t *testing.T) {
	const farmYAML = "service: s.test\nnodes:\n  - {name: a, url: 'http://127.0.0.1:80', peer: '127.0.0.1:7000'}\n"
	type timers struct {
		hb, suspect, probe, vouch, lifetime time.Duration
		fanout                              int
	}
	const ms = time.Millisecond
	def := DefaultConfig()
	defaults := timers{def.HeartbeatInterval, def.SuspectAfter, def.ProbeTimeout, def.VouchTimeout, def.VouchLifetime, def.ProbeFanout}
	cases := []struct {
		name string
		mesh string
		want timers
	}{
		{"no section: peerlink's defaults", "", defaults},
		{"every key", "mesh: {heartbeat: 100ms, suspect_after: 2s, probe_timeout: 1s, vouch_timeout: 600ms, vouch_lifetime: 3s, probe_fanout: 5}\n",
			timers{100 * ms, 2 * time.Second, time.Second, 600 * ms, 3 * time.Second, 5}},
		{"suspect_after only", "mesh: {suspect_after: 2s}\n", timers{50 * ms, 2 * time.Second, 250 * ms, 200 * ms, 500 * ms, 3}},
		// peerlink derives the vouch timers from a ProbeTimeout it is
		// given alone; the farm file does the same.
		{"probe_timeout only", "mesh: {probe_timeout: 900ms}\n", timers{50 * ms, 350 * ms, 900 * ms, 600 * ms, 1800 * ms, 3}},
		{"slow emulation", "mesh: {heartbeat: 200ms, suspect_after: 2s, probe_timeout: 1s}\n",
			timers{200 * ms, 2 * time.Second, time.Second, 666666666, 2 * time.Second, 3}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f, err := config.Parse([]byte(farmYAML + c.mesh))
			if err != nil {
				t.Fatal(err)
			}
			cfg := FarmConfig(f, "a")
			if cfg.Farm != f || cfg.Self != "a" {
				t.Fatalf("Farm, Self = %p, %q", cfg.Farm, cfg.Self)
			}
			if err := cfg.populate(); err != nil {
				t.Fatalf("peerlink refuses timers the farm file accepted: %v", err)
			}
			got := timers{cfg.HeartbeatInterval, cfg.SuspectAfter, cfg.ProbeTimeout, cfg.VouchTimeout, cfg.VouchLifetime, cfg.ProbeFanout}
			if got != c.want {
				t.Errorf("timers %+v, want %+v", got, c.want)
			}
		})
	}
	t.Run("a flag set on the result wins over the file", func(t *testing.T) {
		f, err := config.Parse([]byte(farmYAML + "mesh: {suspect_after: 2s}\n"))
		if err != nil {
			t.Fatal(err)
		}
		cfg := FarmConfig(f, "a")
		cfg.SuspectAfter = 700 * ms
		if err := cfg.populate(); err != nil || cfg.SuspectAfter != 700*ms {
			t.Errorf("SuspectAfter %v (err %v), want the flag's 700ms", cfg.SuspectAfter, err)
		}
	})
	t.Run("a hand-built farm keeps the defaults", func(t *testing.T) {
		f, err := config.Parse([]byte(farmYAML))
		if err != nil {
			t.Fatal(err)
		}
		f.Mesh = config.Mesh{}
		cfg := FarmConfig(f, "a")
		if err := cfg.populate(); err != nil {
			t.Fatal(err)
		}
		if got := (timers{cfg.HeartbeatInterval, cfg.SuspectAfter, cfg.ProbeTimeout, cfg.VouchTimeout, cfg.VouchLifetime, cfg.ProbeFanout}); got != defaults {
			t.Errorf("timers %+v, want the defaults %+v", got, defaults)
		}
	})
}
