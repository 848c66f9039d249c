package pushd

import (
	"runtime"
	"sync/atomic"
	"time"
)

// Overload is the node's overload detection: a node whose own signals stay
// over their thresholds for OverFor marks itself full (DRAINING, reason
// "overload:SIGNAL") so that lists, SRV weights and DNS send new clients
// elsewhere, until every signal has stayed under for UnderFor. It keeps
// its clients. A node that is the last of its priority group UP and not
// full stays UP (with the reason): see State.
type Overload struct {
	// FanoutDelay is the threshold of the fan-out delay: the 90th
	// percentile, over the last OverFor/2, of the time from a message's
	// publish (at its origin, by the origin's clock) to its write to one
	// of this node's streams, counting live messages only: not history a
	// resuming client catches up on, nor messages the node fetched from
	// its peers after a pause or a partition. Like the other signals it
	// must stay over for OverFor: a burst of late deliveries leaves the
	// percentile after OverFor/2 and moves nobody, while a node that is
	// late again and again (starved every second, say, with quiet
	// moments between) keeps it over. Default 2 s:
	// twenty times the p99 of one publish to 10,000 streams on a 2-core
	// VM (BENCHMARKS.md) and far above the skew of clocks kept by NTP, so
	// that a node crosses it only when its clients really get their data
	// seconds late. A stretch without a delivery is under.
	FanoutDelay time.Duration
	// CPU is the threshold of the process's CPU use, as a share of the
	// cores it may use (GOMAXPROCS), 0 to 1. Default 0: off. A node
	// using every core it has may still deliver on time, and a node
	// starved by its neighbours uses little; the fan-out delay tells both
	// apart. Set it where the CPU is the node's own and known to be the
	// limit.
	CPU float64
	// Streams is a soft capacity: over it, the node asks for no more
	// clients but takes those that come (Capacity refuses them). Default
	// 0: off (the farm file's capacity is the limit an operator sets).
	Streams int
	// Interval is how often the signals are taken. Default 1 s.
	Interval time.Duration
	// OverFor is how long a signal must stay over before the node marks
	// itself full. Default 5 s: a burst (a publish to every stream at
	// once, a GC) does not move the farm's new clients.
	OverFor time.Duration
	// UnderFor is how long every signal must stay under before the node
	// takes new clients again. Default 15 s, three times OverFor, so that
	// a node at the edge does not flap between full and not.
	UnderFor time.Duration
	// Off turns the detection off.
	Off bool
}

// DefaultOverload returns the defaults; the reason for each is on its
// field.
func DefaultOverload() Overload {
	return Overload{FanoutDelay: 2 * time.Second, Interval: time.Second, OverFor: 5 * time.Second, UnderFor: 15 * time.Second}
}

func (o *Overload) populate() {
	d := DefaultOverload()
	setDefault(&o.FanoutDelay, d.FanoutDelay)
	setDefault(&o.Interval, d.Interval)
	setDefault(&o.OverFor, d.OverFor)
	setDefault(&o.UnderFor, d.UnderFor)
}

// fanoutBounds are the upper bounds of fanoutTracker's buckets.
var fanoutBounds = [...]time.Duration{
	time.Millisecond, 2 * time.Millisecond, 5 * time.Millisecond, 10 * time.Millisecond, 20 * time.Millisecond,
	50 * time.Millisecond, 100 * time.Millisecond, 200 * time.Millisecond, 500 * time.Millisecond,
	time.Second, 2 * time.Second, 5 * time.Second, 10 * time.Second, 30 * time.Second,
}

// fanoutTracker counts fan-out delays by bucket between two takes, with
// atomics only: it is on the path of every event written.
type fanoutTracker struct {
	counts [len(fanoutBounds) + 1]atomic.Uint64
	max    atomic.Int64
}

func (f *fanoutTracker) observe(d time.Duration) {
	i := 0
	for i < len(fanoutBounds) && d > fanoutBounds[i] {
		i++
	}
	f.counts[i].Add(1)
	for {
		m := f.max.Load()
		if int64(d) <= m || f.max.CompareAndSwap(m, int64(d)) {
			return
		}
	}
}

// fanoutCounts are the delays counted between two takes.
type fanoutCounts struct {
	n       [len(fanoutBounds) + 1]uint64
	largest time.Duration
}

