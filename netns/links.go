package netns

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// The plan's links: the transit bridge and veths, their state and
// addresses.

func ensureBridge(h *netlink.Handle, b Bridge) (int, error) {
	changes := 0
	l, err := h.LinkByName(b.Name)
	if err != nil {
		if !isNotFound(err) {
			return 0, fmt.Errorf("look up bridge %s: %w", b.Name, err)
		}
		br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: b.Name}}
		if err := h.LinkAdd(br); err != nil {
			return 0, fmt.Errorf("create bridge %s: %w", b.Name, err)
		}
		changes++
		if l, err = h.LinkByName(b.Name); err != nil {
			return changes, fmt.Errorf("look up bridge %s: %w", b.Name, err)
		}
	} else if l.Type() != "bridge" {
		return 0, fmt.Errorf("%s exists and is a %s, not a bridge", b.Name, l.Type())
	}
	n, err := ensureMTU(h, l, b.MTU)
	changes += n
	if err != nil {
		return changes, err
	}
	n, err = ensureAddrs(h, l, b.Addrs)
	return changes + n, err
}

// ensureVLAN makes v: a VLAN of the wrong id or parent is made anew.
func ensureVLAN(h *netlink.Handle, v VLAN) (int, error) {
	changes := 0
	parent, err := h.LinkByName(v.Parent)
	if err != nil {
		return 0, fmt.Errorf("look up %s, parent of VLAN %s: %w", v.Parent, v.Name, err)
	}
	l, err := h.LinkByName(v.Name)
	switch {
	case err != nil && !isNotFound(err):
		return 0, fmt.Errorf("look up VLAN %s: %w", v.Name, err)
	case err == nil:
		vl, ok := l.(*netlink.Vlan)
		if !ok {
			return 0, fmt.Errorf("%s exists and is a %s, not a VLAN", v.Name, l.Type())
		}
		if vl.VlanId == v.ID && vl.ParentIndex == parent.Attrs().Index {
			break
		}
		if err := h.LinkDel(l); err != nil {
			return 0, fmt.Errorf("delete VLAN %s (id %d on another link) to remake it: %w", v.Name, vl.VlanId, err)
		}
		changes++
		l = nil
	}
	if l == nil {
		vl := &netlink.Vlan{LinkAttrs: netlink.LinkAttrs{Name: v.Name, ParentIndex: parent.Attrs().Index}, VlanId: v.ID,
			VlanProtocol: netlink.VLAN_PROTOCOL_8021Q}
		if err := h.LinkAdd(vl); err != nil {
			return changes, fmt.Errorf("create VLAN %s (id %d on %s): %w", v.Name, v.ID, v.Parent, err)
		}
		changes++
		if l, err = h.LinkByName(v.Name); err != nil {
			return changes, fmt.Errorf("look up VLAN %s: %w", v.Name, err)
		}
	}
	n, err := ensureMTU(h, l, v.MTU)
	changes += n
	if err != nil {
		return changes, err
	}
	n, err = ensureAddrs(h, l, v.Addrs)
	return changes + n, err
}

func ensureMTU(h *netlink.Handle, l netlink.Link, mtu int) (int, error) {
	if mtu == 0 || l.Attrs().MTU == mtu {
		return 0, nil
	}
	if err := h.LinkSetMTU(l, mtu); err != nil {
		return 0, fmt.Errorf("set MTU of %s to %d: %w", l.Attrs().Name, mtu, err)
	}
	return 1, nil
}

func ensureVeth(main *netlink.Handle, v Veth) (int, error) {
	changes := 0
	peerNS, err := Open(v.PeerNS)
	if err != nil {
		return 0, err
	}
	defer peerNS.Close()
	ph, err := Handle(v.PeerNS)
	if err != nil {
		return 0, err
	}
	defer ph.Close()

	l, err := main.LinkByName(v.Name)
	if err != nil && !isNotFound(err) {
		return 0, fmt.Errorf("look up %s: %w", v.Name, err)
	}
	peer, perr := ph.LinkByName(v.PeerName)
	if l != nil && (perr != nil || l.Type() != "veth") {
		// Half a pair (its namespace was recreated, say): start over.
		if err := main.LinkDel(l); err != nil {
			return 0, fmt.Errorf("delete stale %s: %w", v.Name, err)
		}
		changes++
		l = nil
	}
	if l == nil {
		if perr == nil {
			// A stray peer-side link with our name: it can only be ours.
			if err := ph.LinkDel(peer); err != nil {
				return 0, fmt.Errorf("delete stray %s: %w", v.PeerName, err)
			}
		}
		veth := &netlink.Veth{
			LinkAttrs:     netlink.LinkAttrs{Name: v.Name},
			PeerName:      v.PeerName,
			PeerNamespace: netlink.NsFd(int(peerNS)),
		}
		if err := main.LinkAdd(veth); err != nil {
			return changes, fmt.Errorf("create veth %s (peer %s in netns %s): %w", v.Name, v.PeerName, v.PeerNS, err)
		}
		changes++
		if l, err = main.LinkByName(v.Name); err != nil {
			return changes, fmt.Errorf("look up %s: %w", v.Name, err)
		}
		if peer, err = ph.LinkByName(v.PeerName); err != nil {
			return changes, fmt.Errorf("look up %s in netns %s: %w", v.PeerName, v.PeerNS, err)
		}
	}
	if v.Master != "" {
		m, err := main.LinkByName(v.Master)
		if err != nil {
			return changes, fmt.Errorf("look up %s: %w", v.Master, err)
		}
		if l.Attrs().MasterIndex != m.Attrs().Index {
			if err := main.LinkSetMasterByIndex(l, m.Attrs().Index); err != nil {
				return changes, fmt.Errorf("enslave %s to %s: %w", v.Name, v.Master, err)
			}
			changes++
		}
	}
	if v.PeerMAC != nil && !bytes.Equal(peer.Attrs().HardwareAddr, v.PeerMAC) {
		if err := ph.LinkSetHardwareAddr(peer, v.PeerMAC); err != nil {
			return changes, fmt.Errorf("set MAC of %s in netns %s to %s: %w", v.PeerName, v.PeerNS, v.PeerMAC, err)
		}
		changes++
	}
	n, err := ensureAddrs(ph, peer, v.PeerAddrs)
	changes += n
	if err != nil {
		return changes, fmt.Errorf("netns %s: %w", v.PeerNS, err)
	}
	return changes, nil
}

