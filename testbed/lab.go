// Package testbed is a network-namespace lab: it builds a small network of
// separate hosts on one Linux machine (one bridge, one network namespace per
// host, a veth pair joining each host to the bridge, addresses in
// 198.18.0.0/15), runs the real farmlb binaries inside those hosts as
// subprocesses, breaks things on a timeline and measures what the clients
// felt.
//
// Every kernel object the lab creates is named with a fixed prefix (see
// DefaultPrefix and ValidatePrefix), so Down can remove leftovers after a
// crash by name and kind alone.
package testbed

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// DefaultPrefix starts the name of every namespace and link the lab makes.
const DefaultPrefix = "flb-"

// A prefix is lower-case letters and digits, then "-", and at most 12 bytes,
// so a one-letter host's veth end (prefix, name, "-p") fits an interface
// name. Its only "-" is its last byte, so no prefix starts another lab's
// names, and Down with one cannot take eth0 or a link named like wk2x0.
var prefixRE = regexp.MustCompile(`^[a-z0-9]{1,11}-$`)

// ValidatePrefix reports whether prefix can name a lab's objects (see
// LabConfig.Prefix). Whether a given lab's host names fit with it is
// LabConfig.Validate's to say.
func ValidatePrefix(prefix string) error {
	if !prefixRE.MatchString(prefix) {
		return fmt.Errorf("prefix %q is not a lab prefix: lower-case letters and digits, then \"-\", at most %d bytes (e.g. %s)", prefix, maxIfName-len("x-p"), DefaultPrefix)
	}
	return nil
}

// ErrNotRoot is returned when the lab is asked to change the network without
// the privileges to do so.
var ErrNotRoot = errors.New("testbed needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN) to create network namespaces, bridges and veth pairs; run it as root, e.g. with sudo")

// RequireRoot returns ErrNotRoot unless the process runs as root.
func RequireRoot() error {
	if os.Geteuid() != 0 {
		return ErrNotRoot
	}
	return nil
}

// LabNet is the network every lab uses: 198.18.0.0/15, set aside for
// benchmarking (RFC 2544), so no lab address can be anything real.
var LabNet = netip.MustParsePrefix("198.18.0.0/15")

// HostConfig names one host of the lab and gives its address.
type HostConfig struct {
	// Name is the host's name; the namespace is Prefix+Name and the
	// bridge-side veth is Prefix+Name too, so it must be short enough for an
	// interface name (15 bytes with the prefix and a "-p" suffix).
	Name string
	// Addr is the host's address inside LabNet.
	Addr netip.Addr
}

// LabConfig describes a lab.
type LabConfig struct {
	// Prefix starts every namespace and link name: lower-case letters and
	// digits, then "-" (see ValidatePrefix). If empty, DefaultPrefix.
	Prefix string
	// Hosts are the hosts to create, each in its own namespace.
	Hosts []HostConfig
	// LogDir receives one log file per host (<host>.log). If empty, a new
	// temporary folder.
	LogDir string
	// Logger receives the lab's own progress. If nil, slog.Default().
	Logger *slog.Logger
}

// Lab is a running set of hosts. Close removes everything it made.
type Lab struct {
	cfg    LabConfig
	log    *slog.Logger
	bridge string
	hosts  map[string]*Host
	order  []*Host
	// undo removes, last first, each object build made. Only those: a
	// failed Up must not remove a running lab's bridge, or a namespace
	// someone else made, just because it wanted the same name.
	undo []func() error

	mu    sync.Mutex
	procs []*Proc
}

// maxIfName is the kernel's IFNAMSIZ less the trailing NUL.
const maxIfName = 15

