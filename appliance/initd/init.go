package initd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/farmlb/farmlb/appliance"
	"golang.org/x/sys/unix"
)

// Options are what the init's main decides; Boot's zero Options are the
// appliance's.
type Options struct {
	// Pid1 makes Boot do what only PID 1 does: mount the kernel's file
	// systems, find the boot partition and power off at the end.
	Pid1 bool
	// ConfigPath is appliance.yaml. If empty, the init mounts the GPT
	// partition named PartName read-only at /config and reads
	// /config/farmlb/appliance.yaml. The kernel command line's
	// farmlb.config=PATH sets it too.
	ConfigPath string
	// PartName is the boot partition's GPT name. If empty, "farmlb".
	PartName string
	// BinDir holds pushd and dnsd. If empty, "/bin".
	BinDir string
	// Console receives the log. If nil, os.Stderr.
	Console io.Writer
	// WaitPart bounds the wait for the boot partition to appear. If zero,
	// 30s: USB and NVMe disks can take seconds to be probed.
	WaitPart time.Duration

	// stayUp is the part of Pid1 a test can have alone: after a config
	// error, wait for a signal rather than return the error.
	stayUp bool
}

// Outcome is how Boot ended: what the machine should do next.
type Outcome int

const (
	PowerOff Outcome = iota
	Reboot
)

// ConfigDir is where the boot partition is mounted.
const ConfigDir = "/config"

