package appliance

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

const example = `
hostname: ns1-box
farm: farm.yaml
network:
  interfaces:
    - name: eth0
      addresses: [198.18.0.15/24, "2001:db8::15/64"]
      gateway: [198.18.0.2]
  nameservers: [198.18.0.3]
services:
  pushd: {node: serverA}
  dnsd: {name: ns1, args: [--log-level, debug]}
status: ":9100"
restart: {min: 2s, max: 1m}
`

func TestParse(t *testing.T) {
	c, err := Parse([]byte(example))
	if err != nil {
		t.Fatal(err)
	}
	if c.Hostname != "ns1-box" || c.Network.Interfaces[0].Gateway[0] != "198.18.0.2" {
		t.Errorf("parsed %+v", c)
	}
	if c.Restart.Min != 2*time.Second || c.Restart.Max != time.Minute || c.Restart.Stable != 60*time.Second {
		t.Errorf("restart = %+v, want min 2s, max 1m, stable the default 60s", c.Restart)
	}
	if c.LogRing != 1<<20 || c.Network.WaitLink != 10*time.Second {
		t.Errorf("defaults not filled: log_ring %d, wait_link %v", c.LogRing, c.Network.WaitLink)
	}
	got := c.Commands("/bin")
	want := []Service{
		{Name: "pushd", Path: "/bin/pushd", Args: []string{"--config", "farm.yaml", "--node", "serverA"}},
		{Name: "dnsd", Path: "/bin/dnsd", Args: []string{"--config", "farm.yaml", "--name", "ns1", "--log-level", "debug"}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Commands:\n got %+v\nwant %+v", got, want)
	}
}

func TestLoadResolvesFarmPath(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "appliance.yaml")
	if err := os.WriteFile(path, []byte("services: {dnsd: {name: ns1}}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := c.FarmPath(), filepath.Join(dir, "farm.yaml"); got != want {
		t.Errorf("FarmPath = %q, want %q", got, want)
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		name, yaml, want string
	}{
		{"empty", "", "empty"},
		{"no services", "hostname: a\n", "services: none configured"},
		{"unknown key", "services: {dnsd: {name: ns1}}\nhostnme: x\n", "field hostnme not found"},
		{"unknown service", "services: {nginx: {}}\n", "field nginx not found"},
		{"bad node", "services: {pushd: {node: 'a b'}}\n", `services.pushd.node: "a b"`},
		{"missing node", "services: {pushd: {}}\n", `services.pushd.node: ""`},
		{"bad hostname", "hostname: -x\nservices: {dnsd: {name: ns1}}\n", `hostname: "-x"`},
		{"bad address", "services: {dnsd: {name: ns1}}\nnetwork: {interfaces: [{name: eth0, addresses: [198.18.0.15]}]}\n",
			`network.interfaces[0].addresses[0]: "198.18.0.15" is not an address/prefix`},
		{"bad gateway", "services: {dnsd: {name: ns1}}\nnetwork: {interfaces: [{name: eth0, gateway: [x]}]}\n",
			`network.interfaces[0].gateway[0]: "x"`},
		{"two v4 gateways", "services: {dnsd: {name: ns1}}\nnetwork: {interfaces: [{name: eth0, gateway: [198.18.0.1, 198.18.0.2]}]}\n",
			`network.interfaces[0].gateway[1]: a second gateway`},
		{"lo", "services: {dnsd: {name: ns1}}\nnetwork: {interfaces: [{name: lo}]}\n", "network.interfaces[0].name: lo"},
		{"twice", "services: {dnsd: {name: ns1}}\nnetwork: {interfaces: [{name: eth0}, {name: eth0}]}\n", `network.interfaces[1].name: "eth0" appears twice`},
		{"bad mtu", "services: {dnsd: {name: ns1}}\nnetwork: {interfaces: [{name: eth0, mtu: 10}]}\n", "network.interfaces[0].mtu: 10"},
		{"bad nameserver", "services: {dnsd: {name: ns1}}\nnetwork: {nameservers: [ns.example]}\n", `network.nameservers[0]: "ns.example"`},
		{"bad duration", "services: {dnsd: {name: ns1}}\nrestart: {min: soon}\n", "soon"},
		{"negative", "services: {dnsd: {name: ns1}}\nrestart: {stop: -1s}\n", "restart.stop: -1s is negative"},
		{"max below min", "services: {dnsd: {name: ns1}}\nrestart: {min: 10s, max: 1s}\n", "restart.max: 1s is less than restart.min 10s"},
		{"bad status", "services: {dnsd: {name: ns1}}\nstatus: nine\n", `status: "nine"`},
		{"small ring", "services: {dnsd: {name: ns1}}\nlog_ring: 10\n", "log_ring: 10"},
		{"bad env", "services: {dnsd: {name: ns1, env: [FOO]}}\n", `services.dnsd.env[0]: "FOO"`},
		{"not a map", "- a\n", "cannot unmarshal"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml))
			if err == nil {
				t.Fatalf("Parse succeeded, want an error containing %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not contain %q", err, tc.want)
			}
		})
	}
}

func TestStatusOff(t *testing.T) {
	c, err := Parse([]byte("services: {dnsd: {name: ns1}}\nstatus: \"off\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Status != "off" {
		t.Errorf("status = %q", c.Status)
	}
}

// FuzzParse checks that no appliance.yaml makes Parse panic, and that what
// it accepts names at least one service.
func FuzzParse(f *testing.F) {
	f.Add([]byte(example))
	f.Add([]byte("services: {dnsd: {name: ns1}}\n"))
	f.Add([]byte("services: {pushd: {node: a}}\nnetwork: {interfaces: [{name: eth0, addresses: [::1/128], gateway: [::2]}]}\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := Parse(b)
		if err != nil {
			return
		}
		if len(c.Commands("/bin")) == 0 {
			t.Fatalf("accepted a config with no services: %q", b)
		}
	})
}