// Validate reports whether the lab could be built as configured: a valid
// prefix (DefaultPrefix if empty), and hosts whose names fit interface names
// with it and whose names and addresses do not clash. It makes nothing and
// needs no privileges, so a command line can check every lab it will build
// before it builds the first.
func (c LabConfig) Validate() error {
	prefix := cmp.Or(c.Prefix, DefaultPrefix)
	if err := ValidatePrefix(prefix); err != nil {
		return err
	}
	if len(c.Hosts) == 0 {
		return errors.New("a lab needs at least one host")
	}
	seenName := map[string]bool{}
	seenAddr := map[netip.Addr]bool{}
	for i, h := range c.Hosts {
		switch {
		case h.Name == "" || strings.ContainsAny(h.Name, "/ \t\n"):
			return fmt.Errorf("hosts[%d].name: %q is not a usable host name", i, h.Name)
		case len(prefix)+len(h.Name)+len("-p") > maxIfName:
			return fmt.Errorf("hosts[%d].name: %q is too long (the prefix, the name and \"-p\" must fit in %d bytes)", i, h.Name, maxIfName)
		case h.Name == "br":
			return fmt.Errorf("hosts[%d].name: %q is taken by the bridge", i, h.Name)
		case seenName[h.Name]:
			return fmt.Errorf("hosts[%d].name: %q is used twice", i, h.Name)
		case !LabNet.Contains(h.Addr):
			return fmt.Errorf("hosts[%d].addr: %v is outside %v", i, h.Addr, LabNet)
		case seenAddr[h.Addr]:
			return fmt.Errorf("hosts[%d].addr: %v is used twice", i, h.Addr)
		}
		seenName[h.Name] = true
		seenAddr[h.Addr] = true
	}
	return nil
}

// Up builds the lab: the bridge, then for every host a namespace, a veth pair
// with one end on the bridge and the other, renamed eth0, in the namespace
// with the host's address, and lo up. If anything fails, what was made so far
// is removed before Up returns.
func Up(cfg LabConfig) (*Lab, error) {
	if err := RequireRoot(); err != nil {
		return nil, err
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.Prefix = cmp.Or(cfg.Prefix, DefaultPrefix)
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.LogDir == "" {
		dir, err := os.MkdirTemp("", "farmlb-testbed-")
		if err != nil {
			return nil, err
		}
		cfg.LogDir = dir
	}
	if err := os.MkdirAll(cfg.LogDir, 0o755); err != nil {
		return nil, err
	}
	l := &Lab{cfg: cfg, log: cfg.Logger, bridge: cfg.Prefix + "br", hosts: map[string]*Host{}}
	if err := l.build(); err != nil {
		_ = l.Close()
		if errors.Is(err, os.ErrExist) {
			err = fmt.Errorf("%w (a lab with this prefix is running, or a previous one was left over: if none is running, run `%s`)", err, downCommand(cfg.Prefix))
		}
		return nil, err
	}
	return l, nil
}

// downCommand is the command line that removes a lab with the prefix.
func downCommand(prefix string) string {
	if prefix == DefaultPrefix {
		return "testbed down"
	}
	return "testbed down --prefix " + prefix
}

func (l *Lab) build() error {
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: l.bridge}}
	if err := netlink.LinkAdd(br); err != nil {
		return fmt.Errorf("add bridge %s: %w", l.bridge, err)
	}
	l.undo = append(l.undo, func() error { return deleteLink(l.bridge) })
	if err := netlink.LinkSetUp(br); err != nil {
		return fmt.Errorf("bridge %s up: %w", l.bridge, err)
	}
	for _, hc := range l.cfg.Hosts {
		h := &Host{Name: hc.Name, Addr: hc.Addr, NS: l.cfg.Prefix + hc.Name, Veth: l.cfg.Prefix + hc.Name, lab: l}
		if err := l.buildHost(h); err != nil {
			return fmt.Errorf("host %s: %w", h.Name, err)
		}
		l.hosts[h.Name] = h
		l.order = append(l.order, h)
	}
	l.log.Info("lab up", "hosts", len(l.order), "bridge", l.bridge, "logs", l.cfg.LogDir)
	return nil
}

