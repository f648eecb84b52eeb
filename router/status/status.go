// Package status is routerctl status as data: the types routerd fills and
// routerctl renders, and their rendering for a person.
//
// It imports only the standard library. routerctl, a thin client, links
// this package and the control socket client and nothing of netlink,
// nftables or WireGuard (cmd/routerctl's TestThinClient checks), and the
// leaf packages (hw, dhcp, dns, rules, vpn, blocklist) describe their state
// in its types without depending on the supervisor.
package status

import "time"

// Status is the whole picture routerctl status shows. A section is nil
// while its component is not configured or not started.
type Status struct {
	Version    string      `json:"version"`
	ConfigPath string      `json:"config_path"`
	ConfigHash string      `json:"config_hash"`
	Started    time.Time   `json:"started"`
	Uptime     float64     `json:"uptime_seconds"`
	Phase      Phase       `json:"phase"`
	Components []Component `json:"components"`
	Reload     *Reload     `json:"last_reload,omitempty"`
	ConfirmBy  *time.Time  `json:"config_confirm_by,omitempty"` // an applied config rolls back unless confirmed by then
	Rollback   *Reload     `json:"last_rollback,omitempty"`
	NICs       *NICs       `json:"nics,omitempty"`
	Netns      *Netns      `json:"netns,omitempty"`
	Routing    *Routing    `json:"routing,omitempty"`
	WAN        *WAN        `json:"wan,omitempty"`
	VPN        *VPN        `json:"vpn,omitempty"`
	Firewall   *Firewall   `json:"firewall,omitempty"`
	LAN        *LAN        `json:"lan,omitempty"`
	DNS        *DNS        `json:"dns,omitempty"`
	Blocklists *Blocklists `json:"blocklists,omitempty"`
	Admin      *Admin      `json:"admin,omitempty"`
	Time       *Time       `json:"time,omitempty"`
	Update     *Update     `json:"update,omitempty"`
	Relay      *Relay      `json:"relay,omitempty"`
	Reflector  *Reflector  `json:"mdns_reflector,omitempty"`
	Containers []Container `json:"containers,omitempty"` // [[publish]] to = "docker:NAME"
	Remote     *Remote     `json:"remote,omitempty"`
	PortMap    *PortMap    `json:"portmap,omitempty"`
	SQM        *SQM        `json:"sqm,omitempty"`
	Clients    *Clients    `json:"clients,omitempty"`
}

// PortMap is the ports LAN devices mapped (NAT-PMP, PCP).
type PortMap struct {
	Mappings []PortMapping `json:"mappings"`
}

// PortMapping is one mapped port of the WAN address.
type PortMapping struct {
	Proto    string    `json:"proto"`
	External uint16    `json:"external"`
	Client   string    `json:"client"`
	Internal uint16    `json:"internal"`
	By       string    `json:"by"`
	Expires  time.Time `json:"expires"`
}

// Remote is [remote]'s WireGuard server and the household's devices.
type Remote struct {
	Interface  string       `json:"interface"`
	PublicKey  string       `json:"public_key"`
	ListenPort int          `json:"listen_port"`
	Endpoint   string       `json:"endpoint"`
	Peers      []RemotePeer `json:"peers"`
	Error      string       `json:"error,omitempty"`
}

// RemotePeer is one device of [remote].
type RemotePeer struct {
	Name       string   `json:"name"`
	Addresses  []string `json:"addresses"`
	FullTunnel bool     `json:"full_tunnel"`
	Peer
}

// Update is the image's boot slots and the last update.
type Update struct {
	Slots    []Slot         `json:"slots"`
	Attempt  *UpdateAttempt `json:"attempt,omitempty"` // written and not yet committed
	Last     *UpdateResult  `json:"last,omitempty"`
	RebootAt *time.Time     `json:"reboot_at,omitempty"` // a scheduled reboot into the new slot
	// BootOrder is the firmware's, as "Boot0A00 routerd A" (the current
	// boot marked with *).
	BootOrder []string `json:"boot_order,omitempty"`
	Error     string   `json:"error,omitempty"`
}

