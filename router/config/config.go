// Package config owns routerd's configuration contract: the TOML schema, strict
// parsing (unknown keys are errors), and validation of everything that can be
// known before the machine is touched. A Config that Parse returns is valid:
// components never re-check it. Parse reports every problem at once, each with
// its field path, so a user fixes a config in one pass.
//
// The schema is documented key by key in docs/config.md; the example
// ../shared/config.example.toml is the contract other tools rely on.
package config

import (
	"crypto/ed25519"
	"crypto/x509"
	"net"
	"net/netip"
	"strconv"
	"time"

	mdns "github.com/miekg/dns"
	"github.com/routerd/routerd/internal/via"
	"golang.org/x/crypto/ssh"
)

// Links routerd creates for the transit network. Their names are reserved:
// a NIC may not take them.
const (
	TransitWANLink  = "tr-wan"   // main namespace end of the wan namespace's veth
	TransitVPNLink  = "tr-vpn"   // main namespace end of the vpn namespace's veth
	TransitPeerLink = "transit0" // the far end, in the wan and vpn namespaces
)

// Config is a validated routerd configuration.
type Config struct {
	Hostname   string
	StateDir   string
	Netns      Netns
	WAN        WAN
	LAN        []LAN
	DNS        DNS
	VPN        *VPN // nil when the config has no [vpn] section
	Routing    Routing
	Blocklists []Blocklist
	Firewall   Firewall
	Status     Status
	Admin      *Admin // nil: no SSH management
	Time       *Time  // nil: no [time] section: the clock is left alone
	Update     Update
	Publish    []Publish
	// Relay is set for a relay (a VPS forwarding into the tunnel): such a
	// config has nothing else but hostname, state_dir and [status].
	Relay *Relay
	// Routes are static routes to networks behind LAN gateways.
	Routes []StaticRoute
	// Remote is the WireGuard server for the household's own devices on
	// the road; its interface is also a LAN (LAN.Remote) of its own.
	Remote *Remote
	// PortMap lets LAN devices map ports of the WAN address (NAT-PMP,
	// PCP); nil: off.
	PortMap *PortMap
	// SQM is bufferbloat control ([sqm]); nil: off.
	SQM *SQM

	LANNets LANNets // derived from LAN
}

// Publish forwards a port arriving through the tunnel (on vpn.addresses)
// to a LAN host, keeping the internet client's address; the connection's
// replies leave through the tunnel whatever the host's own policy.
type Publish struct {
	Name   string
	Protos []string // "tcp", "udp"
	Port   uint16
	To     netip.AddrPort // IPv4 arrivals; invalid: none
	To6    netip.AddrPort // IPv6 arrivals; invalid: none
	// HostPort, when not 0, publishes a service of the routerd host
	// itself (to = "host:PORT"), for both families.
	HostPort uint16
	// Remote: HostPort is [remote]'s WireGuard port (UDP), whose socket
	// lives in the wan namespace: the devices reach home through the
	// relay from behind a CGNAT'd WAN.
	Remote bool
	// Container, when set, publishes a Docker container's service (to =
	// "docker:NAME[:PORT]") on ContainerPort, at the addresses Docker
	// reports for it as they change; To and To6 are left invalid here.
	Container     string
	ContainerPort uint16
}

// Update configures updates of the image (A/B slots).
type Update struct {
	// SigningKeyFile is a PEM ed25519 public key; with it, only uploads
	// signed by its private key are installed. Relative to the config
	// file's directory; Load reads it into Key.
	SigningKeyFile string
	Key            ed25519.PublicKey
	// Probation is how long a new version has to become healthy before
	// the box goes back to the old one.
	Probation time.Duration
}

// Upstream is one DNS server the resolver forwards to.
type Upstream struct {
	Addr netip.AddrPort
	// TLS: DNS over TLS (RFC 7858), the certificate checked for
	// ServerName against the system's roots (or dns.tls_ca_file).
	TLS        bool
	ServerName string
}

// Time is the clock's synchronisation.
type Time struct {
	Servers []string // SNTP servers: host or host:port
	// Serve answers NTP on the LAN addresses and hands them out in DHCP.
	Serve bool
	// SetClock lets routerd set the system clock (the appliance); false
	// leaves it to the host's own time daemon and only measures and
	// serves.
	SetClock bool
}

