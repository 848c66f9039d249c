package pushd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"time"
)

// Health is a node's own health checks: what must hold, besides the
// process answering, for the node to take new clients. A check fails
// after Fall failed runs in a row and passes again after Rise passed runs
// in a row (HAProxy's rise and fall); the node fails while any check
// fails, and is UP again once every check passes.
type Health struct {
	// Checks are run from Serve until Shutdown, each on its own interval.
	Checks []Check
	// Down makes a failing node DOWN for clients: its clients are told to
	// move, spread over DrainWindow as a drain is. Default false: the
	// node is DRAINING, keeping its clients and taking no new ones, so
	// that a check that flaps moves nobody.
	Down bool
}

// Check is one health check: exactly one of HTTP, TCP and Command.
type Check struct {
	// Name names the check in the reason ("health:NAME"), logs and
	// metrics. Required.
	Name string
	// HTTP is a URL to GET; the check passes on Expect.
	HTTP string
	// Expect is the status the HTTP check wants. Default 0: any 2xx.
	Expect int
	// TCP is a host:port; the check passes when a connection opens.
	TCP string
	// Command is a program and its arguments, run without a shell; the
	// check passes when it exits 0 before Timeout (it is killed then).
	Command []string
	// Interval is the time between runs. Default 2 s (HAProxy's inter).
	Interval time.Duration
	// Timeout bounds a run. Default 1 s, or Interval when shorter.
	Timeout time.Duration
	// Rise is how many passes in a row end a failure. Default 2.
	Rise int
	// Fall is how many failures in a row make one. Default 3: one slow
	// answer or lost connection does not turn clients away.
	Fall int
}

func (h *Health) populate() error {
	names := map[string]bool{}
	for i := range h.Checks {
		c := &h.Checks[i]
		kinds := 0
		for _, set := range []bool{c.HTTP != "", c.TCP != "", len(c.Command) > 0} {
			if set {
				kinds++
			}
		}
		switch {
		case kinds != 1:
			return fmt.Errorf("pushd: health check %d: want exactly one of HTTP, TCP and Command", i)
		case c.Name == "" || names[c.Name]:
			return fmt.Errorf("pushd: health check %d: a name of its own is required", i)
		case len(c.Command) > 0 && c.Command[0] == "":
			return fmt.Errorf("pushd: health check %s: empty program", c.Name)
		}
		names[c.Name] = true
		setDefault(&c.Interval, 2*time.Second)
		setDefault(&c.Timeout, min(time.Second, c.Interval))
		setDefault(&c.Rise, 2)
		setDefault(&c.Fall, 3)
		if c.Interval < 0 || c.Timeout < 0 || c.Rise < 0 || c.Fall < 0 {
			return fmt.Errorf("pushd: health check %s: negative setting", c.Name)
		}
	}
	return nil
}

// checkRunner runs one check and keeps its rise/fall state.
type checkRunner struct {
	cfg    Check
	client *http.Client // HTTP checks

	// (Server.stateMu)
	up     bool   // the check passes (it starts passing: see startHealth)
	streak int    // runs in a row whose result differs from up
	last   string // the last failure, for the log
}

// startHealth starts the checks. Each starts passing and runs at once, so
// a node whose check fails at start leaves the list after Fall runs (4 s
// with the defaults), as it would at any other time.
func (s *Server) startHealth() {
	s.stateMu.Lock()
	for _, c := range s.cfg.Health.Checks {
		r := &checkRunner{cfg: c, up: true}
		if c.HTTP != "" {
			// A transport of its own, without keep-alive: each run
			// proves a fresh connection, and no idle one outlives the
			// server.
			r.client = &http.Client{
				Timeout:   c.Timeout,
				Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil},
				CheckRedirect: func(*http.Request, []*http.Request) error {
					return http.ErrUseLastResponse
				},
			}
		}
		s.checks = append(s.checks, r)
		s.hm.checkUp.WithLabelValues(c.Name).Set(1)
	}
	checks := append([]*checkRunner(nil), s.checks...)
	s.stateMu.Unlock()
	for _, r := range checks {
		s.goRun(func() { s.runCheck(r) })
	}
	if !s.cfg.Overload.Off {
		s.goRun(s.watchOverload)
	}
}

func (s *Server) runCheck(r *checkRunner) {
	t := time.NewTicker(r.cfg.Interval)
	defer t.Stop()
	for {
		err := r.run(s.ctx)
		if s.ctx.Err() != nil {
			return
		}
		s.checkResult(r, err)
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		}
	}
}

// checkResult moves the check's rise/fall state by one result.
func (s *Server) checkResult(r *checkRunner, err error) {
	result := "pass"
	if err != nil {
		result = "fail"
	}
	s.hm.checkRuns.WithLabelValues(r.cfg.Name, result).Inc()
	s.stateMu.Lock()
	if err != nil {
		r.last = err.Error()
	}
	if (err == nil) == r.up {
		r.streak = 0
		s.stateMu.Unlock()
		return
	}
	r.streak++
	flipped := false
	switch {
	case r.up && r.streak >= r.cfg.Fall:
		r.up, r.streak, flipped = false, 0, true
		s.log.Warn("health check fails", "check", r.cfg.Name, "runs", r.cfg.Fall, "err", r.last)
	case !r.up && r.streak >= r.cfg.Rise:
		r.up, r.streak, flipped = true, 0, true
		s.log.Info("health check passes again", "check", r.cfg.Name, "runs", r.cfg.Rise)
	}
	up := r.up
	s.stateMu.Unlock()
	if flipped {
		s.hm.checkUp.WithLabelValues(r.cfg.Name).Set(b2f(up))
		s.updateState()
	}
}

// run runs the check once; nil means it passed.
func (r *checkRunner) run(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
	defer cancel()
	c := r.cfg
	switch {
	case c.HTTP != "":
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.HTTP, nil)
		if err != nil {
			return err
		}
		req.Header.Set("User-Agent", "farmlb-pushd-health")
		resp, err := r.client.Do(req)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		if c.Expect != 0 && resp.StatusCode != c.Expect || c.Expect == 0 && resp.StatusCode/100 != 2 {
			want := "2xx"
			if c.Expect != 0 {
				want = fmt.Sprint(c.Expect)
			}
			return fmt.Errorf("GET %s: %s, want %s", c.HTTP, resp.Status, want)
		}
		return nil
	case c.TCP != "":
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", c.TCP)
		if err != nil {
			return err
		}
		return conn.Close()
	}
	cmd := exec.CommandContext(ctx, c.Command[0], c.Command[1:]...)
	var out tailBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = time.Second // a grandchild holding the pipes open
	err := cmd.Run()
	if ctx.Err() != nil && !errors.Is(ctx.Err(), context.Canceled) {
		return fmt.Errorf("%s: no answer within %v", c.Command[0], c.Timeout)
	}
	if err != nil {
		if msg := strings.TrimSpace(out.String()); msg != "" {
			return fmt.Errorf("%s: %w: %s", c.Command[0], err, msg)
		}
		return fmt.Errorf("%s: %w", c.Command[0], err)
	}
	return nil
}

// tailBuffer keeps the last 256 bytes written to it: what a failing
// command said last, for the log.
type tailBuffer struct{ b []byte }

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.b = append(t.b, p...)
	if len(t.b) > 256 {
		t.b = append(t.b[:0], t.b[len(t.b)-256:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string { return string(bytes.ToValidUTF8(t.b, []byte("?"))) }