// Slot is one boot slot.
type Slot struct {
	Name      string    `json:"name"`
	Version   string    `json:"version,omitempty"` // "" when empty or unreadable
	BuildTime time.Time `json:"build_time,omitzero"`
	Running   bool      `json:"running"`
	Committed bool      `json:"committed"` // what the firmware boots
}

// UpdateAttempt is an update in flight.
type UpdateAttempt struct {
	Slot      string    `json:"slot"`
	From      string    `json:"from"`
	Version   string    `json:"version"`
	At        time.Time `json:"at"`
	Probation time.Time `json:"probation_since,omitzero"` // booted, not yet healthy
}

// UpdateAnswer is the answer to an upload (routerctl update).
type UpdateAnswer struct {
	Steps    []string   `json:"steps"`
	Slot     string     `json:"slot,omitempty"`
	Version  string     `json:"version,omitempty"`
	RebootAt *time.Time `json:"reboot_at,omitempty"`
}

// UpdateResult is how the last update ended.
type UpdateResult struct {
	Outcome string    `json:"outcome"` // "committed" | "rolled back"
	Slot    string    `json:"slot"`
	From    string    `json:"from"`
	Version string    `json:"version"`
	At      time.Time `json:"at"`
	Reason  string    `json:"reason,omitempty"`
}

// Bans is the answer to routerctl ban list.
type Bans struct {
	Bans []Ban `json:"bans"`
}

// Ban is one banned address.
type Ban struct {
	Addr  string    `json:"address"`
	Side  string    `json:"side"` // "lan": failed SSH logins; "wan": a port scan
	Until time.Time `json:"until"`
}

// Time is the clock and its synchronisation.
type Time struct {
	Synced    bool         `json:"synced"`
	SetsClock bool         `json:"sets_clock"` // false: the offset is measured and served, the system clock is left alone
	Now       time.Time    `json:"now"`        // the router's idea of the time
	Floor     time.Time    `json:"floor"`      // the clock never goes below this
	Server    string       `json:"server,omitempty"`
	Stratum   int          `json:"stratum,omitempty"`
	OffsetMS  float64      `json:"offset_ms"` // of the last sync, before it was corrected
	LastSync  time.Time    `json:"last_sync,omitzero"`
	Steps     int          `json:"steps"`
	LastStep  string       `json:"last_step,omitempty"`
	Error     string       `json:"error,omitempty"`
	Servers   []TimeServer `json:"servers"`
	Serving   []string     `json:"serving,omitempty"` // addresses answering NTP
	Served    uint64       `json:"requests_served"`
	Dropped   uint64       `json:"requests_dropped"` // malformed or not a client request
}

// TimeServer is one configured server's last answer.
type TimeServer struct {
	Name     string  `json:"name"`
	Addr     string  `json:"address,omitempty"`
	Stratum  int     `json:"stratum,omitempty"`
	OffsetMS float64 `json:"offset_ms"`
	RTTMS    float64 `json:"rtt_ms"`
	Used     bool    `json:"used"`            // the sample the last sync followed
	Outlier  bool    `json:"outlier"`         // dropped: too far from the others' median
	Error    string  `json:"error,omitempty"` // no usable answer, and why
}

// Admin is SSH management.
type Admin struct {
	Port         int      `json:"port"`
	Listening    []string `json:"listening"` // interfaces
	HostKey      string   `json:"host_key"`  // as ssh-keygen -lf prints it
	Keys         int      `json:"authorized_keys"`
	Sessions     int      `json:"sessions"` // open now
	Commands     int      `json:"commands"` // run since start
	AuthFailures int      `json:"auth_failures"`
	Banned       int      `json:"banned"` // addresses banned now, LAN and WAN side
	Errors       []string `json:"errors,omitempty"`
}

// Phase is where routerd is in its lifecycle. Status answers in every
// phase; sections of components that have not finished starting are
// missing until then.
type Phase string

const (
	PhaseStarting  Phase = "starting"  // the first start pass is running
	PhaseReady     Phase = "ready"     // every component's Start has returned
	PhaseReloading Phase = "reloading" // stopping the old config's components and starting the new
	PhaseStopping  Phase = "stopping"
)

