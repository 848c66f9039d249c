package image

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func needTools(t *testing.T) {
	t.Helper()
	for _, tool := range []string{"sfdisk", "mformat", "mcopy", "mdir", "syslinux"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed (make deps installs it)", tool)
		}
	}
	for _, f := range []string{"/usr/lib/syslinux/mbr/gptmbr.bin", "/usr/lib/systemd/boot/efi/systemd-bootx64.efi"} {
		if _, err := os.Stat(f); err != nil {
			t.Skipf("%s missing (make deps installs it)", f)
		}
	}
}

// TestBuildDisk builds a small image from stand-in kernel and initramfs
// files and reads it back with the same tools an operator would use.
func TestBuildDisk(t *testing.T) {
	needTools(t)
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cfg := filepath.Join(dir, "config")
	if err := os.Mkdir(cfg, 0o755); err != nil {
		t.Fatal(err)
	}
	write("config/appliance.yaml", "services: {dnsd: {name: ns1}}\n")
	write("config/farm.yaml", "service: x\n")
	out := filepath.Join(dir, "disk.img")
	var progress bytes.Buffer
	c := DiskConfig{
		Out:       out,
		Kernel:    write("vmlinuz", "kernel"),
		Initrd:    write("initrd.gz", "initrd"),
		ConfigDir: cfg,
		PartMiB:   MinPartMiB, // the smallest FAT32 mformat makes
		Epoch:     1700000000,
		Progress:  &progress,
	}
	if err := BuildDisk(t.Context(), c); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(progress.String(), "[7/7] copying the config into /farmlb/: appliance.yaml farm.yaml") {
		t.Errorf("progress:\n%s", progress.String())
	}

	dump, err := exec.Command("sfdisk", "--dump", out).Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"label: gpt", "label-id: " + diskGUID, "start=        2048", "type=" + espType, "uuid=" + partGUID, `name="farmlb"`, `attrs="LegacyBIOSBootable"`} {
		if !strings.Contains(string(dump), want) {
			t.Errorf("sfdisk --dump lacks %q:\n%s", want, dump)
		}
	}
	img, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	mbr, _ := os.ReadFile("/usr/lib/syslinux/mbr/gptmbr.bin")
	if !bytes.Equal(img[:440], mbr) || img[510] != 0x55 || img[511] != 0xAA {
		t.Error("the first sector is not gptmbr.bin with a protective MBR")
	}

	at := out + "@@1M"
	for path, want := range map[string]string{
		"::/farmlb/appliance.yaml":      "services: {dnsd: {name: ns1}}\n",
		"::/vmlinuz":                    "kernel",
		"::/initrd.gz":                  "initrd",
		"::/loader/entries/farmlb.conf": "linux /vmlinuz\ninitrd /initrd.gz\noptions " + DefaultCmdline,
		"::/syslinux/syslinux.cfg":      "LINUX /vmlinuz\n  INITRD /initrd.gz\n  APPEND " + DefaultCmdline,
	} {
		cmd := exec.Command("mtype", "-i", at, path)
		cmd.Env = append(os.Environ(), "MTOOLS_SKIP_CHECK=1")
		got, err := cmd.Output()
		if err != nil {
			t.Errorf("mtype %s: %v", path, err)
			continue
		}
		if !strings.Contains(string(got), want) {
			t.Errorf("%s = %q, want it to contain %q", path, got, want)
		}
	}
	for _, path := range []string{"::/EFI/BOOT/BOOTX64.EFI", "::/syslinux/ldlinux.sys", "::/syslinux/ldlinux.c32"} {
		cmd := exec.Command("mdir", "-a", "-i", at, path)
		cmd.Env = append(os.Environ(), "MTOOLS_SKIP_CHECK=1")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("%s missing: %v\n%s", path, err, out)
		}
	}

	// The same inputs give the same bytes.
	c.Out = filepath.Join(dir, "again.img")
	if err := BuildDisk(t.Context(), c); err != nil {
		t.Fatal(err)
	}
	again, _ := os.ReadFile(c.Out)
	if !bytes.Equal(img, again) {
		for i := range img {
			if img[i] != again[i] {
				t.Errorf("two builds of the same inputs differ, first at byte %#x", i)
				break
			}
		}
	}
}

func TestBuildDiskMissingConfig(t *testing.T) {
	needTools(t)
	dir := t.TempDir()
	err := BuildDisk(t.Context(), DiskConfig{Out: filepath.Join(dir, "x.img"), Kernel: "/nonexistent", Initrd: "/nonexistent", ConfigDir: dir})
	if err == nil || !strings.Contains(err.Error(), "/nonexistent") {
		t.Errorf("err = %v, want one naming the missing file", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "x.img")); err == nil {
		t.Error("a failed build left an image behind")
	}
}

// A partition size out of range is refused before anything is written: a
// negative one failed at truncate(2), a small one at mformat.
func TestBuildDiskRefusesSize(t *testing.T) {
	for _, mib := range []int{-5, MinPartMiB - 1, MaxPartMiB + 1} {
		t.Run(strconv.Itoa(mib), func(t *testing.T) {
			dir := t.TempDir()
			var progress bytes.Buffer
			err := BuildDisk(t.Context(), DiskConfig{Out: filepath.Join(dir, "x.img"), PartMiB: mib, Progress: &progress})
			if err == nil || !strings.Contains(err.Error(), "33 to 2097151") {
				t.Errorf("err = %v, want one giving the range 33 to 2097151", err)
			}
			if progress.Len() > 0 {
				t.Errorf("it began:\n%s", progress.String())
			}
		})
	}
}
