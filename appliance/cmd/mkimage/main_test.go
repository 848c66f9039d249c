package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/farmlb/farmlb/internal/cliutil"
	"github.com/urfave/cli/v2"
)

const farmYAML = `service: stream.farmlb.test
tls: {ca: ca.crt, cert: "{name}.crt", key: "{name}.key"}
tokens: {publish: p}
nodes:
  - {name: serverA, url: "http://198.18.0.15:8080", peer: "198.18.0.15:7946", priority: A}
observers:
  - {name: ns1, peer: "198.18.0.15:7950", dns: "198.18.0.15:53"}
`

func TestCheckConfig(t *testing.T) {
	for _, tc := range []struct {
		name, appliance, want string
	}{
		{"both members", "services: {pushd: {node: serverA}, dnsd: {name: ns1}}\n", ""},
		{"unknown node", "services: {pushd: {node: serverZ}}\n", `services.pushd.node: "serverZ" is not a node`},
		{"observer as node", "services: {pushd: {node: ns1}}\n", `services.pushd.node: "ns1" is not a node`},
		{"unknown observer", "services: {dnsd: {name: ns9}}\n", `services.dnsd.name: "ns9" is not an observer`},
		{"bad appliance.yaml", "services: {}\n", "services: none configured"},
		{"missing farm", "farm: nope.yaml\nservices: {dnsd: {name: ns1}}\n", "nope.yaml"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "appliance.yaml"), []byte(tc.appliance), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "farm.yaml"), []byte(farmYAML), 0o644); err != nil {
				t.Fatal(err)
			}
			err := checkConfig(dir)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("checkConfig: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("checkConfig = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// A config the box would refuse is a usage error (exit 2) before any
// image is written.
func TestDiskRefusesBadConfig(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "appliance.yaml"), []byte("hostname: x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "x.img")
	var stderr bytes.Buffer
	err := newApp(&stderr, &stderr).Run([]string{"mkimage", "disk", "--kernel", "k", "--initrd", "i", "--config", dir, "-o", out})
	var ec cli.ExitCoder
	if !errors.As(err, &ec) || ec.ExitCode() != 2 {
		t.Fatalf("err = %v, want exit code 2", err)
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("an image was written")
	}
}

// A usage error is one line and exit 2, as with pushd, dnsd and farmctl:
// not urfave/cli's "Incorrect Usage" with the whole help (exit 1), nor "No
// help topic" (exit 3).
func TestUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"unknown command", []string{"bogus"}, `unknown command "bogus"`},
		{"unknown flag", []string{"--bogus"}, "flag provided but not defined: -bogus"},
		{"unknown command flag", []string{"disk", "--bogus"}, "flag provided but not defined: -bogus"},
		{"disk without flags", []string{"disk"}, "--kernel, --initrd, --config and --output are required"},
		{"disk without output", []string{"disk", "--kernel", "k", "--initrd", "i", "--config", "c"}, "--output is required"},
		{"initramfs without init", []string{"initramfs", "-o", "x"}, "--init is required"},
		{"stray argument", []string{"initramfs", "--init", "i", "-o", "x", "extra"}, `unexpected arguments ["extra"]`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, env := range []string{"FARMLB_IMAGE_INIT", "FARMLB_IMAGE_INITRD", "FARMLB_IMAGE_KERNEL", "FARMLB_IMAGE_CONFIG", "FARMLB_IMAGE_OUT"} {
				t.Setenv(env, "")
			}
			var out, errw bytes.Buffer
			err := newApp(&out, &errw).Run(append([]string{"mkimage"}, tc.args...))
			if err == nil || cliutil.ExitCode(err) != 2 || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v (exit %d), want exit 2 containing %q", err, cliutil.ExitCode(err), tc.want)
			}
			if out.Len()+errw.Len() > 0 {
				t.Errorf("printed more than the error:\n%s%s", out.String(), errw.String())
			}
		})
	}
}

// --size out of range is a usage error naming the flag and the range,
// before any work: -5 failed at truncate(2), 0 built 128 MiB unasked.
func TestDiskSize(t *testing.T) {
	for _, size := range []string{"-5", "0", "32", "2097152"} {
		t.Run(size, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "appliance.yaml"), []byte("services: {dnsd: {name: ns1}}\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "farm.yaml"), []byte(farmYAML), 0o644); err != nil {
				t.Fatal(err)
			}
			var stderr bytes.Buffer
			err := newApp(&stderr, &stderr).Run([]string{"mkimage", "disk", "--kernel", "k", "--initrd", "i", "--config", dir, "--size", size, "-o", filepath.Join(dir, "x.img")})
			want := "--size " + size + ": want 33 to 2097151"
			if err == nil || cliutil.ExitCode(err) != 2 || !strings.Contains(err.Error(), want) {
				t.Errorf("err = %v (exit %d), want exit 2 containing %q", err, cliutil.ExitCode(err), want)
			}
			if stderr.Len() > 0 {
				t.Errorf("it began:\n%s", stderr.String())
			}
		})
	}
}
