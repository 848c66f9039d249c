package config

import "time"

// Pushd is pushd's section of the farm file ("pushd:"). Every field's zero
// value means pushd's default (pushd.DefaultConfig, where each default's
// reason is written).
type Pushd struct {
	// HistorySize is how many messages each topic keeps for resuming
	// clients (default 1000).
	HistorySize int `yaml:"history_size"`
	// HistoryAge is how long a message stays in history (default 10m).
	HistoryAge time.Duration `yaml:"history_age"`
	// KeepAlive is the interval of keep-alive comments (default 15s).
	KeepAlive time.Duration `yaml:"keepalive"`
	// MaxPayload bounds a published message in bytes (default 65536).
	MaxPayload int `yaml:"max_payload"`
	// MaxTopics bounds the topics of one stream (default 64).
	MaxTopics int `yaml:"max_topics"`
	// DrainWindow spreads a drain's move events (default 30s).
	DrainWindow time.Duration `yaml:"drain_window"`
	// MoveGrace is how long a moved stream stays open (default 5s).
	MoveGrace time.Duration `yaml:"move_grace"`
	// PublishTimeout bounds the wait for a second node (default 5s).
	PublishTimeout time.Duration `yaml:"publish_timeout"`
	// ReplicaWait bounds the wait, after a second node holds a publish, for
	// every other UP node (default 500ms).
	ReplicaWait time.Duration `yaml:"replica_wait"`
	// WriteTimeout drops a client that takes nothing this long (default 10s).
	WriteTimeout time.Duration `yaml:"write_timeout"`
	// Overload is the overload detection (config/health.go).
	Overload Overload `yaml:"overload"`
}

// validate checks the section; path is its key ("pushd").
func (p *Pushd) validate(f *Farm, path string) error {
	ints := []struct {
		key       string
		v, lo, hi int
	}{
		{"history_size", p.HistorySize, 0, 10_000_000},
		{"max_payload", p.MaxPayload, 0, 1 << 20},
		{"max_topics", p.MaxTopics, 0, 256},
	}
	for _, c := range ints {
		if c.v < c.lo || c.v > c.hi {
			return keyErr(path+"."+c.key, 0, "%d out of range %d..%d", c.v, c.lo, c.hi)
		}
	}
	durs := []struct {
		key string
		v   time.Duration
	}{
		{"history_age", p.HistoryAge}, {"keepalive", p.KeepAlive}, {"drain_window", p.DrainWindow},
		{"move_grace", p.MoveGrace}, {"publish_timeout", p.PublishTimeout}, {"write_timeout", p.WriteTimeout},
		{"replica_wait", p.ReplicaWait},
	}
	for _, d := range durs {
		if d.v < 0 {
			return keyErr(path+"."+d.key, 0, "%v is negative", d.v)
		}
	}
	return p.Overload.validate(path + ".overload")
}