// State of a component.
type State string

const (
	Starting State = "starting"
	Running  State = "running"
	Failed   State = "failed"
	Stopping State = "stopping"
	Stopped  State = "stopped"
)

// Component is one row of the component table.
type Component struct {
	Name  string    `json:"name"`
	State State     `json:"state"`
	Error string    `json:"error,omitempty"`
	Since time.Time `json:"since"`
}

// Reload says how the last SIGHUP went.
type Reload struct {
	At    time.Time `json:"at"`
	Error string    `json:"error,omitempty"`
}

// NICs is the NICs section.
type NICs struct {
	NICs        []NIC `json:"nics"`
	LastChanges int   `json:"last_apply_changes"`
}

// NIC is one adopted (or awaited) NIC.
type NIC struct {
	Name       string    `json:"name"`
	Role       string    `json:"role"`
	MatchMAC   string    `json:"match_mac"`
	CurrentMAC string    `json:"current_mac,omitempty"`
	Namespace  string    `json:"namespace"`
	State      string    `json:"state"` // "missing", "down", "no-carrier", "up"
	MTU        int       `json:"mtu,omitempty"`
	Index      int       `json:"ifindex,omitempty"`
	RxBytes    uint64    `json:"rx_bytes"`
	TxBytes    uint64    `json:"tx_bytes"`
	RxPackets  uint64    `json:"rx_packets"`
	TxPackets  uint64    `json:"tx_packets"`
	RxErrors   uint64    `json:"rx_errors"`
	TxErrors   uint64    `json:"tx_errors"`
	RxDropped  uint64    `json:"rx_dropped"`
	TxDropped  uint64    `json:"tx_dropped"`
	Adopted    int       `json:"adopted"`   // times adopted since routerd started
	Readopted  int       `json:"readopted"` // of which after the NIC went away
	LastChange time.Time `json:"last_change"`
	Error      string    `json:"error,omitempty"`
}

// Netns is the namespaces section.
type Netns struct {
	Namespaces  []Namespace `json:"namespaces"`
	LastChanges int         `json:"last_apply_changes"`
}

// Namespace is one namespace and its links.
type Namespace struct {
	Name   string   `json:"name"`
	Role   string   `json:"role"` // "main", "wan", "vpn"
	Exists bool     `json:"exists"`
	Links  []string `json:"links"` // "name state addr..."
}

// Routing is routerd's rules and routes as the kernel has them.
type Routing struct {
	Rules       []string            `json:"rules"`
	Routes      map[string][]string `json:"routes"` // by namespace
	LastChanges int                 `json:"last_apply_changes"`
}

// WAN is the uplink: its address and how it was obtained.
type WAN struct {
	Mode  string `json:"mode"` // "dhcp" | "static" | "pppoe"
	VLAN  int    `json:"vlan,omitempty"`
	Link  string `json:"link,omitempty"` // the tagged link (wan.vlan)
	PPPoE *PPPoE `json:"pppoe,omitempty"`
	DHCP  *DHCP4 `json:"dhcp,omitempty"`
	Addr  string `json:"address,omitempty"`
	IPv6  string `json:"ipv6_mode"`
	Addr6 string `json:"address6,omitempty"` // ipv6 = "static"
	DHCP6 *DHCP6 `json:"dhcp6,omitempty"`
	PD    *PD    `json:"prefix_delegation,omitempty"`
	// Backup is the backup uplink ([wan.backup]), Failover which of the
	// two carries the traffic.
	Backup   *WAN      `json:"backup,omitempty"`
	Failover *Failover `json:"failover,omitempty"`
}

// Failover is the uplinks' health and the switches between them.
type Failover struct {
	Active   string           `json:"active"` // "primary" | "backup"
	Uplinks  []UplinkHealth   `json:"uplinks"`
	Switches []FailoverSwitch `json:"switches,omitempty"` // the last ones, oldest first
	Count    int              `json:"switch_count"`       // switches since start
	Probe    []string         `json:"probe"`              // the targets
}

