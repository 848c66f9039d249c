package testbed

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/farmlb/farmlb/farm"
	"go.yaml.in/yaml/v3"
)

// Scenario is one testbed run: the farm to build, the clients that arrive,
// and the faults, on one timeline. It is read from a YAML file (see
// testbed/scenarios/ and ParseScenario).
type Scenario struct {
	Name        string
	Description string
	// Nodes are the pushd hosts.
	Nodes []NodeSpec
	// DNS adds the two dnsd hosts (ns1, ns2) and the resolver host running
	// Unbound with the zone stub-delegated to them.
	DNS bool
	// Clients says how clients find the farm and what they stream.
	Clients ClientSpec
	// Publish is the sequence the lab publishes while the scenario runs; the
	// clients' copies of it give lost and duplicated.
	Publish PublishSpec
	// Duration is how long the timeline runs.
	Duration time.Duration
	// Settle is the quiet time at the end before the users' balance is taken.
	Settle time.Duration
	// Timeline are the arrivals and faults, in time order.
	Timeline []Step
	// Expect are the limits the run must keep; a run outside them fails.
	Expect Expect
	// FarmExtra is YAML appended to the farm file: the scenario's pushd:
	// and dns: sections (checked by the farm file's own parser at start).
	FarmExtra string
}

// NodeSpec is one pushd host.
type NodeSpec struct {
	Name     string
	Priority farm.Priority
	Capacity int
	// Health, when set, gives the node one health check, a command that
	// fails while the lab's fault file for the node exists (faults
	// check-fail and check-ok).
	Health *HealthSpec
}

// HealthSpec is a node's health check in the lab: what the node becomes
// when it fails, and the check's timing (zero: pushd's defaults).
type HealthSpec struct {
	OnFail   string // draining (default) or down
	Interval time.Duration
	Timeout  time.Duration
	Rise     int
	Fall     int
}

// ClientSpec describes the clients.
type ClientSpec struct {
	// Kind is "agent" (the default: `testbed agent` processes holding
	// clientlib clients, one process per client host, recording every
	// sequence number and every change of node) or "swarm" (`farmctl
	// swarm` processes, one per arrival and client host). The agent counts
	// lost and duplicated messages exactly, as sets; the swarm's check wants
	// each number above the last, so a reordering between two origins —
	// which the design allows — shows there as lost and duplicated.
	Kind string
	// Hosts is how many client hosts the clients are spread over.
	Hosts int
	// Discovery is "dns" (the _farm TXT record through the resolver host)
	// or "list" (GET /farm on any node).
	Discovery string
	// IdleTimeout is how long a stream may stay silent (no event, no
	// keep-alive) before an agent client gives it up as hung; zero keeps
	// clientlib's default. (farmctl swarm always uses clientlib's default.)
	IdleTimeout time.Duration
}

// PublishSpec describes the published sequence.
type PublishSpec struct {
	Topic string
	// Rate is messages per second.
	Rate float64
	// Via is the node the publisher publishes on while it answers (the
	// feed's way into the farm); default: one chosen at random.
	Via string
}

// Step is one moment of the timeline: an arrival of clients or a fault.
type Step struct {
	At time.Duration
	// Arrive clients join, spread evenly over Over.
	Arrive int
	Over   time.Duration
	// Fault is one of Faults, applied to Target (and Peer, for cut/heal).
	Fault  string
	Target string
	Peer   string
	// OneWay cuts only Target → Peer (a cut is both ways by default).
	OneWay bool
	// Rate is the squeeze's bytes per second, or dns-flood's queries per
	// second.
	Rate uint64
}

// Expect are a scenario's limits; nil means not checked.
//
// The window limits are about the stretches of time a node is made to fail
// its health check (check-fail … check-ok) or is starved or squeezed
// (starve … unstarve, squeeze … unsqueeze), counted from the moment a node
// first lists the target as not UP (or UP with a reason) to the step that
// ends the stretch: WindowShareMax bounds the target's share of the
// clients that started streaming from a node meanwhile; WindowKeptMin and
// WindowKeptMax bound, per target, the users it had at the end of the
// stretch over those it had at its start (1: it kept them all; 0: they all
// moved).
type Expect struct {
	Lost            *int
	Duplicated      *int
	DetectMSMax     *int
	DNSRemovedMSMax *int
	ReconnectMSP99  *int
	ReconnectMSMax  *int
	FalseDown       *int
	ResolveFailures *int
	MaxOverMean     *float64
	WindowShareMax  *float64
	WindowKeptMin   map[string]float64
	WindowKeptMax   map[string]float64
}

