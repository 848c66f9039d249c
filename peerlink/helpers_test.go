package peerlink

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/farmlb/farmlb/config"
	"github.com/farmlb/farmlb/farm"
	"github.com/prometheus/client_golang/prometheus"
)

// testPKI is a farm CA made in memory, with certificates issued on demand.
type testPKI struct {
	caPEM, caKey []byte
	pool         *x509.CertPool
}

func newTestPKI(t testing.TB) *testPKI {
	t.Helper()
	crt, key, err := NewCA("test", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(crt)
	return &testPKI{caPEM: crt, caKey: key, pool: pool}
}

func (p *testPKI) cert(t testing.TB, name string) *tls.Certificate {
	t.Helper()
	crt, key, err := IssueCert(p.caPEM, p.caKey, name, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(crt, key)
	if err != nil {
		t.Fatal(err)
	}
	return &pair
}

// testFarm binds one UDP socket per member, each on its own 127.0.0.x, and
// writes a farm file naming them.
type testFarm struct {
	farm  *config.Farm
	conns map[string]net.PacketConn
}

var hostSeq struct {
	sync.Mutex
	n int
}

// nextHost returns a fresh 127.0.0.x so that every member of every test
// has its own address.
func nextHost() string {
	hostSeq.Lock()
	defer hostSeq.Unlock()
	hostSeq.n++
	return fmt.Sprintf("127.0.%d.%d", 10+hostSeq.n/250, 1+hostSeq.n%250)
}

func newTestFarm(t testing.TB, nodes []string, observers []string) *testFarm {
	t.Helper()
	tf := &testFarm{conns: map[string]net.PacketConn{}}
	bind := func(name string) string {
		pc, err := net.ListenPacket("udp", nextHost()+":0")
		if err != nil {
			t.Fatal(err)
		}
		tf.conns[name] = pc
		return pc.LocalAddr().String()
	}
	var b strings.Builder
	b.WriteString("service: s.farmlb.test\nnodes:\n")
	for i, n := range nodes {
		peer := bind(n)
		host, _, _ := net.SplitHostPort(peer)
		fmt.Fprintf(&b, "  - {name: %s, url: 'http://%s:8080', peer: '%s', priority: %c}\n", n, host, peer, 'A'+i%2)
	}
	if len(observers) > 0 {
		b.WriteString("observers:\n")
		for _, o := range observers {
			peer := bind(o)
			host, _, _ := net.SplitHostPort(peer)
			fmt.Fprintf(&b, "  - {name: %s, peer: '%s', dns: '%s:53'}\n", o, peer, host)
		}
	}
	f, err := config.Parse([]byte(b.String()))
	if err != nil {
		t.Fatalf("%v\n%s", err, b.String())
	}
	tf.farm = f
	return tf
}

// logBuf collects a member's logs for assertions.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

type member struct {
	*Mesh
	name string
	logs *logBuf
	reg  *prometheus.Registry
	pc   net.PacketConn
	done chan error
}

// startMember starts a member over real QUIC on its socket from tf.
func startMember(t testing.TB, tf *testFarm, pki *testPKI, name string, edit func(*Config)) *member {
	t.Helper()
	logs := &logBuf{}
	reg := prometheus.NewRegistry()
	cfg := DefaultConfig()
	cfg.Farm = tf.farm
	cfg.Self = name
	cfg.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cfg.Registerer = reg
	cfg.PacketConn = tf.conns[name]
	cfg.Certificate = pki.cert(t, name)
	cfg.CA = pki.pool
	if edit != nil {
		edit(&cfg)
	}
	m, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Listen(); err != nil {
		t.Fatal(err)
	}
	mb := &member{Mesh: m, name: name, logs: logs, reg: reg, pc: cfg.PacketConn, done: make(chan error, 1)}
	go func() { mb.done <- m.Serve(context.Background()) }()
	t.Cleanup(func() {
		mb.stop(t)
		if t.Failed() && os.Getenv("FARMLB_PEERLINK_LOGS") != "" {
			t.Logf("logs of %s:\n%s", name, logs)
		}
	})
	return mb
}

// stop shuts the member down cleanly (idempotent).
func (mb *member) stop(t testing.TB) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := mb.Shutdown(ctx); err != nil {
		t.Errorf("%s: shutdown: %v", mb.name, err)
	}
}

// kill stops the member the hard way: its socket closes first, so that no
// goodbye reaches the peers (as with SIGKILL).
func (mb *member) kill(t testing.TB) {
	mb.pc.Close()
	mb.stop(t)
}

// waitTable waits until cond holds for m's table, or fails after timeout.
func waitTable(t testing.TB, m *Mesh, timeout time.Duration, what string, cond func(*farm.List) bool) {
	t.Helper()
	ch, cancel := m.Subscribe()
	defer cancel()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		if cond(m.Table()) {
			return
		}
		select {
		case <-ch:
		case <-deadline.C:
			t.Fatalf("%s: timed out after %v waiting for %s; table:\n%s", m.Self(), timeout, what, tableText(m.Table()))
		}
	}
}

func tableText(l *farm.List) string {
	var b strings.Builder
	for _, s := range l.Servers {
		fmt.Fprintf(&b, "  %s %s %d %s\n", s.Name, s.Status, s.Users, s.Priority)
	}
	return b.String()
}

func statusOf(l *farm.List, name string) farm.Status {
	s, _ := l.Find(name)
	return s.Status
}

func allUp(names ...string) func(*farm.List) bool {
	return func(l *farm.List) bool {
		for _, n := range names {
			if statusOf(l, n) != farm.StatusUp {
				return false
			}
		}
		return true
	}
}

func listenUDP(addr string) (net.PacketConn, error) { return net.ListenPacket("udp", addr) }

func parseFarm(y string) (*config.Farm, error) { return config.Parse([]byte(y)) }
