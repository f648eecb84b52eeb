package config

import "time"

// [vpn]: the WireGuard interface and its peers.

func (v *validator) vpn(f *fileVPN) {
	if f == nil {
		return
	}
	w := &VPN{
		Interface:      or(f.Interface, "wg0"),
		Implementation: v.enum("vpn.implementation", or(f.Implementation, "auto"), "auto", "kernel", "userspace"),
	}
	v.ifname("vpn.interface", w.Interface)
	w.PrivateKeyFile = v.stateFile(or(f.PrivateKeyFile, w.Interface+".key"))
	if len(f.Addresses) == 0 {
		v.p.errf("vpn.addresses", "at least one tunnel address is required")
	}
	has6 := false
	for i, s := range f.Addresses {
		a := v.prefix(idx("vpn.addresses", i), s, famAny)
		if !a.IsValid() {
			continue
		}
		has6 = has6 || a.Addr().Is6()
		for li, l := range v.c.LAN {
			for _, la := range l.Addresses {
				if la.Masked().Overlaps(a.Masked()) {
					v.p.errf(idx("vpn.addresses", i), "%s overlaps %s of lan[%d] (%s)", s, la.Masked(), li, l.Name)
				}
			}
		}
		w.Addresses = append(w.Addresses, a)
	}
	if f.MTU == nil {
		w.MTU = 1420
	} else {
		w.MTU = v.mtu("vpn.mtu", f.MTU, 576, has6)
	}
	w.ListenPort = 51820
	if f.ListenPort != nil {
		if *f.ListenPort < 1 || *f.ListenPort > 65535 {
			v.p.errf("vpn.listen_port", "%d is outside 1-65535", *f.ListenPort)
		} else {
			w.ListenPort = int(*f.ListenPort)
		}
	}
	if len(f.Peer) == 0 {
		v.p.errf("vpn.peer", "at least one [[vpn.peer]] is required")
	}
	for i, fp := range f.Peer {
		pp := idx("vpn.peer", i)
		peer := v.wgPeer(pp, fp.PublicKey, fp.PresharedKeyFile, fp.PersistentKeepalive)
		if fp.Endpoint == "" {
			v.p.errf(pp+".endpoint", "required (host:port or [v6]:port)")
		} else if ep, err := parseEndpoint(fp.Endpoint); err != nil {
			v.p.errf(pp+".endpoint", "%q: %v", fp.Endpoint, err)
		} else {
			peer.Endpoint = ep
		}
		if len(fp.AllowedIPs) == 0 {
			v.p.errf(pp+".allowed_ips", "at least one prefix is required (0.0.0.0/0 and ::/0 for a full tunnel)")
		}
		for j, s := range fp.AllowedIPs {
			a := v.prefix(idx(pp+".allowed_ips", j), s, famAny)
			if a.IsValid() {
				peer.AllowedIPs = append(peer.AllowedIPs, a.Masked())
			}
		}
		w.Peers = append(w.Peers, peer)
	}
	v.c.VPN = w
}

// wgPeer parses what a WireGuard peer of the tunnel or of the relay has
// alike: its key, preshared key file and keepalive.
func (v *validator) wgPeer(path, key, psk, keepalive string) Peer {
	peer := Peer{PublicKeyText: key}
	if k, ok := wgKey(key); ok {
		peer.PublicKey = k
	} else {
		v.p.errf(path+".public_key", "%q is not a WireGuard key (base64 of 32 bytes)", key)
	}
	if psk != "" {
		peer.PresharedKeyFile = v.stateFile(psk)
	}
	if keepalive != "" {
		peer.PersistentKeepalive = v.duration(path+".persistent_keepalive", keepalive)
		if peer.PersistentKeepalive > 65535*time.Second {
			v.p.errf(path+".persistent_keepalive", "%s is longer than WireGuard allows (65535s)", keepalive)
		}
	}
	return peer
}
