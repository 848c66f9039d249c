// Package imagetest boots the appliance image under qemu and checks it from
// the host, as an operator would. It runs only when FARMLB_IMAGE names an
// image (make image-test sets it): a boot under software emulation takes
// a CPU for about half a minute.
//
//	FARMLB_IMAGE           the disk image to boot (a snapshot: it is not changed)
//	FARMLB_IMAGE_CONFIG    the config folder it was built with (for the tokens)
//	FARMLB_IMAGE_SERVICES  the daemons built into it ("pushd dnsd"); each must
//	                       run and answer, the others must be reported missing
//	FARMLB_IMAGE_FIRMWARE  "bios" (default) or "uefi" (OVMF)
package imagetest

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/farmlb/farmlb/config"
	"github.com/miekg/dns"
)

// The guest's address on qemu's user-mode network, which the test puts in
// 198.18.0.0/24 (the benchmarking range). The host reaches the guest only
// through the ports forwarded from 127.0.0.1. The guest has no default
// route, so it reaches nothing beyond qemu's own subnet. (restrict=on would
// isolate it outright, but libslirp then drops the guest's UDP replies to
// forwarded ports, which is how DNS is checked.)
const guest = "198.18.0.15"

type vm struct {
	cmd     *exec.Cmd
	monitor string // the HMP monitor's unix socket
	started time.Time
	ports   map[int]int // guest TCP port → host port (53 also UDP)
	mu      sync.Mutex
	serial  []string
	lines   chan string
	done    chan struct{} // closed when qemu has exited
	waitErr error         // qemu's exit, once done is closed
}

func freePort(t *testing.T) int {
	t.Helper()
	// A port free for both TCP and UDP, for DNS.
	for range 20 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		pc, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
		ln.Close()
		if err == nil {
			pc.Close()
			return port
		}
	}
	t.Fatal("no free port")
	return 0
}

func boot(t *testing.T, img, firmware string, extra ...string) *vm {
	t.Helper()
	dir := t.TempDir()
	v := &vm{monitor: filepath.Join(dir, "monitor.sock"), ports: map[int]int{}, lines: make(chan string, 10000), done: make(chan struct{})}
	netdev := "user,id=n0,net=198.18.0.0/24,host=198.18.0.2,dhcpstart=198.18.0.100"
	for _, p := range []int{9100, 8080, 53} {
		v.ports[p] = freePort(t)
		netdev += fmt.Sprintf(",hostfwd=tcp:127.0.0.1:%d-%s:%d", v.ports[p], guest, p)
	}
	netdev += fmt.Sprintf(",hostfwd=udp:127.0.0.1:%d-%s:53", v.ports[53], guest)
	args := []string{
		"-accel", "tcg", "-m", "512", "-smp", "1",
		"-nographic", "-no-reboot",
		"-monitor", "unix:" + v.monitor + ",server,nowait",
		"-drive", "file=" + img + ",format=raw,if=virtio,snapshot=on",
		"-netdev", netdev, "-device", "virtio-net-pci,netdev=n0",
		// Without an entropy source the guest's crypto/rand can wait at boot.
		"-device", "virtio-rng-pci",
	}
	args = append(args, extra...)
	if firmware == "uefi" {
		vars := filepath.Join(dir, "OVMF_VARS.fd")
		b, err := os.ReadFile("/usr/share/OVMF/OVMF_VARS_4M.fd")
		if err != nil {
			t.Fatalf("UEFI firmware (Debian package ovmf): %v", err)
		}
		if err := os.WriteFile(vars, b, 0o600); err != nil {
			t.Fatal(err)
		}
		args = append(args,
			"-drive", "if=pflash,format=raw,unit=0,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd",
			"-drive", "if=pflash,format=raw,unit=1,file="+vars)
	}
	v.cmd = exec.Command("qemu-system-x86_64", args...)
	out, err := v.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	v.cmd.Stderr = v.cmd.Stdout
	t.Logf("qemu-system-x86_64 %s", strings.Join(args, " "))
	v.started = time.Now()
	if err := v.cmd.Start(); err != nil {
		t.Fatalf("qemu: %v", err)
	}
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			l := strings.TrimRight(sc.Text(), "\r")
			v.mu.Lock()
			v.serial = append(v.serial, l)
			v.mu.Unlock()
			select {
			case v.lines <- l:
			default:
			}
		}
	}()
	go func() {
		<-copied
		v.waitErr = v.cmd.Wait()
		close(v.done)
	}()
	t.Cleanup(func() {
		select {
		case <-v.done:
		default:
			_ = v.cmd.Process.Kill()
			<-v.done
		}
		if t.Failed() {
			t.Logf("serial console:\n%s", v.console())
		}
	})
	return v
}

func (v *vm) console() string {
	v.mu.Lock()
	defer v.mu.Unlock()
	return strings.Join(v.serial, "\n")
}

