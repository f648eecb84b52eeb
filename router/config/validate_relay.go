package config

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// [relay]: routerd on a VPS, the far end of the homes' tunnels. Seed 000
// showed the level of checking such a config deserves: every combination
// that cannot work is refused here with its reason, not discovered later
// as silently dropped packets.

// relayOnly are the top-level keys a relay config may have.
var relayOnly = map[string]bool{"hostname": true, "state_dir": true, "relay": true, "status": true}

func (v *validator) relay(f *fileRelay, keys []string) {
	for _, k := range keys {
		if !relayOnly[k] {
			v.p.errf(k, "a relay config ([relay]) has only hostname, state_dir, [relay] and [status]; the router's sections do not apply")
		}
	}
	r := &Relay{
		Interface:   or(f.Interface, "wg0"),
		OuterFamily: v.enum("relay.outer_family", or(f.OuterFamily, "ipv6"), "ipv4", "ipv6"),
	}
	r.Public = v.publicNICs(f.Public)
	v.ifname("relay.interface", r.Interface)
	r.PrivateKeyFile = v.stateFile(or(f.PrivateKeyFile, r.Interface+".key"))
	r.ListenPort = 51820
	if f.ListenPort != nil {
		if *f.ListenPort < 1 || *f.ListenPort > 65535 {
			v.p.errf("relay.listen_port", "%d is outside 1-65535", *f.ListenPort)
		} else {
			r.ListenPort = int(*f.ListenPort)
		}
	}
	if len(f.Addresses) == 0 {
		v.p.errf("relay.addresses", "at least one tunnel address is required (e.g. \"10.64.0.1/24\")")
	}
	for i, s := range f.Addresses {
		a := v.prefix(idx("relay.addresses", i), s, famAny)
		if !a.IsValid() {
			continue
		}
		for j, o := range r.Addresses {
			// More addresses in one tunnel subnet are the SNAT pool's
			// (seed 000's tunnelIPs); other overlaps are mistakes.
			switch {
			case o.Addr() == a.Addr():
				v.p.errf(idx("relay.addresses", i), "%s is also relay.addresses[%d]", s, j)
			case o.Masked() != a.Masked() && o.Masked().Overlaps(a.Masked()):
				v.p.errf(idx("relay.addresses", i), "%s overlaps relay.addresses[%d] (%s)", s, j, o)
			}
		}
		r.Addresses = append(r.Addresses, a)
	}
	r.MTU = 1420
	if f.MTU != nil {
		r.MTU = v.mtu("relay.mtu", f.MTU, 576, r.Has6())
	}
	r.PathMTU = 1500
	if f.PathMTU != nil {
		r.PathMTU = v.mtu("relay.path_mtu", f.PathMTU, 576, r.Has6())
	}
	if r.MTU > 0 && r.PathMTU > 0 {
		overhead := ipHeader(r.OuterFamily == "ipv6") + udpHeader + wgHeader
		if r.PathMTU-overhead < 576 || (r.Has6() && r.PathMTU-overhead < 1280) {
			v.p.errf("relay.path_mtu", "%d leaves %d bytes inside the tunnel after %d of %s, UDP and WireGuard headers: too little to carry the tunnel's traffic",
				r.PathMTU, r.PathMTU-overhead, overhead, r.OuterFamily)
		} else if r.MTU > r.PathMTU-overhead {
			v.p.warnf("relay.mtu", "%d is more than path_mtu %d leaves inside the tunnel (%d): full-size packets will be fragmented; TCP is clamped to fit",
				r.MTU, r.PathMTU, r.PathMTU-overhead)
		}
	}
	r.FlowOffload = f.FlowOffload == nil || *f.FlowOffload
	r.MaxConnections = 262144
	if f.MaxConnections != nil {
		if n := v.maxConnections("relay.max_connections", *f.MaxConnections); n != 0 {
			r.MaxConnections = n
		}
	}
	if f.PublicKeyFile != "" {
		r.PublicKeyFile = v.stateFile(f.PublicKeyFile)
	}
	r.ForwardDrop = v.enum("relay.forward_policy", or(f.ForwardPolicy, "drop"), "drop", "accept") == "drop"
	v.relayNAT(r, f)
	v.relayPeers(r, f.Peer)
	v.relayForwards(r, f.Forward)
	v.c.Relay = r
}

