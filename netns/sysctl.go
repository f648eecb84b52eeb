package netns

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Sysctl is one kernel setting in one namespace. Key is the path under
// /proc/sys with slashes ("net/ipv4/conf/wan0/rp_filter"), so interface
// names with dots stay unambiguous.
type Sysctl struct {
	NS    string
	Key   string
	Value string
}

func (s Sysctl) String() string {
	ns := s.NS
	if ns == "" {
		ns = "main"
	}
	return fmt.Sprintf("%s=%s in %s", strings.ReplaceAll(s.Key, "/", "."), s.Value, ns)
}

// Interface is the interface a per-interface setting is of
// ("net/ipv4/conf/wg0/rp_filter": wg0); "" for any other setting,
// including the all and default entries.
func (s Sysctl) Interface() string {
	for _, fam := range []string{"net/ipv4/conf/", "net/ipv6/conf/"} {
		if rest, ok := strings.CutPrefix(s.Key, fam); ok {
			iface, _, ok := strings.Cut(rest, "/")
			if ok && iface != "all" && iface != "default" {
				return iface
			}
		}
	}
	return ""
}

// SetSysctls writes the settings that differ from what the kernel has and
// returns how many it changed. /proc/sys/net shows the namespace of the
// thread that opens it, so each setting is read and written from a thread
// inside its namespace.
func SetSysctls(ss []Sysctl) (changed int, err error) {
	byNS := map[string][]Sysctl{}
	var order []string
	for _, s := range ss {
		if _, ok := byNS[s.NS]; !ok {
			order = append(order, s.NS)
		}
		byNS[s.NS] = append(byNS[s.NS], s)
	}
	for _, ns := range order {
		err := Do(ns, func() error {
			for _, s := range byNS[ns] {
				path := filepath.Join("/proc/sys", s.Key)
				cur, err := os.ReadFile(path)
				if err != nil {
					return fmt.Errorf("read sysctl %s: %w", s, err)
				}
				if string(bytes.TrimSpace(cur)) == s.Value {
					continue
				}
				if err := os.WriteFile(path, []byte(s.Value), 0o644); err != nil {
					return fmt.Errorf("set sysctl %s: %w", s, err)
				}
				changed++
			}
			return nil
		})
		if err != nil {
			return changed, err
		}
	}
	return changed, nil
}

// ReadSysctl returns a setting's current value in namespace ns.
func ReadSysctl(ns, key string) (string, error) {
	var v string
	err := Do(ns, func() error {
		b, err := os.ReadFile(filepath.Join("/proc/sys", key))
		v = string(bytes.TrimSpace(b))
		return err
	})
	return v, err
}
