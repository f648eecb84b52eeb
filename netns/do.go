// Package netns owns routerd's network namespaces and the links between
// them: creating, entering and removing the wan and vpn namespaces, the
// transit bridge and its veth pairs, addresses, routes, rules and
// per-namespace sysctls. It converges idempotently and records nothing it
// did not make, so teardown removes exactly routerd's own.
//
// It must not touch links it was not asked about: NICs belong to hw, the
// WireGuard interface to the vpn component.
package netns

import (
	"fmt"
	"runtime"

	"github.com/vishvananda/netns"
)

// Do runs fn on an OS thread switched into the namespace named name (or the
// current one for ""). Sockets and TUN devices fn opens belong to that
// namespace for their whole life, whichever goroutine uses them later.
func Do(name string, fn func() error) error {
	if name == "" {
		return fn()
	}
	h, err := netns.GetFromName(name)
	if err != nil {
		return fmt.Errorf("open netns %s: %w", name, err)
	}
	defer h.Close()
	return DoHandle(h, fn)
}

// DoHandle is Do for an open namespace handle.
func DoHandle(h netns.NsHandle, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			errc <- fmt.Errorf("get current netns: %w", err)
			return
		}
		defer orig.Close()
		if err := netns.Set(h); err != nil {
			errc <- fmt.Errorf("enter netns: %w", err)
			return
		}
		err = fn()
		if netns.Set(orig) == nil {
			// Only a thread back in its own namespace may serve other
			// goroutines; otherwise it dies with this one.
			runtime.UnlockOSThread()
		}
		errc <- err
	}()
	return <-errc
}
