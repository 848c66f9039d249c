package image

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// DiskConfig says what goes on the disk image.
type DiskConfig struct {
	// Out is the image file to write (replaced if it exists).
	Out string
	// Kernel is the bzImage (EFI stub included) and Initrd the initramfs.
	Kernel, Initrd string
	// ConfigDir's files (appliance.yaml, farm.yaml, certificates) are
	// copied into /farmlb/ on the FAT partition, where the init reads them.
	ConfigDir string
	// Cmdline is the kernel command line. If empty, DefaultCmdline.
	Cmdline string
	// PartMiB is the FAT partition's size, MinPartMiB to MaxPartMiB. If
	// zero, 128 MiB: room for a kernel, an initramfs of the daemons, and a
	// spare of each for an update by hand.
	PartMiB int
	// Epoch is every time stamp on the partition (SOURCE_DATE_EPOCH).
	Epoch int64
	// Progress receives one line per step. If nil, nothing is printed.
	Progress io.Writer

	// Where Debian's packages put the boot loaders; zero means these
	// defaults (packages syslinux, syslinux-common, systemd-boot-efi).
	GPTMBR       string // /usr/lib/syslinux/mbr/gptmbr.bin
	SystemdBoot  string // /usr/lib/systemd/boot/efi/systemd-bootx64.efi
	SyslinuxTool string // syslinux (the mtools installer)
}

// The FAT32 partition's size bounds. FAT32 needs at least 65525 clusters,
// which with mformat's 512-byte clusters and the FATs come to just over
// 32 MiB; its sector count is 32 bits (mformat -T refuses 2^32), so at
// most 2^32-1 sectors of 512 bytes, 2 TiB less 1 MiB in whole MiB.
const (
	MinPartMiB = 33
	MaxPartMiB = 1<<21 - 1
)

// PartName is the boot partition's GPT name, which the init looks for.
const PartName = "farmlb"

// DefaultCmdline sends the console to the screen and the first serial
// port (the last console= is /dev/console, where the init logs), and
// reboots 10 s after a kernel panic so a box is never stuck.
const DefaultCmdline = "console=tty0 console=ttyS0,115200 panic=10"

// Fixed identifiers, so that the same inputs give the same image.
const (
	diskGUID   = "6661726D-6C62-4000-8000-000000000001"
	partGUID   = "6661726D-6C62-4000-8000-000000000002"
	espType    = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
	volSerial  = "FA51B000"
	startLBA   = 2048 // 1 MiB, the usual alignment
	sectorSize = 512
)

func (c *DiskConfig) fill() {
	if c.Cmdline == "" {
		c.Cmdline = DefaultCmdline
	}
	if c.PartMiB == 0 {
		c.PartMiB = 128
	}
	if c.Progress == nil {
		c.Progress = io.Discard
	}
	if c.GPTMBR == "" {
		c.GPTMBR = "/usr/lib/syslinux/mbr/gptmbr.bin"
	}
	if c.SystemdBoot == "" {
		c.SystemdBoot = "/usr/lib/systemd/boot/efi/systemd-bootx64.efi"
	}
	if c.SyslinuxTool == "" {
		c.SyslinuxTool = "syslinux"
	}
}

