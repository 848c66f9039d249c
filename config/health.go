package config

import (
	"fmt"
	"net/url"
	"time"
)

// Health is a node's own health checks ("nodes[i].health:"): what must hold
// besides the process answering the mesh for the node to take new clients.
//
//	health:
//	  on_fail: draining            # or down: what a failing node becomes
//	  checks:
//	    - {name: feed, http: "http://127.0.0.1:9000/ready", expect: 200}
//	    - {name: db, tcp: "127.0.0.1:5432", interval: 5s}
//	    - {name: disk, command: [/usr/local/bin/check-disk, /var], rise: 1, fall: 2}
//
// A check fails after fall failures in a row and passes again after rise
// successes in a row (HAProxy's rise and fall); the node fails while any
// check fails. A Farm from Parse or Load has every field filled in.
type Health struct {
	// OnFail is what a node whose check fails becomes: "draining" (the
	// default: it keeps its clients and takes no new ones, so a check
	// that flaps moves nobody) or "down" (DOWN for clients: its clients
	// are told to move, spread over pushd.drain_window as a drain is, for
	// a check whose failure means the node's data is wrong).
	OnFail string `yaml:"on_fail"`
	// Checks are the node's checks; at most MaxChecks.
	Checks []Check `yaml:"checks"`
}

// Check is one health check: exactly one of HTTP, TCP and Command.
type Check struct {
	// Name names the check in the status reason ("health:NAME"), logs and
	// metrics; default: its kind ("http", "tcp", "command"), with the
	// check's index after it when the kind repeats.
	Name string `yaml:"name"`
	// HTTP is a URL to GET (http or https); the check passes on Expect.
	HTTP string `yaml:"http"`
	// Expect is the status the HTTP check wants; default 0: any 2xx.
	Expect int `yaml:"expect"`
	// TCP is a host:port to connect to; the check passes on connect.
	TCP string `yaml:"tcp"`
	// Command is a program and its arguments, run without a shell; the
	// check passes when it exits 0 within Timeout (it is killed after).
	Command []string `yaml:"command"`
	// Interval is the time between two runs; default 2s (HAProxy's inter).
	Interval time.Duration `yaml:"interval"`
	// Timeout bounds one run; default 1s, or Interval when shorter.
	Timeout time.Duration `yaml:"timeout"`
	// Rise is how many passes in a row end a failure; default 2.
	Rise int `yaml:"rise"`
	// Fall is how many failures in a row make a failure; default 3.
	Fall int `yaml:"fall"`
}

// Health check bounds and defaults.
const (
	MaxChecks            = 16
	MaxCheckNameLen      = 48 // "health:" and the name fit a farm list reason
	DefaultCheckInterval = 2 * time.Second
	DefaultCheckTimeout  = time.Second
	DefaultCheckRise     = 2
	DefaultCheckFall     = 3
	minCheckInterval     = 100 * time.Millisecond
	maxCheckTimer        = 10 * time.Minute
	maxRiseFall          = 100
)

// Kind is the check's kind: "http", "tcp" or "command".
func (c *Check) Kind() string {
	switch {
	case c.HTTP != "":
		return "http"
	case c.TCP != "":
		return "tcp"
	}
	return "command"
}

// Validate checks health settings made outside a farm file (pushd's
// flags) as the file's are checked, and fills in the defaults; errors name
// the keys under "health".
func (h *Health) Validate() error { return h.validate("health") }

// Validate checks overload settings made outside a farm file; errors name
// the keys under "overload".
func (o *Overload) Validate() error { return o.validate("overload") }

// validate checks the section and fills in the defaults; p is its key path.
func (h *Health) validate(p string) error {
	switch h.OnFail {
	case "":
		h.OnFail = "draining"
	case "draining", "down":
	default:
		return keyErr(p+".on_fail", 0, "%q is not draining or down", h.OnFail)
	}
	if len(h.Checks) > MaxChecks {
		return keyErr(p+".checks", 0, "%d checks, at most %d", len(h.Checks), MaxChecks)
	}
	kinds := map[string]int{}
	for i := range h.Checks {
		kinds[h.Checks[i].Kind()]++
	}
	names := map[string]string{}
	for i := range h.Checks {
		c := &h.Checks[i]
		cp := fmt.Sprintf("%s.checks[%d]", p, i)
		if err := c.validate(cp); err != nil {
			return err
		}
		if c.Name == "" {
			c.Name = c.Kind()
			if kinds[c.Kind()] > 1 {
				c.Name = fmt.Sprintf("%s%d", c.Kind(), i)
			}
		}
		if first, dup := names[c.Name]; dup {
			return keyErr(cp+".name", 0, "%q is already the name of %s", c.Name, first)
		}
		names[c.Name] = cp
	}
	return nil
}