// take returns the delays counted since the last take, and starts over.
func (f *fanoutTracker) take() fanoutCounts {
	var c fanoutCounts
	for i := range f.counts {
		c.n[i] = f.counts[i].Swap(0)
	}
	c.largest = time.Duration(f.max.Swap(0))
	return c
}

// percentile90 is the 90th percentile of the delays of several takes (the upper
// bound of its bucket, or the largest delay when that is smaller), and
// how many delays there were.
func percentile90(takes []fanoutCounts) (time.Duration, uint64) {
	var n [len(fanoutBounds) + 1]uint64
	var total uint64
	var largest time.Duration
	for _, t := range takes {
		for i, c := range t.n {
			n[i] += c
			total += c
		}
		largest = max(largest, t.largest)
	}
	if total == 0 {
		return 0, 0
	}
	need := (total*9 + 9) / 10 // ceil(0.9 total)
	var sum uint64
	for i, c := range n {
		sum += c
		if sum >= need && i < len(fanoutBounds) {
			return min(fanoutBounds[i], largest), total
		}
	}
	return largest, total
}

// watchOverload takes the signals every Interval and marks the node full
// or not.
func (s *Server) watchOverload() {
	o := s.cfg.Overload
	t := time.NewTicker(o.Interval)
	defer t.Stop()
	cpu := newCPUMeter()
	var overSince, underSince time.Time
	marked := ""
	s.fan.take()
	// The takes of the last OverFor/2, for the fan-out delay's
	// percentile: half, so that one burst is out of it before the
	// signal has been over for OverFor.
	window := make([]fanoutCounts, 0, max(1, int(o.OverFor/o.Interval/2)))
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		}
		now := time.Now()
		over := ""
		if len(window) == cap(window) {
			window = append(window[:0], window[1:]...)
		}
		window = append(window, s.fan.take())
		p90, n := percentile90(window)
		s.hm.overloadVal.WithLabelValues("fanout").Set(p90.Seconds())
		if n > 0 && p90 > o.FanoutDelay {
			over = "fanout"
		}
		if share, ok := cpu.take(now); ok {
			s.hm.overloadVal.WithLabelValues("cpu").Set(share)
			if o.CPU > 0 && share > o.CPU && over == "" {
				over = "cpu"
			}
		}
		users := s.Users()
		s.hm.overloadVal.WithLabelValues("streams").Set(float64(users))
		if o.Streams > 0 && users > o.Streams && over == "" {
			over = "streams"
		}
		if over != "" {
			underSince = time.Time{}
			if overSince.IsZero() {
				overSince = now
			}
		} else {
			overSince = time.Time{}
			if underSince.IsZero() {
				underSince = now
			}
		}
		switch {
		case marked == "" && over != "" && now.Sub(overSince) >= o.OverFor-o.Interval/2:
			marked = over
			s.log.Warn("overloaded: asking for no new clients", "signal", over, "fanout_p90", p90, "streams", users, "for", o.OverFor)
		case marked != "" && over == "" && now.Sub(underSince) >= o.UnderFor-o.Interval/2:
			s.log.Info("overload over: taking new clients again", "signal", marked, "fanout_p90", p90, "streams", users)
			marked = ""
		}
		s.hm.overloaded.Set(b2f(marked != ""))
		s.stateMu.Lock()
		s.overload = marked
		s.stateMu.Unlock()
		// Also when nothing changed here: whether the node may shed
		// depends on the other nodes, which change on their own.
		s.updateState()
	}
}

// cpuMeter measures the process's CPU use between two takes.
type cpuMeter struct {
	last    time.Duration
	lastAt  time.Time
	started bool
}

func newCPUMeter() *cpuMeter { return &cpuMeter{} }

// take returns the share of GOMAXPROCS cores the process used since the
// last take; false on the first take or where the process's CPU time is
// not known.
func (c *cpuMeter) take(now time.Time) (float64, bool) {
	used, ok := processCPU()
	if !ok {
		return 0, false
	}
	defer func() { c.last, c.lastAt, c.started = used, now, true }()
	if !c.started || !now.After(c.lastAt) {
		return 0, false
	}
	return float64(used-c.last) / float64(now.Sub(c.lastAt)) / float64(runtime.GOMAXPROCS(0)), true
}
