package testbed

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
)

// FloodConfig is one DNS flood: the lab's dns-flood fault runs it, as a
// process of its own on the monitor host, against a dnsd host.
type FloodConfig struct {
	// Target is the server, host:port.
	Target string
	// Name and Type are the question: by default TXT _farm.<service>, the
	// largest answer, asked with EDNS0 (1232 bytes) as a reflection attack
	// asks it.
	Name string
	Type uint16
	// Rate is queries per second. If zero, 5000.
	Rate int
}

// FloodMain sends cfg's queries until ctx ends, then writes one line to out:
// the queries sent, the replies and the bytes each way, and the
// amplification (bytes received / bytes sent) its source suffered.
func FloodMain(ctx context.Context, cfg FloodConfig, out io.Writer) error {
	if cfg.Rate <= 0 {
		cfg.Rate = 5000
	}
	if cfg.Name == "" {
		cfg.Name = "_farm." + Service + "."
		cfg.Type = dns.TypeTXT
	}
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(cfg.Name), cfg.Type)
	m.RecursionDesired = false
	m.SetEdns0(1232, false)
	q, err := m.Pack()
	if err != nil {
		return err
	}
	c, err := net.Dial("udp", cfg.Target)
	if err != nil {
		return fmt.Errorf("flood: %w", err)
	}
	var sent, recv, bytesRecv, truncated atomic.Uint64
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 65535)
		for {
			n, err := c.Read(buf)
			if errors.Is(err, net.ErrClosed) {
				return
			}
			if err != nil || n < 12 {
				continue // ICMP errors while a server is down, and the like
			}
			recv.Add(1)
			bytesRecv.Add(uint64(n))
			if buf[2]&0x02 != 0 {
				truncated.Add(1)
			}
		}
	}()
	start := time.Now()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	var id uint16
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-tick.C:
		}
		due := int(time.Since(start).Seconds()*float64(cfg.Rate)) - int(sent.Load())
		for range min(due, cfg.Rate) {
			id++
			q[0], q[1] = byte(id>>8), byte(id)
			if _, err := c.Write(q); err == nil {
				sent.Add(1)
			} else {
				sent.Add(1) // refused by a down host: still sent
			}
		}
	}
	time.Sleep(200 * time.Millisecond) // the last replies
	c.Close()
	<-done
	amp := 0.0
	if s := sent.Load(); s > 0 {
		amp = float64(bytesRecv.Load()) / float64(s*uint64(len(q)))
	}
	_, err = fmt.Fprintf(out, "flood %s: sent=%d received=%d truncated=%d bytes_sent=%d bytes_received=%d amplification=%.3f seconds=%.1f\n",
		cfg.Target, sent.Load(), recv.Load(), truncated.Load(), sent.Load()*uint64(len(q)), bytesRecv.Load(), amp, time.Since(start).Seconds())
	return err
}