// publicNICs reads relay.public: one NIC ("eth0") or several (seed 000's
// interfaces: a VPS with two uplinks).
func (v *validator) publicNICs(val any) []string {
	var names []string
	switch x := val.(type) {
	case nil:
		v.p.errf("relay.public", "required: the VPS's public NIC (or a list of them)")
		return nil
	case string:
		if x == "" {
			v.p.errf("relay.public", "required: the VPS's public NIC (or a list of them)")
			return nil
		}
		v.ifname("relay.public", x)
		return []string{x}
	case []any:
		for i, e := range x {
			s, ok := e.(string)
			if !ok {
				v.p.errf(idx("relay.public", i), "want a NIC's name, got %s", describe(e))
				continue
			}
			v.ifname(idx("relay.public", i), s)
			names = append(names, s)
		}
		if len(names) == 0 {
			v.p.errf("relay.public", "required: at least one public NIC")
		}
		return names
	}
	v.p.errf("relay.public", "want a NIC's name or a list of them, got %s", describe(val))
	return nil
}

func (v *validator) relayNAT(r *Relay, f *fileRelay) {
	for i, s := range f.SNATPool {
		a := v.addr(idx("relay.snat_pool", i), s, famAny)
		if !a.IsValid() {
			continue
		}
		if slices.Contains(r.SNATPool, a) {
			v.p.errf(idx("relay.snat_pool", i), "%s is listed twice", a)
			continue
		}
		for _, t := range r.Addresses {
			if t.Masked().Contains(a) {
				v.p.errf(idx("relay.snat_pool", i), "%s is inside the tunnel's %s: the pool holds public addresses", a, t.Masked())
			}
		}
		if a.Is6() && !r.Has6() || a.Is4() && !r.Has4() {
			v.p.errf(idx("relay.snat_pool", i), "%s would never be used: relay.addresses has no %s address, so the tunnel carries no %s", a, famName(a.Is6()), famName(a.Is6()))
		}
		r.SNATPool = append(r.SNATPool, a)
	}
	switch {
	case f.Masquerade != nil && *f.Masquerade && len(f.SNATPool) > 0:
		v.p.errf("relay.masquerade", "true together with snat_pool: choose one (the pool replaces masquerade)")
	case f.Masquerade == nil:
		r.Masquerade = len(f.SNATPool) == 0
	default:
		r.Masquerade = *f.Masquerade
	}
}

func famName(v6 bool) string {
	if v6 {
		return "IPv6"
	}
	return "IPv4"
}