// await reads the serial console until a line contains want.
func (v *vm) await(t *testing.T, want string, limit time.Duration) {
	t.Helper()
	deadline := time.After(limit)
	for {
		select {
		case l := <-v.lines:
			if strings.Contains(l, want) {
				return
			}
		case <-v.done:
			t.Fatalf("qemu exited (%v) before the console said %q", v.waitErr, want)
		case <-deadline:
			t.Fatalf("the console did not say %q within %v", want, limit)
		}
	}
}

// giveUp marks an error that no retry will mend.
type giveUp struct{ error }

// eventually retries check until it succeeds, returns a giveUp, or limit
// passes. The guest is another machine: its services' readiness can only
// be seen by asking.
func eventually(t *testing.T, what string, limit time.Duration, check func() error) time.Duration {
	t.Helper()
	start := time.Now()
	var err error
	for time.Since(start) < limit {
		if err = check(); err == nil {
			return time.Since(start)
		}
		if g, ok := err.(giveUp); ok {
			t.Fatalf("%s: %v", what, g.error)
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Fatalf("%s: still failing after %v: %v", what, limit, err)
	return 0
}

type serviceStatus struct {
	Name     string `json:"name"`
	State    string `json:"state"`
	Starts   int    `json:"starts"`
	LastExit string `json:"last_exit"`
}

type statusReport struct {
	Hostname string          `json:"hostname"`
	Services []serviceStatus `json:"services"`
	Errors   []string        `json:"errors"`
}

func TestImage(t *testing.T) {
	img := os.Getenv("FARMLB_IMAGE")
	if img == "" {
		t.Skip("set FARMLB_IMAGE (make image-test does)")
	}
	firmware := os.Getenv("FARMLB_IMAGE_FIRMWARE")
	if firmware == "" {
		firmware = "bios"
	}
	built := strings.Fields(os.Getenv("FARMLB_IMAGE_SERVICES"))
	farm, err := config.Load(filepath.Join(os.Getenv("FARMLB_IMAGE_CONFIG"), "farm.yaml"))
	if err != nil {
		t.Fatalf("the image's farm.yaml: %v", err)
	}

	v := boot(t, img, firmware)
	// The bound on boot time: 3 minutes to the init's "up" line. Under TCG
	// the time is the emulated CPU's share of the host: 7–131 s measured on
	// a 2-core machine at load 13–33 (BENCHMARKS.md, "Boot to answer",
	// which reports the figures this test logs).
	v.await(t, "farmlb appliance up", 3*time.Minute)
	t.Logf("boot (%s): the init reported up %.1fs after qemu started", firmware, time.Since(v.started).Seconds())
	statusURL := fmt.Sprintf("http://127.0.0.1:%d/status", v.ports[9100])

	// Every daemon built into the image runs; the others are reported
	// missing, not silently absent.
	// running checks that every daemon built in runs, and gives up at once
	// on one that keeps exiting: waiting would not mend it.
	var st statusReport
	running := func() error {
		st = statusReport{}
		if err := getJSON(statusURL, &st); err != nil {
			return err
		}
		for _, name := range built {
			i := slices.IndexFunc(st.Services, func(s serviceStatus) bool { return s.Name == name })
			if i >= 0 && st.Services[i].Starts >= 3 {
				return giveUp{fmt.Errorf("%s keeps exiting (%d starts, last: %s)", name, st.Services[i].Starts, st.Services[i].LastExit)}
			}
			if i < 0 || st.Services[i].State != "running" {
				return fmt.Errorf("%s not running: %+v", name, st.Services)
			}
		}
		return nil
	}
	eventually(t, "GET /status shows the services running", 2*time.Minute, running)
	if st.Hostname != "farmlb-demo" {
		t.Errorf("hostname %q, want farmlb-demo", st.Hostname)
	}
	for _, name := range []string{"pushd", "dnsd"} {
		missing := slices.ContainsFunc(st.Errors, func(e string) bool { return strings.Contains(e, "service "+name+": not in this image") })
		if slices.Contains(built, name) == missing {
			t.Errorf("%s built into the image: %v; reported missing: %v (errors %q)", name, slices.Contains(built, name), missing, st.Errors)
		}
	}
	logsURL := fmt.Sprintf("http://127.0.0.1:%d/logs", v.ports[9100])
	eventually(t, "GET /logs holds the boot log", time.Minute, func() error {
		b, err := get(logsURL)
		if err != nil {
			return err
		}
		if !strings.Contains(string(b), "config loaded") {
			return giveUp{fmt.Errorf("%q lacks the boot log", b)}
		}
		return nil
	})

	if slices.Contains(built, "dnsd") {
		for _, proto := range []string{"udp", "tcp"} {
			took := eventually(t, "dnsd answers A "+farm.Service+" over "+proto, 2*time.Minute, func() error {
				if err := running(); err != nil {
					return err
				}
				return checkDNS(proto, fmt.Sprintf("127.0.0.1:%d", v.ports[53]), farm.Service, guest)
			})
			t.Logf("dnsd answered A %s over %s; boot to answer %.1fs (waited %.1fs)", farm.Service, proto, time.Since(v.started).Seconds(), took.Seconds())
		}
	}
	if slices.Contains(built, "pushd") {
		base := fmt.Sprintf("http://127.0.0.1:%d", v.ports[8080])
		eventually(t, "pushd GET /farm lists serverA UP", 2*time.Minute, func() error {
			if err := running(); err != nil {
				return err
			}
			servers, err := getFarm(base)
			if err != nil {
				return err
			}
			for _, s := range servers {
				if s.Status == "UP" {
					return nil
				}
			}
			return fmt.Errorf("no UP server in %+v", servers)
		})
		t.Logf("pushd answered GET /farm; boot to answer %.1fs", time.Since(v.started).Seconds())
		checkStream(t, base, farm.Tokens.Publish)
	}

	// The ACPI power button (what a hypervisor's "shut down" presses): the
	// init stops the services and powers the machine off, so qemu exits.
	if err := hmp(v.monitor, "system_powerdown"); err != nil {
		t.Fatalf("monitor: %v", err)
	}
	v.await(t, "why=\"power button\"", time.Minute)
	select {
	case <-v.done:
		if v.waitErr != nil {
			t.Errorf("qemu exited with %v after power-off", v.waitErr)
		}
	case <-time.After(2 * time.Minute):
		t.Fatal("the guest did not power off within 2 minutes of the power button")
	}
	if !strings.Contains(v.console(), `msg="services stopped" next="power off"`) {
		t.Error("the console does not show the services stopped before power-off")
	}
}

func get(url string) ([]byte, error) {
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return b, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return b, nil
}

func getJSON(url string, into any) error {
	b, err := get(url)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, into)
}

// farmServer is what the image tests read of a server in GET /farm.
type farmServer struct {
	Name   string `json:"name"`
	Status string `json:"status"`
}

// getFarm reads the servers of GET base/farm.
func getFarm(base string) ([]farmServer, error) {
	var list struct {
		Servers []farmServer `json:"servers"`
	}
	err := getJSON(base+"/farm", &list)
	return list.Servers, err
}

// checkDNS asks server for name's A records over proto and wants addr.
func checkDNS(proto, server, name, addr string) error {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), dns.TypeA)
	c := &dns.Client{Net: proto, Timeout: 3 * time.Second}
	r, _, err := c.Exchange(m, server)
	if err != nil {
		return err
	}
	if r.Rcode != dns.RcodeSuccess || !r.Authoritative {
		return fmt.Errorf("rcode %s, authoritative %v", dns.RcodeToString[r.Rcode], r.Authoritative)
	}
	for _, rr := range r.Answer {
		if a, ok := rr.(*dns.A); ok && a.A.String() == addr {
			return nil
		}
	}
	return fmt.Errorf("no A %s in %v", addr, r.Answer)
}

