package initd

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/farmlb/farmlb/appliance"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// Netns names the network namespace to configure: the init's own in the
// appliance, one a test made in tests.
type Netns struct {
	Handle *netlink.Handle
	NS     netns.NsHandle
}

// CurrentNetns is the calling thread's namespace (the only one in the
// appliance).
func CurrentNetns() (Netns, error) {
	ns, err := netns.Get()
	if err != nil {
		return Netns{}, fmt.Errorf("netns: %w", err)
	}
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		ns.Close()
		return Netns{}, fmt.Errorf("netlink: %w", err)
	}
	return Netns{Handle: h, NS: ns}, nil
}

// Close releases the handle and the namespace reference.
func (n Netns) Close() {
	n.Handle.Close()
	n.NS.Close()
}

// ConfigureNetwork brings lo up and configures each interface of cfg:
// waits for it to appear (drivers probe asynchronously), sets its MTU and
// addresses, brings it up and adds the default routes. It goes on past an
// interface that fails and returns every failure joined.
func ConfigureNetwork(ctx context.Context, n Netns, cfg appliance.Network) error {
	lo, err := n.Handle.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("lo: %w", err)
	}
	if err := n.Handle.LinkSetUp(lo); err != nil {
		return fmt.Errorf("lo: up: %w", err)
	}
	var errs []error
	for _, itf := range cfg.Interfaces {
		if err := configureInterface(ctx, n, itf, cfg.WaitLink); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", itf.Name, err))
		}
	}
	return errors.Join(errs...)
}

func configureInterface(ctx context.Context, n Netns, itf appliance.Interface, wait time.Duration) error {
	link, err := waitLink(ctx, n, itf.Name, wait)
	if err != nil {
		return err
	}
	if itf.MTU != 0 {
		if err := n.Handle.LinkSetMTU(link, itf.MTU); err != nil {
			return fmt.Errorf("mtu %d: %w", itf.MTU, err)
		}
	}
	for _, a := range itf.Addresses {
		p, err := netip.ParsePrefix(a)
		if err != nil {
			return err // checked by appliance.Parse
		}
		addr := &netlink.Addr{IPNet: &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}}
		if p.Addr().Is6() {
			// No duplicate address detection: the address is usable at
			// once, so a service can bind it as soon as the init starts it.
			addr.Flags = 0x80 // IFA_F_NODAD
		}
		if err := n.Handle.AddrReplace(link, addr); err != nil {
			return fmt.Errorf("address %s: %w", a, err)
		}
	}
	if err := n.Handle.LinkSetUp(link); err != nil {
		return fmt.Errorf("up: %w", err)
	}
	for _, g := range itf.Gateway {
		gw, err := netip.ParseAddr(g)
		if err != nil {
			return err
		}
		route := &netlink.Route{LinkIndex: link.Attrs().Index, Gw: gw.AsSlice()}
		if gw.Is4() {
			route.Dst = &net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)}
		} else {
			route.Dst = &net.IPNet{IP: net.IPv6zero, Mask: net.CIDRMask(0, 128)}
		}
		if err := n.Handle.RouteReplace(route); err != nil {
			return fmt.Errorf("default route via %s: %w", g, err)
		}
	}
	return nil
}

// waitLink returns the named link, waiting up to wait for the kernel to
// announce it.
func waitLink(ctx context.Context, n Netns, name string, wait time.Duration) (netlink.Link, error) {
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	updates := make(chan netlink.LinkUpdate, 16)
	done := make(chan struct{})
	defer close(done)
	ns := n.NS
	// Subscribe before looking, so that a link that appears in between is
	// not missed.
	subErr := netlink.LinkSubscribeWithOptions(updates, done, netlink.LinkSubscribeOptions{Namespace: &ns})
	if link, err := n.Handle.LinkByName(name); err == nil {
		return link, nil
	}
	if subErr != nil {
		return nil, fmt.Errorf("not found, and cannot watch for it: %w", subErr)
	}
	for {
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("did not appear within %v", wait)
		case u, ok := <-updates:
			if !ok {
				return nil, errors.New("link watch ended")
			}
			if u.Attrs().Name == name {
				return n.Handle.LinkByName(name)
			}
		}
	}
}

// WriteResolvConf writes /etc/resolv.conf-style content for nameservers to
// path; nothing when there are none.
func WriteResolvConf(path string, nameservers []string) error {
	if len(nameservers) == 0 {
		return nil
	}
	var b strings.Builder
	for _, s := range nameservers {
		fmt.Fprintf(&b, "nameserver %s\n", s)
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}
