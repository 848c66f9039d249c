package testbed

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"go.uber.org/goleak"
)

// The test binary doubles as a tiny HTTP server, so tests can start a real
// process inside a host: FARMLB_TESTBED_HELPER=http:ADDR serves "hello from
// <hostname of the namespace>" on ADDR.
func TestMain(m *testing.M) {
	if standIn() || agentHelper() {
		os.Exit(0)
	}
	if spec, ok := strings.CutPrefix(os.Getenv("FARMLB_TESTBED_HELPER"), "http:"); ok {
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprint(w, "hello")
		})}
		ln, err := net.Listen("tcp", spec)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Fprintln(os.Stderr, "listening on", ln.Addr())
		_ = srv.Serve(ln)
		os.Exit(0)
	}
	goleak.VerifyTestMain(m)
}

// testPrefix is unique per run, so two test runs on one machine (or a real
// lab) never touch each other's objects.
func testPrefix(t *testing.T) string {
	t.Helper()
	b := make([]byte, 2)
	_, _ = rand.Read(b)
	return "ft" + hex.EncodeToString(b)[:3] + "-"
}

func needRoot(t *testing.T) {
	t.Helper()
	if err := RequireRoot(); err != nil {
		t.Skip("the lab tests need root:", err)
	}
}

func addr(s string) netip.Addr { return netip.MustParseAddr(s) }

