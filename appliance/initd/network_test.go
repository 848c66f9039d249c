package initd

import (
	"net"
	"os"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/farmlb/farmlb/appliance"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// The kernel here has veth but no dummy links, so the tests use veth pairs.

// newNetns makes a network namespace of the test's own (root needed) and
// returns a handle into it; the calling thread stays where it was.
func newNetns(t *testing.T) Netns {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to make a network namespace")
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer orig.Close()
	ns, err := netns.New()
	if err != nil {
		t.Skipf("cannot make a network namespace: %v", err)
	}
	if err := netns.Set(orig); err != nil {
		t.Fatal(err)
	}
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatal(err)
	}
	n := Netns{Handle: h, NS: ns}
	t.Cleanup(n.Close)
	return n
}

func TestConfigureNetwork(t *testing.T) {
	n := newNetns(t)
	if err := n.Handle.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "eth0"}, PeerName: "peer0"}); err != nil {
		t.Fatal(err)
	}
	cfg := appliance.Network{
		WaitLink: time.Second,
		Interfaces: []appliance.Interface{{
			Name:      "eth0",
			Addresses: []string{"198.18.0.15/24", "2001:db8::15/64"},
			Gateway:   []string{"198.18.0.2", "2001:db8::2"},
			MTU:       1400,
		}},
	}
	if err := ConfigureNetwork(t.Context(), n, cfg); err != nil {
		t.Fatal(err)
	}
	// Twice is fine: a restarted init finds the addresses there.
	if err := ConfigureNetwork(t.Context(), n, cfg); err != nil {
		t.Fatalf("second run: %v", err)
	}
	lo, _ := n.Handle.LinkByName("lo")
	if lo.Attrs().Flags&net.FlagUp == 0 {
		t.Error("lo is not up")
	}
	eth, err := n.Handle.LinkByName("eth0")
	if err != nil {
		t.Fatal(err)
	}
	if eth.Attrs().Flags&net.FlagUp == 0 || eth.Attrs().MTU != 1400 {
		t.Errorf("eth0 flags %v mtu %d, want up and 1400", eth.Attrs().Flags, eth.Attrs().MTU)
	}
	addrs, _ := n.Handle.AddrList(eth, netlink.FAMILY_ALL)
	var got []string
	for _, a := range addrs {
		if !a.IP.IsLinkLocalUnicast() {
			got = append(got, a.IPNet.String())
		}
	}
	slices.Sort(got)
	if want := []string{"198.18.0.15/24", "2001:db8::15/64"}; !slices.Equal(got, want) {
		t.Errorf("addresses %v, want %v", got, want)
	}
	routes, _ := n.Handle.RouteList(eth, netlink.FAMILY_ALL)
	var gws []string
	for _, r := range routes {
		if r.Gw != nil {
			gws = append(gws, r.Gw.String())
		}
	}
	slices.Sort(gws)
	if want := []string{"198.18.0.2", "2001:db8::2"}; !slices.Equal(gws, want) {
		t.Errorf("gateways %v, want %v", gws, want)
	}
}

func TestConfigureNetworkWaitsForLink(t *testing.T) {
	n := newNetns(t)
	cfg := appliance.Network{WaitLink: 30 * time.Second, Interfaces: []appliance.Interface{{Name: "eth1", Addresses: []string{"198.18.1.1/24"}}}}
	errc := make(chan error, 1)
	go func() { errc <- ConfigureNetwork(t.Context(), n, cfg) }()
	// The link appears while ConfigureNetwork waits (or before it looks:
	// either way it must end configured).
	addErr := n.Handle.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "eth1"}, PeerName: "peer1"})
	err := <-errc // always wait: the goroutine uses the handle
	if addErr != nil {
		t.Fatal(addErr)
	}
	if err != nil {
		t.Fatal(err)
	}
}

func TestConfigureNetworkMissingLink(t *testing.T) {
	n := newNetns(t)
	cfg := appliance.Network{WaitLink: 50 * time.Millisecond, Interfaces: []appliance.Interface{{Name: "eth9"}}}
	err := ConfigureNetwork(t.Context(), n, cfg)
	if err == nil || !strings.Contains(err.Error(), "eth9: did not appear within 50ms") {
		t.Fatalf("err = %v, want eth9 did not appear", err)
	}
}
