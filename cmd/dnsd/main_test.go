package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/farmlb/farmlb/internal/cliutil"
	"github.com/farmlb/farmlb/internal/racebuild"
	"github.com/miekg/dns"
	"go.uber.org/goleak"

	"github.com/farmlb/farmlb/config"
	"github.com/farmlb/farmlb/dnsd"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const farmText = `http://serverA.stream.farmlb.test:8080 UP 2963 A addrs=127.0.0.11
http://serverB.stream.farmlb.test:8080 DOWN 0 B addrs=127.0.0.12
http://serverN.stream.farmlb.test:8080 UP 2979 A addrs=127.0.0.13
`

func writeList(t *testing.T, dir, content string) string {
	t.Helper()
	path := filepath.Join(dir, "farm.txt")
	if err := os.WriteFile(path+".tmp", []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".tmp", path); err != nil {
		t.Fatal(err)
	}
	return path
}

// runApp runs the command line in process and returns its exit status and
// output.
func runApp(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := 0
	if err := newApp(&out, &errb).RunContext(context.Background(), append([]string{"dnsd"}, args...)); err != nil {
		code = cliutil.ExitCode(err)
		errb.WriteString(err.Error())
	}
	return code, out.String(), errb.String()
}

// TestUsage checks the exit status and message of bad command lines.
func TestUsage(t *testing.T) {
	list := writeList(t, t.TempDir(), farmText)
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no mode", nil, 2, "give --config and --name"},
		{"half of list mode", []string{"--zone", "z.test"}, 2, "list mode needs both"},
		{"half of mesh mode", []string{"--name", "ns1"}, 2, "mesh mode needs both"},
		{"both modes", []string{"--zone", "z.test", "--list", list, "--config", "f.yaml", "--name", "ns1"}, 2, "not both"},
		{"unknown flag", []string{"--bogus"}, 2, "flag provided but not defined"},
		{"stray argument", []string{"--zone", "z.test", "--list", list, "extra"}, 2, "unexpected arguments"},
		{"bad --ns address", []string{"--zone", "z.test", "--list", list, "--ns", "ns1=not-an-ip", "--print-zone"}, 2, "not an IP address"},
		{"sub-second TTL", []string{"--zone", "z.test", "--list", list, "--ttl-service", "500ms", "--print-zone"}, 2, "whole seconds"},
		{"bad log level", []string{"--zone", "z.test", "--list", list, "--log-level", "loud"}, 2, "--log-level"},
		{"negative RRL rate", []string{"--zone", "z.test", "--list", list, "--rrl-rate", "-1", "--print-zone"}, 2, "--rrl-rate -1: out of range 0..1000000"},
		{"RRL prefix too long", []string{"--zone", "z.test", "--list", list, "--rrl-ipv4-prefix", "33", "--print-zone"}, 2, "--rrl-ipv4-prefix 33"},
		{"bad allow prefix", []string{"--zone", "z.test", "--list", list, "--rrl-allow", "10.0.0.1", "--print-zone"}, 2, "not a prefix"},
		{"short cookie secret", []string{"--zone", "z.test", "--list", list, "--cookie-secret", "abcd", "--print-zone"}, 2, "--cookie-secret: want 32 hexadecimal digits"},
		{"TCP idle timeout", []string{"--zone", "z.test", "--list", list, "--tcp-idle-timeout", "1ms", "--print-zone"}, 2, "--tcp-idle-timeout 1ms"},
		{"missing list file", []string{"--zone", "z.test", "--list", "/nonexistent/farm.txt"}, 1, "no such file"},
		{"bad zone", []string{"--zone", "bad zone", "--list", list, "--print-zone"}, 1, "not a domain name"},
		{"missing farm file", []string{"--config", "/nonexistent/farm.yaml", "--name", "ns1"}, 1, "no such file"},
		{"missing DNSSEC key", []string{"--zone", "z.test", "--list", list, "--dnssec-key", "/nonexistent/Kz.test.+013+00001", "--print-zone"}, 1, "dnssec: key /nonexistent/Kz.test.+013+00001: open /nonexistent/Kz.test.+013+00001.key: no such file"},
		{"DNSSEC key published only", []string{"--zone", "z.test", "--list", list, "--dnssec-publish", "k", "--print-zone"}, 2, "--dnssec-publish needs --dnssec-key"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := runApp(t, tc.args...)
			if code != tc.code || !strings.Contains(stderr, tc.want) {
				t.Fatalf("exit %d with %q; want exit %d with %q", code, stderr, tc.code, tc.want)
			}
		})
	}
}