// BuildDisk writes a GPT disk image with one FAT32 partition (an EFI
// system partition, also marked legacy-BIOS-bootable) holding:
//
//	/EFI/BOOT/BOOTX64.EFI            systemd-boot (UEFI)
//	/loader/loader.conf, entries/    its menu: one entry, no timeout
//	/syslinux/ldlinux.sys, .c32, syslinux.cfg   (BIOS, via gptmbr.bin)
//	/vmlinuz, /initrd.gz             the kernel and the initramfs
//	/farmlb/                         the appliance's config (ConfigDir)
//
// It needs no root and no loop device: sfdisk writes the partition table
// into the file, mtools writes the FAT at the partition's offset, and
// syslinux installs itself through mtools.
func BuildDisk(ctx context.Context, c DiskConfig) error {
	c.fill()
	if c.PartMiB < MinPartMiB || c.PartMiB > MaxPartMiB {
		return fmt.Errorf("disk image: partition of %d MiB: want %d to %d (FAT32)", c.PartMiB, MinPartMiB, MaxPartMiB)
	}
	steps := 7
	step := 0
	say := func(format string, args ...any) {
		step++
		fmt.Fprintf(c.Progress, "[%d/%d] %s\n", step, steps, fmt.Sprintf(format, args...))
	}
	for _, f := range []string{c.Kernel, c.Initrd, c.GPTMBR, c.SystemdBoot, filepath.Join(c.ConfigDir, "appliance.yaml")} {
		if _, err := os.Stat(f); err != nil {
			return fmt.Errorf("disk image: %w", err)
		}
	}
	partSectors := int64(c.PartMiB) << 20 / sectorSize
	// GPT: 1 MiB before the partition, 33 sectors of backup table after it.
	total := (startLBA + partSectors + 33 + 2047) / 2048 * 2048
	env := append(os.Environ(), "MTOOLS_SKIP_CHECK=1", "SOURCE_DATE_EPOCH="+strconv.FormatInt(c.Epoch, 10), "TZ=UTC")
	img := c.Out + ".tmp"
	os.Remove(img)
	defer os.Remove(img)

	say("creating %s (%d MiB, sparse)", filepath.Base(c.Out), total*sectorSize>>20)
	f, err := os.Create(img)
	if err != nil {
		return err
	}
	err = f.Truncate(total * sectorSize)
	f.Close()
	if err != nil {
		return err
	}

	say("partitioning: GPT, one %d MiB EFI system partition named %q, legacy-BIOS-bootable", c.PartMiB, PartName)
	table := fmt.Sprintf("label: gpt\nlabel-id: %s\nfirst-lba: %d\nstart=%d, size=%d, type=%s, uuid=%s, name=%q, attrs=\"LegacyBIOSBootable\"\n",
		diskGUID, startLBA, startLBA, partSectors, espType, partGUID, PartName)
	if err := run(ctx, env, strings.NewReader(table), "sfdisk", "--quiet", "--no-reread", "--no-tell-kernel", img); err != nil {
		return err
	}

	at := fmt.Sprintf("%s@@%d", img, startLBA*sectorSize)
	say("formatting FAT32 at offset %d", startLBA*sectorSize)
	if err := run(ctx, env, nil, "mformat", "-i", at, "-F", "-v", "FARMLB", "-N", volSerial,
		"-T", strconv.FormatInt(partSectors, 10), "-h", "64", "-s", "32", "-H", strconv.Itoa(startLBA), "::"); err != nil {
		return err
	}

	say("installing syslinux (BIOS) and gptmbr.bin")
	if err := run(ctx, env, nil, "mmd", "-i", at, "::/syslinux"); err != nil {
		return err
	}
	if err := run(ctx, env, nil, c.SyslinuxTool, "--offset", strconv.Itoa(startLBA*sectorSize), "--directory", "/syslinux", "--install", img); err != nil {
		return err
	}
	mbr, err := os.ReadFile(c.GPTMBR)
	if err != nil {
		return err
	}
	if len(mbr) != 440 {
		return fmt.Errorf("%s is %d bytes, want 440", c.GPTMBR, len(mbr))
	}
	if err := writeAt(img, mbr, 0); err != nil {
		return err
	}

	say("installing systemd-boot (UEFI)")
	dir, err := os.MkdirTemp("", "farmlb-image-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	files := map[string]string{
		"syslinux.cfg": fmt.Sprintf("DEFAULT farmlb\nPROMPT 0\nTIMEOUT 0\nLABEL farmlb\n  LINUX /vmlinuz\n  INITRD /initrd.gz\n  APPEND %s\n", c.Cmdline),
		"loader.conf":  "default farmlb.conf\ntimeout 0\nconsole-mode keep\n",
		"farmlb.conf":  fmt.Sprintf("title farmlb appliance\nlinux /vmlinuz\ninitrd /initrd.gz\noptions %s\n", c.Cmdline),
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			return err
		}
	}
	for _, d := range []string{"::/EFI", "::/EFI/BOOT", "::/loader", "::/loader/entries", "::/farmlb"} {
		if err := run(ctx, env, nil, "mmd", "-i", at, d); err != nil {
			return err
		}
	}
	// In a fixed order: the order of the copies decides where the files
	// land on the FAT, and so the image's bytes.
	for _, cp := range [][2]string{
		{c.SystemdBoot, "::/EFI/BOOT/BOOTX64.EFI"},
		{filepath.Join(dir, "loader.conf"), "::/loader/loader.conf"},
		{filepath.Join(dir, "farmlb.conf"), "::/loader/entries/farmlb.conf"},
		{filepath.Join(dir, "syslinux.cfg"), "::/syslinux/syslinux.cfg"},
	} {
		if err := run(ctx, env, nil, "mcopy", "-i", at, cp[0], cp[1]); err != nil {
			return err
		}
	}

	ks, _ := os.Stat(c.Kernel)
	is, _ := os.Stat(c.Initrd)
	say("copying the kernel (%.1f MiB) and the initramfs (%.1f MiB)", mib(ks.Size()), mib(is.Size()))
	if err := run(ctx, env, nil, "mcopy", "-i", at, c.Kernel, "::/vmlinuz"); err != nil {
		return err
	}
	if err := run(ctx, env, nil, "mcopy", "-i", at, c.Initrd, "::/initrd.gz"); err != nil {
		return err
	}

	ents, err := os.ReadDir(c.ConfigDir)
	if err != nil {
		return err
	}
	var names []string
	for _, e := range ents {
		if e.Type().IsRegular() {
			names = append(names, e.Name())
		}
	}
	slices.Sort(names)
	say("copying the config into /farmlb/: %s", strings.Join(names, " "))
	for _, n := range names {
		if err := run(ctx, env, nil, "mcopy", "-i", at, filepath.Join(c.ConfigDir, n), "::/farmlb/"+n); err != nil {
			return err
		}
	}
	return os.Rename(img, c.Out)
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }

func writeAt(path string, b []byte, off int64) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	if _, err := f.WriteAt(b, off); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// run runs a tool, returning its output in the error when it fails.
func run(ctx context.Context, env []string, stdin io.Reader, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = env
	cmd.Stdin = stdin
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, out.Bytes())
	}
	return nil
}

// InitramfsConfig says what goes into the initramfs.
type InitramfsConfig struct {
	// Init is the farmlb-init binary, installed as /init.
	Init string
	// Bins are installed in /bin under their base names (pushd, dnsd,
	// farmctl); paths that do not exist are an error.
	Bins []string
	// Extra files, by path inside the archive (such as an
	// etc/farmlb/appliance.yaml for booting with farmlb.config=).
	Extra map[string][]byte
	// Epoch is every time stamp.
	Epoch int64
}

// BuildInitramfs writes the gzip-compressed initramfs to w.
func BuildInitramfs(w io.Writer, c InitramfsConfig) error {
	a := NewArchive()
	add := func(e Entry) error { return a.Add(e) }
	b, err := os.ReadFile(c.Init)
	if err != nil {
		return fmt.Errorf("initramfs: %w", err)
	}
	if err := add(Entry{Path: "init", Mode: 0o755, Data: b}); err != nil {
		return err
	}
	for _, bin := range c.Bins {
		b, err := os.ReadFile(bin)
		if err != nil {
			return fmt.Errorf("initramfs: %w", err)
		}
		if err := add(Entry{Path: "bin/" + filepath.Base(bin), Mode: 0o755, Data: b}); err != nil {
			return err
		}
	}
	for p, data := range c.Extra {
		if err := add(Entry{Path: p, Mode: 0o644, Data: data}); err != nil {
			return err
		}
	}
	// The kernel opens /dev/console for the init before devtmpfs is
	// mounted, so the node must be in the archive. The rest are mount
	// points and the places a Linux program expects to write.
	for _, e := range []Entry{
		{Path: "dev/console", Mode: fs.ModeDevice | fs.ModeCharDevice | 0o600, Major: 5, Minor: 1},
		{Path: "dev/null", Mode: fs.ModeDevice | fs.ModeCharDevice | 0o666, Major: 1, Minor: 3},
		{Path: "proc", Mode: fs.ModeDir | 0o555},
		{Path: "sys", Mode: fs.ModeDir | 0o555},
		{Path: "run", Mode: fs.ModeDir | 0o755},
		{Path: "tmp", Mode: fs.ModeDir | 0o1777},
		{Path: "config", Mode: fs.ModeDir | 0o755},
		{Path: "etc/hosts", Mode: 0o644, Data: []byte("127.0.0.1 localhost\n::1 localhost\n")},
		{Path: "etc/passwd", Mode: 0o644, Data: []byte("root:x:0:0:root:/:/init\nnobody:x:65534:65534:nobody:/:/init\n")},
		{Path: "etc/group", Mode: 0o644, Data: []byte("root:x:0:\ntty:x:5:\nnogroup:x:65534:\n")},
	} {
		if err := add(e); err != nil {
			return err
		}
	}
	return a.WriteInitramfs(w, c.Epoch)
}

// Epoch returns SOURCE_DATE_EPOCH if set, else the time of the last
// commit if git knows it, else 0.
func Epoch(ctx context.Context) int64 {
	if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		if n, err := strconv.ParseInt(s, 10, 64); err == nil {
			return n
		}
	}
	out, err := exec.CommandContext(ctx, "git", "log", "-1", "--format=%ct").Output()
	if err == nil {
		if n, err := strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64); err == nil {
			return n
		}
	}
	return time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Unix()
}