func (v *validator) relayPeers(r *Relay, peers []fileRelayPeer) {
	if len(peers) == 0 {
		v.p.errf("relay.peer", "at least one [[relay.peer]] is required")
	}
	names := map[string]int{}
	keys := map[string]int{}
	for i, fp := range peers {
		pp := idx("relay.peer", i)
		peer := RelayPeer{Name: fp.Name, Peer: v.wgPeer(pp, fp.PublicKey, fp.PresharedKeyFile, fp.PersistentKeepalive)}
		if !validLabel(fp.Name) {
			v.p.errf(pp+".name", "%q: a peer needs a name of letters, digits and '-' (status shows it)", fp.Name)
		} else if j, dup := names[fp.Name]; dup {
			v.p.errf(pp+".name", "%q is also the name of relay.peer[%d]", fp.Name, j)
		} else {
			names[fp.Name] = i
		}
		if j, dup := keys[fp.PublicKey]; dup && peer.PublicKey != ([32]byte{}) {
			v.p.errf(pp+".public_key", "is also relay.peer[%d]'s: WireGuard knows a peer by its key", j)
		} else if !dup {
			keys[fp.PublicKey] = i
		}
		if fp.Endpoint != "" {
			ep, err := parseEndpoint(fp.Endpoint)
			switch {
			case err != nil:
				v.p.errf(pp+".endpoint", "%q: %v", fp.Endpoint, err)
			case ep.Addr.Is6() && r.OuterFamily == "ipv4":
				// Seed 000's one forbidden override: the outer header
				// is provably IPv6, and an IPv4 clamp is 20 bytes too big.
				v.p.errf(pp+".endpoint", "%s is IPv6 but relay.outer_family is \"ipv4\": the MSS would be 20 bytes too large and full-size packets dropped in the tunnel", fp.Endpoint)
			default:
				peer.Endpoint = ep
			}
		}
		if len(fp.AllowedIPs) == 0 {
			v.p.errf(pp+".allowed_ips", "at least one prefix is required: the peer's tunnel addresses (e.g. \"10.64.0.2/32\")")
		}
		for j, s := range fp.AllowedIPs {
			ap := idx(pp+".allowed_ips", j)
			a := v.prefix(ap, s, famAny)
			if !a.IsValid() {
				continue
			}
			a = a.Masked()
			switch {
			case a.Bits() == 0:
				v.p.errf(ap, "%s would route all of the relay's own traffic into the tunnel", s)
				continue
			case a.Addr().Is6() && !r.Has6() || a.Addr().Is4() && !r.Has4():
				v.p.errf(ap, "%s is %s but relay.addresses has no %s address: the relay could not answer or NAT it", s, famName(a.Addr().Is6()), famName(a.Addr().Is6()))
			}
			for _, t := range r.Addresses {
				if t.Addr() != t.Masked().Addr() && a.Contains(t.Addr()) {
					v.p.errf(ap, "%s holds the relay's own tunnel address %s", s, t.Addr())
				}
			}
			for pi, other := range r.Peers {
				for _, o := range other.AllowedIPs {
					if o.Overlaps(a) {
						v.p.errf(ap, "%s overlaps %s of relay.peer[%d] (%s): WireGuard would give it to one of them only", s, o, pi, other.Name)
					}
				}
			}
			peer.AllowedIPs = append(peer.AllowedIPs, a)
		}
		r.Peers = append(r.Peers, peer)
	}
}

func protos(s string) []string {
	switch s {
	case "tcp", "udp":
		return []string{s}
	case "tcp+udp":
		return []string{"tcp", "udp"}
	}
	return nil
}