// TestPrintZoneFromEnv sets everything from the environment and prints the
// zone the server would answer.
func TestPrintZoneFromEnv(t *testing.T) {
	list := writeList(t, t.TempDir(), farmText)
	t.Setenv("FARMLB_DNSD_ZONE", "Stream.FarmLB.test")
	t.Setenv("FARMLB_DNSD_LIST", list)
	t.Setenv("FARMLB_DNSD_TTL_SERVICE", "7s")
	t.Setenv("FARMLB_DNSD_NS", "ns9=192.0.2.9")
	t.Setenv("FARMLB_DNSD_PRINT_ZONE", "true")
	t.Setenv("FARMLB_DNSD_LOG_LEVEL", "warn")
	code, out, stderr := runApp(t)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{
		"stream.farmlb.test.\t7\tIN\tA\t127.0.0.11",
		"stream.farmlb.test.\t3600\tIN\tNS\tns9.stream.farmlb.test.",
		"ns9.stream.farmlb.test.\t3600\tIN\tA\t192.0.2.9",
		"_farm.stream.farmlb.test.\t5\tIN\tTXT\t\"http://serverA.stream.farmlb.test:8080 UP 2963 A addrs=127.0.0.11\"",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("zone lacks %q:\n%s", want, out)
		}
	}
	// The zone is a master file another server can load.
	zp := dns.NewZoneParser(strings.NewReader(out), "", "")
	n := 0
	for _, ok := zp.Next(); ok; _, ok = zp.Next() {
		n++
	}
	if err := zp.Err(); err != nil || n < 8 {
		t.Errorf("zone does not parse: %v (%d records)", err, n)
	}
}

// proc is dnsd running as a process, its log read line by line.
type proc struct {
	cmd   *exec.Cmd
	lines chan string
	done  chan struct{}
	seen  []string // the lines waitLog has read
	race  raceLog
}

// raceLog keeps what the race detector writes, from its first report on.
type raceLog struct {
	mu    sync.Mutex
	lines []string
}

func (r *raceLog) see(line string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if (len(r.lines) > 0 || strings.Contains(line, racebuild.Report)) && len(r.lines) < 200 {
		r.lines = append(r.lines, line)
	}
}

func (r *raceLog) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.lines, "\n")
}

// startDnsd builds and starts the binary and waits for its "serving" log
// line, returning the UDP address it names.
func startDnsd(t *testing.T, args ...string) (*proc, string) {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "dnsd")
	// Built as the test is (-race under go test -race): the race
	// detector watches the daemon too, and its report fails the test.
	if out, err := exec.Command("go", append(append([]string{"build"}, racebuild.Flags()...), "-o", bin, ".")...).CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, args...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, lines: make(chan string, 1000), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			p.race.see(sc.Text())
			select {
			case p.lines <- sc.Text():
			default:
			}
		}
		_, _ = io.Copy(io.Discard, stderr)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.done
		_ = cmd.Wait()
		if r := p.race.String(); r != "" {
			t.Errorf("the race detector reported a data race in dnsd:\n%s", r)
		}
	})
	line := p.waitLog(t, "msg=serving")
	m := regexp.MustCompile(`udp=(\S+)`).FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("no address in %q", line)
	}
	return p, m[1]
}

// waitLog waits for a log line containing s.
func (p *proc) waitLog(t *testing.T, s string) string {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		select {
		case line := <-p.lines:
			if p.saw(line, s) {
				return line
			}
		case <-p.done:
			// The reader queued every line before it closed done, and
			// select picks among ready cases at random: read the rest.
			for {
				select {
				case line := <-p.lines:
					if p.saw(line, s) {
						return line
					}
				default:
					t.Fatalf("dnsd exited before logging %q", s)
				}
			}
		case <-timeout:
			t.Fatalf("no log line %q within 30s", s)
		}
	}
}

// saw records a log line and reports whether it contains s.
func (p *proc) saw(line, s string) bool {
	p.seen = append(p.seen, line)
	return strings.Contains(line, s)
}

func askA(t *testing.T, addr string) []string {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion("stream.farmlb.test.", dns.TypeA)
	r, err := dns.Exchange(m, addr)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, rr := range r.Answer {
		got = append(got, rr.(*dns.A).A.String())
	}
	return got
}

