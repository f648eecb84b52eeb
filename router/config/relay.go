package config

import (
	"fmt"
	"net/netip"
)

// Relay is routerd as the VPS end of the tunnel (seeds 002 and 000): a
// WireGuard server whose peers are home routers, public ports forwarded
// to them with the client's address kept, and the peers' own internet
// traffic NATed out of the public NIC.
type Relay struct {
	Public         []string // the VPS's public NICs; neither renamed nor moved
	Interface      string
	ListenPort     int
	PrivateKeyFile string
	Addresses      []netip.Prefix
	MTU            int
	// Masquerade NATs the peers' traffic to the public address; SNATPool
	// spreads it over these addresses instead, by a hash of the source,
	// so one peer keeps one address. A family without pool addresses is
	// masqueraded.
	Masquerade     bool
	SNATPool       []netip.Addr
	MaxConnections int
	FlowOffload    bool // flowtables for what crosses the tunnel, where the kernel has them
	// PathMTU and OuterFamily give the TCP MSS clamp: see MSS.
	PathMTU     int
	OuterFamily string // "ipv4" | "ipv6"
	Peers       []RelayPeer
	Forwards    []RelayForward
	// PublicKeyFile, when set, is where the tunnel's public key is
	// written (for the peers' configs).
	PublicKeyFile string
	// ForwardDrop: the forward chain drops what the relay does not
	// forward itself (seed 002); false leaves the VPS's other forwarding
	// (a container bridge) alone.
	ForwardDrop bool
}

// TunnelPool is the relay's tunnel addresses of a family: the sources a
// forward with snat = "pool" takes (seed 000).
func (r *Relay) TunnelPool(v6 bool) []netip.Addr {
	var out []netip.Addr
	for _, a := range r.Addresses {
		if a.Addr().Is6() == v6 {
			out = append(out, a.Addr())
		}
	}
	return out
}

// RelayPeer is one home router: a WireGuard peer with a name. Its
// Endpoint is usually zero: home routers dial in.
type RelayPeer struct {
	Name string
	Peer
}

// RelayForward is a public port or range forwarded into the tunnel.
type RelayForward struct {
	Name     string
	Protos   []string // "tcp", "udp"
	From, To uint16   // the public ports
	Target   netip.Addr
	ToPort   uint16 // 0: the port is kept
	// SNATPool: the client's address is replaced by one of the relay's
	// tunnel addresses (a sink that only knows its tunnel peer); false
	// keeps the client's address (a routerd home that routes replies
	// back).
	SNATPool bool
	// MatchIPs: the public addresses the forward answers on; empty: all
	// of the relay's.
	MatchIPs []netip.Addr
}

// String is the forward as status shows it: "tcp+udp 60000-60100 → [fd55::2]".
func (f RelayForward) String() string {
	proto := f.Protos[0]
	if len(f.Protos) == 2 {
		proto = "tcp+udp"
	}
	ports := fmt.Sprint(f.From)
	if f.To != f.From {
		ports = fmt.Sprintf("%d-%d", f.From, f.To)
	}
	to := f.Target.String()
	if f.Target.Is6() {
		to = "[" + to + "]"
	}
	if f.ToPort != 0 {
		to = fmt.Sprintf("%s:%d", to, f.ToPort)
	}
	return fmt.Sprintf("%s %s → %s", proto, ports, to)
}

// WireGuard's encapsulation: UDP header, and the data message's header
// (type, receiver index, counter: 16 bytes) and Poly1305 tag (16).
const (
	udpHeader = 8
	wgHeader  = 32
	tcpHeader = 20
)

func ipHeader(v6 bool) int {
	if v6 {
		return 40
	}
	return 20
}

// MSS is the largest TCP segment of the given inner family that fits the
// tunnel: the inner packet may be no larger than the tunnel's MTU, nor than
// what the path carries after the outer IP, UDP and WireGuard headers.
// With path_mtu 1500 and mtu 1420:
//
//	outer  inner  inner MTU          MSS
//	IPv4   IPv4   min(1420, 1440)    1380
//	IPv4   IPv6   min(1420, 1440)    1360
//	IPv6   IPv4   min(1420, 1420)    1380
//	IPv6   IPv6   min(1420, 1420)    1360
//
// and with path_mtu 1492 (PPPoE) and an IPv6 outer: 1372 and 1352. A
// forwarded connection cannot learn a smaller path MTU by ICMP (the
// messages are addressed to the relay, not to the client), so the clamp is
// the only thing that keeps full-size segments from being dropped.
func (r *Relay) MSS(innerV6 bool) uint16 {
	inner := min(r.MTU, r.PathMTU-ipHeader(r.OuterFamily == "ipv6")-udpHeader-wgHeader)
	return uint16(inner - ipHeader(innerV6) - tcpHeader)
}

// Has4 and Has6 report whether the tunnel carries the family.
func (r *Relay) Has4() bool { return hasFamily(r.Addresses, false) }
func (r *Relay) Has6() bool { return hasFamily(r.Addresses, true) }

func hasFamily(ps []netip.Prefix, v6 bool) bool {
	for _, p := range ps {
		if p.Addr().Is6() == v6 {
			return true
		}
	}
	return false
}