// Admin is SSH management from the LAN: routerctl commands only.
type Admin struct {
	Listen []string // LAN interface names (loopback is always served)
	Port   uint16
	// AuthorizedKeysFile is the OpenSSH authorized_keys file; a relative
	// path is relative to the config file's directory (Load resolves it).
	AuthorizedKeysFile string
	// Keys are the keys it held when the config was loaded; KeyFrom, by
	// key fingerprint (SHA256:...), the addresses a key with a from=
	// option may log in from.
	Keys     []ssh.PublicKey
	KeyFrom  map[string][]netip.Prefix
	BanAfter int
	BanTime  time.Duration
}

// Netns describes the namespaces and the transit network joining them.
type Netns struct {
	WAN, VPN string // namespace names
	Bridge   string // transit bridge in the main namespace
	Transit4 netip.Prefix
	Transit6 netip.Prefix
}

// Transit addresses: main .1/::1, vpn .2/::2, wan .3/::3.
func (n Netns) MainAddr4() netip.Prefix { return nth(n.Transit4, 1) }
func (n Netns) VPNAddr4() netip.Prefix  { return nth(n.Transit4, 2) }
func (n Netns) WANAddr4() netip.Prefix  { return nth(n.Transit4, 3) }
func (n Netns) MainAddr6() netip.Prefix { return nth(n.Transit6, 1) }
func (n Netns) VPNAddr6() netip.Prefix  { return nth(n.Transit6, 2) }
func (n Netns) WANAddr6() netip.Prefix  { return nth(n.Transit6, 3) }

// Gateways are the transit addresses of path p's namespace: where the main
// namespace routes p's traffic.
func (n Netns) Gateways(p via.Path) (v4, v6 netip.Addr) {
	if p == via.VPN {
		return n.VPNAddr4().Addr(), n.VPNAddr6().Addr()
	}
	return n.WANAddr4().Addr(), n.WANAddr6().Addr()
}

// nth returns the i-th address of p with p's prefix length.
func nth(p netip.Prefix, i int) netip.Prefix {
	a := p.Masked().Addr()
	for ; i > 0; i-- {
		a = a.Next()
	}
	return netip.PrefixFrom(a, p.Bits())
}

// LAN is one LAN-side NIC and the services on it.
type LAN struct {
	Name      string
	MatchMAC  net.HardwareAddr
	Addresses []netip.Prefix
	MTU       int    // 0: leave the NIC's MTU alone
	DHCP4     *DHCP4 // nil: no DHCPv4 server
	DHCP6     *DHCP6 // nil: no DHCPv6 server
	RA        *RA    // nil: no router advertisements
	// PDSubnet is the subnet id this LAN takes from the WAN's delegated
	// prefix (prefix:N::/64), or -1 for none.
	PDSubnet int
	// Ports, when given, make the LAN a bridge named Name of these NICs
	// (MatchMAC is then nil). A LAN that carries VLANs is always one, so
	// that its VLANs outlive a USB NIC's reset.
	Ports []Port
	// Parent and VLAN make the LAN an 802.1Q sub-interface (named Name)
	// of the parent LAN's bridge; VLAN is 0 for a LAN of its own NICs.
	Parent string
	VLAN   int
	// Access is what the LAN's hosts may open connections to.
	Access Access
	// Remote: the LAN is [remote]'s WireGuard interface, made by the
	// tunnel, not a NIC; no DHCP, no router advertisements.
	Remote bool
}

// Port is one NIC of a bridged LAN.
type Port struct {
	Name     string // the name it gets: <lan>p<i> unless given
	MatchMAC net.HardwareAddr
}

// IsBridge reports whether the LAN's interface is a bridge of its ports.
func (l LAN) IsBridge() bool { return len(l.Ports) > 0 }

// Access is a LAN's reach: every LAN's hosts may use the router's DHCP,
// DNS and NTP, and replies to connections opened towards a LAN always
// pass.
type Access string

const (
	// AccessAll reaches the internet, every other LAN and the router's
	// LAN services (the household).
	AccessAll Access = "all"
	// AccessInternet reaches the internet and the router's DHCP, DNS and
	// NTP (guests).
	AccessInternet Access = "internet"
	// AccessIsolated reaches the router's DHCP, DNS and NTP only
	// (cameras, a lab).
	AccessIsolated Access = "isolated"
)