// TestProcessReloadAndStop runs dnsd as a process: it answers from the list,
// reloads it on SIGHUP, serves metrics and exits 0 on SIGTERM.
func TestProcessReloadAndStop(t *testing.T) {
	dir := t.TempDir()
	list := writeList(t, dir, farmText)
	// The poller is slowed down so that only SIGHUP reloads.
	p, addr := startDnsd(t, "--zone", "stream.farmlb.test", "--list", list, "--list-poll", "1h",
		"--listen", "127.0.0.31:0", "--metrics", "127.0.0.31:0", "--log-level", "debug")
	if got := askA(t, addr); len(got) != 2 {
		t.Fatalf("A %v, want 2 addresses", got)
	}
	writeList(t, dir, strings.Replace(farmText, "serverB.stream.farmlb.test:8080 DOWN", "serverB.stream.farmlb.test:8080 UP", 1))
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	p.waitLog(t, "list loaded")
	p.waitLog(t, "table taken") // the server has built the new answers
	if got := askA(t, addr); len(got) != 2 {
		// serverB is group B: still not in the answer, but it is UP now.
		t.Fatalf("A %v after reload, want 2 addresses", got)
	}
	m := new(dns.Msg)
	m.SetQuestion("_farm.stream.farmlb.test.", dns.TypeTXT)
	r, err := dns.Exchange(m, addr)
	if err != nil || len(r.Answer) != 1 || !strings.Contains(r.Answer[0].String(), "serverB.stream.farmlb.test:8080 UP") {
		t.Fatalf("_farm after SIGHUP: %v %v, want serverB UP", r, err)
	}

	// The metrics endpoint counts what was asked.
	var metricsURL string
	for _, line := range p.seen {
		if m := regexp.MustCompile(`msg=metrics addr=(\S+)`).FindStringSubmatch(line); m != nil {
			metricsURL = m[1]
		}
	}
	hc := &http.Client{Timeout: 5 * time.Second}
	defer hc.CloseIdleConnections()
	resp, err := hc.Get(metricsURL)
	if err != nil {
		t.Fatalf("metrics at %q: %v", metricsURL, err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`farmlb_dnsd_queries_total{rcode="NOERROR",type="A"} 2`, "farmlb_dnsd_table_age_seconds", `farmlb_dnsd_list_reloads_total{result="ok"}`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %q", want)
		}
	}

	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	p.waitLog(t, "msg=stopped")
	<-p.done
	if err := p.cmd.Wait(); err != nil {
		t.Fatalf("exit after SIGTERM: %v, want status 0", err)
	}
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Error("still listening on TCP after exit")
	}
}

// TestLimitsFromFarm checks how the farm file's rrl, cookies and tcp keys
// land in dnsd's config: 0 turns RRL off and slip never, as in NSD.
func TestLimitsFromFarm(t *testing.T) {
	zero, three := 0, 3
	f := &config.Farm{}
	f.DNS.RRL = config.DNSRRL{Rate: &zero, Slip: &three, IPv4Prefix: 32, Allow: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}}
	f.DNS.Cookies = config.DNSCookies{Secret: "e5e973e5a6b2a43f48e7dc849e37bfcf", Previous: []string{"dd3bdf9344b678b185a6f5cb60fca715"}}
	f.DNS.TCP = config.DNSTCP{MaxPerPrefix: 5, IdleTimeout: 3 * time.Second}
	cfg := dnsd.DefaultConfig()
	limitsFromFarm(f, &cfg)
	if cfg.RRL.Rate != -1 || cfg.RRL.Slip != 3 || cfg.RRL.IPv4Prefix != 32 || cfg.RRL.IPv6Prefix != 56 || len(cfg.RRL.Allow) != 1 {
		t.Errorf("RRL %+v: want off (-1), slip 3, /32, /56, one allowed prefix", cfg.RRL)
	}
	if cfg.Cookies.Secret[0] != 0xe5 || len(cfg.Cookies.Previous) != 1 || cfg.Cookies.Previous[0][0] != 0xdd {
		t.Errorf("cookies %+v", cfg.Cookies)
	}
	if cfg.MaxTCPConnsPerPrefix != 5 || cfg.TCPIdleTimeout != 3*time.Second || cfg.MaxTCPConns != 1000 {
		t.Errorf("TCP: per prefix %d, idle %v, total %d", cfg.MaxTCPConnsPerPrefix, cfg.TCPIdleTimeout, cfg.MaxTCPConns)
	}
}