func (v *validator) relayForwards(r *Relay, fwds []fileRelayForward) {
	names := map[string]int{}
	for i, ff := range fwds {
		fp := idx("relay.forward", i)
		fw := RelayForward{Name: ff.Name, Protos: protos(ff.Proto)}
		if fw.Protos == nil {
			v.p.errf(fp+".proto", "%q is not one of \"tcp\", \"udp\", \"tcp+udp\"", ff.Proto)
		}
		if ff.Name != "" {
			if !validLabel(ff.Name) {
				v.p.errf(fp+".name", "%q: letters, digits and '-'", ff.Name)
			} else if j, dup := names[ff.Name]; dup {
				v.p.errf(fp+".name", "%q is also the name of relay.forward[%d]", ff.Name, j)
			}
			names[ff.Name] = i
		}
		from, to, err := parsePorts(ff.Ports)
		if err != nil {
			v.p.errf(fp+".ports", "%q: %v (want \"443\" or \"60000-60100\")", ff.Ports, err)
		}
		fw.From, fw.To = from, to
		if ff.ToPort != nil {
			switch {
			case *ff.ToPort < 1 || *ff.ToPort > 65535:
				v.p.errf(fp+".to_port", "%d is outside 1-65535", *ff.ToPort)
			case from != to:
				v.p.errf(fp+".to_port", "applies to a single port; a range %s keeps its ports", ff.Ports)
			default:
				fw.ToPort = uint16(*ff.ToPort)
			}
		}
		if fw.Protos != nil && slices.Contains(fw.Protos, "udp") && err == nil && from <= uint16(r.ListenPort) && uint16(r.ListenPort) <= to {
			v.p.errf(fp+".ports", "%s holds udp/%d, the relay's own WireGuard port: the tunnel itself would be forwarded away", ff.Ports, r.ListenPort)
		}
		target, aerr := netip.ParseAddr(ff.To)
		switch {
		case ff.To == "":
			v.p.errf(fp+".to", "required: a peer's tunnel address")
		case aerr != nil:
			hint := ""
			if _, perr := netip.ParseAddrPort(ff.To); perr == nil {
				hint = " (give the port as to_port)"
			}
			v.p.errf(fp+".to", "%q is not an IP address%s", ff.To, hint)
		default:
			target = target.Unmap()
			if owner := r.PeerOf(target); owner == "" {
				v.p.errf(fp+".to", "%s is in no peer's allowed_ips: nothing would carry it into the tunnel", target)
			}
			for _, a := range r.Addresses {
				if a.Addr() == target {
					v.p.errf(fp+".to", "%s is the relay's own tunnel address", target)
				}
			}
			fw.Target = target
		}
		fw.SNATPool = v.enum(fp+".snat", or(ff.SNAT, "none"), "none", "pool") == "pool"
		for j, s := range ff.MatchIPs {
			a := v.addr(idx(fp+".match_ips", j), s, famAny)
			switch {
			case !a.IsValid():
			case fw.Target.IsValid() && a.Is6() != fw.Target.Is6():
				v.p.errf(idx(fp+".match_ips", j), "%s and the target %s are of different families: nothing arriving there could be forwarded", a, fw.Target)
			default:
				fw.MatchIPs = append(fw.MatchIPs, a)
			}
		}
		if fw.Protos != nil && err == nil && fw.Target.IsValid() {
			for j, o := range r.Forwards {
				if o.Target.Is6() != fw.Target.Is6() || o.To < fw.From || fw.To < o.From || !sharesIP(o.MatchIPs, fw.MatchIPs) {
					continue
				}
				for _, p := range fw.Protos {
					if slices.Contains(o.Protos, p) {
						v.p.errf(fp+".ports", "%s/%s overlaps relay.forward[%d] (%s) for %s", p, ff.Ports, j, o, famName(fw.Target.Is6()))
						break
					}
				}
			}
			r.Forwards = append(r.Forwards, fw)
		}
	}
}

// sharesIP reports whether two forwards' match_ips overlap: one that
// answers on given addresses wins over one that answers on all of them, so
// only two of the same kind can collide.
func sharesIP(a, b []netip.Addr) bool {
	if len(a) == 0 || len(b) == 0 {
		return len(a) == len(b)
	}
	for _, x := range a {
		if slices.Contains(b, x) {
			return true
		}
	}
	return false
}

// PeerOf returns the name of the peer whose allowed_ips hold a, or "".
func (r *Relay) PeerOf(a netip.Addr) string {
	for _, p := range r.Peers {
		for _, pf := range p.AllowedIPs {
			if pf.Contains(a) {
				return p.Name
			}
		}
	}
	return ""
}

// [[publish]]: LAN services reached through the relay.