// Faults are the fault names a step may use, with what each does.
var Faults = map[string]string{
	"kill":       "SIGKILL the target's daemon",
	"stop":       "SIGSTOP the target's daemon (a hang)",
	"cont":       "SIGCONT the target's daemon",
	"restart":    "start the target's daemon again (SIGTERM first if it runs, which drains it)",
	"term":       "SIGTERM the target's daemon (drain, then exit)",
	"link-down":  "set the target host's link down",
	"link-up":    "set the target host's link up",
	"cut":        "drop traffic between target and peer (a blackhole route on each side; one_way: only target → peer)",
	"heal":       "undo cut",
	"squeeze":    "limit what the target host sends to rate bytes/s (tbf)",
	"unsqueeze":  "undo squeeze",
	"drain":      "POST /admin/drain on the target node",
	"undrain":    "POST /admin/undrain on the target node",
	"dns-down":   "take a dnsd host (ns1 or ns2) off the network",
	"dns-up":     "bring a dnsd host back",
	"check-fail": "make the target node's health check fail (the node needs health:)",
	"check-ok":   "make the target node's health check pass again",
	"starve":     "starve the target's pushd of CPU: SIGSTOP and SIGCONT in turn, running 150 ms of every 850 ms",
	"unstarve":   "undo starve",

	// A flood comes from the monitor host, a process of its own (testbed flood).
	"dns-flood":   "flood a dnsd host (ns1 or ns2) from the monitor host with TXT _farm queries (EDNS0), rate queries/s (default 5000)",
	"dns-unflood": "stop the flood of that dnsd host",
}

