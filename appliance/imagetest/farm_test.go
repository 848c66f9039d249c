package imagetest

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/farmlb/farmlb/appliance/image"
	"github.com/farmlb/farmlb/config"
	"github.com/farmlb/farmlb/peerlink"
)

// twoFarm is a farm of two boxes on a network of their own (a qemu
// socket network, UDP between the two qemu processes on 127.0.0.1):
// serverA with the nameserver ns1 at 198.18.1.11, serverB at 198.18.1.12.
const twoFarm = `service: stream.farmlb.test
tls: {ca: ca.crt, cert: "{name}.crt", key: "{name}.key"}
tokens: {publish: two-publish}
nodes:
  - {name: serverA, url: "http://198.18.1.11:8080", listen: "0.0.0.0:8080", addrs: [198.18.1.11], peer: "198.18.1.11:7946", priority: A}
  - {name: serverB, url: "http://198.18.1.12:8080", listen: "0.0.0.0:8080", addrs: [198.18.1.12], peer: "198.18.1.12:7946", priority: A}
observers:
  - {name: ns1, peer: "198.18.1.11:7950", dns: "0.0.0.0:53"}
# Slower failure detection than the defaults (50ms/350ms/250ms), which aim
# at real hardware: under TCG emulation a guest's vCPU thread can go
# unscheduled for a second or more, and with the defaults the nodes would
# see each other DOWN and UP again (flap) while the test runs. A dead
# member is still DOWN within about 2 + 0.04 + 0.67 = 2.7 s (about 4 s at most).
mesh:
  heartbeat: 200ms
  suspect_after: 2s
  probe_timeout: 1s
`

// TestTwoFarmFile checks, without qemu, that the boxes' farm file parses
// and that its members run the slow timers: a mistake in it would
// otherwise show only in the image test.
func TestTwoFarmFile(t *testing.T) {
	f, err := config.Parse([]byte(twoFarm))
	if err != nil {
		t.Fatal(err)
	}
	cfg := peerlink.FarmConfig(f, "serverB")
	if cfg.HeartbeatInterval != 200*time.Millisecond || cfg.SuspectAfter != 2*time.Second || cfg.ProbeTimeout != time.Second {
		t.Errorf("timers %v/%v/%v, want the file's 200ms/2s/1s", cfg.HeartbeatInterval, cfg.SuspectAfter, cfg.ProbeTimeout)
	}
}

func twoBoxConfig(host, addr, services string) string {
	return fmt.Sprintf(`hostname: %s
network:
  interfaces:
    - {name: eth0, addresses: [198.18.0.15/24]}
    - {name: eth1, addresses: [%s/24]}
services: {%s}
restart: {min: 500ms, max: 5s}
`, host, addr, services)
}

