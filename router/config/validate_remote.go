package config

import (
	"net"
	"net/netip"
	"strings"
	"time"
)

// [remote]: the household's own devices reaching home over WireGuard.

func (v *validator) remote(f *fileRemote) {
	if f == nil {
		return
	}
	r := &Remote{Interface: or(f.Interface, "wg1"), ListenPort: 51821, Endpoint: f.Endpoint}
	v.ifname("remote.interface", r.Interface)
	if f.ListenPort != nil {
		if *f.ListenPort < 1 || *f.ListenPort > 65535 {
			v.p.errf("remote.listen_port", "%d is outside 1-65535", *f.ListenPort)
		} else {
			r.ListenPort = int(*f.ListenPort)
		}
	}
	if v.c.VPN != nil && v.c.VPN.ListenPort == r.ListenPort {
		v.p.errf("remote.listen_port", "%d is vpn.listen_port too: both sockets live in the wan namespace", r.ListenPort)
	}
	r.PrivateKeyFile = v.stateFile(or(f.PrivateKeyFile, r.Interface+".key"))
	if len(f.Addresses) == 0 {
		v.p.errf("remote.addresses", "required: the router's address on the devices' network, e.g. \"10.99.0.1/24\"")
	}
	for i, s := range f.Addresses {
		if a := v.prefix(idx("remote.addresses", i), s, famAny); a.IsValid() {
			r.Addresses = append(r.Addresses, a)
		}
	}
	if f.Endpoint == "" {
		v.p.errf("remote.endpoint", "required: the name or address and port devices reach the router at (\"home.example.org:%d\")", r.ListenPort)
	} else if _, port, err := net.SplitHostPort(f.Endpoint); err != nil || port == "" {
		v.p.errf("remote.endpoint", "%q: want host:port", f.Endpoint)
	}
	names := map[string]int{}
	for i, fp := range f.Peer {
		pp := idx("remote.peer", i)
		p := RemotePeer{Name: fp.Name, PublicKeyText: fp.PublicKey, FullTunnel: fp.FullTunnel}
		v.uniqueName(pp, "remote.peer", fp.Name, i, names)
		if k, ok := wgKey(fp.PublicKey); ok {
			p.PublicKey = k
		} else {
			v.p.errf(pp+".public_key", "%q is not a WireGuard key (base64 of 32 bytes)", fp.PublicKey)
		}
		if len(fp.Addresses) == 0 {
			v.p.errf(pp+".addresses", "required: the device's address in %s", joinPrefixes(r.Addresses))
		}
		for j, s := range fp.Addresses {
			a := v.prefix(idx(pp+".addresses", j), s, famAny)
			if !a.IsValid() {
				continue
			}
			if a.Bits() != a.Addr().BitLen() || !inAny(r.Addresses, a.Addr()) || slicesHasAddr(r.Addresses, a.Addr()) {
				v.p.errf(idx(pp+".addresses", j), "%s: want one address (/32 or /128) in %s, not the router's", s, joinPrefixes(r.Addresses))
				continue
			}
			for _, o := range r.Peers {
				if slicesHasPrefix(o.Addresses, a) {
					v.p.errf(idx(pp+".addresses", j), "%s is remote.peer %q's too", a, o.Name)
				}
			}
			p.Addresses = append(p.Addresses, a)
		}
		r.Peers = append(r.Peers, p)
	}
	v.c.Remote = r
	access := Access(or(f.Access, string(AccessAll)))
	if access != AccessAll && access != AccessInternet && access != AccessIsolated {
		v.p.errf("remote.access", "%q is not one of \"all\", \"internet\", \"isolated\"", f.Access)
	}
	v.addLAN(LAN{Name: r.Interface, Addresses: r.Addresses, PDSubnet: -1, Access: access, Remote: true})
}

func inAny(ps []netip.Prefix, a netip.Addr) bool {
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

func slicesHasAddr(ps []netip.Prefix, a netip.Addr) bool {
	for _, p := range ps {
		if p.Addr() == a {
			return true
		}
	}
	return false
}

func slicesHasPrefix(ps []netip.Prefix, x netip.Prefix) bool {
	for _, p := range ps {
		if p == x {
			return true
		}
	}
	return false
}

func joinPrefixes(ps []netip.Prefix) string {
	var ss []string
	for _, p := range ps {
		ss = append(ss, p.String())
	}
	return strings.Join(ss, ", ")
}

// [portmap]: ports LAN devices ask for.
func (v *validator) portmap(f *filePortMap) {
	if f == nil {
		return
	}
	pm := &PortMap{From: 1024, To: 65535, MaxPerClient: 32, MaxLifetime: 24 * time.Hour}
	protos := f.Protocols
	if protos == nil {
		protos = []string{"upnp", "natpmp", "pcp"}
	}
	for i, p := range protos {
		switch p {
		case "natpmp":
			pm.NATPMP = true
		case "pcp":
			pm.PCP = true
		case "upnp":
			pm.UPnP = true
		default:
			v.p.errf(idx("portmap.protocols", i), "%q is not one of \"upnp\", \"natpmp\", \"pcp\"", p)
		}
	}
	pm.Listen = f.Listen
	if f.Listen == nil {
		for _, l := range v.c.LAN {
			if !l.Remote {
				pm.Listen = append(pm.Listen, l.Name)
			}
		}
	}
	for i, l := range f.Listen {
		if !v.isLAN(l) {
			v.p.errf(idx("portmap.listen", i), "%q is not a [[lan]] name", l)
		}
	}
	if f.Ports != "" {
		lo, hi, ok := strings.Cut(f.Ports, "-")
		a, err1 := parsePort(lo)
		b, err2 := parsePort(hi)
		if !ok || err1 != nil || err2 != nil || b < a {
			v.p.errf("portmap.ports", "%q: want a range such as \"1024-65535\"", f.Ports)
		} else {
			pm.From, pm.To = a, b
		}
	}
	if f.MaxPerClient != nil {
		if *f.MaxPerClient < 1 || *f.MaxPerClient > 1000 {
			v.p.errf("portmap.max_per_client", "%d is outside 1-1000", *f.MaxPerClient)
		} else {
			pm.MaxPerClient = int(*f.MaxPerClient)
		}
	}
	if f.MaxLifetime != "" {
		pm.MaxLifetime = v.duration("portmap.max_lifetime", f.MaxLifetime)
	}
	v.c.PortMap = pm
}