func (v *validator) publish(fps []filePublish) {
	seen := map[string]int{}
	names := map[string]int{}
	for i, fp := range fps {
		pp := idx("publish", i)
		if v.c.VPN == nil {
			v.p.errf(pp, "needs a [vpn] section: services are published through the tunnel to the relay")
			return
		}
		pub := Publish{Name: fp.Name, Protos: protos(fp.Proto)}
		if !validSetName(fp.Name) {
			v.p.errf(pp+".name", "%q: a name of letters, digits, '-' and '_' is required (status and counters show it)", fp.Name)
		} else if j, dup := names[fp.Name]; dup {
			v.p.errf(pp+".name", "%q is also the name of publish[%d]", fp.Name, j)
		} else {
			names[fp.Name] = i
		}
		if pub.Protos == nil {
			v.p.errf(pp+".proto", "%q is not one of \"tcp\", \"udp\", \"tcp+udp\"", fp.Proto)
		}
		if fp.Port < 1 || fp.Port > 65535 {
			v.p.errf(pp+".port", "%d is outside 1-65535", fp.Port)
		} else {
			pub.Port = uint16(fp.Port)
			for _, p := range pub.Protos {
				key := fmt.Sprintf("%s/%d", p, fp.Port)
				if j, dup := seen[key]; dup {
					v.p.errf(pp+".port", "%s is already published by publish[%d]", key, j)
				}
				seen[key] = i
			}
		}
		if fp.To == "" && fp.To6 == "" {
			v.p.errf(pp+".to", "required: the LAN host as ip:port (and to6 for IPv6)")
		}
		check := func(key, s string, v6 bool) netip.AddrPort {
			if s == "" {
				return netip.AddrPort{}
			}
			to, err := parseToAddrPort(s, pub.Port)
			switch {
			case err != nil:
				v.p.errf(pp+"."+key, "%q: %v", s, err)
			case to.Addr().Is6() != v6:
				v.p.errf(pp+"."+key, "%s is not an %s address (to is for IPv4 arrivals, to6 for IPv6)", to.Addr(), famName(v6))
			case !v.inLANSubnet(to.Addr()) && !to.Addr().IsPrivate():
				v.p.errf(pp+"."+key, "%s is neither inside a LAN subnet nor a private address (a container's on one of this host's bridges)", to.Addr())
			case v.c.Netns.Transit4.Contains(to.Addr()) || v.c.Netns.Transit6.Contains(to.Addr()):
				v.p.errf(pp+"."+key, "%s is in the transit network: give a LAN host, a container, or \"host:PORT\"", to.Addr())
			case !hasFamily(v.c.VPN.Addresses, v6):
				v.p.errf(pp+"."+key, "vpn.addresses has no %s address: nothing %s arrives through the tunnel", famName(v6), famName(v6))
			default:
				return to
			}
			return netip.AddrPort{}
		}
		if hp, ok := strings.CutPrefix(fp.To, "host:"); ok {
			// A service on this host (seed 002's home server): both
			// families arrive, at the main namespace's transit addresses.
			port, err := parsePort(hp)
			switch {
			case err != nil:
				v.p.errf(pp+".to", "%q: %v (want \"host:8080\")", fp.To, err)
			case fp.To6 != "":
				v.p.errf(pp+".to6", "not with to = \"host:PORT\", which takes both families")
			default:
				pub.HostPort = port
				pub.Remote = v.c.Remote != nil && int(port) == v.c.Remote.ListenPort
				if pub.Remote && (len(pub.Protos) != 1 || pub.Protos[0] != "udp") {
					v.p.errf(pp+".proto", "[remote]'s WireGuard port is UDP: proto = \"udp\"")
				}
			}
			v.c.Publish = append(v.c.Publish, pub)
			continue
		}
		if ref, ok := strings.CutPrefix(fp.To, "docker:"); ok {
			// A container of this host (seed 002's), by name: its
			// address is Docker's to give and may change.
			name, port, hasPort := strings.Cut(ref, ":")
			pub.Container, pub.ContainerPort = name, pub.Port
			if hasPort {
				p, err := parsePort(port)
				if err != nil {
					v.p.errf(pp+".to", "%q: %v (want \"docker:NAME\" or \"docker:NAME:8080\")", fp.To, err)
				}
				pub.ContainerPort = p
			}
			if !validContainerName(name) {
				v.p.errf(pp+".to", "%q is not a Docker container name", name)
			}
			if fp.To6 != "" {
				v.p.errf(pp+".to6", "not with to = \"docker:NAME\", which takes the container's addresses of both families")
			}
			v.c.Publish = append(v.c.Publish, pub)
			continue
		}
		pub.To = check("to", fp.To, false)
		pub.To6 = check("to6", fp.To6, true)
		v.c.Publish = append(v.c.Publish, pub)
	}
}

// validContainerName: Docker's rule for names, [a-zA-Z0-9][a-zA-Z0-9_.-]*.
func validContainerName(s string) bool {
	for i, c := range s {
		alnum := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
		if !alnum && (i == 0 || (c != '_' && c != '.' && c != '-')) {
			return false
		}
	}
	return s != ""
}
