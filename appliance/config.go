// Package appliance describes a farmlb appliance: the one file,
// appliance.yaml, that decides what a booted box is (a pushd node, a dnsd
// nameserver, or both), its network, and how its services are supervised.
//
// The file lives on the image's FAT boot partition beside the farm config
// (farm.yaml) and the farm's certificates, so that an operator can change it
// with mtools or by mounting the partition. The image's /init (package
// appliance/initd) reads it at boot; the image builder (appliance/image)
// checks it before it writes an image.
package appliance

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Config is appliance.yaml. Every zero field means its default, given on
// the field; DefaultConfig returns them filled in.
type Config struct {
	// Hostname is the box's host name. If empty, defaults to "farmlb".
	Hostname string `yaml:"hostname"`

	// Farm is the farm config file (farm.yaml) that the services read,
	// relative to appliance.yaml's folder. If empty, defaults to "farm.yaml".
	Farm string `yaml:"farm"`

	// Network configures the interfaces. Loopback is always brought up.
	Network Network `yaml:"network"`

	// Services says which daemons this box runs. At least one is required:
	// a box that runs nothing is a configuration mistake.
	Services Services `yaml:"services"`

	// Status is the address of the init's own HTTP endpoint (GET /status,
	// GET /logs). If empty, defaults to ":9100"; "off" disables it.
	Status string `yaml:"status"`

	// LogRing is how many bytes of console log the init keeps for
	// GET /logs and /run/farmlb/log. If zero, defaults to 1 MiB: hours of a
	// quiet daemon's log, and small beside the box's memory.
	LogRing int `yaml:"log_ring"`

	// Restart tunes how a service that exits is started again.
	Restart Restart `yaml:"restart"`

	// dir is the folder of the file the config was loaded from; relative
	// paths are resolved against it.
	dir string
}

// Network is the network part of appliance.yaml.
type Network struct {
	// Interfaces are configured in order. An interface that does not
	// appear within WaitLink is an error, logged by the init, which goes on
	// with the others.
	Interfaces []Interface `yaml:"interfaces"`

	// Nameservers are written to /etc/resolv.conf. Optional: farmlb's
	// daemons resolve nothing by name unless their farm config names hosts.
	Nameservers []string `yaml:"nameservers"`

	// WaitLink is how long the init waits for each interface to appear
	// (drivers probe asynchronously). If zero, defaults to 10s: a slow
	// PCI probe under emulation takes a few seconds.
	WaitLink time.Duration `yaml:"wait_link"`
}

// Interface is one network interface with static addresses.
type Interface struct {
	// Name is the kernel's name for it, such as "eth0". Required.
	Name string `yaml:"name"`
	// Addresses are CIDR prefixes such as "198.18.0.15/24"; IPv4 or IPv6.
	Addresses []string `yaml:"addresses"`
	// Gateway is the default route's next hop, optional; one per family.
	Gateway []string `yaml:"gateway"`
	// MTU, if not zero, is set on the link.
	MTU int `yaml:"mtu"`
}

// Services lists the daemons of the box; nil means "not on this box".
type Services struct {
	Pushd *Pushd `yaml:"pushd"`
	Dnsd  *Dnsd  `yaml:"dnsd"`
}

// Pushd runs `pushd --config FARM --node NODE`.
type Pushd struct {
	// Node is this box's node name in farm.yaml. Required.
	Node string `yaml:"node"`
	// Args are extra command-line arguments, appended as they are.
	Args []string `yaml:"args"`
	// Env are extra environment variables, NAME=value.
	Env []string `yaml:"env"`
}

// Dnsd runs `dnsd --config FARM --name NAME`.
type Dnsd struct {
	// Name is this box's observer name in farm.yaml. Required.
	Name string `yaml:"name"`
	// Args are extra command-line arguments, appended as they are.
	Args []string `yaml:"args"`
	// Env are extra environment variables, NAME=value.
	Env []string `yaml:"env"`
}

