package config

import (
	"errors"
	"io/fs"
	"os"
	"strings"
)

// FileWarnings reports files the config refers to that cannot be read now.
// They are warnings, not errors: a blocklist file may be written later, and
// routerd keeps running on the last good copy meanwhile.
func (c *Config) FileWarnings() []FieldError {
	var p problems
	check := func(path, file string) {
		if _, err := os.Stat(file); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				p.warnf(path, "%s does not exist", file)
			} else {
				p.warnf(path, "%v", err)
			}
		}
	}
	for _, b := range c.Blocklists {
		if b.File != "" {
			check(b.Path+".file", b.File)
		}
		switch {
		case strings.HasPrefix(b.URL, "http://") && b.Block:
			p.warnf(b.Path+".url", "%s is plain http: anyone on the way can change the list, and with it which names the household cannot reach; use https", b.URL)
		case strings.HasPrefix(b.URL, "http://"):
			p.warnf(b.Path+".url", "%s is plain http: anyone on the way can change the list, and with it which path its destinations take; use https", b.URL)
		}
	}
	if c.VPN != nil {
		for i, peer := range c.VPN.Peers {
			if peer.PresharedKeyFile != "" {
				check(idx("vpn.peer", i)+".preshared_key_file", peer.PresharedKeyFile)
			}
		}
	}
	for i, pol := range c.Routing.Policies {
		for j, name := range pol.Users {
			if _, ok := lookupUID(name); !ok {
				p.warnf(idx(idx("routing.policy", i)+".users", j), "%q: no such user on this host; the policy leaves it out until a reload finds it", name)
			}
		}
	}
	if c.Admin != nil {
		check("admin.authorized_keys", c.Admin.AuthorizedKeysFile)
		if len(c.Admin.Listen) == 0 {
			p.warnf("admin.listen", "empty: SSH is served on loopback only")
		}
	}
	if fi, err := os.Stat(c.StateDir); err == nil && !fi.IsDir() {
		p.warnf("state_dir", "%s is not a directory", c.StateDir)
	}
	return p.warnings
}