// StaticRoute is a network behind a gateway on a LAN.
type StaticRoute struct {
	To        netip.Prefix
	Via       netip.Addr
	LAN       string // the LAN whose subnet holds Via
	Advertise bool   // DHCPv4 option 121 to LAN clients
}

// Rule is a [[firewall.rule]]: connections matching From, To and Ports
// get Action, before the LANs' access defaults.
type Rule struct {
	Name     string
	From, To Match
	Ports    []PortRange
	Action   string // "accept" | "drop" | "reject"
}

// Match is one side of a rule; any entry matches. Empty: anything.
type Match struct {
	LANs     []string // LAN interface names
	Prefixes []netip.Prefix
	MACs     []net.HardwareAddr
	WAN      bool // the internet (either path)
}

// Empty reports whether the match is unrestricted.
func (m Match) Empty() bool { return len(m.LANs)+len(m.Prefixes)+len(m.MACs) == 0 && !m.WAN }

// DHCPOption is a DHCPv4 option routerd sends as given, encoded.
type DHCPOption struct {
	Code  uint8
	Value []byte
}

// Addr4 returns the interface's first IPv4 address, if any.
func (l LAN) Addr4() (netip.Prefix, bool) { return firstOf(l.Addresses, true) }

// Addr6 returns the interface's first IPv6 address, if any.
func (l LAN) Addr6() (netip.Prefix, bool) { return firstOf(l.Addresses, false) }

func firstOf(ps []netip.Prefix, v4 bool) (netip.Prefix, bool) {
	for _, p := range ps {
		if p.Addr().Is4() == v4 {
			return p, true
		}
	}
	return netip.Prefix{}, false
}

// DHCP4 configures the DHCPv4 server of one LAN.
type DHCP4 struct {
	RangeStart, RangeEnd netip.Addr
	LeaseTime            time.Duration
	Router               netip.Addr   // defaults to the interface address
	DNS                  []netip.Addr // defaults to the interface address
	Reservations         []Reservation
	Options              []DHCPOption // by code, ascending
	NTP                  []netip.Addr // nil: the router when [time] serve is on
	DomainSearch         []string     // option 119
}

// Reservation pins an address (and optionally a hostname) to a MAC.
type Reservation struct {
	MAC      net.HardwareAddr
	IP       netip.Addr
	Hostname string
}

// DHCP6 configures the stateful DHCPv6 server of one LAN.
type DHCP6 struct {
	RangeStart, RangeEnd netip.Addr
	LeaseTime            time.Duration
	DNS                  []netip.Addr // defaults to the interface address
}

// RA configures router advertisements on one LAN.
type RA struct {
	Prefixes   []netip.Prefix
	Managed    bool
	Other      bool
	Autonomous bool
	DNS        []netip.Addr // RDNSS; defaults to the interface address
}

// DNS configures the LAN resolver.
type DNS struct {
	Listen    []string // LAN interface names
	Upstream  []Upstream
	Domain    string
	MDNS      bool
	CacheSize int
	Records   []Record
	// TLSCAFile holds the CAs DNS-over-TLS upstreams' certificates are
	// checked against instead of the system's (a private resolver, the
	// lab); Load reads it into TLSRoots.
	TLSCAFile string
	TLSRoots  *x509.CertPool
	// DNSSEC: validate upstream answers.
	DNSSEC bool
	// TrustAnchorsFile overrides the built-in root trust anchors (a
	// private root, the lab); Load reads it into TrustAnchors. Nil
	// TrustAnchors: the root's.
	TrustAnchorsFile string
	TrustAnchors     []mdns.RR
	// Reflect are the LANs between which multicast DNS is relayed.
	Reflect []string
	// Allow are names [[dns.block]] never blocks, with their subdomains
	// (the lists themselves are in Config.Blocklists, Block set).
	Allow []string
	// QueryLog keeps the questions of this long in memory (0: off).
	QueryLog time.Duration
}

// Record is a static local name.
type Record struct {
	Name      string // fully qualified, lower case, without the trailing dot
	Addresses []netip.Addr
}