// Boot runs the appliance until a power button, SIGTERM/SIGPWR (power off)
// or SIGINT (ctrl-alt-del: reboot), or until ctx ends, and returns what
// the machine should do next. It stops every service before it returns.
//
// When appliance.yaml cannot be used, no service starts. As PID 1, Boot
// logs why and stays up until a signal, so that the console keeps saying
// what to fix (returning would power the box off or loop reboots), and
// the error is nil. As an ordinary process it returns the error at once,
// unlogged, for its caller to report.
func Boot(ctx context.Context, o Options) (Outcome, error) {
	if o.PartName == "" {
		o.PartName = "farmlb"
	}
	if o.BinDir == "" {
		o.BinDir = "/bin"
	}
	if o.Console == nil {
		o.Console = os.Stderr
	}
	if o.WaitPart == 0 {
		o.WaitPart = 30 * time.Second
	}
	o.stayUp = o.stayUp || o.Pid1
	ring := NewRing(appliance.DefaultConfig().LogRing)
	// The ring first: a line seen on the console is already in GET /logs.
	out := &lockedWriter{w: io.MultiWriter(ring, o.Console)}
	log := slog.New(slog.NewTextHandler(out, &slog.HandlerOptions{}))
	var errs bootErrors
	fail := func(msg string, err error) {
		log.Error(msg, "err", err)
		errs.add(fmt.Sprintf("%s: %v", msg, err))
	}

	if o.Pid1 {
		if err := mountKernelFS(); err != nil {
			fail("mount", err)
		}
		// ctrl-alt-del sends SIGINT to PID 1 rather than rebooting at once.
		_ = unix.Reboot(unix.LINUX_REBOOT_CMD_CAD_OFF)
		if p := cmdlineParam("farmlb.config"); p != "" && o.ConfigPath == "" {
			o.ConfigPath = p
		}
	}
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGPWR)
	defer signal.Stop(sigs)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	outcome := PowerOff
	var outcomeMu sync.Mutex
	end := func(o Outcome, why string) {
		outcomeMu.Lock()
		outcome = o
		outcomeMu.Unlock()
		log.Info("shutting down", "why", why)
		cancel()
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() {
		select {
		case <-ctx.Done():
		case s := <-sigs:
			if s == syscall.SIGINT {
				end(Reboot, "SIGINT (ctrl-alt-del)")
			} else {
				end(PowerOff, s.String())
			}
		}
	})

	if o.Pid1 {
		if devs, err := PowerButtons("/"); err != nil || len(devs) == 0 {
			log.Warn("no ACPI power button found; power off with SIGTERM or SIGPWR to PID 1", "err", err)
		} else {
			log.Info("watching the power button", "devices", devs)
			wg.Go(func() {
				if err := WatchPowerButtons(ctx, devs, func() { end(PowerOff, "power button") }); err != nil {
					fail("power button", err)
				}
			})
		}
	}

	// stuck ends a boot that could start no service.
	stuck := func(msg string, err error) (Outcome, error) {
		if !o.stayUp {
			cancel()             // before the deferred wg.Wait: the signal watcher waits for ctx
			return PowerOff, err // names what it is about: "appliance config: open …"
		}
		fail(msg, err)
		log.Error("no services started; fix appliance.yaml on the boot partition (see README) and reboot")
		<-ctx.Done()
		outcomeMu.Lock()
		defer outcomeMu.Unlock()
		return finish(o, outcome, log), nil
	}
	cfg, err := loadConfig(ctx, o, log)
	if err != nil {
		return stuck("config", err)
	}
	if cfg.LogRing != appliance.DefaultConfig().LogRing {
		bigger := NewRing(cfg.LogRing)
		_, _ = bigger.Write(ring.Bytes())
		ring = bigger
		out.set(io.MultiWriter(ring, o.Console))
	}
	if o.Pid1 {
		if err := unix.Sethostname([]byte(cfg.Hostname)); err != nil {
			fail("hostname", err)
		}
		if err := WriteResolvConf("/etc/resolv.conf", cfg.Network.Nameservers); err != nil {
			fail("resolv.conf", err)
		}
		ns, err := CurrentNetns()
		if err != nil {
			fail("network", err)
		} else {
			if err := ConfigureNetwork(ctx, ns, cfg.Network); err != nil {
				fail("network", err)
			}
			ns.Close()
		}
	}

	reaper := NewReaper()
	reaperCtx, stopReaper := context.WithCancel(context.Background())
	defer func() { stopReaper() }()
	wg.Go(func() { reaper.Run(reaperCtx) })

	var services []appliance.Service
	for _, svc := range cfg.Commands(o.BinDir) {
		if _, err := os.Stat(svc.Path); err != nil {
			fail("service "+svc.Name, fmt.Errorf("not in this image: %w", err))
			continue
		}
		services = append(services, svc)
	}
	sup, err := NewSupervisor(SupervisorConfig{
		Services:    services,
		Reaper:      reaper,
		Output:      out,
		Logger:      log,
		MinBackoff:  cfg.Restart.Min,
		MaxBackoff:  cfg.Restart.Max,
		Stable:      cfg.Restart.Stable,
		StopTimeout: cfg.Restart.Stop,
	})
	if err != nil {
		return stuck("supervisor", err)
	}
	if cfg.Status != "off" {
		st := NewStatus(StatusConfig{Addr: cfg.Status, Hostname: cfg.Hostname, Ring: ring, Supervisor: sup, Reaper: reaper, Errors: errs.list})
		if err := st.Listen(); err != nil {
			fail("status", err)
		} else {
			log.Info("status endpoint", "addr", st.Addr().String())
			wg.Go(func() {
				if err := st.Serve(ctx); err != nil {
					fail("status", err)
				}
			})
		}
	}
	log.Info("farmlb appliance up", "hostname", cfg.Hostname, "services", len(services))
	sup.Run(ctx) // until shutdown; stops every service before it returns
	stopReaper()
	outcomeMu.Lock()
	defer outcomeMu.Unlock()
	return finish(o, outcome, log), nil
}

// finish unmounts the boot partition and syncs, as PID 1 must before the
// power goes.
func finish(o Options, outcome Outcome, log *slog.Logger) Outcome {
	if o.Pid1 {
		unix.Sync()
		if err := unix.Unmount(ConfigDir, 0); err != nil && !errors.Is(err, unix.EINVAL) {
			log.Warn("unmount", "dir", ConfigDir, "err", err)
		}
	}
	log.Info("services stopped", "next", map[Outcome]string{PowerOff: "power off", Reboot: "reboot"}[outcome])
	return outcome
}

