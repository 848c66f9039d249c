package peerlink

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/farmlb/farmlb/config"
	"github.com/farmlb/farmlb/farm"
	"github.com/prometheus/client_golang/prometheus"
)

// Config configures a Mesh. Zero values mean the defaults of DefaultConfig.
//
// The failure-detection defaults aim at DOWN everywhere within 1 s of a
// member dying (SIGKILL, SIGSTOP, network loss), and otherwise at
// tolerance: no false DOWN on a loaded 2-core machine, where a process may
// go unscheduled for a few hundred milliseconds, and none from one broken
// link. The time from the victim's last heartbeat to DOWN is SuspectAfter +
// one detector tick + the probe time: VouchTimeout when every member asked
// answers no (the usual case: 350 + 10 + 200 = 560 ms, about 535 ms after
// the kill on average), VouchLifetime at most when they do not answer
// (350 + 10 + 500 = 860 ms).
type Config struct {
	// Farm is the farm file; required.
	Farm *config.Farm
	// Self is this member's name (a node or an observer of Farm); required.
	Self string
	// Logger receives the state changes, refusals and errors. If nil,
	// logs are discarded.
	Logger *slog.Logger
	// Registerer receives the metrics (farmlb_peerlink_*). If nil, they go
	// to a private registry nobody reads.
	Registerer prometheus.Registerer
	// Handler receives the data messages from peers, in order per peer,
	// one at a time per peer (it may run concurrently for different
	// peers). Returning nil acknowledges the message (the sender's Send
	// returns nil); an error is sent back to the sender. body is valid only
	// during the call. If nil, every message is refused.
	Handler func(from string, body []byte) error

	// PacketConn is the UDP socket of the mesh. If nil, Listen binds the
	// member's peer address from Farm.
	PacketConn net.PacketConn
	// Certificate is this member's certificate. If nil, it is loaded from
	// Farm.TLS (cert and key with {name} replaced by Self).
	Certificate *tls.Certificate
	// CA is the pool of farm CA certificates. If nil, loaded from Farm.TLS.CA.
	CA *x509.CertPool
	// Incarnation identifies this life of the member; it must grow with
	// every start. If zero, the start time in nanoseconds since 1970.
	Incarnation uint64
	// Draining starts the member DRAINING instead of UP.
	Draining bool

	// HeartbeatInterval is how often a heartbeat datagram goes to each
	// peer. If zero, 50 ms: 20 datagrams per second per peer is cheap
	// (about 70 bytes each), and five fit in SuspectAfter.
	HeartbeatInterval time.Duration
	// SuspectAfter is how long a peer may stay silent before it is suspect
	// and the other members are asked about it. If zero, 350 ms: seven
	// heartbeats, so that lost datagrams or a peer (or this member)
	// unscheduled for a few hundred ms on a loaded machine do not start a
	// probe, while a dead peer is still DOWN within 1 s.
	SuspectAfter time.Duration
	// ProbeTimeout is the length of a round of questions: while a peer
	// stays silent, the other members are asked about it again each
	// ProbeTimeout. If zero, 250 ms: two rounds fit in VouchLifetime, so
	// one lost or slow question does not decide.
	ProbeTimeout time.Duration
	// VouchTimeout is how long a member asked about a suspect waits to hear
	// from it before answering no. If zero, two thirds of ProbeTimeout;
	// the default is 200 ms, so that the "no" arrives within the asker's
	// round and it decides as soon as everyone has said no.
	VouchTimeout time.Duration
	// VouchLifetime is how long a silent peer stays UP without any member
	// saying it hears it: after the suspicion, or after the last "yes"
	// while only other members hear it (unreachable). An explicit "no"
	// from every member asked makes it DOWN sooner. If zero, twice
	// ProbeTimeout (500 ms): a voucher slowed down by a loaded machine
	// has that long to answer, and a peer whose asked members do not
	// answer at all is still DOWN within SuspectAfter + VouchLifetime +
	// one heartbeat (900 ms) of dying.
	VouchLifetime time.Duration
	// RecheckInterval is how often the other members are asked again
	// about a peer this member declared DOWN after a silence, while the
	// link to it is down: if they hear it, it is UP again (a verdict
	// reached on a lost or late answer, or a peer that restarted while
	// only its link to this member is broken). If zero, 1 s: a few control
	// frames a second for each dead member.
	RecheckInterval time.Duration
	// ProbeFanout is how many other members, at most, are asked about a
	// suspect (chosen at random). If zero, 3: one honest answer is enough,
	// three tolerate two members that are themselves slow or cut off, and
	// a bound keeps a stall of one member in a large farm from costing
	// every member a question to every other (memberlist asks 3 too).
	ProbeFanout int
	// Seed seeds the random choice of the members asked; with the
	// incarnation it makes a member's choices repeatable in tests.
	Seed uint64
	// StatusInterval is the least time between two status frames to one
	// peer: changes in between are coalesced into the next frame. If zero,
	// 10 ms: a change reaches peers within about 10 ms (well inside the
	// 100 ms goal), and 10,000 changes a second cost at most 100 frames per
	// peer.
	StatusInterval time.Duration
	// RedialInterval is the pause between attempts to connect to a peer
	// that is not connected. If zero, 100 ms: a peer that comes back is
	// connected, and UP, within about 100 ms plus a handshake.
	RedialInterval time.Duration
	// DialTimeout bounds one connection attempt, handshake included. If
	// zero, 400 ms: a handshake on a LAN takes a few milliseconds, and a
	// member that returns is dialed again within DialTimeout +
	// RedialInterval (500 ms), inside the 1 s goal.
	DialTimeout time.Duration
	// IdleTimeout closes a QUIC connection that received nothing for this
	// long. If zero, 5 s. Failure detection does not depend on it (that is
	// the heartbeats' job); it only frees connections to members long gone.
	IdleTimeout time.Duration
	// SendWindow bounds the messages to one peer that Send has accepted
	// and the peer has not acknowledged; Send blocks while it is full. If
	// zero, 256.
	SendWindow int
	// SendWindowBytes bounds the bytes of those messages (a single
	// message larger than it is still sent alone). If zero, 8 MiB.
	SendWindowBytes int

	// transport replaces QUIC (tests use an in-memory network).
	transport transport
	// replyDelay holds back every probe reply this member sends (tests:
	// a slow voucher).
	replyDelay time.Duration
	// protos, if set, replaces the ALPN names offered (tests: a member of
	// an older version).
	protos []string
}

