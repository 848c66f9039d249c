package dnsd

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// dialFrom opens a TCP connection to the server from the local address.
func dialFrom(t *testing.T, s *Server, local string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", s.TCPAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// askTCP sends one query on c and reads its answer; an error means the
// server closed the connection (or did not answer within 5 s).
func askTCP(c net.Conn) error {
	q, _ := query(testZone, dns.TypeA).Pack()
	msg := binary.BigEndian.AppendUint16(nil, uint16(len(q)))
	if _, err := c.Write(append(msg, q...)); err != nil {
		return err
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	var l [2]byte
	if _, err := io.ReadFull(c, l[:]); err != nil {
		return err
	}
	buf := make([]byte, binary.BigEndian.Uint16(l[:]))
	_, err := io.ReadFull(c, buf)
	return err
}

// closedByServer reports whether the server closed c: a read ends with EOF
// or a reset rather than the client's own deadline.
func closedByServer(c net.Conn, within time.Duration) bool {
	_ = c.SetReadDeadline(time.Now().Add(within))
	_, err := c.Read(make([]byte, 1))
	return err != nil && !errors.Is(err, os.ErrDeadlineExceeded)
}

// TestTCPPerPrefixCap opens connections from one /24 up to the cap: the
// next is closed at once, connections from another prefix are served, and
// the ones open go on answering.
func TestTCPPerPrefixCap(t *testing.T) {
	cfg := testConfig(newTestSource(testList(t)))
	cfg.MaxTCPConnsPerPrefix = 3
	s := startServer(t, cfg)
	var open []net.Conn
	for i := range 3 {
		c := dialFrom(t, s, "127.0.0.1")
		if err := askTCP(c); err != nil {
			t.Fatalf("connection %d under the cap: %v", i+1, err)
		}
		open = append(open, c)
	}
	over := dialFrom(t, s, "127.0.0.2") // same /24
	if err := askTCP(over); err == nil {
		t.Fatal("a 4th connection from the prefix was served")
	}
	if err := askTCP(dialFrom(t, s, "127.0.1.1")); err != nil {
		t.Fatalf("another prefix: %v", err)
	}
	for i, c := range open {
		if err := askTCP(c); err != nil {
			t.Fatalf("open connection %d after the refusal: %v", i+1, err)
		}
	}
	open[0].Close()
	// The slot comes back once the server has seen the close.
	deadline := time.Now().Add(5 * time.Second)
	for {
		if askTCP(dialFrom(t, s, "127.0.0.1")) == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the prefix's slot did not come back after a close")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n := s.tcpLim.refused[tcpRefusedPrefix].Load(); n == 0 {
		t.Error("farmlb_dnsd_tcp_refused_total{reason=prefix} not counted")
	}
}

// TestTCPConnRate opens connections from one prefix faster than its rate:
// those over it are closed at once; another prefix is untouched.
func TestTCPConnRate(t *testing.T) {
	cfg := testConfig(newTestSource(testList(t)))
	cfg.TCPConnRate = 5
	s := startServer(t, cfg)
	served := 0
	start := time.Now()
	for range 30 {
		c := dialFrom(t, s, "127.0.3.1")
		if askTCP(c) == nil {
			served++
		}
		c.Close()
	}
	// 5 at once and 5 a second for as long as the 30 took.
	if most := 5 + int(5*time.Since(start).Seconds()) + 1; served < 5 || served > most || served == 30 {
		t.Errorf("%d of 30 connections served at 5 a second in %v, want 5..%d", served, time.Since(start), most)
	}
	if err := askTCP(dialFrom(t, s, "127.0.4.1")); err != nil {
		t.Errorf("another prefix: %v", err)
	}
	if n := s.tcpLim.refused[tcpRefusedRate].Load(); n == 0 {
		t.Error("farmlb_dnsd_tcp_refused_total{reason=rate} not counted")
	}
}

// TestTCPSlowloris checks that a connection that sends nothing, and one
// that sends a query a byte at a time too slowly, are closed after the idle
// timeout, while a client asking at a normal pace is served throughout.
func TestTCPSlowloris(t *testing.T) {
	cfg := testConfig(newTestSource(testList(t)))
	cfg.TCPIdleTimeout = 300 * time.Millisecond
	s := startServer(t, cfg)
	silent := dialFrom(t, s, "127.0.5.1")
	trickle := dialFrom(t, s, "127.0.6.1")
	q, _ := query(testZone, dns.TypeA).Pack()
	msg := append(binary.BigEndian.AppendUint16(nil, uint16(len(q))), q...)
	closed := make(chan int, 1)
	go func() {
		for i := range msg {
			if _, err := trickle.Write(msg[i : i+1]); err != nil {
				closed <- i
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		closed <- -1
	}()
	if !closedByServer(silent, 10*time.Second) {
		t.Error("a silent connection was not closed")
	}
	if n := <-closed; n < 0 {
		t.Errorf("a query sent a byte every 100 ms (%d bytes) was let through with a 300 ms timeout", len(msg))
	}
	if n := s.tcpLim.timeouts.Load(); n < 2 {
		t.Errorf("farmlb_dnsd_tcp_timeouts_total %d, want 2", n)
	}
	// A normal client, asking every 100 ms, stays served.
	c := dialFrom(t, s, "127.0.7.1")
	for i := range 10 {
		if err := askTCP(c); err != nil {
			t.Fatalf("query %d of a client asking every 100 ms: %v", i+1, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
