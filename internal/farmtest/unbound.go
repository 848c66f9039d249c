package farmtest

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// StartUnbound runs Unbound on ip, with each zone stubbed to its server
// (host:port), and returns its address once it logs that it serves; it stops
// when the test ends, and its log is shown if the test failed. The test is
// skipped when unbound is not installed. extra is added to the server:
// section as it is (e.g. a module-config with the validator and a
// trust-anchor-file).
//
// It needs two settings to ask a server on loopback for a name under test.
// (RFC 6761): "local-zone: test. nodefault" and "do-not-query-localhost:
// no". use-caps-for-id makes it check that the question's case comes back as
// asked (0x20).
func StartUnbound(t testing.TB, ip string, stubs map[string]string, extra string) string {
	t.Helper()
	bin, err := exec.LookPath("unbound")
	if err != nil {
		t.Skip("unbound is not installed: run `make deps` (Debian package unbound)")
	}
	port := FreePort(t, ip)
	dir := t.TempDir()
	if !strings.Contains(extra, "module-config:") {
		extra = "  module-config: \"iterator\"\n" + extra
	}
	var conf strings.Builder
	fmt.Fprintf(&conf, `server:
  interface: %s
  port: %d
  do-ip6: no
  username: ""
  chroot: ""
  directory: %q
  pidfile: ""
  use-syslog: no
  logfile: ""
  verbosity: 1
  num-threads: 1
  access-control: 127.0.0.0/8 allow
  do-not-query-localhost: no
  local-zone: "test." nodefault
  use-caps-for-id: yes
%s`, ip, port, dir, extra)
	for zone, addr := range stubs {
		host, p, _ := net.SplitHostPort(addr)
		fmt.Fprintf(&conf, "stub-zone:\n  name: %q\n  stub-addr: %s@%s\n", zone, host, p)
	}
	path := filepath.Join(dir, "unbound.conf")
	if err := os.WriteFile(path, []byte(conf.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("unbound-checkconf", path).CombinedOutput(); err != nil {
		t.Fatalf("unbound-checkconf: %v\n%s\n%s", err, out, conf.String())
	}
	cmd := exec.Command(bin, "-d", "-c", path)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan struct{})
	logDone := make(chan struct{})
	var log strings.Builder
	go func() {
		defer close(logDone)
		sc := bufio.NewScanner(stderr)
		signalled := false
		for sc.Scan() {
			log.WriteString(sc.Text() + "\n")
			if !signalled && strings.Contains(sc.Text(), "start of service") {
				close(ready)
				signalled = true
			}
		}
		_, _ = io.Copy(io.Discard, stderr)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		<-logDone
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("unbound's log:\n%s", log.String())
		}
	})
	select {
	case <-ready:
	case <-logDone:
		t.Fatalf("unbound exited before serving:\n%s", log.String())
	case <-time.After(30 * time.Second):
		t.Fatal("unbound did not start within 30s")
	}
	return net.JoinHostPort(ip, fmt.Sprint(port))
}
