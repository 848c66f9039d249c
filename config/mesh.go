package config

import (
	"time"

	"github.com/farmlb/farmlb/farm"
)

// Mesh is the mesh's section of the farm file ("mesh:"): the timers of
// peerlink's failure detection. They belong in the farm file, not in each
// daemon's flags, because every member of a farm must use the same ones: a
// member that suspects sooner than the others asks questions they answer
// on their own, slower clock.
//
//	mesh:
//	  heartbeat: 50ms        # a heartbeat datagram to each peer this often
//	  suspect_after: 350ms   # a peer silent this long is suspect; the others are asked
//	  probe_timeout: 250ms   # one round of questions; asked again each round
//	  vouch_timeout: 200ms   # an asked member answers "no" after this long without hearing it
//	  vouch_lifetime: 500ms  # a suspect nobody vouches for this long is DOWN
//	  probe_fanout: 3        # how many other members are asked
//
// Every key is optional. A Farm from Parse or Load has every field filled
// in: the file's value, else the default (DefaultMesh; when the file sets
// probe_timeout, vouch_timeout and vouch_lifetime default to 2/3 and 2 ×
// probe_timeout, as in peerlink). A
// dead member is DOWN everywhere suspect_after + vouch_timeout after its
// last heartbeat when the members asked answer (560 ms with the defaults,
// counting one detector tick of heartbeat/5), and at most
// suspect_after + vouch_lifetime (+ one tick) when they do not (860 ms).
// Longer timers mean fewer false DOWNs on a loaded or emulated host, at
// the price of clients sent to a dead member for longer.
type Mesh struct {
	// Heartbeat is peerlink.Config.HeartbeatInterval.
	Heartbeat time.Duration `yaml:"heartbeat"`
	// SuspectAfter is peerlink.Config.SuspectAfter; at least two heartbeats.
	SuspectAfter time.Duration `yaml:"suspect_after"`
	// ProbeTimeout is peerlink.Config.ProbeTimeout.
	ProbeTimeout time.Duration `yaml:"probe_timeout"`
	// VouchTimeout is peerlink.Config.VouchTimeout; less than ProbeTimeout.
	VouchTimeout time.Duration `yaml:"vouch_timeout"`
	// VouchLifetime is peerlink.Config.VouchLifetime; at least
	// ProbeTimeout + VouchTimeout.
	VouchLifetime time.Duration `yaml:"vouch_lifetime"`
	// ProbeFanout is peerlink.Config.ProbeFanout.
	ProbeFanout int `yaml:"probe_fanout"`
}

// DefaultMesh returns the default timers. They are peerlink's defaults too
// (peerlink.DefaultConfig takes them from here); the reason for each is
// written on its field of peerlink.Config.
func DefaultMesh() Mesh {
	return Mesh{
		Heartbeat:     50 * time.Millisecond,
		SuspectAfter:  350 * time.Millisecond,
		ProbeTimeout:  250 * time.Millisecond,
		VouchTimeout:  200 * time.Millisecond,
		VouchLifetime: 500 * time.Millisecond,
		ProbeFanout:   3,
	}
}

// Bounds of the mesh timers.
const (
	// minHeartbeat: the detector ticks five times a heartbeat, and every
	// heartbeat is a datagram to every peer; below 10 ms that is CPU spent
	// for nothing a LAN can tell apart.
	minHeartbeat = 10 * time.Millisecond
	// maxHeartbeat stays well under the mesh connections' 5 s idle
	// timeout (peerlink.Config.IdleTimeout), which heartbeats keep from
	// expiring.
	maxHeartbeat = 2 * time.Second
	// maxMeshTimer: a member that stays UP for minutes after it died sends
	// clients to a dead server for minutes; that is a mistake, not tuning.
	maxMeshTimer = time.Minute
)