// VPN is the WireGuard tunnel.
type VPN struct {
	Interface      string
	PrivateKeyFile string // absolute (relative paths are resolved against state_dir)
	Addresses      []netip.Prefix
	MTU            int
	Implementation string // "kernel" | "userspace" | "auto"
	ListenPort     int    // 0: random
	Peers          []Peer
}

// Peer is a WireGuard peer.
type Peer struct {
	PublicKey           [32]byte
	PublicKeyText       string
	PresharedKeyFile    string
	Endpoint            Endpoint
	AllowedIPs          []netip.Prefix
	PersistentKeepalive time.Duration
}

// Routing is the per-client path policy.
type Routing struct {
	Default  via.Path
	Router   via.Path // path of the router's own traffic
	Policies []Policy
}

// Policy sends matching new connections by one path. A connection matches
// when every non-empty matcher matches.
type Policy struct {
	Name             string
	SourceAddrs      []netip.Prefix     // single IPs become /32 or /128
	SourceMACs       []net.HardwareAddr //
	SourceIfaces     []string           // LAN interface names
	Destinations     []netip.Prefix
	DestinationPorts []PortRange
	// Users and Cgroups select this host's own processes (routerd on a
	// host, not the image) instead of LAN clients. Users are names or
	// uids as written; Load resolves them into UIDs. Cgroups are cgroup
	// v2 paths below the hierarchy's root.
	Users   []string
	UIDs    []uint32
	Cgroups []string
	Via     via.Path
	// DNS are the policy's own upstream servers: its clients' questions
	// go to them (and to no other) over its path. View numbers the
	// policies that have some, from 1 (0: none): the resolver keeps a
	// cache and upstreams apart for each, and a local policy's packets
	// carry it in their mark (ViewShift) so that the resolver knows whose
	// question it got.
	DNS  []Upstream
	View uint8
}

// ViewShift is where a local policy's view sits in its packets' mark,
// above the path (via.Mask): policy routing looks at the path only.
const ViewShift = 8

// Local reports whether the policy is about this host's processes.
func (p *Policy) Local() bool { return len(p.Users)+len(p.Cgroups) > 0 }

// Mark is the packet mark of a local policy's packets: its path and, for
// a policy with its own DNS servers, its view. (A LAN client's policy
// needs no view in its mark: the resolver knows the client by address.)
func (p *Policy) Mark() uint32 { return p.Via.Mark() | uint32(p.View)<<ViewShift }

// PortRange is "tcp/25", "udp/5000-5010".
type PortRange struct {
	Proto    string // "tcp" | "udp"
	From, To uint16
}

// Blocklist is a list of destinations forced onto one path.
type Blocklist struct {
	Name    string
	URL     string
	File    string
	Format  string // "auto" | "lines" | "rkn-csv" | "domains"
	Refresh time.Duration
	Via     via.Path
	// MinRatio guards against a suspiciously shrunk download: a new list
	// smaller than MinRatio times the last good one is refused.
	MinRatio float64
	// DomainTTLFloor is the minimum lifetime of an address learnt from a
	// domain list through the resolver.
	DomainTTLFloor time.Duration
	// Timeout bounds one download attempt; MaxSize caps its body and
	// MaxEntries the entries it may hold.
	Timeout    time.Duration
	MaxSize    int64
	MaxEntries int
	// CAFile is a PEM file of certificate authorities trusted for the
	// list's https URL besides the system's (a private list server);
	// relative to the config file's directory. Load reads it into RootCAs.
	CAFile  string
	RootCAs *x509.CertPool // nil: the system's roots
	// Path is where the list is in the config ("blocklist[0]",
	// "dns.block[0]"), for errors.
	Path string
	// Block: a DNS block list ([[dns.block]]), answered by the resolver
	// (NXDOMAIN, or Null: 0.0.0.0 and ::) for clients on LANs (every LAN
	// when empty); Via is unset.
	Block bool
	Null  bool
	LANs  []string
}