// Restart tunes the supervisor's backoff.
type Restart struct {
	// Min is the wait before the first restart. If zero, defaults to 1s:
	// quick enough that a crash costs little, slow enough that a daemon
	// that dies at once does not spin.
	Min time.Duration `yaml:"min"`
	// Max caps the doubling wait. If zero, defaults to 30s, so that a
	// daemon waiting for something (a peer, a disk) is retried twice a
	// minute.
	Max time.Duration `yaml:"max"`
	// Stable is how long a run must last for the backoff to start again
	// from Min. If zero, defaults to 60s.
	Stable time.Duration `yaml:"stable"`
	// Stop is how long a service gets between SIGTERM and SIGKILL at
	// power-off. If zero, defaults to 10s: pushd's drain needs a moment.
	Stop time.Duration `yaml:"stop"`
}

// DefaultConfig returns the defaults that zero fields stand for. Services
// has none: a box must say what it runs.
func DefaultConfig() Config {
	return Config{
		Hostname: "farmlb",
		Farm:     "farm.yaml",
		Network:  Network{WaitLink: 10 * time.Second},
		Status:   ":9100",
		LogRing:  1 << 20,
		Restart: Restart{
			Min:    time.Second,
			Max:    30 * time.Second,
			Stable: 60 * time.Second,
			Stop:   10 * time.Second,
		},
	}
}

// MaxConfigSize bounds appliance.yaml; a larger file is a mistake.
const MaxConfigSize = 1 << 20

// Load reads and checks appliance.yaml; relative paths in it are resolved
// against the file's folder.
func Load(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("appliance config: %w", err)
	}
	c, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	c.dir = filepath.Dir(path)
	return c, nil
}

// Parse reads appliance.yaml from b. Unknown keys and bad values are
// errors that name the key. Defaults are filled in.
func Parse(b []byte) (*Config, error) {
	if len(b) > MaxConfigSize {
		return nil, fmt.Errorf("appliance config is %d bytes, more than %d", len(b), MaxConfigSize)
	}
	var c Config
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("appliance config is empty")
		}
		return nil, fmt.Errorf("appliance config: %w", err)
	}
	if err := c.fill(); err != nil {
		return nil, err
	}
	return &c, nil
}

// Dir is the folder relative paths are resolved against ("." for a
// config that was parsed, not loaded).
func (c *Config) Dir() string {
	if c.dir == "" {
		return "."
	}
	return c.dir
}

// FarmPath is the farm config's path, resolved against Dir.
func (c *Config) FarmPath() string {
	if filepath.IsAbs(c.Farm) {
		return c.Farm
	}
	return filepath.Join(c.Dir(), c.Farm)
}