// newNamedNS creates a named namespace. netns.NewNamed switches the calling
// thread into the new namespace, so the thread is locked and switched back;
// if switching back fails the thread stays locked and dies with its
// goroutine rather than serve others in the wrong namespace.
func newNamedNS(name string) (err error) {
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return err
	}
	defer orig.Close()
	ns, nerr := netns.NewNamed(name)
	if serr := netns.Set(orig); serr != nil {
		if nerr == nil {
			ns.Close()
		}
		return fmt.Errorf("return to the original namespace: %w", serr)
	}
	runtime.UnlockOSThread()
	if nerr != nil {
		return fmt.Errorf("create namespace %s: %w", name, nerr)
	}
	return ns.Close()
}

func (l *Lab) buildHost(h *Host) error {
	if err := newNamedNS(h.NS); err != nil {
		return err
	}
	l.undo = append(l.undo, func() error { return deleteNamespace(h.NS) })
	peer := h.Veth + "-p"
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: h.Veth}, PeerName: peer}
	if err := netlink.LinkAdd(veth); err != nil {
		return fmt.Errorf("add veth %s: %w", h.Veth, err)
	}
	l.undo = append(l.undo, func() error { return deleteLink(h.Veth) })
	br, err := netlink.LinkByName(l.bridge)
	if err != nil {
		return err
	}
	hostEnd, err := netlink.LinkByName(h.Veth)
	if err != nil {
		return err
	}
	if err := netlink.LinkSetMaster(hostEnd, br); err != nil {
		return fmt.Errorf("attach %s to %s: %w", h.Veth, l.bridge, err)
	}
	if err := netlink.LinkSetUp(hostEnd); err != nil {
		return err
	}
	peerEnd, err := netlink.LinkByName(peer)
	if err != nil {
		return err
	}
	ns, err := netns.GetFromName(h.NS)
	if err != nil {
		return err
	}
	defer ns.Close()
	if err := netlink.LinkSetNsFd(peerEnd, int(ns)); err != nil {
		return fmt.Errorf("move %s into %s: %w", peer, h.NS, err)
	}
	return h.withHandle(func(nh *netlink.Handle) error {
		lo, err := nh.LinkByName("lo")
		if err != nil {
			return err
		}
		if err := nh.LinkSetUp(lo); err != nil {
			return err
		}
		in, err := nh.LinkByName(peer)
		if err != nil {
			return err
		}
		if err := nh.LinkSetName(in, "eth0"); err != nil {
			return err
		}
		addr := &netlink.Addr{IPNet: prefixNet(netip.PrefixFrom(h.Addr, LabNet.Bits()))}
		if err := nh.AddrAdd(in, addr); err != nil {
			return fmt.Errorf("address %v: %w", h.Addr, err)
		}
		return nh.LinkSetUp(in)
	})
}

// Host returns the named host.
func (l *Lab) Host(name string) (*Host, bool) {
	h, ok := l.hosts[name]
	return h, ok
}

// Hosts returns the hosts in the order they were configured.
func (l *Lab) Hosts() []*Host { return append([]*Host(nil), l.order...) }

// LogDir is the folder holding one log file per host.
func (l *Lab) LogDir() string { return l.cfg.LogDir }

// Prefix is the name prefix of everything this lab made.
func (l *Lab) Prefix() string { return l.cfg.Prefix }

// Close stops every process the lab started (SIGKILL, then waits for it),
// and removes the namespaces, veth pairs and bridge it made. It reports
// every error but carries on, so one failure does not leave the rest behind.
func (l *Lab) Close() error {
	l.mu.Lock()
	procs := l.procs
	l.procs = nil
	l.mu.Unlock()
	var errs []error
	for _, p := range procs {
		p.kill()
	}
	for _, p := range procs {
		<-p.done
	}
	for i := len(l.undo) - 1; i >= 0; i-- {
		if err := l.undo[i](); err != nil {
			errs = append(errs, err)
		}
	}
	l.undo = nil
	l.log.Info("lab down", "hosts", len(l.order))
	return errors.Join(errs...)
}