// TestFarmOfTwo boots two appliances that form one farm over their own
// network and checks, from the host, that each sees the other UP, that a
// message published on one reaches a stream on the other, and that the
// nameserver answers with both.
func TestFarmOfTwo(t *testing.T) {
	kernel, initrd := os.Getenv("FARMLB_IMAGE_KERNEL"), os.Getenv("FARMLB_IMAGE_INITRD")
	if kernel == "" || initrd == "" {
		t.Skip("set FARMLB_IMAGE_KERNEL and FARMLB_IMAGE_INITRD (make image-test-farm does)")
	}
	if built := strings.Fields(os.Getenv("FARMLB_IMAGE_SERVICES")); !slices.Contains(built, "pushd") || !slices.Contains(built, "dnsd") {
		t.Skip("the image has no pushd or no dnsd")
	}
	dir := t.TempDir()
	caCrt, caKey, err := peerlink.NewCA("stream.farmlb.test", 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	boxes := []struct{ host, addr, services, mac string }{
		{"box-a", "198.18.1.11", "pushd: {node: serverA}, dnsd: {name: ns1}", "52:54:00:fa:01:11"},
		{"box-b", "198.18.1.12", "pushd: {node: serverB}", "52:54:00:fa:01:12"},
	}
	ports := []int{freePort(t), freePort(t)}
	var vms []*vm
	for i, b := range boxes {
		cfg := filepath.Join(dir, b.host)
		if err := os.MkdirAll(cfg, 0o755); err != nil {
			t.Fatal(err)
		}
		files := map[string][]byte{
			"appliance.yaml": []byte(twoBoxConfig(b.host, b.addr, b.services)),
			"farm.yaml":      []byte(twoFarm),
			"ca.crt":         caCrt,
		}
		for _, m := range []string{"serverA", "serverB", "ns1"} {
			crt, key, err := peerlink.IssueCert(caCrt, caKey, m, 24*time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			files[m+".crt"], files[m+".key"] = crt, key
		}
		for name, body := range files {
			if err := os.WriteFile(filepath.Join(cfg, name), body, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		img := filepath.Join(dir, b.host+".img")
		if err := image.BuildDisk(t.Context(), image.DiskConfig{Out: img, Kernel: kernel, Initrd: initrd, ConfigDir: cfg, PartMiB: 64}); err != nil {
			t.Fatal(err)
		}
		// The farm's own network: UDP between the two qemu processes.
		mesh := fmt.Sprintf("socket,id=m0,localaddr=127.0.0.1:%d,udp=127.0.0.1:%d", ports[i], ports[1-i])
		vms = append(vms, boot(t, img, "bios", "-netdev", mesh, "-device", "virtio-net-pci,netdev=m0,mac="+b.mac))
	}
	for _, v := range vms {
		v.await(t, "farmlb appliance up", 3*time.Minute)
	}
	a, b := vms[0], vms[1]
	baseA := fmt.Sprintf("http://127.0.0.1:%d", a.ports[8080])
	baseB := fmt.Sprintf("http://127.0.0.1:%d", b.ports[8080])

	for _, base := range []string{baseA, baseB} {
		eventually(t, base+"/farm lists serverA and serverB UP", 3*time.Minute, func() error {
			servers, err := getFarm(base)
			if err != nil {
				return err
			}
			up := 0
			for _, s := range servers {
				if s.Status == "UP" {
					up++
				}
			}
			if up != 2 {
				return fmt.Errorf("%d UP in %+v", up, servers)
			}
			return nil
		})
	}
	t.Logf("both nodes UP on both boxes %.1fs after the first qemu started", time.Since(a.started).Seconds())

	eventually(t, "ns1 answers with both nodes", time.Minute, func() error {
		for _, addr := range []string{"198.18.1.11", "198.18.1.12"} {
			if err := checkDNS("udp", fmt.Sprintf("127.0.0.1:%d", a.ports[53]), "stream.farmlb.test", addr); err != nil {
				return err
			}
		}
		return nil
	})

	// Subscribe on B, publish on A: the message crosses the mesh.
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	client := &http.Client{}
	req, _ := http.NewRequestWithContext(ctx, "GET", baseB+"/stream?event=topic&topic=two", nil)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET B/stream: %s", resp.Status)
	}
	pub, _ := http.NewRequestWithContext(ctx, "POST", baseA+"/publish/two", strings.NewReader("across the mesh"))
	pub.Header.Set("Authorization", "Bearer two-publish")
	presp, err := client.Do(pub)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(presp.Body)
	presp.Body.Close()
	if presp.StatusCode != http.StatusOK {
		t.Fatalf("POST A/publish: %s %s", presp.Status, body)
	}
	sc := bufio.NewScanner(resp.Body)
	got := false
	for sc.Scan() {
		if sc.Text() == "data: across the mesh" {
			got = true
			break
		}
	}
	if !got {
		t.Fatalf("B's stream ended without A's message: %v", sc.Err())
	}
	t.Logf("published on A (%s), delivered on B's stream", body)

	for _, v := range vms {
		if err := hmp(v.monitor, "system_powerdown"); err != nil {
			t.Fatal(err)
		}
	}
	for _, v := range vms {
		select {
		case <-v.done:
		case <-time.After(2 * time.Minute):
			t.Fatal("a box did not power off")
		}
	}
}