// label is a DNS label, which is what farm.yaml's names are.
var label = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$`)

// ifname is what the kernel accepts as an interface name.
var ifname = regexp.MustCompile(`^[A-Za-z0-9_.:-]{1,15}$`)

// fill checks every field and replaces zeros with defaults.
func (c *Config) fill() error {
	d := DefaultConfig()
	if c.Hostname == "" {
		c.Hostname = d.Hostname
	}
	if !label.MatchString(c.Hostname) {
		return fmt.Errorf("hostname: %q is not a DNS label", c.Hostname)
	}
	if c.Farm == "" {
		c.Farm = d.Farm
	}
	if c.Status == "" {
		c.Status = d.Status
	}
	if c.Status != "off" {
		if _, _, err := net.SplitHostPort(c.Status); err != nil {
			return fmt.Errorf("status: %q: %w", c.Status, err)
		}
	}
	if c.LogRing == 0 {
		c.LogRing = d.LogRing
	}
	if c.LogRing < 4096 || c.LogRing > 64<<20 {
		return fmt.Errorf("log_ring: %d is outside 4096..%d bytes", c.LogRing, 64<<20)
	}
	if err := c.Network.fill(d.Network); err != nil {
		return err
	}
	if err := c.Restart.fill(d.Restart); err != nil {
		return err
	}
	return c.Services.check()
}

func (n *Network) fill(d Network) error {
	if n.WaitLink == 0 {
		n.WaitLink = d.WaitLink
	}
	if n.WaitLink < 0 {
		return fmt.Errorf("network.wait_link: %v is negative", n.WaitLink)
	}
	seen := map[string]bool{}
	for i, itf := range n.Interfaces {
		key := fmt.Sprintf("network.interfaces[%d]", i)
		if !ifname.MatchString(itf.Name) {
			return fmt.Errorf("%s.name: %q is not an interface name", key, itf.Name)
		}
		if itf.Name == "lo" {
			return fmt.Errorf("%s.name: lo is always up with 127.0.0.1/8 and ::1", key)
		}
		if seen[itf.Name] {
			return fmt.Errorf("%s.name: %q appears twice", key, itf.Name)
		}
		seen[itf.Name] = true
		for j, a := range itf.Addresses {
			if _, err := netip.ParsePrefix(a); err != nil {
				return fmt.Errorf("%s.addresses[%d]: %q is not an address/prefix such as 198.18.0.15/24", key, j, a)
			}
		}
		families := map[bool]bool{}
		for j, g := range itf.Gateway {
			ip, err := netip.ParseAddr(g)
			if err != nil {
				return fmt.Errorf("%s.gateway[%d]: %q is not an IP address", key, j, g)
			}
			if families[ip.Is4()] {
				return fmt.Errorf("%s.gateway[%d]: a second gateway of the same family", key, j)
			}
			families[ip.Is4()] = true
		}
		if itf.MTU != 0 && (itf.MTU < 576 || itf.MTU > 65535) {
			return fmt.Errorf("%s.mtu: %d is outside 576..65535", key, itf.MTU)
		}
	}
	for i, s := range n.Nameservers {
		if _, err := netip.ParseAddr(s); err != nil {
			return fmt.Errorf("network.nameservers[%d]: %q is not an IP address", i, s)
		}
	}
	return nil
}

func (r *Restart) fill(d Restart) error {
	for _, f := range []struct {
		key string
		v   *time.Duration
		def time.Duration
	}{
		{"restart.min", &r.Min, d.Min},
		{"restart.max", &r.Max, d.Max},
		{"restart.stable", &r.Stable, d.Stable},
		{"restart.stop", &r.Stop, d.Stop},
	} {
		if *f.v == 0 {
			*f.v = f.def
		}
		if *f.v < 0 {
			return fmt.Errorf("%s: %v is negative", f.key, *f.v)
		}
	}
	if r.Max < r.Min {
		return fmt.Errorf("restart.max: %v is less than restart.min %v", r.Max, r.Min)
	}
	return nil
}

func (s *Services) check() error {
	if s.Pushd == nil && s.Dnsd == nil {
		return errors.New("services: none configured; set services.pushd.node and/or services.dnsd.name")
	}
	if s.Pushd != nil {
		if !label.MatchString(s.Pushd.Node) {
			return fmt.Errorf("services.pushd.node: %q is not a node name (a DNS label)", s.Pushd.Node)
		}
		if err := checkEnv("services.pushd.env", s.Pushd.Env); err != nil {
			return err
		}
	}
	if s.Dnsd != nil {
		if !label.MatchString(s.Dnsd.Name) {
			return fmt.Errorf("services.dnsd.name: %q is not an observer name (a DNS label)", s.Dnsd.Name)
		}
		if err := checkEnv("services.dnsd.env", s.Dnsd.Env); err != nil {
			return err
		}
	}
	return nil
}

func checkEnv(key string, env []string) error {
	for i, e := range env {
		name, _, ok := strings.Cut(e, "=")
		if !ok || name == "" {
			return fmt.Errorf("%s[%d]: %q is not NAME=value", key, i, e)
		}
	}
	return nil
}

// Service is one daemon the init runs: a path and its arguments.
type Service struct {
	Name string
	Path string
	Args []string
	Env  []string
}

// Commands turns Services into the command lines the init runs, with the
// binaries taken from binDir (in the image, /bin).
func (c *Config) Commands(binDir string) []Service {
	var out []Service
	if p := c.Services.Pushd; p != nil {
		out = append(out, Service{
			Name: "pushd",
			Path: filepath.Join(binDir, "pushd"),
			Args: append([]string{"--config", c.FarmPath(), "--node", p.Node}, p.Args...),
			Env:  p.Env,
		})
	}
	if d := c.Services.Dnsd; d != nil {
		out = append(out, Service{
			Name: "dnsd",
			Path: filepath.Join(binDir, "dnsd"),
			Args: append([]string{"--config", c.FarmPath(), "--name", d.Name}, d.Args...),
			Env:  d.Env,
		})
	}
	return out
}