// deleteNamespace removes a named namespace; one already gone is no error.
func deleteNamespace(name string) error {
	if err := netns.DeleteNamed(name); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("delete namespace %s: %w", name, err)
	}
	return nil
}

// deleteLink removes a link; one already gone is no error.
func deleteLink(name string) error {
	link, err := netlink.LinkByName(name)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return nil
		}
		return fmt.Errorf("find link %s: %w", name, err)
	}
	if err := netlink.LinkDel(link); err != nil && !errors.Is(err, syscall.ENODEV) { // ENODEV: gone meanwhile
		return fmt.Errorf("delete link %s: %w", name, err)
	}
	return nil
}

// linkList lists the host's links. A dump the kernel interrupted because a
// link came or went meanwhile (another lab, a namespace's veth going with
// it) may be incomplete: it is taken again, a few times.
func linkList() ([]netlink.Link, error) {
	for try := 0; ; try++ {
		all, err := netlink.LinkList()
		if !errors.Is(err, netlink.ErrDumpInterrupted) || try == 4 {
			return all, err
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Leftovers lists the namespaces, and the links of the kinds a lab makes
// (bridge, veth), whose names start with prefix.
func Leftovers(prefix string) (namespaces, links []string, err error) {
	if err := ValidatePrefix(prefix); err != nil {
		return nil, nil, err
	}
	entries, err := os.ReadDir(netnsDir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, nil, err
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), prefix) {
			namespaces = append(namespaces, e.Name())
		}
	}
	all, err := linkList()
	if err != nil {
		return nil, nil, err
	}
	for _, link := range all {
		if kind := link.Type(); (kind == "bridge" || kind == "veth") && strings.HasPrefix(link.Attrs().Name, prefix) {
			links = append(links, link.Attrs().Name)
		}
	}
	return namespaces, links, nil
}

// netnsDir is where named namespaces are bind-mounted (as `ip netns` does).
const netnsDir = "/var/run/netns"

// Removed says what Down removed.
type Removed struct {
	Processes  []int
	Namespaces []string
	Links      []string
}

// Down removes every namespace, bridge and veth whose name starts with prefix
// (a valid one: see ValidatePrefix), and first kills (SIGKILL) every process still living in one of those
// namespaces — what a crashed `testbed run` leaves behind.
func Down(prefix string) (Removed, error) {
	var r Removed
	if err := RequireRoot(); err != nil {
		return r, err
	}
	if err := ValidatePrefix(prefix); err != nil {
		return r, err
	}
	namespaces, before, err := Leftovers(prefix)
	if err != nil {
		return r, err
	}
	var errs []error
	for _, name := range namespaces {
		pids, err := pidsInNamespace(filepath.Join(netnsDir, name))
		if err != nil {
			errs = append(errs, err)
		}
		for _, pid := range pids {
			if p, err := os.FindProcess(pid); err == nil && p.Kill() == nil {
				r.Processes = append(r.Processes, pid)
			}
		}
		if err := netns.DeleteNamed(name); err != nil {
			errs = append(errs, fmt.Errorf("delete namespace %s: %w", name, err))
			continue
		}
		r.Namespaces = append(r.Namespaces, name)
	}
	// Removing a namespace removes the veth ends in it, and their peers
	// here — once its last process has exited and the kernel got to it,
	// which may be before or after this line: so every link is deleted if
	// still there, and each one there at the start is reported removed.
	_, links, err := Leftovers(prefix)
	if err != nil {
		return r, err
	}
	for _, name := range links {
		if !slices.Contains(before, name) {
			before = append(before, name)
		}
	}
	for _, name := range before {
		if err := deleteLink(name); err != nil {
			errs = append(errs, err)
			continue
		}
		r.Links = append(r.Links, name)
	}
	return r, errors.Join(errs...)
}
