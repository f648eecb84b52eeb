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
	Classes  []Class
}

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
			if err := converge(h, link, r.parent, filters(p.Classes, link.Attrs().Index, r.to.Attrs().Index, r.parent)); err != nil {
				return fmt.Errorf("sqm: %s to %s: %w", port, r.to.Attrs().Name, err)
			}
		}
	}
	return nil
}

// converge makes the filters on link's hook parent the wanted ones:
// those not wanted (an earlier config's classes, an older layout) go
// first, so that a priority can change its kind, then each wanted one is
// added or replaced. A matchall cannot be changed in place (the kernel
// answers a replace with EEXIST): one as wanted stays, one redirecting
// elsewhere goes with the unwanted and is added again.
func converge(h *netlink.Handle, link netlink.Link, parent uint32, want []netlink.Filter) error {
	have, err := h.FilterList(link, parent)
	if err != nil {
		return fmt.Errorf("filters: %w", err)
	}
	key := func(a *netlink.FilterAttrs) [3]uint32 {
		return [3]uint32{uint32(a.Priority), a.Handle, uint32(a.Protocol)}
	}
	wanted := map[[3]uint32]netlink.Filter{}
	for _, f := range want {
		wanted[key(f.Attrs())] = f
	}
	kept := map[[3]uint32]bool{} // matchalls already as wanted
	for _, f := range have {
		if f.Attrs().Handle == 0 {
			continue // a priority's own entry: deleting it would take all its filters
		}
		w, ok := wanted[key(f.Attrs())]
		if ok && w.Type() == f.Type() {
			if f.Type() != "matchall" {
				continue
			}
			if redirectsTo(f) == redirectsTo(w) {
				kept[key(f.Attrs())] = true
				continue
			}
		}
		if err := h.FilterDel(f); err != nil && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("remove filter %d:%x: %w", f.Attrs().Priority, f.Attrs().Handle, err)
		}
	}
	for _, f := range want {
		if kept[key(f.Attrs())] {
			continue
		}
		if err := h.FilterReplace(f); err != nil {
			return fmt.Errorf("filter %d:%x (%s): %w", f.Attrs().Priority, f.Attrs().Handle, f.Type(), err)
		}
	}
	return nil
}

// redirectsTo is the device a matchall's mirred action sends to (0: none).
func redirectsTo(f netlink.Filter) int {
	m, ok := f.(*netlink.MatchAll)
	if !ok {
		return 0
	}
	for _, a := range m.Actions {
		if r, ok := a.(*netlink.MirredAction); ok && r.MirredAction == netlink.TCA_EGRESS_REDIR {
			return r.Ifindex
		}
	}
	return 0
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

// classModules are what [[sqm.class]] needs besides.
var classModules = []string{"cls_flower", "act_skbedit"}

// Supported says whether the running kernel has what the shaping needs,
// without changing anything: each module loaded, built in, or there to be
// loaded on first use (the kernel asks for a qdisc's module itself).
func Supported(classes bool) error {
	rel, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		return fmt.Errorf("kernel release: %w", err)
	}
	dir := filepath.Join("/lib/modules", strings.TrimSpace(string(rel)))
	builtin, _ := os.ReadFile(filepath.Join(dir, "modules.builtin"))
	dep, _ := os.ReadFile(filepath.Join(dir, "modules.dep"))
	var missing []string
	mods := kernelModules
	if classes {
		mods = append(mods[:len(mods):len(mods)], classModules...)
	}
	for _, m := range mods {
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
		return fmt.Errorf("this kernel (%s) has no %s: [sqm] needs CAKE (sch_cake), IFB devices and tc's mirred and matchall (and for classes flower and skbedit)",
			strings.TrimSpace(string(rel)), strings.Join(missing, ", "))
	}
	return nil
}