// linksUp brings the plan's bridges and both ends of its veths up.
func (p *Plan) linksUp(main *netlink.Handle) (int, error) {
	changes := 0
	up := func(h *netlink.Handle, name string) error {
		l, err := h.LinkByName(name)
		if err != nil {
			return fmt.Errorf("look up %s: %w", name, err)
		}
		n, err := ensureUp(h, l)
		changes += n
		return err
	}
	var errs []error
	for _, b := range p.Bridges {
		errs = append(errs, up(main, b.Name))
	}
	for _, v := range p.VLANs {
		errs = append(errs, up(main, v.Name))
	}
	for _, v := range p.Veths {
		errs = append(errs, up(main, v.Name))
		ph, err := Handle(v.PeerNS)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		errs = append(errs, up(ph, v.PeerName))
		ph.Close()
	}
	return changes, errors.Join(errs...)
}

func loopbackUp(ns string) (int, error) {
	h, err := Handle(ns)
	if err != nil {
		return 0, err
	}
	defer h.Close()
	lo, err := h.LinkByName("lo")
	if err != nil {
		return 0, fmt.Errorf("look up lo in %s: %w", Label(ns), err)
	}
	return ensureUp(h, lo)
}

func ensureUp(h *netlink.Handle, l netlink.Link) (int, error) {
	if l.Attrs().Flags&net.FlagUp != 0 {
		return 0, nil
	}
	if err := h.LinkSetUp(l); err != nil {
		return 0, fmt.Errorf("set %s up: %w", l.Attrs().Name, err)
	}
	return 1, nil
}

// ensureAddrs makes the link's global addresses exactly want. Link-local
// addresses are the kernel's and left alone. New addresses skip duplicate
// address detection: they are on links only routerd uses, and DAD would
// delay IPv6 by seconds at every start.
func ensureAddrs(h *netlink.Handle, l netlink.Link, want []netip.Prefix) (int, error) {
	return SyncAddrs(h, l, want, true)
}

// SyncAddrs makes l's global addresses exactly want; with exclusive false it
// only adds what is missing.
func SyncAddrs(h *netlink.Handle, l netlink.Link, want []netip.Prefix, exclusive bool) (int, error) {
	have, err := h.AddrList(l, netlink.FAMILY_ALL)
	if err != nil {
		return 0, fmt.Errorf("list addresses of %s: %w", l.Attrs().Name, err)
	}
	changes := 0
	wanted := map[netip.Prefix]bool{}
	for _, w := range want {
		wanted[w] = true
	}
	present := map[netip.Prefix]bool{}
	for _, a := range have {
		p := PrefixOf(a.IPNet)
		if p.Addr().IsLinkLocalUnicast() {
			continue
		}
		if a.Flags&unix.IFA_F_PERMANENT == 0 {
			// An address with lifetimes is another owner's (the
			// delegated prefix's on a LAN bridge): left alone.
			present[p] = true
			continue
		}
		present[p] = true
		if exclusive && !wanted[p] {
			if err := h.AddrDel(l, &a); err != nil {
				return changes, fmt.Errorf("remove %s from %s: %w", p, l.Attrs().Name, err)
			}
			changes++
		}
	}
	for _, w := range want {
		if present[w] {
			continue
		}
		a := &netlink.Addr{IPNet: IPNet(w)}
		if w.Addr().Is6() {
			a.Flags = unix.IFA_F_NODAD
		}
		if err := h.AddrAdd(l, a); err != nil {
			return changes, fmt.Errorf("add %s to %s: %w", w, l.Attrs().Name, err)
		}
		changes++
	}
	return changes, nil
}

// EnsureVLAN makes v in namespace ns, sets sysctls (the VLAN's own, which
// must hold before it comes up) and brings it up: the WAN's tagged link on
// the NIC hw adopted there, redone when the NIC is re-adopted (a VLAN goes
// with its parent).
func EnsureVLAN(ns string, v VLAN, sysctls []Sysctl) (int, error) {
	h, err := Handle(ns)
	if err != nil {
		return 0, err
	}
	defer h.Close()
	changes, err := ensureVLAN(h, v)
	if err != nil {
		return changes, err
	}
	n, err := SetSysctls(sysctls)
	changes += n
	if err != nil {
		return changes, err
	}
	l, err := h.LinkByName(v.Name)
	if err != nil {
		return changes, fmt.Errorf("look up VLAN %s: %w", v.Name, err)
	}
	if l.Attrs().Flags&net.FlagUp == 0 {
		if err := h.LinkSetUp(l); err != nil {
			return changes, fmt.Errorf("bring VLAN %s up: %w", v.Name, err)
		}
		changes++
	}
	return changes, nil
}
