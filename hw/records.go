package hw

import (
	"encoding/json"
	"errors"
	"fmt"
	"golang.org/x/sys/unix"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sync"

	"github.com/routerd/routerd/internal/atomicfile"
	"github.com/routerd/routerd/netns"
	"github.com/vishvananda/netlink"
)

// record is what routerd knows of one NIC it adopted: how it looked before
// (for teardown) and where it put it (to recognise it after set_mac).
type record struct {
	OrigName string         `json:"orig_name"`
	OrigMAC  string         `json:"orig_mac"`
	OrigMTU  int            `json:"orig_mtu"`
	OrigUp   bool           `json:"orig_up"`
	NS       string         `json:"netns"`
	Index    int            `json:"ifindex"`
	Addrs    []netip.Prefix `json:"addrs,omitempty"`
}

type records struct {
	path  string
	mu    sync.Mutex
	byMAC map[string]*record
	saved []byte
}

func (r *records) load() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.byMAC = map[string]*record{}
	b, err := os.ReadFile(r.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read NIC records: %w", err)
	}
	if err := json.Unmarshal(b, &r.byMAC); err != nil {
		return fmt.Errorf("parse NIC records %s: %w", r.path, err)
	}
	r.saved = b
	return nil
}

func (r *records) get(mac net.HardwareAddr) *record {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.byMAC[mac.String()]
}

// adopt returns the record for mac, creating it from the link's current
// look the first time routerd sees the NIC.
func (r *records) adopt(mac net.HardwareAddr, ns string, a *netlink.LinkAttrs) *record {
	r.mu.Lock()
	defer r.mu.Unlock()
	if rec, ok := r.byMAC[mac.String()]; ok {
		return rec
	}
	rec := &record{OrigName: a.Name, OrigMAC: a.HardwareAddr.String(), OrigMTU: a.MTU,
		OrigUp: a.Flags&net.FlagUp != 0, NS: ns, Index: a.Index}
	r.byMAC[mac.String()] = rec
	return rec
}

func (r *records) save() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	b, err := json.MarshalIndent(r.byMAC, "", "  ")
	if err != nil {
		return err
	}
	if string(b) == string(r.saved) {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(r.path), 0o700); err != nil {
		return err
	}
	if err := atomicfile.WriteFile(r.path, b, 0o600); err != nil {
		return err
	}
	r.saved = b
	return nil
}

// Teardown puts every NIC routerd adopted back in the main namespace under
// its original name, MAC and MTU, without the addresses routerd gave it,
// and forgets the records. It must run before the namespaces are deleted:
// a veth left in a deleted namespace would be destroyed with it.
func (m *Manager) Teardown() error {
	if err := m.records.load(); err != nil {
		return err
	}
	links, err := m.scan()
	if err != nil {
		return err
	}
	var errs []error
	for i := range m.specs {
		s := &m.specs[i]
		rec := m.records.get(s.MatchMAC)
		found := m.find(s, links)
		if rec == nil || found == nil {
			continue
		}
		if err := restore(s, rec, found); err != nil {
			errs = append(errs, fmt.Errorf("restore %s: %w", s.Name, err))
		}
	}
	if len(errs) == 0 {
		if err := os.Remove(m.records.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func restore(s *Spec, rec *record, found *link) error {
	l := found.l
	if found.ns != "" {
		_, moved, err := move(l, found.ns, "")
		if err != nil {
			return err
		}
		l = moved
	}
	h, err := netns.Handle("")
	if err != nil {
		return err
	}
	defer h.Close()
	if _, err := setDown(h, l); err != nil {
		return err
	}
	for _, a := range rec.Addrs {
		if err := h.AddrDel(l, &netlink.Addr{IPNet: netns.IPNet(a)}); err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) {
			return fmt.Errorf("remove %s from %s: %w", a, l.Attrs().Name, err)
		}
	}
	if l.Attrs().Name != rec.OrigName {
		if _, err := rename(h, l, rec.OrigName); err != nil {
			return err
		}
	}
	if mac, err := net.ParseMAC(rec.OrigMAC); err == nil && l.Attrs().HardwareAddr.String() != rec.OrigMAC {
		if err := h.LinkSetHardwareAddr(l, mac); err != nil {
			return fmt.Errorf("restore MAC %s: %w", rec.OrigMAC, err)
		}
	}
	if rec.OrigMTU != 0 && l.Attrs().MTU != rec.OrigMTU {
		if err := h.LinkSetMTU(l, rec.OrigMTU); err != nil {
			return fmt.Errorf("restore MTU %d: %w", rec.OrigMTU, err)
		}
	}
	if rec.OrigUp {
		if err := h.LinkSetUp(l); err != nil {
			return fmt.Errorf("set up: %w", err)
		}
	}
	return nil
}
