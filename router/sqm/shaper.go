package sqm

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// The IFB devices, one per direction, in the main namespace.
const (
	IfbUp   = "sqm-up"
	IfbDown = "sqm-down"
)

// Plan is the shaping wanted: what leaves main by Ports is shaped by Up,
// what comes in by them by Down.
type Plan struct {
	Ports    []string
	Up, Down Cake
}

// filterPrio is the priority of routerd's redirect on each port's hooks.
const filterPrio = 1

// Apply makes the shaping plan p in the calling thread's namespace (the
// main one): the IFB devices with their CAKE, each port's clsact with the
// redirects. Applying it twice changes nothing.
func Apply(p Plan) error {
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return fmt.Errorf("sqm: netlink: %w", err)
	}
	defer h.Close()
	up, err := ensureIFB(h, IfbUp, p.Up)
	if err != nil {
		return err
	}
	down, err := ensureIFB(h, IfbDown, p.Down)
	if err != nil {
		return err
	}
	for _, port := range p.Ports {
		link, err := h.LinkByName(port)
		if err != nil {
			return fmt.Errorf("sqm: port %s: %w", port, err)
		}
		if err := ensureClsact(h, link); err != nil {
			return err
		}
		for _, r := range []struct {
			parent uint32
			to     netlink.Link
		}{{netlink.HANDLE_MIN_EGRESS, up}, {netlink.HANDLE_MIN_INGRESS, down}} {
			f := &netlink.MatchAll{FilterAttrs: netlink.FilterAttrs{LinkIndex: link.Attrs().Index, Parent: r.parent,
				Handle: netlink.MakeHandle(0, 1), Priority: filterPrio, Protocol: unix.ETH_P_ALL},
				Actions: []netlink.Action{netlink.NewMirredAction(r.to.Attrs().Index)}}
			if err := h.FilterReplace(f); err != nil {
				return fmt.Errorf("sqm: redirect %s to %s: %w", port, r.to.Attrs().Name, err)
			}
		}
	}
	return nil
}

func ensureIFB(h *netlink.Handle, name string, c Cake) (netlink.Link, error) {
	link, err := h.LinkByName(name)
	if err != nil {
		if err := h.LinkAdd(&netlink.Ifb{LinkAttrs: netlink.LinkAttrs{Name: name, TxQLen: 1000}}); err != nil && !errors.Is(err, unix.EEXIST) {
			return nil, fmt.Errorf("sqm: add %s: %w", name, err)
		}
		if link, err = h.LinkByName(name); err != nil {
			return nil, fmt.Errorf("sqm: %s: %w", name, err)
		}
	}
	if err := h.LinkSetUp(link); err != nil {
		return nil, fmt.Errorf("sqm: bring %s up: %w", name, err)
	}
	if err := setCake(link.Attrs().Index, c); err != nil {
		return nil, fmt.Errorf("sqm: %s: %w", name, err)
	}
	return link, nil
}

func ensureClsact(h *netlink.Handle, link netlink.Link) error {
	qs, err := h.QdiscList(link)
	if err != nil {
		return fmt.Errorf("sqm: qdiscs of %s: %w", link.Attrs().Name, err)
	}
	for _, q := range qs {
		if q.Type() == "clsact" {
			return nil
		}
	}
	q := &netlink.Clsact{QdiscAttrs: netlink.QdiscAttrs{LinkIndex: link.Attrs().Index, Handle: netlink.MakeHandle(0xffff, 0),
		Parent: netlink.HANDLE_CLSACT}}
	if err := h.QdiscAdd(q); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("sqm: clsact on %s: %w", link.Attrs().Name, err)
	}
	return nil
}

// Remove takes the shaping away: the ports' clsact (and with it the
// redirects) and the IFB devices (and with them CAKE). What is not there
// is no error.
func Remove(ports []string) error {
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return fmt.Errorf("sqm: netlink: %w", err)
	}
	defer h.Close()
	var errs []error
	for _, port := range ports {
		link, err := h.LinkByName(port)
		if err != nil {
			continue
		}
		q := &netlink.Clsact{QdiscAttrs: netlink.QdiscAttrs{LinkIndex: link.Attrs().Index, Handle: netlink.MakeHandle(0xffff, 0),
			Parent: netlink.HANDLE_CLSACT}}
		if err := h.QdiscDel(q); err != nil && !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.EINVAL) {
			errs = append(errs, fmt.Errorf("sqm: remove clsact from %s: %w", port, err))
		}
	}
	for _, name := range []string{IfbUp, IfbDown} {
		if link, err := h.LinkByName(name); err == nil {
			if err := h.LinkDel(link); err != nil {
				errs = append(errs, fmt.Errorf("sqm: remove %s: %w", name, err))
			}
		}
	}
	return errors.Join(errs...)
}

// kernelModules are what the shaping needs of the kernel.
var kernelModules = []string{"sch_cake", "ifb", "act_mirred", "cls_matchall", "sch_ingress"}

// Supported says whether the running kernel has what the shaping needs,
// without changing anything: each module loaded, built in, or there to be
// loaded on first use (the kernel asks for a qdisc's module itself).
func Supported() error {
	rel, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		return fmt.Errorf("kernel release: %w", err)
	}
	dir := filepath.Join("/lib/modules", strings.TrimSpace(string(rel)))
	builtin, _ := os.ReadFile(filepath.Join(dir, "modules.builtin"))
	dep, _ := os.ReadFile(filepath.Join(dir, "modules.dep"))
	var missing []string
	for _, m := range kernelModules {
		if _, err := os.Stat("/sys/module/" + m); err == nil {
			continue
		}
		ko := "/" + m + ".ko"
		if strings.Contains(string(builtin), ko) || strings.Contains(string(dep), ko) {
			continue
		}
		missing = append(missing, m)
	}
	if len(missing) > 0 {
		return fmt.Errorf("this kernel (%s) has no %s: [sqm] needs CAKE (sch_cake), IFB devices and tc's mirred and matchall",
			strings.TrimSpace(string(rel)), strings.Join(missing, ", "))
	}
	return nil
}
