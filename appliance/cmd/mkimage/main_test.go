package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

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