// UplinkHealth is one uplink as its probes tell it.
type UplinkHealth struct {
	Uplink string        `json:"uplink"` // "primary" | "backup"
	Iface  string        `json:"iface"`
	State  string        `json:"state"` // "up" | "down"
	Since  time.Time     `json:"since"`
	RTT    time.Duration `json:"rtt_ns,omitempty"`
	Loss   float64       `json:"loss"` // of the last 20 probes
	Probes int           `json:"probes"`
}

// FailoverSwitch is one move of the traffic between uplinks.
type FailoverSwitch struct {
	At      time.Time `json:"at"`
	From    string    `json:"from"`
	To      string    `json:"to"`
	Why     string    `json:"why"`
	Flushed int       `json:"flushed"` // connections of the failed uplink deleted
}

// PD is how the LANs use the WAN's delegated prefix (pd_subnet).
type PD struct {
	Current    *DelegatedPrefix  `json:"current,omitempty"`
	Deprecated []DelegatedPrefix `json:"deprecated,omitempty"` // renumbered away, still valid a while
	Error      string            `json:"error,omitempty"`      // e.g. a prefix too small for the subnet ids
}

// DelegatedPrefix is one delegated prefix and the LAN subnets made of it.
type DelegatedPrefix struct {
	Prefix         string      `json:"prefix"`
	PreferredUntil time.Time   `json:"preferred_until"`
	ValidUntil     time.Time   `json:"valid_until"`
	Subnets        []LANSubnet `json:"subnets"`
}

// LANSubnet is the /64 one LAN has of a delegated prefix.
type LANSubnet struct {
	LAN    string `json:"lan"`
	Prefix string `json:"prefix"`
}

// The WAN DHCP clients' states (DHCP4.State, DHCP6.State), as RFC 2131 and
// RFC 8415 name them. DHCPBound is the one that means a lease is held: metrics and
// the update health check test for it.
const (
	DHCPSelecting  = "selecting"
	DHCPSoliciting = "soliciting"
	DHCPInitReboot = "init-reboot"
	DHCPBound      = "bound"
	DHCPRenewing   = "renewing"
	DHCPRebinding  = "rebinding"
)

// DHCP4 is the WAN's DHCPv4 client and its lease.
type DHCP4 struct {
	State     string         `json:"state"` // DHCPSelecting...
	Address   string         `json:"address,omitempty"`
	Router    string         `json:"router,omitempty"`
	DNS       []string       `json:"dns,omitempty"`
	Server    string         `json:"server,omitempty"`
	Acquired  time.Time      `json:"acquired,omitempty"`
	Expires   time.Time      `json:"expires,omitempty"`
	NextRenew time.Time      `json:"next_renew,omitempty"`
	Error     string         `json:"error,omitempty"`
	Counts    map[string]int `json:"counts,omitempty"`
}

// DHCP6 is the WAN's DHCPv6 client: its address and delegated prefix.
type DHCP6 struct {
	State     string    `json:"state"`
	Address   string    `json:"address,omitempty"`
	Delegated string    `json:"delegated_prefix,omitempty"`
	DNS       []string  `json:"dns,omitempty"`
	Expires   time.Time `json:"expires,omitempty"`
	Error     string    `json:"error,omitempty"`
}

// VPN is the WireGuard tunnel.
type VPN struct {
	Interface      string `json:"interface"`
	Implementation string `json:"implementation"`
	PublicKey      string `json:"public_key"`
	ListenPort     int    `json:"listen_port"`
	Up             bool   `json:"up"` // a handshake in the last 3 minutes
	Peers          []Peer `json:"peers"`
	Error          string `json:"error,omitempty"`
}

// Peer is one WireGuard peer.
type Peer struct {
	PublicKey     string    `json:"public_key"`
	Endpoint      string    `json:"endpoint,omitempty"`
	LastHandshake time.Time `json:"last_handshake,omitempty"`
	RxBytes       int64     `json:"rx_bytes"`
	TxBytes       int64     `json:"tx_bytes"`
}

