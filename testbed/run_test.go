package testbed

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// agentHelper runs the agent when the test binary is started as one
// (FARMLB_TESTBED_HELPER=agent), with the flags `testbed agent` takes.
func agentHelper() bool {
	if os.Getenv("FARMLB_TESTBED_HELPER") != "agent" {
		return false
	}
	cfg := AgentConfig{Service: Service}
	var out string
	args := os.Args[1:]
	for i := 0; i+1 < len(args); i += 2 {
		v := args[i+1]
		switch args[i] {
		case "--resolver":
			cfg.Resolver = v
		case "--service":
			cfg.Service = v
		case "--http-port":
			fmt.Sscan(v, &cfg.HTTPPort)
		case "--list":
			cfg.Lists = append(cfg.Lists, v)
		case "--topic":
			cfg.Topic = v
		case "--idle":
			cfg.Idle, _ = time.ParseDuration(v)
		case "--out":
			out = v
		case "--seed":
			fmt.Sscan(v, &cfg.Seed)
		}
	}
	if err := AgentMain(context.Background(), cfg, out, os.Stdin); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	return true
}

// standInBin makes a bin folder whose pushd and dnsd are this test binary's
// stand-ins, and whose farmctl does nothing (the stand-ins use no TLS).
func standInBin(t *testing.T) (bin string, agent []string) {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin = t.TempDir()
	for name, script := range map[string]string{
		"pushd":   fmt.Sprintf("#!/bin/sh\nFARMLB_TESTBED_HELPER=pushd exec %s \"$@\"\n", self),
		"dnsd":    fmt.Sprintf("#!/bin/sh\nFARMLB_TESTBED_HELPER=dnsd exec %s \"$@\"\n", self),
		"agent":   fmt.Sprintf("#!/bin/sh\nFARMLB_TESTBED_HELPER=agent exec %s \"$@\"\n", self),
		"farmctl": "#!/bin/sh\nexit 0\n",
	} {
		if err := os.WriteFile(filepath.Join(bin, name), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return bin, []string{filepath.Join(bin, "agent")}
}

const standInScenario = `
name: standin
description: Two stand-in nodes, 40 clients through DNS, serverA killed.
nodes: [{name: serverA}, {name: serverB}]
dns: true
clients: {kind: agent, hosts: 2, discovery: dns, idle_timeout: 3s}
publish: {rate: 20}
duration: 9s
settle: 1s
timeline:
  - {at: 0s, arrive: 40, over: 1s}
  - {at: 4s, fault: kill, target: serverA}
expect: {lost: 0, duplicated: 0}
`

// TestRunWithStandIns runs a whole scenario — lab, Unbound, daemons, client
// processes, a kill, the report — with stand-in daemons, and checks what
// the report says against what happened.
func TestRunWithStandIns(t *testing.T) {
	needRoot(t)
	if _, err := exec.LookPath("unbound"); err != nil {
		t.Skip("needs unbound (apt-get install unbound)")
	}
	s, err := ParseScenario([]byte(standInScenario))
	if err != nil {
		t.Fatal(err)
	}
	bin, agent := standInBin(t)
	out := t.TempDir()
	prefix := testPrefix(t)
	var progress strings.Builder
	rep, err := Run(t.Context(), RunConfig{Scenario: s, BinDir: bin, Agent: agent, OutDir: out, Prefix: prefix,
		Progress: &progress, Logger: slog.New(slog.DiscardHandler), ReadyTimeout: 30 * time.Second})
	assertNoLeftovers(t, prefix)
	if err != nil {
		t.Fatalf("%v\nprogress:\n%s", err, progress.String())
	}
	t.Logf("progress:\n%s", progress.String())
	t.Log(rep.Summary())
	switch {
	case !rep.Pass:
		t.Errorf("failed: %v", rep.Failures)
	case rep.Clients != 40:
		t.Errorf("clients %d, want 40", rep.Clients)
	case rep.Published < 100:
		t.Errorf("published %d in 9 s at 20/s", rep.Published)
	case rep.DetectMS["serverB"] < 0 || rep.DetectMS["ns1"] < 0 || rep.DetectMSMax < 0:
		t.Errorf("detection not measured: %v", rep.DetectMS)
	case rep.DNSRemovedMS < 0:
		t.Errorf("dns_removed_ms not measured: %v", rep.Notes)
	case rep.Users["serverB"] != 40 || len(rep.Users) != 1:
		t.Errorf("users at the end %v, want all 40 on serverB", rep.Users)
	case rep.Reconnects == 0:
		t.Error("nobody reconnected after serverA was killed")
	case rep.MaxOverMean != 1:
		t.Errorf("max_over_mean %v with one UP node", rep.MaxOverMean)
	}
	var fromFile Report
	data, err := os.ReadFile(filepath.Join(out, "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &fromFile); err != nil || fromFile.Lost != rep.Lost || fromFile.DetectMSMax != rep.DetectMSMax {
		t.Errorf("report.json does not match: %v %+v", err, fromFile)
	}
	for _, f := range []string{"report.md", "users.svg", "reconnect.svg", "logs/serverA.log", "logs/res.log", "farm/farm.yaml"} {
		if st, err := os.Stat(filepath.Join(out, f)); err != nil || st.Size() == 0 {
			t.Errorf("%s: %v", f, err)
		}
	}
	md, _ := os.ReadFile(filepath.Join(out, "report.md"))
	for _, want := range []string{"detect_ms_max", "![users per node](users.svg)", "kill serverA"} {
		if !strings.Contains(string(md), want) {
			t.Errorf("report.md lacks %q", want)
		}
	}
}