// Firewall configures nftables hardening and port forwards.
type Firewall struct {
	Harden bool
	// HardenLAN runs the TCP flag and MSS checks on the LAN interfaces
	// too.
	HardenLAN bool
	// Log is "rate" to log a rate-limited sample of dropped packets, ""
	// for none.
	Log string
	// FlowOffload puts established connections in flowtables where the
	// kernel has them.
	FlowOffload bool
	// MaxConnections is the conntrack capacity; 0: from the memory the
	// machine has (MaxConnectionsFor), which only the running box knows.
	MaxConnections int
	ICMPRate       Rate
	LANInput       []PortRange // extra ports LAN clients may reach on the router
	PortForwards   []PortForward
	Rules          []Rule
	Pinholes       []Pinhole
}

// Pinhole opens IPv6 ports of a LAN host to the internet, at its global
// addresses from the delegated prefix, followed as they change. The host
// is named by MAC, or by interface identifier (the low 64 bits, IID) in
// every LAN's delegated subnet.
type Pinhole struct {
	Name  string
	MAC   net.HardwareAddr
	IID   netip.Addr // "::10"; invalid when MAC is set
	Ports []PortRange
}

// Rate is a packet rate limit such as 5/second.
type Rate struct {
	N    uint64
	Unit string // "second" | "minute" | "hour"
}

// PortForward DNATs a port on the WAN address to a LAN host.
type PortForward struct {
	Proto string // "tcp" | "udp"
	Port  uint16
	To    netip.AddrPort
}

// Status configures the control socket and metrics.
type Status struct {
	Socket  string
	Metrics string // host:port or "" for off
}

// LANNets is every LAN's networks and interfaces, gathered once for the
// firewall, the resolver's access list and the blocklists' protection.
type LANNets struct {
	Ifaces     []string
	V4, V6     []netip.Prefix // masked
	RouterAddr []netip.Addr   // the router's own address on each
}

// All is every LAN prefix, IPv4 first.
func (n LANNets) All() []netip.Prefix { return append(append([]netip.Prefix(nil), n.V4...), n.V6...) }

// UsesVPN reports whether any path decision can send traffic through the VPN.
func (c *Config) UsesVPN() bool {
	if c.Routing.Default == via.VPN || c.Routing.Router == via.VPN {
		return true
	}
	for _, p := range c.Routing.Policies {
		if p.Via == via.VPN {
			return true
		}
	}
	for _, b := range c.Blocklists {
		if b.Via == via.VPN {
			return true
		}
	}
	return false
}

// Endpoint is a WireGuard peer's host:port, parsed once. Exactly one of
// Addr and Host is set: a name is resolved in the wan namespace when the
// tunnel is configured, and again when handshakes stop.
type Endpoint struct {
	Addr netip.Addr // the host, when it is an IP address
	Host string     // the host, when it is a name
	Port uint16
}

func (e Endpoint) String() string {
	if e.Addr.IsValid() {
		return netip.AddrPortFrom(e.Addr, e.Port).String()
	}
	return net.JoinHostPort(e.Host, strconv.Itoa(int(e.Port)))
}

// OuterIPv6 reports whether the tunnel's packets to this endpoint may be
// IPv6 (a name may resolve to either family: assume the larger header).
func (e Endpoint) OuterIPv6() bool { return !e.Addr.IsValid() || e.Addr.Is6() }

// Remote is the WireGuard server for the household's devices away from
// home ([remote]): its socket in the wan namespace, its interface in main,
// a LAN like the others (policy, access, firewall rules, the resolver).
type Remote struct {
	Interface      string
	ListenPort     int
	Addresses      []netip.Prefix // the router's on the interface
	PrivateKeyFile string         // in state_dir
	// Endpoint is what device configs point at: the router's public
	// name and port, or the relay's.
	Endpoint string
	Peers    []RemotePeer
}

// RemotePeer is one device.
type RemotePeer struct {
	Name          string
	PublicKey     [32]byte
	PublicKeyText string
	Addresses     []netip.Prefix // single addresses in the remote LAN
	// FullTunnel: the device sends all its traffic home (its own config
	// says so; the router needs nothing else for it).
	FullTunnel bool
}

// PortMap is [portmap]: which LANs' devices may ask for ports, and within
// what bounds.
type PortMap struct {
	UPnP, NATPMP, PCP bool
	Listen            []string // LAN names
	From, To          uint16   // the external ports
	MaxPerClient      int
	MaxLifetime       time.Duration
}
