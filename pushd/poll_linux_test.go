package pushd

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

// TestShutdownReleasesPoller: the close poller's epoll descriptor is
// released even when Shutdown's ctx has ended before the server's
// goroutines did.
func TestShutdownReleasesPoller(t *testing.T) {
	for _, tc := range []struct {
		name    string
		expired bool
	}{
		{"in time", false},
		{"ctx already ended", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := countFDs(t, "anon_inode:[eventpoll]")
			f := newMemFarm("a")
			nodes := startNodes(t, f, nil, "a")
			openStream(t, nil, streamURL(nodes["a"], "t"), "")
			if n := countFDs(t, "anon_inode:[eventpoll]"); n != before+1 {
				t.Fatalf("%d epoll descriptors while serving, %d before", n, before)
			}
			ctx, cancel := context.WithCancel(context.Background())
			if tc.expired {
				cancel()
			}
			err := nodes["a"].s.Shutdown(ctx)
			cancel()
			if !tc.expired && err != nil {
				t.Errorf("Shutdown: %v", err)
			}
			waitFor(t, func() bool { return countFDs(t, "anon_inode:[eventpoll]") == before })
		})
	}
}

// countFDs counts the process's descriptors whose link reads target.
func countFDs(t *testing.T, target string) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd:", err)
	}
	n := 0
	for _, e := range ents {
		if l, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name())); err == nil && l == target {
			n++
		}
	}
	return n
}