// validate checks the section and fills in the defaults; path is its key
// ("mesh"). A relation between two timers is blamed on a key the file
// sets, so that the message names what the operator can change.
func (m *Mesh) validate(path string) error {
	set := *m // what the file gave; zero for what it did not
	durs := []struct {
		key string
		v   time.Duration
		lo  time.Duration
		hi  time.Duration
	}{
		{"heartbeat", m.Heartbeat, minHeartbeat, maxHeartbeat},
		{"suspect_after", m.SuspectAfter, time.Millisecond, maxMeshTimer},
		{"probe_timeout", m.ProbeTimeout, time.Millisecond, maxMeshTimer},
		{"vouch_timeout", m.VouchTimeout, time.Millisecond, maxMeshTimer},
		{"vouch_lifetime", m.VouchLifetime, time.Millisecond, maxMeshTimer},
	}
	for _, d := range durs {
		switch {
		case d.v < 0:
			return keyErr(path+"."+d.key, 0, "%v is negative", d.v)
		case d.v != 0 && (d.v < d.lo || d.v > d.hi):
			return keyErr(path+"."+d.key, 0, "%v out of range %v..%v", d.v, d.lo, d.hi)
		}
	}
	if m.ProbeFanout < 0 || m.ProbeFanout > farm.MaxServers {
		return keyErr(path+".probe_fanout", 0, "%d out of range 0..%d", m.ProbeFanout, farm.MaxServers)
	}

	d := DefaultMesh()
	fill := func(v *time.Duration, def time.Duration) {
		if *v == 0 {
			*v = def
		}
	}
	fill(&m.Heartbeat, d.Heartbeat)
	fill(&m.SuspectAfter, d.SuspectAfter)
	fill(&m.ProbeTimeout, d.ProbeTimeout)
	if set.ProbeTimeout != 0 {
		// As peerlink does with a zero field: the vouch timers follow
		// the length of a round.
		d.VouchTimeout, d.VouchLifetime = m.ProbeTimeout*2/3, 2*m.ProbeTimeout
	}
	fill(&m.VouchTimeout, d.VouchTimeout)
	fill(&m.VouchLifetime, d.VouchLifetime)
	if m.ProbeFanout == 0 {
		m.ProbeFanout = d.ProbeFanout
	}

	// The relations peerlink.New requires (peerlink/config.go, populate).
	if m.SuspectAfter < 2*m.Heartbeat {
		// A peer would be suspect between two heartbeats it sent on time.
		if set.SuspectAfter == 0 {
			return keyErr(path+".heartbeat", 0, "%v leaves less than two heartbeats in suspect_after (%v, the default): set suspect_after to at least %v too",
				m.Heartbeat, m.SuspectAfter, 2*m.Heartbeat)
		}
		return keyErr(path+".suspect_after", 0, "%v is less than two heartbeats (heartbeat %v): a peer would be suspect between heartbeats sent on time",
			m.SuspectAfter, m.Heartbeat)
	}
	// These two fail only on a vouch_timeout or a vouch_lifetime the file
	// sets: their defaults always meet them.
	if m.VouchTimeout >= m.ProbeTimeout {
		// Otherwise the "no" of an asked member arrives after the
		// asker's round ended, and every round ends undecided.
		return keyErr(path+".vouch_timeout", 0, "%v is not less than probe_timeout (%v%s): a member's \"no\" would arrive after the round that asked",
			m.VouchTimeout, m.ProbeTimeout, isDefault(set.ProbeTimeout))
	}
	if m.VouchLifetime < m.ProbeTimeout+m.VouchTimeout {
		return keyErr(path+".vouch_lifetime", 0, "%v is less than probe_timeout + vouch_timeout (%v): the answers to a second round of questions would come too late to count",
			m.VouchLifetime, m.ProbeTimeout+m.VouchTimeout)
	}
	return nil
}

// isDefault marks a value the file did not set in an error message.
func isDefault(set time.Duration) string {
	if set == 0 {
		return ", the default"
	}
	return ""
}
