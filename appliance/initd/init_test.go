package initd

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestBoot runs the init as an ordinary process (not PID 1): it reads an
// appliance.yaml, starts a stand-in dnsd from BinDir, serves /status and
// /logs, and stops the service when its context ends.
func TestBoot(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	if err := os.Mkdir(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	// The stand-in prints its arguments, then waits to be stopped. The trap
	// comes first, so that a SIGTERM right after the line is caught.
	script := "#!/bin/sh\ntrap 'echo dnsd-stopping; exit 0' TERM\necho dnsd-args: \"$@\"\nwhile :; do sleep 0.05; done\n"
	if err := os.WriteFile(filepath.Join(bin, "dnsd"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "appliance.yaml")
	yaml := "hostname: box1\nstatus: 127.0.0.1:0\nservices:\n  dnsd: {name: ns1}\n  pushd: {node: serverA}\n"
	if err := os.WriteFile(cfgPath, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	console := make(lines, 1000)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan Outcome, 1)
	go func() {
		outcome, err := Boot(ctx, Options{ConfigPath: cfgPath, BinDir: bin, Console: console})
		if err != nil {
			t.Errorf("Boot: %v", err)
		}
		done <- outcome
	}()
	defer func() {
		cancel()
		<-done
	}()

	// The console tells where the status endpoint listens.
	addrRe := regexp.MustCompile(`msg="status endpoint" addr=(\S+)`)
	var addr string
	limit := time.After(20 * time.Second)
	for addr == "" {
		select {
		case l := <-console:
			if m := addrRe.FindStringSubmatch(l); m != nil {
				addr = m[1]
			}
		case <-limit:
			t.Fatal("no status endpoint on the console")
		}
	}
	console.await(t, "dnsd: dnsd-args: --config "+filepath.Join(dir, "farm.yaml")+" --name ns1")

	var rep StatusReport
	get(t, "http://"+addr+"/status", &rep)
	if rep.Hostname != "box1" || len(rep.Services) != 1 || rep.Services[0].Name != "dnsd" || rep.Services[0].State != "running" {
		t.Errorf("status = %+v, want box1 running dnsd", rep)
	}
	if len(rep.Errors) != 1 || !strings.Contains(rep.Errors[0], "service pushd: not in this image") {
		t.Errorf("errors = %q, want pushd not in this image", rep.Errors)
	}
	var logs string
	get(t, "http://"+addr+"/logs?service=dnsd", &logs)
	if !strings.HasPrefix(logs, "dnsd: dnsd-args: --config") {
		t.Errorf("logs?service=dnsd = %q", logs)
	}

	cancel()
	if got := <-done; got != PowerOff {
		t.Errorf("Boot = %v, want PowerOff", got)
	}
	done <- PowerOff // for the deferred receive
	console.await(t, "dnsd: dnsd-stopping")
}

func get(t *testing.T, url string, into any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %s %s", url, resp.Status, b)
	}
	if s, ok := into.(*string); ok {
		*s = string(b)
		return
	}
	if err := json.Unmarshal(b, into); err != nil {
		t.Fatalf("GET %s: %v in %s", url, err, b)
	}
}

// A config the init cannot use: PID 1 stays up until a signal, its console
// saying what to fix; an ordinary process gets the error back at once.
func TestBootBadConfig(t *testing.T) {
	path := filepath.Join(t.TempDir(), "appliance.yaml")
	if err := os.WriteFile(path, []byte("hostname: x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Run("not PID 1", func(t *testing.T) {
		console := make(lines, 1000)
		done := make(chan error, 1)
		go func() {
			_, err := Boot(t.Context(), Options{ConfigPath: path, Console: console})
			done <- err
		}()
		select {
		case err := <-done:
			if err == nil || !strings.Contains(err.Error(), "services: none configured") {
				t.Errorf("Boot = %v, want the config error", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Boot still running 10s after a config error")
		}
	})
	t.Run("PID 1", func(t *testing.T) {
		console := make(lines, 1000)
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() {
			// stayUp alone: the rest of Pid1 (mounts, reboot(2)) is not for a test.
			_, err := Boot(ctx, Options{ConfigPath: path, Console: console, stayUp: true})
			done <- err
		}()
		console.await(t, "services: none configured")
		console.await(t, "fix appliance.yaml on the boot partition")
		select {
		case err := <-done:
			t.Fatalf("Boot returned %v before its context ended", err)
		default:
		}
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Boot = %v after staying up, want nil (the console had the error)", err)
		}
	})
}

func TestPartitionNamed(t *testing.T) {
	sys := t.TempDir()
	for dev, uevent := range map[string]string{
		"vda":  "MAJOR=254\nMINOR=0\nDEVNAME=vda\nDEVTYPE=disk\n",
		"vda1": "MAJOR=254\nMINOR=1\nDEVNAME=vda1\nDEVTYPE=partition\nPARTN=1\nPARTNAME=farmlb\n",
		"sda1": "DEVNAME=sda1\nPARTNAME=EFI system\n",
	} {
		if err := os.MkdirAll(filepath.Join(sys, dev), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(sys, dev, "uevent"), []byte(uevent), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct{ name, want string }{{"farmlb", "vda1"}, {"other", ""}} {
		t.Run(tc.name, func(t *testing.T) {
			if got := partitionNamed(sys, tc.name); got != tc.want {
				t.Errorf("partitionNamed(%q) = %q, want %q", tc.name, got, tc.want)
			}
		})
	}
	if _, err := findPartition(t.Context(), sys, "other", 10*time.Millisecond); err == nil {
		t.Error("findPartition found a partition that is not there")
	}
}

func TestParamIn(t *testing.T) {
	for _, tc := range []struct{ cmdline, key, want string }{
		{"console=ttyS0 farmlb.config=/etc/a.yaml quiet", "farmlb.config", "/etc/a.yaml"},
		{"console=ttyS0", "farmlb.config", ""},
		{"farmlb.configx=1", "farmlb.config", ""},
	} {
		t.Run(tc.cmdline, func(t *testing.T) {
			if got := paramIn(tc.cmdline, tc.key); got != tc.want {
				t.Errorf("paramIn = %q, want %q", got, tc.want)
			}
		})
	}
}