// loadConfig finds and reads appliance.yaml.
func loadConfig(ctx context.Context, o Options, log *slog.Logger) (*appliance.Config, error) {
	path := o.ConfigPath
	if path == "" {
		dev, err := findPartition(ctx, "/sys/class/block", o.PartName, o.WaitPart)
		if err != nil {
			return nil, err
		}
		if err := os.MkdirAll(ConfigDir, 0o755); err != nil {
			return nil, err
		}
		// Read-only: pulling the power never leaves the FAT dirty.
		if err := unix.Mount("/dev/"+dev, ConfigDir, "vfat", unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "fmask=0077,dmask=0077"); err != nil {
			return nil, fmt.Errorf("mount /dev/%s on %s: %w", dev, ConfigDir, err)
		}
		log.Info("boot partition mounted", "device", "/dev/"+dev, "dir", ConfigDir)
		path = filepath.Join(ConfigDir, "farmlb", "appliance.yaml")
	}
	cfg, err := appliance.Load(path)
	if err != nil {
		return nil, err
	}
	log.Info("config loaded", "path", path, "farm", cfg.FarmPath())
	return cfg, nil
}

// findPartition waits for a block device whose GPT partition name is name
// and returns its kernel name (such as "vda1"). The kernel announces block
// devices over a uevent socket; reading sysfs every 100 ms until wait runs
// out is simpler and costs nothing measurable at boot.
func findPartition(ctx context.Context, sysBlock, name string, wait time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		if dev := partitionNamed(sysBlock, name); dev != "" {
			return dev, nil
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("no partition named %q appeared within %v", name, wait)
		case <-tick.C:
		}
	}
}

// partitionNamed scans sysBlock/*/uevent for PARTNAME=name.
func partitionNamed(sysBlock, name string) string {
	ents, _ := os.ReadDir(sysBlock)
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(sysBlock, e.Name(), "uevent"))
		if err != nil {
			continue
		}
		var dev, part string
		for line := range strings.Lines(string(b)) {
			k, v, _ := strings.Cut(strings.TrimSpace(line), "=")
			switch k {
			case "DEVNAME":
				dev = v
			case "PARTNAME":
				part = v
			}
		}
		if part == name && dev != "" {
			return dev
		}
	}
	return ""
}

// mountKernelFS mounts what a Linux userland expects.
func mountKernelFS() error {
	var errs []error
	for _, m := range []struct {
		src, dir, fstype string
		flags            uintptr
		data             string
	}{
		{"proc", "/proc", "proc", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, ""},
		{"sysfs", "/sys", "sysfs", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, ""},
		{"devtmpfs", "/dev", "devtmpfs", unix.MS_NOSUID, "mode=0755"},
		{"devpts", "/dev/pts", "devpts", unix.MS_NOSUID | unix.MS_NOEXEC, "gid=5,mode=620,ptmxmode=000"},
		{"tmpfs", "/run", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=0755,size=16m"},
		{"tmpfs", "/tmp", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=1777,size=64m"},
	} {
		if err := os.MkdirAll(m.dir, 0o755); err != nil {
			errs = append(errs, err)
			continue
		}
		if err := unix.Mount(m.src, m.dir, m.fstype, m.flags, m.data); err != nil && !errors.Is(err, unix.EBUSY) {
			errs = append(errs, fmt.Errorf("%s on %s: %w", m.fstype, m.dir, err))
		}
	}
	return errors.Join(errs...)
}

// cmdlineParam returns the value of key=value on the kernel command line.
func cmdlineParam(key string) string {
	b, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		return ""
	}
	return paramIn(string(b), key)
}

func paramIn(cmdline, key string) string {
	for _, f := range strings.Fields(cmdline) {
		if k, v, ok := strings.Cut(f, "="); ok && k == key {
			return v
		}
	}
	return ""
}

// lockedWriter makes each Write whole, so log lines and service lines do
// not interleave on the console, and lets the target change (a bigger
// ring once the config is read).
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func (l *lockedWriter) set(w io.Writer) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.w = w
}

// bootErrors collects what went wrong at boot, for GET /status.
type bootErrors struct {
	mu   sync.Mutex
	errs []string
}

func (b *bootErrors) add(s string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.errs = append(b.errs, s)
}

func (b *bootErrors) list() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.errs)
}
