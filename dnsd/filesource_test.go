package dnsd

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/farmlb/farmlb/farm"
)

// syncBuffer is a log sink safe for the poller and the test to share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	// Write then rename, as an operator's tools do, so the poller never
	// reads half a file.
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func encodings(t *testing.T, l *farm.List) map[string]string {
	t.Helper()
	text, err := farm.MarshalText(l)
	if err != nil {
		t.Fatal(err)
	}
	js, err := farm.MarshalJSON(l)
	if err != nil {
		t.Fatal(err)
	}
	strs, err := farm.MarshalTXT(l)
	if err != nil {
		t.Fatal(err)
	}
	rr := &dns.TXT{Hdr: dns.RR_Header{Name: "_farm." + testZone, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 5}, Txt: strs}
	return map[string]string{"text": string(text), "json": string(js), "txt": rr.String() + "\n"}
}

// TestFileSourceEncodings loads the same farm from each encoding.
func TestFileSourceEncodings(t *testing.T) {
	want := testList(t)
	for name, content := range encodings(t, want) {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "farm.list")
			writeFile(t, path, content)
			f, err := OpenFile(path, FileConfig{})
			if err != nil {
				t.Fatal(err)
			}
			got := f.Table()
			if len(got.Servers) != len(want.Servers) {
				t.Fatalf("%d servers, want %d", len(got.Servers), len(want.Servers))
			}
			for i := range want.Servers {
				if g, w := farm.FormatLine(got.Servers[i]), farm.FormatLine(want.Servers[i]); g != w {
					t.Errorf("server %d: %q, want %q", i, g, w)
				}
			}
		})
	}
}

// TestFileSourceOpenErrors checks that a server does not start from a missing
// or bad file, and says why.
func TestFileSourceOpenErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.list")
	writeFile(t, bad, "http://serverA.example.com UP lots A\n")
	tests := []struct {
		name, path, want string
	}{
		{"missing", filepath.Join(dir, "none.list"), "no such file"},
		{"bad users field", bad, "line 1: users"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := OpenFile(tc.path, FileConfig{})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// TestFileSourceReload follows a list file through changes, a bad version
// (which keeps the last good table and logs why) and its repair, with the
// poller running.
func TestFileSourceReload(t *testing.T) {
	path := filepath.Join(t.TempDir(), "farm.list")
	first := testList(t)
	writeFile(t, path, encodings(t, first)["text"])
	logs := &syncBuffer{}
	reg := prometheus.NewRegistry()
	f, err := OpenFile(path, FileConfig{Poll: 5 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(logs, nil)), Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	changed, cancel := f.Subscribe()
	defer cancel()
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- f.Run(ctx) }()
	defer func() { stop(); <-done }()

	waitChange := func() {
		t.Helper()
		select {
		case <-changed:
		case <-time.After(10 * time.Second):
			t.Fatal("no change seen within 10s")
		}
	}

	// A change in JSON is picked up.
	second := first.Clone()
	second.Servers[1].Status = farm.StatusUp
	writeFile(t, path, encodings(t, second)["json"])
	waitChange()
	if got := f.Table().Servers[1].Status; got != farm.StatusUp {
		t.Fatalf("serverB %v after the change, want UP", got)
	}

	// A bad file keeps the table; Reload says why, and so does the log.
	writeFile(t, path, "this is not a farm list\n")
	err = f.Reload()
	var stale *StaleError
	if !errors.As(err, &stale) || !strings.Contains(err.Error(), "url") {
		t.Fatalf("Reload of a bad file: %v, want a StaleError naming the field", err)
	}
	if got := f.Table().Servers[1].Status; got != farm.StatusUp {
		t.Fatalf("the table changed to %v on a bad file", got)
	}
	if !strings.Contains(logs.String(), "list file not taken") {
		t.Errorf("no log line for the bad file:\n%s", logs)
	}
	if n := testutil.ToFloat64(f.reloads.WithLabelValues("error")); n < 1 {
		t.Errorf("list_reloads_total{result=error} = %v", n)
	}

	// Repaired: the new content is taken.
	third := first.Clone()
	third.Servers[0].Users = 1
	writeFile(t, path, encodings(t, third)["txt"])
	waitChange()
	if got := f.Table().Servers[0].Users; got != 1 {
		t.Fatalf("users %d after the repair, want 1", got)
	}
}

// TestServerFollowsFile checks the whole list mode: the server answers from
// the file and follows its changes.
func TestServerFollowsFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "farm.json")
	l := testList(t)
	writeFile(t, path, encodings(t, l)["json"])
	f, err := OpenFile(path, FileConfig{Poll: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- f.Run(ctx) }()
	defer func() { stop(); <-done }()
	s := startServer(t, testConfig(f))
	tables := s.watchTables(t)

	if r := exchange(t, s, "udp", query(testZone, dns.TypeA)); len(r.Answer) != 2 {
		t.Fatalf("%d answers, want 2", len(r.Answer))
	}
	l2 := l.Clone()
	l2.Servers[0].Status = farm.StatusDown // serverA leaves; serverN stays
	writeFile(t, path, encodings(t, l2)["json"])
	waitTableWhere(t, tables, func(got *farm.List) bool {
		return len(got.Servers) > 0 && got.Servers[0].Status == farm.StatusDown
	})
	r := exchange(t, s, "udp", query(testZone, dns.TypeA))
	if len(r.Answer) != 1 || r.Answer[0].(*dns.A).A.String() != "127.0.0.13" {
		t.Fatalf("after serverA went DOWN: %v, want serverN's 127.0.0.13 only", r.Answer)
	}
}

// TestFileSourceSameSizeRewrite rewrites the list with the same size and the
// same modification time, as a quick rewrite within the file system's
// timestamp granularity does: the change must still be seen.
func TestFileSourceSameSizeRewrite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "farm.list")
	first := testList(t)
	first.Servers[0].Users = 1000
	writeFile(t, path, encodings(t, first)["text"])
	f, err := OpenFile(path, FileConfig{Poll: time.Hour, Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	second := first.Clone()
	second.Servers[0].Users = 2000 // same length
	if err := os.WriteFile(path, []byte(encodings(t, second)["text"]), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(path, fi.ModTime(), fi.ModTime()); err != nil {
		t.Fatal(err)
	}
	if err := f.check(); err != nil {
		t.Fatal(err)
	}
	if got := f.Table().Servers[0].Users; got != 2000 {
		t.Fatalf("users %d after a same-size rewrite, want 2000", got)
	}
}