// newLab builds a lab of the given hosts (addresses 198.18.0.1, .2, ...) and
// asserts, at cleanup, that nothing with its prefix is left.
func newLab(t *testing.T, names ...string) *Lab {
	t.Helper()
	needRoot(t)
	prefix := testPrefix(t)
	var hosts []HostConfig
	for i, n := range names {
		hosts = append(hosts, HostConfig{Name: n, Addr: addr(fmt.Sprintf("198.18.0.%d", i+1))})
	}
	lab, err := Up(LabConfig{Prefix: prefix, Hosts: hosts, LogDir: t.TempDir(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := lab.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
		assertNoLeftovers(t, prefix)
	})
	return lab
}

func assertNoLeftovers(t *testing.T, prefix string) {
	t.Helper()
	ns, links, err := Leftovers(prefix)
	if err != nil {
		t.Fatal(err)
	}
	if len(ns) > 0 || len(links) > 0 {
		t.Errorf("left behind: namespaces %v, links %v", ns, links)
	}
}

func host(t *testing.T, l *Lab, name string) *Host {
	t.Helper()
	h, ok := l.Host(name)
	if !ok {
		t.Fatalf("no host %s", name)
	}
	return h
}

// echoServer listens on port 7 of h and echoes one line per connection.
func echoServer(t *testing.T, h *Host) {
	t.Helper()
	var ln net.Listener
	err := h.Do(func() error {
		var err error
		ln, err = net.Listen("tcp", netip.AddrPortFrom(h.Addr, 7).String())
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_, _ = io.Copy(c, c)
			c.Close()
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
}

// echo sends a line from `from` to `to`'s echo server and reads it back.
func echo(ctx context.Context, from, to *Host) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	c, err := from.DialContext(ctx, "tcp", netip.AddrPortFrom(to.Addr, 7).String())
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	msg := "ping from " + from.Name + "\n"
	if _, err := io.WriteString(c, msg); err != nil {
		return err
	}
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(c, buf); err != nil {
		return err
	}
	if string(buf) != msg {
		return fmt.Errorf("echo: got %q", buf)
	}
	return nil
}

func TestLabUpDownLeavesNothing(t *testing.T) {
	lab := newLab(t, "a", "b")
	a, b := host(t, lab, "a"), host(t, lab, "b")
	echoServer(t, b)
	if err := echo(t.Context(), a, b); err != nil {
		t.Fatalf("a cannot reach b through the bridge: %v", err)
	}
	ns, links, err := Leftovers(lab.Prefix())
	if err != nil {
		t.Fatal(err)
	}
	if len(ns) != 2 || len(links) != 3 {
		t.Fatalf("while up: namespaces %v links %v, want 2 namespaces and a bridge with 2 veths", ns, links)
	}
}

func TestDownRemovesACrashedLab(t *testing.T) {
	needRoot(t)
	prefix := testPrefix(t)
	lab, err := Up(LabConfig{Prefix: prefix, LogDir: t.TempDir(), Logger: slog.New(slog.DiscardHandler),
		Hosts: []HostConfig{{Name: "a", Addr: addr("198.18.0.1")}}})
	if err != nil {
		t.Fatal(err)
	}
	// A process left running in the namespace, as after a crash.
	p, err := host(t, lab, "a").Start("sleep", []string{"sleep", "600"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	r, err := Down(prefix) // instead of lab.Close: what `testbed down` does
	if err != nil {
		t.Fatal(err)
	}
	<-p.Done()
	if len(r.Processes) != 1 || r.Processes[0] != p.Pid() {
		t.Errorf("killed %v, want [%d]", r.Processes, p.Pid())
	}
	if len(r.Namespaces) != 1 || len(r.Links) != 2 {
		t.Errorf("removed %+v", r)
	}
	assertNoLeftovers(t, prefix)
	if err := lab.Close(); err != nil {
		t.Errorf("close after down should find nothing to do: %v", err)
	}
}

func TestProcessRunsInItsHost(t *testing.T) {
	lab := newLab(t, "a", "b")
	a, b := host(t, lab, "a"), host(t, lab, "b")
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	listen := netip.AddrPortFrom(a.Addr, 8080).String()
	p, err := a.Start("http", []string{self}, []string{"FARMLB_TESTBED_HELPER=http:" + listen})
	if err != nil {
		t.Fatal(err)
	}
	var want, got syscall.Stat_t
	if err := syscall.Stat(filepath.Join(netnsDir, a.NS), &want); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Stat(fmt.Sprintf("/proc/%d/ns/net", p.Pid()), &got); err != nil {
		t.Fatal(err)
	}
	if got.Ino != want.Ino {
		t.Fatalf("process is in namespace inode %d, host a is %d", got.Ino, want.Ino)
	}
	client := b.HTTPClient(time.Second)
	url := "http://" + listen + "/"
	get := func() error {
		resp, err := client.Get(url)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if string(body) != "hello" {
			return fmt.Errorf("body %q", body)
		}
		return nil
	}
	if err := retry(t.Context(), 5*time.Second, get); err != nil {
		t.Fatalf("b cannot fetch from the server on a: %v", err)
	}

	t.Run("SIGSTOP hangs it, SIGCONT revives it", func(t *testing.T) {
		if err := p.Signal(syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		// kill(2) returns before the stop takes effect: wait until the
		// kernel shows the process stopped (state T) before asking it.
		if err := retry(t.Context(), 5*time.Second, func() error {
			b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.Pid()))
			if err != nil {
				return err
			}
			if i := bytes.LastIndexByte(b, ')'); i < 0 || i+2 >= len(b) || b[i+2] != 'T' {
				return fmt.Errorf("process not stopped yet: %s", b)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if err := get(); err == nil {
			t.Fatal("a stopped server answered")
		}
		if err := p.Signal(syscall.SIGCONT); err != nil {
			t.Fatal(err)
		}
		if err := get(); err != nil {
			t.Fatalf("after SIGCONT: %v", err)
		}
	})
	t.Run("SIGKILL ends it", func(t *testing.T) {
		if err := p.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		<-p.Done()
		err := get()
		if !errors.Is(err, syscall.ECONNREFUSED) {
			t.Fatalf("after SIGKILL: %v, want connection refused", err)
		}
	})
	log, err := os.ReadFile(a.LogPath())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(log), "listening on "+listen) {
		t.Errorf("host log lacks the process's output:\n%s", log)
	}
}

// retry calls fn until it succeeds or timeout passes: for start-up of a
// separate process, whose readiness the test can only see from outside.
func retry(ctx context.Context, timeout time.Duration, fn func() error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		err := fn()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return err
		case <-tick.C:
		}
	}
}

func TestNetworkFaults(t *testing.T) {
	lab := newLab(t, "a", "b", "c")
	a, b, c := host(t, lab, "a"), host(t, lab, "b"), host(t, lab, "c")
	for _, h := range []*Host{a, b, c} {
		echoServer(t, h)
	}
	ctx := t.Context()
	reach := func(t *testing.T, from, to *Host, want bool) {
		t.Helper()
		err := echo(ctx, from, to)
		if want && err != nil {
			t.Errorf("%s → %s: %v, want reachable", from.Name, to.Name, err)
		}
		if !want && err == nil {
			t.Errorf("%s → %s reachable, want cut", from.Name, to.Name)
		}
	}
	t.Run("cut a→b only", func(t *testing.T) {
		if err := a.Cut(b); err != nil {
			t.Fatal(err)
		}
		reach(t, a, b, false)
		reach(t, b, a, false) // b's SYN reaches a, a's SYN-ACK is dropped
		reach(t, a, c, true)
		reach(t, c, b, true)
		reach(t, c, a, true)
		if err := a.Heal(b); err != nil {
			t.Fatal(err)
		}
		reach(t, a, b, true)
		if err := a.Heal(b); err != nil {
			t.Errorf("healing twice: %v", err)
		}
	})
	t.Run("link down and up", func(t *testing.T) {
		if err := c.LinkDown(); err != nil {
			t.Fatal(err)
		}
		reach(t, a, c, false)
		reach(t, a, b, true)
		if err := c.LinkUp(); err != nil {
			t.Fatal(err)
		}
		if err := retry(ctx, 5*time.Second, func() error { return echo(ctx, a, c) }); err != nil {
			t.Errorf("after link up: %v", err)
		}
	})
	t.Run("tbf squeeze", func(t *testing.T) {
		const rate = 100 << 10 // 100 KiB/s
		if err := a.Squeeze(rate, 16<<10, 256<<10); err != nil {
			t.Fatal(err)
		}
		got, err := a.Squeezed()
		if err != nil || got != rate {
			t.Fatalf("kernel reports rate %d (%v), want %d", got, err, rate)
		}
		// 300 KiB at 100 KiB/s cannot take less than 2 s (less the burst):
		// a lower bound, so a slow machine cannot make it fail.
		elapsed := sendBytes(t, a, b, 300<<10)
		if elapsed < 2*time.Second {
			t.Errorf("300 KiB went in %v through a 100 KiB/s squeeze", elapsed)
		}
		if err := a.Unsqueeze(); err != nil {
			t.Fatal(err)
		}
		if got, _ := a.Squeezed(); got != 0 {
			t.Errorf("after unsqueeze the rate is %d", got)
		}
	})
}

// sendBytes sends n bytes from one host to another's echo server and reads
// them back, returning how long it took.
func sendBytes(t *testing.T, from, to *Host, n int) time.Duration {
	t.Helper()
	c, err := from.DialContext(t.Context(), "tcp", netip.AddrPortFrom(to.Addr, 7).String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	go func() { _, _ = c.Write(make([]byte, n)) }()
	if _, err := io.ReadFull(c, make([]byte, n)); err != nil {
		t.Fatal(err)
	}
	return time.Since(start)
}

func TestLabConfigErrors(t *testing.T) {
	needRoot(t)
	for _, tc := range []struct {
		name  string
		hosts []HostConfig
		want  string
	}{
		{"no hosts", nil, "at least one host"},
		{"long name", []HostConfig{{Name: "averyverylongname", Addr: addr("198.18.0.1")}}, `hosts[0].name: "averyverylongname" is too long`},
		{"outside", []HostConfig{{Name: "a", Addr: addr("10.0.0.1")}}, "hosts[0].addr: 10.0.0.1 is outside 198.18.0.0/15"},
		{"twice", []HostConfig{{Name: "a", Addr: addr("198.18.0.1")}, {Name: "a", Addr: addr("198.18.0.2")}}, `hosts[1].name: "a" is used twice`},
		{"same addr", []HostConfig{{Name: "a", Addr: addr("198.18.0.1")}, {Name: "b", Addr: addr("198.18.0.1")}}, "hosts[1].addr: 198.18.0.1 is used twice"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Up(LabConfig{Prefix: testPrefix(t), Hosts: tc.hosts, LogDir: t.TempDir()})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// A failed Up removes only what it made itself: a running lab with the same
// prefix, or a namespace someone else made under a name the lab wanted, is
// left as it was.
func TestFailedUpRemovesOnlyWhatItMade(t *testing.T) {
	needRoot(t)
	quiet := slog.New(slog.DiscardHandler)
	t.Run("a lab running with the same prefix", func(t *testing.T) {
		lab := newLab(t, "a", "b")
		_, err := Up(LabConfig{Prefix: lab.Prefix(), LogDir: t.TempDir(), Logger: quiet,
			Hosts: []HostConfig{{Name: "c", Addr: addr("198.18.0.3")}}})
		hint := "testbed down --prefix " + lab.Prefix()
		if err == nil || !strings.Contains(err.Error(), hint) {
			t.Fatalf("second Up: %v, want an error naming %q", err, hint)
		}
		ns, links, err := Leftovers(lab.Prefix())
		if err != nil {
			t.Fatal(err)
		}
		if len(ns) != 2 || len(links) != 3 {
			t.Errorf("after the failed Up: namespaces %v links %v, want the running lab's 2 and 3", ns, links)
		}
		a, b := host(t, lab, "a"), host(t, lab, "b")
		echoServer(t, b)
		if err := echo(t.Context(), a, b); err != nil {
			t.Errorf("the running lab is broken: %v", err)
		}
	})
	t.Run("a namespace made by someone else", func(t *testing.T) {
		prefix := testPrefix(t)
		theirs := prefix + "b"
		if err := newNamedNS(theirs); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = netns.DeleteNamed(theirs) })
		_, err := Up(LabConfig{Prefix: prefix, LogDir: t.TempDir(), Logger: quiet,
			Hosts: []HostConfig{{Name: "a", Addr: addr("198.18.0.1")}, {Name: "b", Addr: addr("198.18.0.2")}}})
		if !errors.Is(err, os.ErrExist) {
			t.Fatalf("Up: %v, want namespace %s exists", err, theirs)
		}
		ns, links, err := Leftovers(prefix)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(ns, []string{theirs}) || len(links) != 0 {
			t.Errorf("after the failed Up: namespaces %v links %v, want only %s", ns, links, theirs)
		}
	})
}

func TestValidatePrefix(t *testing.T) {
	for _, tc := range []struct {
		prefix string
		ok     bool
	}{
		{DefaultPrefix, true},
		{"wk2-", true},
		{"ft3a9-", true},
		{"abcdefghijk-", true}, // 12 bytes: a one-letter host's "-p" end still fits
		{"abcdefghijkl-", false},
		{"", false},
		{"-", false},
		{"wk2x", false}, // would take wk2x0, a link of someone else's
		{"e", false},    // would take eth0
		{"a-b-", false},
		{"a/b-", false},
		{"Flb-", false},
		{"flb -", false},
	} {
		t.Run(tc.prefix, func(t *testing.T) {
			err := ValidatePrefix(tc.prefix)
			if (err == nil) != tc.ok {
				t.Errorf("ValidatePrefix(%q) = %v, want ok=%v", tc.prefix, err, tc.ok)
			}
		})
	}
}

// Down removes only objects of the kinds a lab makes, named with a prefix a
// lab could have.
func TestDownLeavesOtherLinks(t *testing.T) {
	needRoot(t)
	prefix := testPrefix(t)
	other := &netlink.Ifb{LinkAttrs: netlink.LinkAttrs{Name: prefix + "i0"}} // not a kind the lab makes
	stem := strings.TrimSuffix(prefix, "-")
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: stem + "x0"}, PeerName: stem + "x1"}
	for _, l := range []netlink.Link{other, veth} {
		if err := netlink.LinkAdd(l); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = deleteLink(l.Attrs().Name) })
	}
	if _, err := Down(stem); err == nil {
		t.Errorf("Down(%q) took a prefix no lab can have", stem)
	}
	if _, err := Down(prefix); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{other.Name, veth.Name, veth.PeerName} {
		if _, err := netlink.LinkByName(name); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}
