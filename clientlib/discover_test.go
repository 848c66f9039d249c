package clientlib

import (
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/farmlb/farmlb/farm"
	"github.com/farmlb/farmlb/internal/farmtest"
)

// TestDiscoverEveryWay finds a real farm's list through each of the ways
// Discover knows, with dnsd following the farm's mesh as an observer.
func TestDiscoverEveryWay(t *testing.T) {
	f := farmtest.Start(t, farmtest.Options{
		Nodes:     []farmtest.NodeSpec{{Name: "serverA"}, {Name: "serverB"}, {Name: "serverC", Priority: "B"}},
		Observers: []string{"ns1"},
	})
	f.WaitUp(15 * time.Second)
	ns := f.Procs["ns1"].DNS
	_, port, _ := net.SplitHostPort(f.Procs["serverA"].HTTP)
	httpPort, _ := strconv.Atoi(port)
	cfg := Config{Zone: f.Zone, Resolver: ns, HTTPPort: httpPort}.withDefaults()
	ctx := context.Background()

	// The nodes listen on different ports; the A-record way assumes one port
	// for all, so it is given serverA's and finds the list there.
	checks := []struct {
		name string
		get  func() (*farm.List, error)
	}{
		{"list URL", func() (*farm.List, error) { return Discover(ctx, Config{ListURLs: f.ListURLs()}) }},
		{"TXT", func() (*farm.List, error) { return discoverTXT(ctx, cfg, ns, f.Zone+".") }},
		{"SRV", func() (*farm.List, error) { return discoverSRV(ctx, cfg, ns, f.Zone+".") }},
		{"A", func() (*farm.List, error) { return discoverA(ctx, cfg, ns, f.Zone+".") }},
		{"Discover", func() (*farm.List, error) { return Discover(ctx, cfg) }},
	}
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) {
			var l *farm.List
			var err error
			// dnsd learns the table over the mesh; give it a moment to
			// see every node UP.
			deadline := time.Now().Add(10 * time.Second)
			for {
				l, err = c.get()
				if err == nil && upCount(l) == 3 || time.Now().After(deadline) {
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, name := range []string{"serverA", "serverB", "serverC"} {
				s, ok := l.Find(name)
				if !ok || s.Status != farm.StatusUp {
					t.Errorf("%s: %+v", name, l.Servers)
				}
			}
			if s, _ := l.Find("serverC"); s.Priority != 1 {
				t.Errorf("serverC in group %v, want B", s.Priority)
			}
		})
	}
}

func upCount(l *farm.List) int {
	n := 0
	for _, s := range l.Servers {
		if s.Status == farm.StatusUp {
			n++
		}
	}
	return n
}

func TestDiscoverErrors(t *testing.T) {
	// A resolver address where nothing answers, and a list URL that refuses.
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := pc.LocalAddr().String()
	pc.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := "http://" + ln.Addr().String() + "/farm"
	ln.Close()

	_, err = Discover(context.Background(), Config{Zone: "stream.farmlb.test", Resolver: dead, ListURLs: []string{refused}, DiscoveryTimeout: 300 * time.Millisecond})
	var de *DiscoveryError
	if !errors.As(err, &de) {
		t.Fatalf("err = %v, want a *DiscoveryError", err)
	}
	if len(de.Tried) != 4 {
		t.Errorf("tried %d ways, want 4 (list URL, TXT, SRV, A): %v", len(de.Tried), err)
	}
	for _, want := range []string{refused, "TXT _farm.stream.farmlb.test.", "SRV _farmlb._tcp.stream.farmlb.test.", "address records of stream.farmlb.test."} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not name %q: %v", want, err)
		}
	}
	if _, err := Discover(context.Background(), Config{}); err == nil || !strings.Contains(err.Error(), "set Zone or ListURLs") {
		t.Errorf("empty config: %v", err)
	}
}
