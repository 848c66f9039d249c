// Package debtest checks the .deb that `make deb` builds, with dpkg-deb,
// as a Debian administrator would look at it before installing. It runs
// when FARMLB_DEB names the package (make deb-test sets it).
//
//	FARMLB_DEB       the .deb
//	FARMLB_DEB_BINS  the binaries it must carry ("pushd dnsd farmctl")
package debtest

import (
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/farmlb/farmlb/config"
)

func dpkgDeb(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("dpkg-deb", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("dpkg-deb %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func TestDeb(t *testing.T) {
	deb := os.Getenv("FARMLB_DEB")
	if deb == "" {
		t.Skip("set FARMLB_DEB (make deb-test does)")
	}
	bins := strings.Fields(os.Getenv("FARMLB_DEB_BINS"))
	if len(bins) == 0 {
		t.Fatal("FARMLB_DEB_BINS is empty: the package carries no binary")
	}

	t.Run("control", func(t *testing.T) {
		for field, want := range map[string]string{"Package": "farmlb", "Architecture": "amd64", "Depends": "adduser", "Section": "net"} {
			if got := strings.TrimSpace(dpkgDeb(t, "--field", deb, field)); got != want {
				t.Errorf("%s: %q, want %q", field, got, want)
			}
		}
		if got := strings.TrimSpace(dpkgDeb(t, "--info", deb, "conffiles")); got != "/etc/farmlb/farm.yaml" {
			t.Errorf("conffiles %q, want /etc/farmlb/farm.yaml (so an upgrade keeps the operator's config)", got)
		}
		if post := dpkgDeb(t, "--info", deb, "postinst"); !strings.Contains(post, "addgroup --system farmlb") {
			t.Errorf("postinst does not make the farmlb group:\n%s", post)
		}
	})

	root := t.TempDir()
	dpkgDeb(t, "--extract", deb, root)
	listing := dpkgDeb(t, "--contents", deb)

	for _, b := range bins {
		t.Run(b, func(t *testing.T) {
			if !strings.Contains(listing, "-rwxr-xr-x root/root") || !strings.Contains(listing, "./usr/bin/"+b+"\n") {
				t.Errorf("no executable /usr/bin/%s in\n%s", b, listing)
			}
			// The binary runs and explains itself (static: no libraries needed).
			out, err := exec.Command(filepath.Join(root, "usr/bin", b), "--help").CombinedOutput()
			if err != nil || !strings.Contains(string(out), "USAGE") {
				t.Errorf("%s --help: %v\n%s", b, err, out)
			}
			man := readGzip(t, filepath.Join(root, "usr/share/man/man1", b+".1.gz"))
			if !strings.HasPrefix(man, ".\\\"") || !strings.Contains(man, ".TH "+strings.ToUpper(b)+" \"1\"") {
				t.Errorf("%s.1 is not a man page:\n%.300s", b, man)
			}
			if b == "farmctl" {
				return
			}
			unit := filepath.Join(root, "usr/lib/systemd/system", "farmlb-"+b+"@.service")
			body, err := os.ReadFile(unit)
			if err != nil {
				t.Fatalf("no systemd unit for %s: %v", b, err)
			}
			checkUnit(t, b, unit, body, filepath.Join(root, "usr/bin"))
		})
	}

	t.Run("example config", func(t *testing.T) {
		b, err := os.ReadFile(filepath.Join(root, "etc/farmlb/farm.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		f, err := config.Parse(b)
		if err != nil {
			t.Fatalf("the example /etc/farmlb/farm.yaml does not parse: %v", err)
		}
		if len(f.Nodes) == 0 || len(f.Observers) == 0 {
			t.Errorf("the example has %d nodes and %d observers", len(f.Nodes), len(f.Observers))
		}
		if strings.Count(string(b), "\n#") < 5 {
			t.Error("the example config is not commented")
		}
	})
}

// TestUnits checks the units in packaging/deb without a package: the lines
// the package relies on, and systemd's own verdict on their syntax (with
// ExecStart pointed at a binary that exists here).
func TestUnits(t *testing.T) {
	for _, b := range []string{"pushd", "dnsd"} {
		t.Run(b, func(t *testing.T) {
			unit := filepath.Join("..", "..", "packaging", "deb", "farmlb-"+b+"@.service")
			body, err := os.ReadFile(unit)
			if err != nil {
				t.Fatal(err)
			}
			bin := t.TempDir()
			if err := os.Symlink("/bin/true", filepath.Join(bin, b)); err != nil {
				t.Fatal(err)
			}
			checkUnit(t, b, unit, body, bin)
		})
	}
}

// checkUnit checks a daemon's unit for the settings the package promises,
// then runs systemd-analyze verify on it with ExecStart pointed into
// binDir; any warning fails.
func checkUnit(t *testing.T, daemon, unit string, body []byte, binDir string) {
	t.Helper()
	for _, line := range []string{
		"ExecStart=/usr/bin/" + daemon + " --config /etc/farmlb/farm.yaml",
		"DynamicUser=yes",
		"AmbientCapabilities=CAP_NET_BIND_SERVICE",
		"Restart=on-failure",
		"SupplementaryGroups=farmlb",
	} {
		if !bytes.Contains(body, []byte("\n"+line)) {
			t.Errorf("%s lacks %q", filepath.Base(unit), line)
		}
	}
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		t.Fatalf("systemd-analyze is not installed, so the unit's syntax cannot be verified: run make deps (Debian package systemd)")
	}
	dir := t.TempDir()
	fixed := bytes.ReplaceAll(body, []byte("=/usr/bin/"), []byte("="+binDir+"/"))
	tmp := filepath.Join(dir, filepath.Base(unit))
	if err := os.WriteFile(tmp, fixed, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("systemd-analyze", "verify", "--man=no", tmp).CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("systemd-analyze verify %s: %v\n%s", filepath.Base(unit), err, out)
	}
}

func readGzip(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
