package netns

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// RunDir is where named namespaces are bind-mounted, as iproute2 does.
const RunDir = "/run/netns"

// Exists reports whether the named namespace exists.
func Exists(name string) bool {
	h, err := netns.GetFromName(name)
	if err != nil {
		return false
	}
	h.Close()
	return true
}

// Ensure creates the named namespace unless it exists, and reports whether
// it created it. Like iproute2 it makes RunDir a shared mount first, so the
// namespace is visible from every mount namespace.
func Ensure(name string) (created bool, err error) {
	if Exists(name) {
		return false, nil
	}
	if err := shareRunDir(); err != nil {
		return false, err
	}
	errc := make(chan error, 1)
	go func() {
		// netns.NewNamed moves the calling thread into the new namespace;
		// keep that thread to ourselves until it is back.
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			errc <- err
			return
		}
		defer orig.Close()
		h, err := netns.NewNamed(name)
		if err == nil {
			h.Close()
		}
		if netns.Set(orig) == nil {
			runtime.UnlockOSThread()
		}
		errc <- err
	}()
	if err := <-errc; err != nil {
		return false, fmt.Errorf("create netns %s: %w", name, err)
	}
	return true, nil
}

// shareRunDir makes RunDir a mount point with shared propagation.
func shareRunDir() error {
	if err := os.MkdirAll(RunDir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", RunDir, err)
	}
	err := unix.Mount("", RunDir, "none", unix.MS_SHARED|unix.MS_REC, "")
	if errors.Is(err, unix.EINVAL) {
		// Not a mount point yet: bind it onto itself, then share it.
		if err := unix.Mount(RunDir, RunDir, "none", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("bind-mount %s: %w", RunDir, err)
		}
		err = unix.Mount("", RunDir, "none", unix.MS_SHARED|unix.MS_REC, "")
	}
	if err != nil {
		return fmt.Errorf("make %s shared: %w", RunDir, err)
	}
	return nil
}

// Delete removes the named namespace. Links in it are destroyed with it,
// except physical NICs, which the kernel returns to the initial namespace;
// callers move NICs out first to control where they land.
func Delete(name string) error {
	path := filepath.Join(RunDir, name)
	if err := unix.Unmount(path, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("unmount netns %s: %w", name, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove netns %s: %w", name, err)
	}
	return nil
}

// Handle returns a netlink handle for the named namespace ("" is the
// namespace routerd runs in). It speaks rtnetlink only: asking for every
// family fails the whole handle on a kernel without xfrm_user (the
// image's), and routerd needs no other.
func Handle(name string) (*netlink.Handle, error) {
	if name == "" {
		h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
		if err != nil {
			return nil, fmt.Errorf("netlink handle: %w", err)
		}
		return h, nil
	}
	ns, err := netns.GetFromName(name)
	if err != nil {
		return nil, fmt.Errorf("open netns %s: %w", name, err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("netlink handle in netns %s: %w", name, err)
	}
	return h, nil
}

// HandleLink returns a handle for the named namespace and the link name in
// it. The caller closes the handle.
func HandleLink(ns, name string) (*netlink.Handle, netlink.Link, error) {
	h, err := Handle(ns)
	if err != nil {
		return nil, nil, err
	}
	link, err := h.LinkByName(name)
	if err != nil {
		h.Close()
		return nil, nil, fmt.Errorf("look up %s in %s: %w", name, Label(ns), err)
	}
	return h, link, nil
}

// Open returns a handle (file descriptor) of the named namespace; "" is the
// current one. The caller closes it.
func Open(name string) (netns.NsHandle, error) {
	if name == "" {
		return netns.Get()
	}
	h, err := netns.GetFromName(name)
	if err != nil {
		return h, fmt.Errorf("open netns %s: %w", name, err)
	}
	return h, nil
}