func (c *Check) validate(p string) error {
	n := 0
	for _, set := range []bool{c.HTTP != "", c.TCP != "", len(c.Command) > 0} {
		if set {
			n++
		}
	}
	if n != 1 {
		return keyErr(p, 0, "a check needs exactly one of http, tcp and command")
	}
	if c.Name != "" {
		if err := checkLabel(c.Name); err != nil || len(c.Name) > MaxCheckNameLen {
			return keyErr(p+".name", 0, "%q is not a short name (letters, digits and '-', at most %d bytes)", c.Name, MaxCheckNameLen)
		}
	}
	switch {
	case c.HTTP != "":
		u, err := url.Parse(c.HTTP)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return keyErr(p+".http", 0, "%q is not an http or https URL", c.HTTP)
		}
		if c.Expect != 0 && (c.Expect < 100 || c.Expect > 599) {
			return keyErr(p+".expect", 0, "%d is not an HTTP status", c.Expect)
		}
	case c.TCP != "":
		if err := checkHostPort(c.TCP, false); err != nil {
			return &KeyError{Path: p + ".tcp", Err: err}
		}
	default:
		if c.Command[0] == "" {
			return keyErr(p+".command", 0, "the program is empty")
		}
	}
	if c.Expect != 0 && c.HTTP == "" {
		return keyErr(p+".expect", 0, "expect is for http checks")
	}
	if c.Interval == 0 {
		c.Interval = DefaultCheckInterval
	}
	if c.Interval < minCheckInterval || c.Interval > maxCheckTimer {
		return keyErr(p+".interval", 0, "%v out of range %v..%v", c.Interval, minCheckInterval, maxCheckTimer)
	}
	if c.Timeout == 0 {
		c.Timeout = min(DefaultCheckTimeout, c.Interval)
	}
	if c.Timeout < 0 || c.Timeout > c.Interval {
		return keyErr(p+".timeout", 0, "%v out of range 0..interval (%v)", c.Timeout, c.Interval)
	}
	if c.Rise == 0 {
		c.Rise = DefaultCheckRise
	}
	if c.Fall == 0 {
		c.Fall = DefaultCheckFall
	}
	if c.Rise < 1 || c.Rise > maxRiseFall {
		return keyErr(p+".rise", 0, "%d out of range 1..%d", c.Rise, maxRiseFall)
	}
	if c.Fall < 1 || c.Fall > maxRiseFall {
		return keyErr(p+".fall", 0, "%d out of range 1..%d", c.Fall, maxRiseFall)
	}
	return nil
}

// Overload is pushd's overload detection ("pushd: overload:"): a node
// whose own signals stay over their thresholds for OverFor marks itself
// full (DRAINING, reason "overload:SIGNAL") so that lists and DNS send new
// clients elsewhere, until every signal stays under for UnderFor. A node
// never does so while no other node of its priority group is UP and not
// full: an overloaded group is better than an empty one. A threshold of 0
// turns its signal off; pushd.DefaultOverload says why each default is
// what it is.
type Overload struct {
	// FanoutDelay is the 90th percentile, over each Interval, of the time
	// from a message's publish (at its origin) to its write to this
	// node's streams. Default 2s (0 means the default: Off turns the
	// detection off).
	FanoutDelay time.Duration `yaml:"fanout_delay"`
	// CPU is the process's CPU use as a share of its cores (0 to 1).
	// Default 0: off.
	CPU float64 `yaml:"cpu"`
	// Streams is an open-stream count (a soft capacity). Default 0: off.
	Streams int `yaml:"streams"`
	// Interval is how often the signals are taken; default 1s.
	Interval time.Duration `yaml:"interval"`
	// OverFor is how long a signal must stay over; default 5s.
	OverFor time.Duration `yaml:"over_for"`
	// UnderFor is how long every signal must stay under; default 15s.
	UnderFor time.Duration `yaml:"under_for"`
	// Off turns overload detection off altogether.
	Off bool `yaml:"off"`
}

func (o *Overload) validate(p string) error {
	if o.CPU < 0 || o.CPU > 1 {
		return keyErr(p+".cpu", 0, "%v out of range 0..1 (a share of the process's cores)", o.CPU)
	}
	if o.Streams < 0 {
		return keyErr(p+".streams", 0, "%d is negative", o.Streams)
	}
	for _, d := range []struct {
		key string
		v   time.Duration
	}{{"fanout_delay", o.FanoutDelay}, {"interval", o.Interval}, {"over_for", o.OverFor}, {"under_for", o.UnderFor}} {
		if d.v < 0 || d.v > maxCheckTimer {
			return keyErr(p+"."+d.key, 0, "%v out of range 0..%v", d.v, maxCheckTimer)
		}
	}
	if o.Interval != 0 && o.Interval < minCheckInterval {
		return keyErr(p+".interval", 0, "%v is under %v", o.Interval, minCheckInterval)
	}
	return nil
}