// checkStream subscribes to a topic, publishes to it, and reads the
// message back from the stream.
func checkStream(t *testing.T, base, token string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", base+"/stream?event=topic&topic=imagetest", nil)
	client := &http.Client{}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("GET /stream: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("GET /stream: %s, Content-Type %q", resp.Status, resp.Header.Get("Content-Type"))
	}
	if node := resp.Header.Get("Farmlb-Node"); node == "" {
		t.Error("GET /stream has no Farmlb-Node header")
	}
	pub, _ := http.NewRequestWithContext(ctx, "POST", base+"/publish/imagetest", strings.NewReader("hello from the host"))
	pub.Header.Set("Authorization", "Bearer "+token)
	presp, err := client.Do(pub)
	if err != nil {
		t.Fatalf("POST /publish: %v", err)
	}
	body, _ := io.ReadAll(presp.Body)
	presp.Body.Close()
	if presp.StatusCode != http.StatusOK {
		t.Fatalf("POST /publish: %s %s", presp.Status, body)
	}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if sc.Text() == "data: hello from the host" {
			t.Logf("GET /stream delivered the message published at POST /publish")
			return
		}
	}
	t.Fatalf("the stream ended without the published message: %v", sc.Err())
}

// hmp sends one command to qemu's human monitor.
func hmp(sock, command string) error {
	c, err := net.DialTimeout("unix", sock, 5*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := fmt.Fprintf(c, "%s\n", command); err != nil {
		return err
	}
	// Wait for the prompt after the command, so that it is taken before
	// we hang up.
	var got []byte
	buf := make([]byte, 4096)
	for strings.Count(string(got), "(qemu)") < 2 {
		n, err := c.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil {
			return fmt.Errorf("%w (monitor said %q)", err, got)
		}
	}
	return nil
}