// Firewall is the rulesets' counters as the kernel has them.
type Firewall struct {
	Generation int                  `json:"generation"`
	Applied    time.Time            `json:"applied"`
	Counters   map[string][]Counter `json:"counters"` // by "namespace/table"
	Offload    Offload              `json:"offload"`
	Conntrack  *Conntrack           `json:"conntrack,omitempty"`
	Warnings   []string             `json:"warnings,omitempty"`
	Segments   []Segment            `json:"segments,omitempty"`
	Rules      []Rule               `json:"rules,omitempty"`
}

// Offload is flow offload as the kernel has it: the devices of each
// namespace's flowtable (Conntrack.Offloaded counts the connections).
type Offload struct {
	Enabled bool                `json:"enabled"`
	Off     string              `json:"off,omitempty"` // why it is off
	Devices map[string][]string `json:"devices,omitempty"`
}

// Counter is one named nftables counter.
type Counter struct {
	Name    string `json:"name"`
	Packets uint64 `json:"packets"`
	Bytes   uint64 `json:"bytes"`
}

// LAN is the LAN services: leases and per-service counters.
type LAN struct {
	Leases []Lease                     `json:"leases"`
	Stats  map[string]map[string]int64 `json:"stats"` // by "iface/service"
	Store  LeaseStore                  `json:"store"`
}

// LeaseStore is the lease journal's work.
type LeaseStore struct {
	Commits int64 `json:"commits"` // fsyncs
	Records int64 `json:"records"` // records written
}

// Leases is the answer to routerctl leases.
type Leases struct {
	Leases []Lease `json:"leases"`
}

// Lease is one DHCP lease.
type Lease struct {
	Interface string    `json:"interface"`
	Family    string    `json:"family"` // "v4" | "v6"
	Address   string    `json:"address"`
	MAC       string    `json:"mac,omitempty"`
	DUID      string    `json:"duid,omitempty"`
	IAID      uint32    `json:"iaid,omitempty"`
	Hostname  string    `json:"hostname,omitempty"`
	Expires   time.Time `json:"expires"`
	Reserved  bool      `json:"reserved,omitempty"`
}

// DNS is the resolver's counters and upstreams.
type DNS struct {
	QueriesPerSecond float64    `json:"queries_per_second"` // over the last minute
	Queries          uint64     `json:"queries"`
	Local            uint64     `json:"local"`
	CacheHits        uint64     `json:"cache_hits"`
	CacheSize        int        `json:"cache_size"`
	CacheHitRatio    float64    `json:"cache_hit_ratio"`
	Forwarded        uint64     `json:"forwarded"`
	Merged           uint64     `json:"merged"` // questions that joined the same question in flight upstream
	MDNSQueries      uint64     `json:"mdns_queries"`
	MDNSAnswered     uint64     `json:"mdns_answered"`
	Refused          uint64     `json:"refused"`
	FormErr          uint64     `json:"formerr"`
	ServFail         uint64     `json:"servfail"`
	Listening        []string   `json:"listening"`
	Upstreams        []Upstream `json:"upstreams"`
	DNSSEC           *DNSSEC    `json:"dnssec,omitempty"` // nil: not validating
	Blocked          uint64     `json:"blocked"`          // answered by [[dns.block]]
}

// DNSTop is what routerctl dns top shows: each client's questions and
// blocked answers, and the names blocked most.
type DNSTop struct {
	Clients []DNSClient `json:"clients"`
	Blocked []DNSCount  `json:"blocked"`
}

// DNSClient is one client's counts.
type DNSClient struct {
	Address string `json:"address"`
	Name    string `json:"name,omitempty"` // from its lease
	Queries uint64 `json:"queries"`
	Blocked uint64 `json:"blocked"`
}

// DNSQuery is one question of the query log (dns.query_log).
type DNSQuery struct {
	Time   time.Time `json:"time"`
	Client string    `json:"client"`
	Name   string    `json:"name"`
	Type   string    `json:"type"`
	Rcode  string    `json:"rcode"`
	Answer string    `json:"answer"`         // local | cache | upstream | mdns | blocked | refused
	List   string    `json:"list,omitempty"` // the block list, when blocked
}