// faultNames lists Faults in order, for error messages.
func faultNames() string {
	var names []string
	for n := range Faults {
		names = append(names, n)
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
}

// The file's shape. Durations are strings so their errors can name the key.
type rawScenario struct {
	Name        string     `yaml:"name"`
	Description string     `yaml:"description"`
	Nodes       []rawNode  `yaml:"nodes"`
	DNS         *bool      `yaml:"dns"`
	Clients     rawClients `yaml:"clients"`
	Publish     rawPublish `yaml:"publish"`
	Duration    string     `yaml:"duration"`
	Settle      string     `yaml:"settle"`
	Timeline    []rawStep  `yaml:"timeline"`
	Expect      rawExpect  `yaml:"expect"`
	Farm        rawFarm    `yaml:"farm"`
}

// rawFarm holds the farm file sections a scenario may set; their contents
// belong to pushd, dnsd and the mesh, so they are passed on as they are.
type rawFarm struct {
	Pushd yaml.Node `yaml:"pushd"`
	DNS   yaml.Node `yaml:"dns"`
	Mesh  yaml.Node `yaml:"mesh"`
}

type rawNode struct {
	Name     string     `yaml:"name"`
	Priority string     `yaml:"priority"`
	Capacity int        `yaml:"capacity"`
	Health   *rawHealth `yaml:"health"`
}

type rawHealth struct {
	OnFail   string `yaml:"on_fail"`
	Interval string `yaml:"interval"`
	Timeout  string `yaml:"timeout"`
	Rise     int    `yaml:"rise"`
	Fall     int    `yaml:"fall"`
}

type rawClients struct {
	Kind        string `yaml:"kind"`
	Hosts       int    `yaml:"hosts"`
	Discovery   string `yaml:"discovery"`
	IdleTimeout string `yaml:"idle_timeout"`
}

type rawPublish struct {
	Topic string  `yaml:"topic"`
	Rate  float64 `yaml:"rate"`
	Via   string  `yaml:"via"`
}

type rawStep struct {
	At     string `yaml:"at"`
	Arrive int    `yaml:"arrive"`
	Over   string `yaml:"over"`
	Fault  string `yaml:"fault"`
	Target string `yaml:"target"`
	Peer   string `yaml:"peer"`
	OneWay bool   `yaml:"one_way"`
	Rate   uint64 `yaml:"rate"`
}

type rawExpect struct {
	Lost            *int               `yaml:"lost"`
	Duplicated      *int               `yaml:"duplicated"`
	DetectMSMax     *int               `yaml:"detect_ms_max"`
	DNSRemovedMSMax *int               `yaml:"dns_removed_ms"`
	ReconnectMSP99  *int               `yaml:"reconnect_ms_p99"`
	ReconnectMSMax  *int               `yaml:"reconnect_ms_max"`
	FalseDown       *int               `yaml:"false_down"`
	ResolveFailures *int               `yaml:"resolve_failures"`
	MaxOverMean     *float64           `yaml:"max_over_mean"`
	WindowShareMax  *float64           `yaml:"window_share_max"`
	WindowKeptMin   map[string]float64 `yaml:"window_kept_min"`
	WindowKeptMax   map[string]float64 `yaml:"window_kept_max"`
}

// LoadScenario reads and parses a scenario file.
func LoadScenario(path string) (*Scenario, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	s, err := ParseScenario(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}

var labelRE = regexp.MustCompile(`^[a-z][a-z0-9-]{0,31}$`)

// A node name becomes a host name, so a namespace and interface name: short.
var nodeNameRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9]{0,8}$`)

var topicRE = regexp.MustCompile(`^[A-Za-z0-9._-]{1,128}$`)

// ParseScenario parses a scenario strictly: an unknown key or a bad value is
// an error that names the key, e.g. `timeline[2].fault: "explode" is not
// one of ...`.
func ParseScenario(data []byte) (*Scenario, error) {
	var raw rawScenario
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&raw); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("empty scenario")
		}
		return nil, fmt.Errorf("scenario: %w", err)
	}
	s := &Scenario{Name: raw.Name, Description: raw.Description, DNS: raw.DNS == nil || *raw.DNS}
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}
	dur := func(key, v, def string) time.Duration {
		if v == "" {
			v = def
		}
		if v == "" {
			return 0
		}
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			bad(key, "%q is not a duration like 10s or 1m30s", v)
			return 0
		}
		return d
	}
	if !labelRE.MatchString(s.Name) {
		bad("name", "%q is not a short lower-case name", s.Name)
	}
	if len(raw.Nodes) == 0 {
		bad("nodes", "a scenario needs at least one node")
	}
	names := map[string]bool{"ns1": s.DNS, "ns2": s.DNS}
	for i, n := range raw.Nodes {
		key := fmt.Sprintf("nodes[%d]", i)
		if !nodeNameRE.MatchString(n.Name) || n.Name == "ns1" || n.Name == "ns2" {
			bad(key+".name", "%q is not a node name (a letter, then up to 8 letters or digits; not ns1/ns2)", n.Name)
		} else if names[n.Name] {
			bad(key+".name", "%q is used twice", n.Name)
		}
		names[n.Name] = true
		if n.Priority == "" {
			n.Priority = "A"
		}
		p, err := farm.ParsePriority(n.Priority)
		if err != nil {
			bad(key+".priority", "%q is not a letter A–Z", n.Priority)
		}
		if n.Capacity < 0 {
			bad(key+".capacity", "%d is negative", n.Capacity)
		}
		spec := NodeSpec{Name: n.Name, Priority: p, Capacity: n.Capacity}
		if h := n.Health; h != nil {
			spec.Health = &HealthSpec{OnFail: h.OnFail, Rise: h.Rise, Fall: h.Fall,
				Interval: dur(key+".health.interval", h.Interval, ""), Timeout: dur(key+".health.timeout", h.Timeout, "")}
			if h.OnFail != "" && h.OnFail != "draining" && h.OnFail != "down" {
				bad(key+".health.on_fail", "%q is not draining or down", h.OnFail)
			}
			if h.Rise < 0 || h.Fall < 0 {
				bad(key+".health", "rise and fall are counts above zero")
			}
		}
		s.Nodes = append(s.Nodes, spec)
	}
	hasHealth := func(name string) bool {
		for _, n := range s.Nodes {
			if n.Name == name {
				return n.Health != nil
			}
		}
		return false
	}
	s.Clients = ClientSpec{Kind: raw.Clients.Kind, Hosts: raw.Clients.Hosts, Discovery: raw.Clients.Discovery}
	switch s.Clients.Kind {
	case "":
		s.Clients.Kind = "agent"
	case "swarm", "agent":
	default:
		bad("clients.kind", "%q is not swarm or agent", s.Clients.Kind)
	}
	if s.Clients.Hosts == 0 {
		s.Clients.Hosts = 1
	}
	if s.Clients.Hosts < 0 || s.Clients.Hosts > 8 {
		bad("clients.hosts", "%d is not between 1 and 8", raw.Clients.Hosts)
	}
	switch s.Clients.Discovery {
	case "":
		s.Clients.Discovery = "list"
		if s.DNS {
			s.Clients.Discovery = "dns"
		}
	case "list":
	case "dns":
		if !s.DNS {
			bad("clients.discovery", `"dns" needs dns: true`)
		}
	default:
		bad("clients.discovery", "%q is not dns or list", s.Clients.Discovery)
	}
	s.Clients.IdleTimeout = dur("clients.idle_timeout", raw.Clients.IdleTimeout, "")
	if s.Clients.IdleTimeout > 0 && s.Clients.Kind == "swarm" {
		bad("clients.idle_timeout", "farmctl swarm has no idle timeout setting; use kind: agent")
	}
	s.Publish = PublishSpec{Topic: raw.Publish.Topic, Rate: raw.Publish.Rate, Via: raw.Publish.Via}
	if v := s.Publish.Via; v != "" && (!names[v] || v == "ns1" || v == "ns2") {
		bad("publish.via", "%q is not a node of this scenario", v)
	}
	if s.Publish.Topic == "" {
		s.Publish.Topic = "seq"
	}
	if !topicRE.MatchString(s.Publish.Topic) || strings.HasPrefix(s.Publish.Topic, "farmlb-") {
		bad("publish.topic", "%q is not a topic name", s.Publish.Topic)
	}
	if s.Publish.Rate == 0 {
		s.Publish.Rate = 10
	}
	if s.Publish.Rate < 0 || s.Publish.Rate > 1000 {
		bad("publish.rate", "%v is not between 0 and 1000 messages per second", raw.Publish.Rate)
	}
	s.Duration = dur("duration", raw.Duration, "")
	if s.Duration <= 0 {
		bad("duration", "a scenario needs a duration above zero")
	}
	s.Settle = dur("settle", raw.Settle, "5s")
	var last time.Duration
	for i, st := range raw.Timeline {
		key := fmt.Sprintf("timeline[%d]", i)
		step := Step{Arrive: st.Arrive, Fault: st.Fault, Target: st.Target, Peer: st.Peer, OneWay: st.OneWay, Rate: st.Rate}
		if st.At == "" {
			bad(key+".at", "every step needs an at")
		}
		step.At = dur(key+".at", st.At, "")
		step.Over = dur(key+".over", st.Over, "")
		if step.At < last {
			bad(key+".at", "%v is before the step above it (%v)", step.At, last)
		}
		if step.At > s.Duration && s.Duration > 0 {
			bad(key+".at", "%v is after the end of the scenario (%v)", step.At, s.Duration)
		}
		last = step.At
		switch {
		case st.Arrive < 0:
			bad(key+".arrive", "%d is negative", st.Arrive)
		case st.Arrive > 0 && st.Fault != "":
			bad(key, "a step is either an arrival or a fault, not both")
		case st.Arrive == 0 && st.Fault == "":
			bad(key, "a step needs arrive or fault")
		case st.Fault != "":
			if _, ok := Faults[st.Fault]; !ok {
				bad(key+".fault", "%q is not one of %s", st.Fault, faultNames())
				break
			}
			if !names[st.Target] {
				bad(key+".target", "%q is not a node of this scenario", st.Target)
			}
			isDNS := st.Target == "ns1" || st.Target == "ns2"
			switch st.Fault {
			case "dns-down", "dns-up", "dns-flood", "dns-unflood":
				if !isDNS {
					bad(key+".target", "%s needs ns1 or ns2, not %q", st.Fault, st.Target)
				}
			case "drain", "undrain", "starve", "unstarve":
				if isDNS {
					bad(key+".target", "%s needs a pushd node, not %q", st.Fault, st.Target)
				}
			case "check-fail", "check-ok":
				if !hasHealth(st.Target) {
					bad(key+".target", "%s needs a node with health:, not %q", st.Fault, st.Target)
				}
			case "cut", "heal":
				if !names[st.Peer] || st.Peer == st.Target {
					bad(key+".peer", "%q is not another node of this scenario", st.Peer)
				}
			case "squeeze":
				if st.Rate == 0 {
					bad(key+".rate", "squeeze needs a rate in bytes per second")
				}
			}
		}
		s.Timeline = append(s.Timeline, step)
	}
	s.Expect = Expect(raw.Expect)
	for _, m := range []map[string]float64{s.Expect.WindowKeptMin, s.Expect.WindowKeptMax} {
		for n := range m {
			if !names[n] || n == "ns1" || n == "ns2" {
				bad("expect", "window_kept_*: %q is not a node of this scenario", n)
			}
		}
	}
	for _, sec := range []struct {
		key  string
		node *yaml.Node
	}{{"pushd", &raw.Farm.Pushd}, {"dns", &raw.Farm.DNS}, {"mesh", &raw.Farm.Mesh}} {
		if sec.node.Kind == 0 {
			continue
		}
		if sec.node.Kind != yaml.MappingNode {
			bad("farm."+sec.key, "must be a mapping of %s settings", sec.key)
			continue
		}
		out, err := yaml.Marshal(map[string]*yaml.Node{sec.key: sec.node})
		if err != nil {
			bad("farm."+sec.key, "%v", err)
			continue
		}
		s.FarmExtra += string(out)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return s, nil
}

// TotalClients is the total number of clients that arrive.
func (s *Scenario) TotalClients() int {
	n := 0
	for _, st := range s.Timeline {
		n += st.Arrive
	}
	return n
}

// Victim is the target of the first fault that takes a pushd node away
// (kill, stop, link-down, term): the node whose detection and removal from
// DNS the report times. ok is false when no step does.
func (s *Scenario) Victim() (step Step, ok bool) {
	for _, st := range s.Timeline {
		switch st.Fault {
		case "kill", "stop", "link-down", "term":
			if st.Target != "ns1" && st.Target != "ns2" {
				return st, true
			}
		}
	}
	return Step{}, false
}
