package debtest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestDebInstall installs the package into a Debian tree made by
// debootstrap (FARMLB_DEB_ROOT; make deb-install-test makes it once), as
// dpkg would on a server: the maintainer scripts run, the farmlb group
// appears, the binaries run there, and removing the package keeps the
// operator's /etc/farmlb/farm.yaml until a purge.
func TestDebInstall(t *testing.T) {
	deb, root := os.Getenv("FARMLB_DEB"), os.Getenv("FARMLB_DEB_ROOT")
	if deb == "" || root == "" {
		t.Skip("set FARMLB_DEB and FARMLB_DEB_ROOT (make deb-install-test does)")
	}
	if os.Geteuid() != 0 {
		t.Skip("chroot needs root")
	}
	chroot := func(args ...string) (string, error) {
		out, err := exec.Command("chroot", append([]string{root}, args...)...).CombinedOutput()
		return string(out), err
	}
	must := func(args ...string) string {
		t.Helper()
		out, err := chroot(args...)
		if err != nil {
			t.Fatalf("chroot %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	b, err := os.ReadFile(deb)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "tmp/farmlb.deb"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	// A tree used before: start from no farmlb at all.
	_, _ = chroot("dpkg", "--purge", "farmlb")

	must("dpkg", "--install", "/tmp/farmlb.deb")
	if st := must("dpkg-query", "--show", "--showformat=${Status}", "farmlb"); st != "install ok installed" {
		t.Errorf("dpkg-query: %q", st)
	}
	if out := must("getent", "group", "farmlb"); !strings.HasPrefix(out, "farmlb:") {
		t.Errorf("no farmlb group after postinst: %q", out)
	}
	for _, bin := range strings.Fields(os.Getenv("FARMLB_DEB_BINS")) {
		if out := must("/usr/bin/"+bin, "--help"); !strings.Contains(out, "USAGE") {
			t.Errorf("%s --help in the installed tree:\n%s", bin, out)
		}
	}
	// The operator edits the config; removal keeps it, purge removes it.
	conf := filepath.Join(root, "etc/farmlb/farm.yaml")
	if err := os.WriteFile(conf, []byte("# edited by the operator\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	must("dpkg", "--remove", "farmlb")
	if got, err := os.ReadFile(conf); err != nil || string(got) != "# edited by the operator\n" {
		t.Errorf("after dpkg --remove, farm.yaml is %q (%v), want the operator's", got, err)
	}
	if _, err := os.Stat(filepath.Join(root, "usr/bin/farmctl")); err == nil {
		t.Error("dpkg --remove left /usr/bin/farmctl")
	}
	must("dpkg", "--purge", "farmlb")
	if _, err := os.Stat(conf); err == nil {
		t.Error("dpkg --purge left /etc/farmlb/farm.yaml")
	}
}
