package image

import (
	"bytes"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func sample(t *testing.T) *Archive {
	t.Helper()
	a := NewArchive()
	for _, e := range []Entry{
		{Path: "/init", Mode: 0o755, Data: []byte("#!/bin/sh\necho hi\n")},
		{Path: "bin/pushd", Mode: 0o755, Data: bytes.Repeat([]byte{1, 2, 3}, 1001)},
		{Path: "etc/farmlb/appliance.yaml", Mode: 0o644, Data: []byte("services: {dnsd: {name: ns1}}\n")},
		{Path: "dev/console", Mode: fs.ModeDevice | fs.ModeCharDevice | 0o600, Major: 5, Minor: 1},
		{Path: "sbin/init", Mode: fs.ModeSymlink, Target: "/init"},
		{Path: "proc", Mode: fs.ModeDir | 0o555},
	} {
		if err := a.Add(e); err != nil {
			t.Fatal(err)
		}
	}
	return a
}

func TestCPIOReadByCpio(t *testing.T) {
	if _, err := exec.LookPath("cpio"); err != nil {
		t.Skip("cpio(1) not installed (make deps installs it)")
	}
	var buf bytes.Buffer
	if err := sample(t).WriteCPIO(&buf, 1700000000); err != nil {
		t.Fatal(err)
	}
	if buf.Len()%512 != 0 {
		t.Errorf("archive is %d bytes, not a multiple of 512", buf.Len())
	}
	list := exec.Command("cpio", "-itv", "--quiet")
	list.Stdin = bytes.NewReader(buf.Bytes())
	out, err := list.Output()
	if err != nil {
		t.Fatalf("cpio -itv: %v", err)
	}
	var names []string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(l)
		names = append(names, f[0][:1]+" "+f[len(f)-1])
	}
	got := strings.Join(names, "\n")
	// Sorted, parents first, directories made for every parent; the
	// symlink's line ends in its target.
	want := strings.Join([]string{"d bin", "- bin/pushd", "d dev", "c dev/console", "d etc", "d etc/farmlb",
		"- etc/farmlb/appliance.yaml", "- init", "d proc", "d sbin", "l /init"}, "\n")
	if got != want {
		t.Errorf("cpio lists\n%s\nwant\n%s\n(full listing:\n%s)", got, want, out)
	}

	dir := t.TempDir()
	extract := exec.Command("cpio", "-id", "--quiet", "--no-absolute-filenames", "--nonmatching", "dev/console")
	extract.Dir = dir
	extract.Stdin = bytes.NewReader(buf.Bytes())
	if out, err := extract.CombinedOutput(); err != nil {
		t.Fatalf("cpio -id: %v\n%s", err, out)
	}
	b, err := os.ReadFile(filepath.Join(dir, "bin/pushd"))
	if err != nil || !bytes.Equal(b, bytes.Repeat([]byte{1, 2, 3}, 1001)) {
		t.Errorf("bin/pushd extracted wrong: %v", err)
	}
	if st, err := os.Stat(filepath.Join(dir, "init")); err != nil || st.Mode().Perm() != 0o755 {
		t.Errorf("init: %v %v", st, err)
	}
}

func TestInitramfsReproducible(t *testing.T) {
	var a, b bytes.Buffer
	if err := sample(t).WriteInitramfs(&a, 0); err != nil {
		t.Fatal(err)
	}
	if err := sample(t).WriteInitramfs(&b, 0); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Error("two archives of the same files differ")
	}
}

func TestAddRejectsBadPaths(t *testing.T) {
	for _, p := range []string{"", "/", "..", "../etc/passwd"} {
		t.Run(p, func(t *testing.T) {
			if err := NewArchive().Add(Entry{Path: p, Mode: 0o644}); err == nil {
				t.Errorf("Add(%q) succeeded", p)
			}
		})
	}
}
