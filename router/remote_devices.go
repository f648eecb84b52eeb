package router

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"slices"
	"strings"

	"github.com/routerd/routerd/router/config"
	"github.com/routerd/routerd/router/control"
	"github.com/routerd/routerd/router/vpn"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// routerctl remote add NAME [--full] and remote delete NAME: a device's
// peer goes in or out of the config file through config apply, so it
// persists and can be rolled back like any change. The device's private
// key is made here and handed out once, in its config; the router keeps
// only the public key.

// RemoteDevice is what remote add returns: the device's WireGuard config
// (wg-quick's format, which the WireGuard apps import and scan as a QR
// code).
type RemoteDevice = control.RemoteDevice

// remoteAdd makes a device: its key pair, its next free addresses, its
// peer in the config (applied), and its config.
func (s *Supervisor) remoteAdd(name string, full bool) (RemoteDevice, int, error) {
	cfg := s.config()
	text, err := os.ReadFile(s.path)
	if err != nil {
		return RemoteDevice{}, http.StatusInternalServerError, err
	}
	// The file's devices, which a change applied a moment ago may have
	// added to the running config's.
	if latest, err := config.Parse(text); err == nil {
		cfg = latest
	}
	rc := cfg.Remote
	if rc == nil {
		return RemoteDevice{}, http.StatusConflict, errors.New("the config has no [remote] section: add one first (docs/config.md)")
	}
	if slices.ContainsFunc(rc.Peers, func(p config.RemotePeer) bool { return p.Name == name }) {
		return RemoteDevice{}, http.StatusConflict, fmt.Errorf("a remote device named %q exists: remote delete it first", name)
	}
	addrs, err := nextRemoteAddrs(rc)
	if err != nil {
		return RemoteDevice{}, http.StatusConflict, err
	}
	key, err := wgtypes.GeneratePrivateKey()
	if err != nil {
		return RemoteDevice{}, http.StatusInternalServerError, err
	}
	server, err := vpn.LoadOrCreateKey(rc.PrivateKeyFile)
	if err != nil {
		return RemoteDevice{}, http.StatusInternalServerError, fmt.Errorf("the remote server's key: %w", err)
	}
	var q []string
	for _, a := range addrs {
		q = append(q, fmt.Sprintf("%q", a.String()))
	}
	block := fmt.Sprintf("\n[[remote.peer]]\nname = %q\npublic_key = %q\naddresses = [%s]\nfull_tunnel = %v\n",
		name, key.PublicKey().String(), strings.Join(q, ", "), full)
	next := append(bytes.TrimRight(text, "\n"), '\n')
	if _, code, err := s.applyConfig(append(next, block...), 0); err != nil {
		return RemoteDevice{}, code, err
	}
	return RemoteDevice{Name: name, Config: deviceConfig(cfg, key, server.PublicKey(), addrs, full)}, 0, nil
}

// nextRemoteAddrs are the lowest free address of each family of [remote]'s
// networks (not the router's, not a device's).
func nextRemoteAddrs(rc *config.Remote) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, p := range rc.Addresses {
		used := func(a netip.Addr) bool {
			for _, peer := range rc.Peers {
				for _, pa := range peer.Addresses {
					if pa.Addr() == a {
						return true
					}
				}
			}
			return a == p.Addr()
		}
		a := p.Masked().Addr().Next()
		for p.Contains(a) && used(a) {
			a = a.Next()
		}
		last := !p.Contains(a.Next()) && a.Is4() // the broadcast address
		if !p.Contains(a) || last {
			return nil, fmt.Errorf("remote.addresses %s has no free address left", p)
		}
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

// deviceConfig is the device's wg-quick config: its addresses, the router's
// resolver, and the router as its peer: for all its traffic (full) or for
// the household's networks.
func deviceConfig(cfg *config.Config, key wgtypes.Key, server wgtypes.Key, addrs []netip.Prefix, full bool) string {
	var b strings.Builder
	var as, dns, allowed []string
	for _, a := range addrs {
		as = append(as, a.String())
	}
	for _, a := range cfg.Remote.Addresses {
		dns = append(dns, a.Addr().String())
	}
	if full {
		allowed = []string{"0.0.0.0/0", "::/0"}
	} else {
		for _, p := range cfg.LANNets.All() {
			allowed = append(allowed, p.String())
		}
	}
	fmt.Fprintf(&b, "[Interface]\nPrivateKey = %s\nAddress = %s\nDNS = %s\n\n", key, strings.Join(as, ", "), strings.Join(dns, ", "))
	fmt.Fprintf(&b, "[Peer]\nPublicKey = %s\nEndpoint = %s\nAllowedIPs = %s\nPersistentKeepalive = 25\n", server, cfg.Remote.Endpoint, strings.Join(allowed, ", "))
	return b.String()
}

// withoutPeerBlock removes the [[remote.peer]] block whose name is name
// from a config file's text, up to the next table header; ok is false
// when there is no such block.
func withoutPeerBlock(text []byte, name string) ([]byte, bool) {
	lines := strings.SplitAfter(string(text), "\n")
	start := -1
	for i := 0; i < len(lines); i++ {
		t := strings.TrimSpace(lines[i])
		if t != "[[remote.peer]]" {
			continue
		}
		end := i + 1
		for end < len(lines) && !strings.HasPrefix(strings.TrimSpace(lines[end]), "[") {
			end++
		}
		for _, l := range lines[i+1 : end] {
			k, v, ok := strings.Cut(l, "=")
			if v, _, _ = strings.Cut(v, "#"); ok && strings.TrimSpace(k) == "name" && strings.TrimSpace(v) == fmt.Sprintf("%q", name) {
				start = i
				break
			}
		}
		if start >= 0 {
			out := strings.Join(lines[:start], "") + strings.Join(lines[end:], "")
			return []byte(out), true
		}
		i = end - 1
	}
	return text, false
}
