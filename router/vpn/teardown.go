package vpn

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/routerd/routerd/netns"
)

// Teardown removes the interface and the userspace UAPI socket.
func Teardown(cfg Config) error {
	if cfg.VPNNS != "" && !netns.Exists(cfg.VPNNS) {
		return nil
	}
	h, err := netns.Handle(cfg.VPNNS)
	if err != nil {
		return err
	}
	defer h.Close()
	if l, err := h.LinkByName(cfg.Iface); err == nil {
		if err := h.LinkDel(l); err != nil {
			return fmt.Errorf("delete %s: %w", cfg.Iface, err)
		}
	}
	// The userspace device's socket, left by a crash.
	if err := os.Remove(filepath.Join("/var/run/wireguard", uapiName(cfg)+".sock")); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}