// DNSCount is a name and how often.
type DNSCount struct {
	Name  string `json:"name"`
	Count uint64 `json:"count"`
}

// DNSSEC is what the validating resolver made of upstream answers.
type DNSSEC struct {
	Anchors     []string `json:"anchors"`     // zones with a trust anchor
	Secure      uint64   `json:"secure"`      // answers validated (AD)
	Insecure    uint64   `json:"insecure"`    // answers from unsigned zones
	Bogus       uint64   `json:"bogus"`       // answers refused (SERVFAIL with EDE)
	Synthesized uint64   `json:"synthesized"` // negative answers made from validated NSEC records (RFC 8198)
	LastBogus   string   `json:"last_bogus,omitempty"`
}

// Upstream is one upstream server's health.
type Upstream struct {
	Address    string  `json:"address"`
	Protocol   string  `json:"protocol"`              // "udp" (TCP on truncation) | "tls"
	ServerName string  `json:"server_name,omitempty"` // tls: what the certificate must be valid for
	Handshake  string  `json:"handshake,omitempty"`   // tls: the last handshake, or why it failed
	Source     string  `json:"source"`                // "config" | "isp" | "policy NAME" (its own servers)
	Healthy    bool    `json:"healthy"`
	LatencyMS  float64 `json:"latency_ms"`
	Answered   uint64  `json:"answered"`
	Failed     uint64  `json:"failed"`
	Resent     uint64  `json:"resent"` // udp: questions sent again, their answer late (lost, most likely)
	LastError  string  `json:"last_error,omitempty"`
}

// Blocklists is the blocklists section, and the answer to routerctl
// blocklist refresh.
type Blocklists struct {
	Lists []Blocklist `json:"lists"`
}

// Blocklist is one list.
type Blocklist struct {
	Name           string    `json:"name"`
	Via            string    `json:"via"`
	Source         string    `json:"source"`
	Format         string    `json:"format"`
	Prefixes4      int       `json:"prefixes_v4"` // after merging
	Prefixes6      int       `json:"prefixes_v6"`
	Domains        int       `json:"domains"`
	Exceptions     int       `json:"exceptions,omitempty"` // a DNS block list's "@@" rules
	Lines          int       `json:"lines"`
	Rejected       int       `json:"rejected"`
	Samples        []string  `json:"rejected_samples,omitempty"`
	Refused        int       `json:"refused"` // would have captured a protected network
	RefusedSamples []string  `json:"refused_samples,omitempty"`
	LastSuccess    time.Time `json:"last_success,omitempty"`
	LastAttempt    time.Time `json:"last_attempt,omitempty"`
	NextRun        time.Time `json:"next_run,omitempty"`
	LastResult     string    `json:"last_result,omitempty"`
	LastError      string    `json:"last_error,omitempty"`
}

// Conntrack is the connection tracking table's fill. Exhaustion is silent
// (new connections are dropped, with no error anywhere), so it is shown
// and warned about before it happens.
type Conntrack struct {
	Count    int     `json:"count"`      // in the fullest namespace: the limit is each one's
	Capacity int     `json:"capacity"`   // firewall.max_connections or relay.max_connections
	Max      int     `json:"kernel_max"` // nf_conntrack_max as the kernel has it
	Limit    int     `json:"limit"`      // the smaller of the two: where new connections start to drop
	Fill     float64 `json:"fill"`       // Count / Limit
	// NotApplied says why nf_conntrack_max could not be raised to the
	// capacity (it is global, and read-only inside a network namespace).
	NotApplied string `json:"not_applied,omitempty"`
	// Namespaces is each namespace's count, by the label status uses
	// ("main", "wan", "vpn"; a relay has one, "relay").
	Namespaces map[string]int `json:"namespaces,omitempty"`
	// Offloaded is, by namespace, how many of its connections the
	// flowtable forwards (nil when flow offload is off).
	Offloaded map[string]int `json:"offloaded,omitempty"`
	Error     string         `json:"error,omitempty"`
}
