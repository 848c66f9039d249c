package testbed

import (
	"errors"
	"fmt"
	"net/netip"
	"syscall"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// The network faults. The kernel here has no netem, so loss and delay are
// out; what it does have is enough for the failures that matter to a farm:
// a host that vanishes from the network (link down), two hosts that can no
// longer reach each other while everyone else still reaches both (a
// blackhole route), and a slow link (a tbf qdisc).

// LinkDown sets the host's eth0 down: the host is cut off from everyone, and
// its processes keep running.
func (h *Host) LinkDown() error { return h.setLink(false) }

// LinkUp sets the host's eth0 up again.
func (h *Host) LinkUp() error { return h.setLink(true) }

func (h *Host) setLink(up bool) error {
	return h.withHandle(func(nh *netlink.Handle) error {
		eth, err := nh.LinkByName("eth0")
		if err != nil {
			return err
		}
		if up {
			return nh.LinkSetUp(eth)
		}
		return nh.LinkSetDown(eth)
	})
}

func blackhole(to netip.Addr) *netlink.Route {
	return &netlink.Route{
		Dst:  prefixNet(netip.PrefixFrom(to, to.BitLen())),
		Type: unix.RTN_BLACKHOLE,
	}
}

// Cut makes the host drop everything it sends to peer, with a blackhole
// route for peer's address inside the host's namespace. Only this one
// direction of this one pair is affected; every other host still reaches
// both. Cut both ways for a symmetric partition of the pair.
func (h *Host) Cut(peer *Host) error {
	return h.withHandle(func(nh *netlink.Handle) error {
		if err := nh.RouteAdd(blackhole(peer.Addr)); err != nil {
			return fmt.Errorf("blackhole %v on %s: %w", peer.Addr, h.Name, err)
		}
		return nil
	})
}

// Heal removes the blackhole route Cut added.
func (h *Host) Heal(peer *Host) error {
	return h.withHandle(func(nh *netlink.Handle) error {
		err := nh.RouteDel(blackhole(peer.Addr))
		if err != nil && !errors.Is(err, syscall.ESRCH) {
			return fmt.Errorf("remove blackhole %v on %s: %w", peer.Addr, h.Name, err)
		}
		return nil
	})
}

// Squeeze limits what the host sends to bytesPerSec with a token bucket
// (tbf) on its eth0: bursts of burst bytes pass at line rate, then packets
// queue (up to limit bytes, then drop).
func (h *Host) Squeeze(bytesPerSec uint64, burst, limit uint32) error {
	if bytesPerSec == 0 || burst == 0 || limit == 0 {
		return errors.New("squeeze: rate, burst and limit must all be above zero")
	}
	return h.withHandle(func(nh *netlink.Handle) error {
		eth, err := nh.LinkByName("eth0")
		if err != nil {
			return err
		}
		q := &netlink.Tbf{
			QdiscAttrs: netlink.QdiscAttrs{
				LinkIndex: eth.Attrs().Index,
				Handle:    netlink.MakeHandle(1, 0),
				Parent:    netlink.HANDLE_ROOT,
			},
			Rate:   bytesPerSec,
			Buffer: netlink.Xmittime(bytesPerSec, burst),
			Limit:  limit,
		}
		if err := nh.QdiscReplace(q); err != nil {
			return fmt.Errorf("tbf on %s: %w", h.Name, err)
		}
		return nil
	})
}

// Unsqueeze removes the host's tbf qdisc.
func (h *Host) Unsqueeze() error {
	return h.withHandle(func(nh *netlink.Handle) error {
		ts, err := tbfs(nh)
		if err != nil {
			return err
		}
		for _, t := range ts {
			if t.Parent == netlink.HANDLE_ROOT {
				return nh.QdiscDel(t)
			}
		}
		return nil
	})
}

// Squeezed returns the rate in bytes per second of the host's tbf qdisc, or
// 0 when there is none.
func (h *Host) Squeezed() (uint64, error) {
	var rate uint64
	err := h.withHandle(func(nh *netlink.Handle) error {
		ts, err := tbfs(nh)
		if err != nil {
			return err
		}
		for _, t := range ts {
			rate = t.Rate
		}
		return nil
	})
	return rate, err
}

// tbfs lists the tbf qdiscs on the host's eth0.
func tbfs(nh *netlink.Handle) ([]*netlink.Tbf, error) {
	eth, err := nh.LinkByName("eth0")
	if err != nil {
		return nil, err
	}
	qs, err := nh.QdiscList(eth)
	if err != nil {
		return nil, err
	}
	var ts []*netlink.Tbf
	for _, q := range qs {
		if t, ok := q.(*netlink.Tbf); ok {
			ts = append(ts, t)
		}
	}
	return ts, nil
}