// DefaultConfig returns the defaults; set Farm and Self before use. The
// failure-detection timers are the farm file's defaults
// (config.DefaultMesh; their reasons are on the fields above): a farm file
// without a mesh: section and a zero Config mean the same mesh.
func DefaultConfig() Config {
	t := config.DefaultMesh()
	return Config{
		HeartbeatInterval: t.Heartbeat,
		SuspectAfter:      t.SuspectAfter,
		ProbeTimeout:      t.ProbeTimeout,
		VouchTimeout:      t.VouchTimeout,
		VouchLifetime:     t.VouchLifetime,
		RecheckInterval:   time.Second,
		ProbeFanout:       t.ProbeFanout,
		StatusInterval:    10 * time.Millisecond,
		RedialInterval:    100 * time.Millisecond,
		DialTimeout:       400 * time.Millisecond,
		IdleTimeout:       5 * time.Second,
		SendWindow:        256,
		SendWindowBytes:   8 << 20,
	}
}

// populate fills the zero fields with defaults and checks the rest.
func (c *Config) populate() error {
	d := DefaultConfig()
	if c.Farm == nil {
		return errors.New("peerlink: Config.Farm is required")
	}
	if c.Self == "" {
		return errors.New("peerlink: Config.Self is required")
	}
	m, ok := c.Farm.Member(c.Self)
	if !ok {
		return fmt.Errorf("peerlink: %q is not a member of the farm", c.Self)
	}
	c.Self = m.Name // the config's spelling
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Registerer == nil {
		c.Registerer = prometheus.NewRegistry()
	}
	if c.Incarnation == 0 {
		c.Incarnation = uint64(time.Now().UnixNano())
	}
	setDur := func(v *time.Duration, def time.Duration) {
		if *v <= 0 {
			*v = def
		}
	}
	setDur(&c.HeartbeatInterval, d.HeartbeatInterval)
	setDur(&c.SuspectAfter, d.SuspectAfter)
	setDur(&c.ProbeTimeout, d.ProbeTimeout)
	setDur(&c.VouchTimeout, c.ProbeTimeout*2/3)
	setDur(&c.VouchLifetime, 2*c.ProbeTimeout)
	setDur(&c.RecheckInterval, d.RecheckInterval)
	setDur(&c.StatusInterval, d.StatusInterval)
	setDur(&c.RedialInterval, d.RedialInterval)
	setDur(&c.DialTimeout, d.DialTimeout)
	setDur(&c.IdleTimeout, d.IdleTimeout)
	if c.ProbeFanout <= 0 {
		c.ProbeFanout = d.ProbeFanout
	}
	if c.SendWindow <= 0 {
		c.SendWindow = d.SendWindow
	}
	if c.SendWindowBytes <= 0 {
		c.SendWindowBytes = d.SendWindowBytes
	}
	if c.SuspectAfter < 2*c.HeartbeatInterval {
		return fmt.Errorf("peerlink: SuspectAfter %v is less than two heartbeats (%v)", c.SuspectAfter, c.HeartbeatInterval)
	}
	if c.VouchLifetime < c.ProbeTimeout+c.VouchTimeout {
		// The answers to the second round must have time to arrive.
		return fmt.Errorf("peerlink: VouchLifetime %v is less than ProbeTimeout + VouchTimeout (%v)", c.VouchLifetime, c.ProbeTimeout+c.VouchTimeout)
	}
	if c.VouchTimeout >= c.ProbeTimeout {
		return fmt.Errorf("peerlink: VouchTimeout %v must be less than ProbeTimeout %v", c.VouchTimeout, c.ProbeTimeout)
	}
	return nil
}

// FarmConfig returns DefaultConfig with Farm, Self and the failure-detection
// timers of the farm file's mesh: section (f.Mesh), so that every member of
// the farm runs the same ones. A daemon that offers flags for the timers sets
// them on the result: a flag wins over the file, the file over the default.
func FarmConfig(f *config.Farm, self string) Config {
	c := DefaultConfig()
	c.Farm, c.Self = f, self
	m := f.Mesh // filled in by config.Parse; a zero field keeps the default
	for _, t := range []struct {
		dst *time.Duration
		v   time.Duration
	}{
		{&c.HeartbeatInterval, m.Heartbeat}, {&c.SuspectAfter, m.SuspectAfter}, {&c.ProbeTimeout, m.ProbeTimeout},
		{&c.VouchTimeout, m.VouchTimeout}, {&c.VouchLifetime, m.VouchLifetime},
	} {
		if t.v > 0 {
			*t.dst = t.v
		}
	}
	if m.ProbeFanout > 0 {
		c.ProbeFanout = m.ProbeFanout
	}
	return c
}

// firstRecord returns this member's first record.
func (c *Config) firstRecord() record {
	r := record{Incarnation: c.Incarnation, Seq: 1, Status: farm.StatusUp}
	if c.Draining {
		r.Status = farm.StatusDraining
	}
	if n, ok := c.Farm.Node(c.Self); ok {
		r.Priority = n.Priority
	}
	return r
}
