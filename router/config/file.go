package config

// The on-disk schema. Everything that needs parsing beyond TOML's own types
// (addresses, MACs, durations) is a string here, so that validation can report
// every bad value with its path instead of stopping at the first one.

type fileConfig struct {
	Hostname  string          `toml:"hostname"`
	StateDir  string          `toml:"state_dir"`
	Netns     fileNetns       `toml:"netns"`
	WAN       *fileWAN        `toml:"wan"`
	LAN       []fileLAN       `toml:"lan"`
	DNS       *fileDNS        `toml:"dns"`
	VPN       *fileVPN        `toml:"vpn"`
	Routing   fileRouting     `toml:"routing"`
	Blocklist []fileBlocklist `toml:"blocklist"`
	Firewall  fileFirewall    `toml:"firewall"`
	Status    fileStatus      `toml:"status"`
	Admin     *fileAdmin      `toml:"admin"`
	Time      *fileTime       `toml:"time"`
	Update    fileUpdate      `toml:"update"`
	Publish   []filePublish   `toml:"publish"`
	Relay     *fileRelay      `toml:"relay"`
	Route     []fileRoute     `toml:"route"`
	Remote    *fileRemote     `toml:"remote"`
	PortMap   *filePortMap    `toml:"portmap"`
	SQM       *fileSQM        `toml:"sqm"`
}

type fileSQM struct {
	Upload   string `toml:"upload"`
	Download string `toml:"download"`
	Overhead any    `toml:"overhead"` // a preset's name or bytes
	PerHost  *bool  `toml:"per_host"`
	// With "auto" rates.
	UploadMin      string         `toml:"upload_min"`
	UploadMax      string         `toml:"upload_max"`
	DownloadMin    string         `toml:"download_min"`
	DownloadMax    string         `toml:"download_max"`
	Reflectors     []string       `toml:"reflectors"`
	BloatThreshold string         `toml:"bloat_threshold"`
	Class          []fileSQMClass `toml:"class"`
	Backup         *fileSQMRates  `toml:"backup"`
}

// fileSQMRates is [sqm.backup]: the rates while the backup uplink
// carries the traffic.
type fileSQMRates struct {
	Upload      string `toml:"upload"`
	Download    string `toml:"download"`
	UploadMin   string `toml:"upload_min"`
	UploadMax   string `toml:"upload_max"`
	DownloadMin string `toml:"download_min"`
	DownloadMax string `toml:"download_max"`
}

type fileSQMClass struct {
	Tin   string   `toml:"tin"`
	Hosts []string `toml:"hosts"`
	Ports []string `toml:"ports"`
}

type filePortMap struct {
	Protocols    []string `toml:"protocols"`
	Listen       []string `toml:"listen"`
	Ports        string   `toml:"ports"`
	MaxPerClient *int64   `toml:"max_per_client"`
	MaxLifetime  string   `toml:"max_lifetime"`
}

type fileRemote struct {
	Interface      string           `toml:"interface"`
	ListenPort     *int64           `toml:"listen_port"`
	Addresses      []string         `toml:"addresses"`
	PrivateKeyFile string           `toml:"private_key_file"`
	Endpoint       string           `toml:"endpoint"`
	Access         string           `toml:"access"`
	Peer           []fileRemotePeer `toml:"peer"`
}

type fileRemotePeer struct {
	Name       string   `toml:"name"`
	PublicKey  string   `toml:"public_key"`
	Addresses  []string `toml:"addresses"`
	FullTunnel bool     `toml:"full_tunnel"`
}

type fileRoute struct {
	To        string `toml:"to"`
	Via       string `toml:"via"`
	Advertise bool   `toml:"advertise"`
}

type filePort struct {
	MatchMAC string `toml:"match_mac"`
	Name     string `toml:"name"`
}

type fileRule struct {
	Name   string   `toml:"name"`
	From   []string `toml:"from"`
	To     []string `toml:"to"`
	Ports  []string `toml:"ports"`
	Action string   `toml:"action"`
}

type filePublish struct {
	Name  string `toml:"name"`
	Proto string `toml:"proto"`
	Port  int64  `toml:"port"`
	To    string `toml:"to"`
	To6   string `toml:"to6"`
}

type fileRelay struct {
	Public         any                `toml:"public"` // a NIC or a list of them
	Interface      string             `toml:"interface"`
	ListenPort     *int64             `toml:"listen_port"`
	PrivateKeyFile string             `toml:"private_key_file"`
	Addresses      []string           `toml:"addresses"`
	MTU            *int64             `toml:"mtu"`
	Masquerade     *bool              `toml:"masquerade"`
	SNATPool       []string           `toml:"snat_pool"`
	MaxConnections *int64             `toml:"max_connections"`
	FlowOffload    *bool              `toml:"flow_offload"`
	PathMTU        *int64             `toml:"path_mtu"`
	OuterFamily    string             `toml:"outer_family"`
	PublicKeyFile  string             `toml:"public_key_file"`
	ForwardPolicy  string             `toml:"forward_policy"`
	Peer           []fileRelayPeer    `toml:"peer"`
	Forward        []fileRelayForward `toml:"forward"`
}

type fileRelayPeer struct {
	Name                string   `toml:"name"`
	PublicKey           string   `toml:"public_key"`
	PresharedKeyFile    string   `toml:"preshared_key_file"`
	Endpoint            string   `toml:"endpoint"`
	AllowedIPs          []string `toml:"allowed_ips"`
	PersistentKeepalive string   `toml:"persistent_keepalive"`
}

type fileRelayForward struct {
	Name     string   `toml:"name"`
	Proto    string   `toml:"proto"`
	Ports    string   `toml:"ports"`
	To       string   `toml:"to"`
	ToPort   *int64   `toml:"to_port"`
	SNAT     string   `toml:"snat"`
	MatchIPs []string `toml:"match_ips"`
}

type fileUpdate struct {
	SigningKey string `toml:"signing_key"`
	Probation  string `toml:"probation"`
}

type fileTime struct {
	Servers  []string `toml:"servers"`
	Serve    *bool    `toml:"serve"`
	SetClock *bool    `toml:"set_clock"`
}

type fileAdmin struct {
	Listen         []string `toml:"listen"`
	Port           *int64   `toml:"port"`
	AuthorizedKeys string   `toml:"authorized_keys"`
	BanAfter       *int64   `toml:"ban_after"`
	BanTime        string   `toml:"ban_time"`
}

type fileNetns struct {
	WAN      string `toml:"wan"`
	VPN      string `toml:"vpn"`
	Bridge   string `toml:"bridge"`
	Transit4 string `toml:"transit4"`
	Transit6 string `toml:"transit6"`
}

type fileWAN struct {
	Name     string     `toml:"name"`
	MatchMAC string     `toml:"match_mac"`
	SetMAC   string     `toml:"set_mac"`
	Wait     string     `toml:"wait"`
	IPv4     string     `toml:"ipv4"`
	Address  string     `toml:"address"`
	Gateway  string     `toml:"gateway"`
	IPv6     string     `toml:"ipv6"`
	Address6 string     `toml:"address6"`
	Gateway6 string     `toml:"gateway6"`
	Prefix6  string     `toml:"prefix6"`
	MTU      *int64     `toml:"mtu"`
	VLAN     *int64     `toml:"vlan"`
	PPPoE    *filePPPoE `toml:"pppoe"`
	// [wan.backup] is a fileWAN too, with the probe keys.
	Backup        *fileWAN `toml:"backup"`
	Probe         []string `toml:"probe"`
	ProbeInterval string   `toml:"probe_interval"`
	ProbeTimeout  string   `toml:"probe_timeout"`
	ProbeDown     *int64   `toml:"probe_down"`
	ProbeUp       *int64   `toml:"probe_up"`
}

type filePPPoE struct {
	Username     string `toml:"username"`
	PasswordFile string `toml:"password_file"`
	Service      string `toml:"service"`
	ACName       string `toml:"ac_name"`
	MTU          *int64 `toml:"mtu"`
	LCPEcho      string `toml:"lcp_echo"`
	LCPFailures  *int64 `toml:"lcp_echo_failures"`
}

type fileLAN struct {
	Name      string     `toml:"name"`
	MatchMAC  string     `toml:"match_mac"`
	Addresses []string   `toml:"addresses"`
	MTU       *int64     `toml:"mtu"`
	DHCP4     *fileDHCP4 `toml:"dhcp4"`
	DHCP6     *fileDHCP6 `toml:"dhcp6"`
	RA        *fileRA    `toml:"ra"`
	PDSubnet  *int64     `toml:"pd_subnet"`
	Ports     []filePort `toml:"ports"`
	Parent    string     `toml:"parent"`
	VLAN      *int64     `toml:"vlan"`
	Access    string     `toml:"access"`
}

type fileDHCP4 struct {
	Range       []string          `toml:"range"`
	LeaseTime   string            `toml:"lease_time"`
	Router      string            `toml:"router"`
	DNS         []string          `toml:"dns"`
	Reservation []fileReservation `toml:"reservation"`
	// Options by number: TOML keys are strings ("66").
	Options      map[string]any `toml:"options"`
	NTP          []string       `toml:"ntp"`
	DomainSearch []string       `toml:"domain_search"`
}

type fileReservation struct {
	MAC      string `toml:"mac"`
	IP       string `toml:"ip"`
	Hostname string `toml:"hostname"`
}

type fileDHCP6 struct {
	Range     []string `toml:"range"`
	LeaseTime string   `toml:"lease_time"`
	DNS       []string `toml:"dns"`
}

type fileRA struct {
	Prefixes   []string `toml:"prefixes"`
	Managed    *bool    `toml:"managed"`
	Other      *bool    `toml:"other"`
	Autonomous *bool    `toml:"autonomous"`
	DNS        []string `toml:"dns"`
}

type fileDNS struct {
	Listen    []string        `toml:"listen"`
	Upstream  []string        `toml:"upstream"`
	Domain    *string         `toml:"domain"`
	MDNS      bool            `toml:"mdns"`
	CacheSize *int64          `toml:"cache_size"`
	Record    []fileRecord    `toml:"record"`
	TLSCAFile string          `toml:"tls_ca_file"`
	DNSSEC    bool            `toml:"dnssec"`
	Anchors   string          `toml:"trust_anchors"`
	Reflect   []string        `toml:"mdns_reflect"`
	Block     []fileBlocklist `toml:"block"`
	Allow     []string        `toml:"allow"`
	QueryLog  string          `toml:"query_log"`
}

type fileRecord struct {
	Name      string   `toml:"name"`
	Addresses []string `toml:"addresses"`
}

type fileVPN struct {
	Interface      string     `toml:"interface"`
	PrivateKeyFile string     `toml:"private_key_file"`
	Addresses      []string   `toml:"addresses"`
	MTU            *int64     `toml:"mtu"`
	Implementation string     `toml:"implementation"`
	ListenPort     *int64     `toml:"listen_port"`
	Peer           []filePeer `toml:"peer"`
}

type filePeer struct {
	PublicKey           string   `toml:"public_key"`
	PresharedKeyFile    string   `toml:"preshared_key_file"`
	Endpoint            string   `toml:"endpoint"`
	AllowedIPs          []string `toml:"allowed_ips"`
	PersistentKeepalive string   `toml:"persistent_keepalive"`
}

type fileRouting struct {
	Default string       `toml:"default"`
	Router  string       `toml:"router"`
	Policy  []filePolicy `toml:"policy"`
}

type filePolicy struct {
	Name             string   `toml:"name"`
	Sources          []string `toml:"sources"`
	Destinations     []string `toml:"destinations"`
	DestinationPorts []string `toml:"destination_ports"`
	Users            []string `toml:"users"`
	Cgroups          []string `toml:"cgroups"`
	DNS              []string `toml:"dns"`
	Via              string   `toml:"via"`
}

type fileBlocklist struct {
	Name           string   `toml:"name"`
	URL            string   `toml:"url"`
	File           string   `toml:"file"`
	Format         string   `toml:"format"`
	Refresh        string   `toml:"refresh"`
	Via            string   `toml:"via"`
	MinRatio       *float64 `toml:"min_ratio"`
	DomainTTLFloor string   `toml:"domain_ttl_floor"`
	Timeout        string   `toml:"timeout"`
	MaxSize        string   `toml:"max_size"`
	MaxEntries     *int64   `toml:"max_entries"`
	CAFile         string   `toml:"ca_file"`
	Answer         string   `toml:"answer"` // [[dns.block]]
	LANs           []string `toml:"lans"`   // [[dns.block]]
}

type fileFirewall struct {
	Harden         *bool             `toml:"harden"`
	HardenLAN      *bool             `toml:"harden_lan"`
	Log            string            `toml:"log"`
	FlowOffload    *bool             `toml:"flow_offload"`
	MaxConnections *int64            `toml:"max_connections"`
	ICMPRate       string            `toml:"icmp_rate"`
	LANInput       []string          `toml:"lan_input"`
	PortForward    []filePortForward `toml:"port_forward"`
	Rule           []fileRule        `toml:"rule"`
	Pinhole        []filePinhole     `toml:"pinhole"`
}

type filePinhole struct {
	Name  string   `toml:"name"`
	To    string   `toml:"to"`
	Ports []string `toml:"ports"`
}

type filePortForward struct {
	Proto string `toml:"proto"`
	Port  int64  `toml:"port"`
	To    string `toml:"to"`
}

type fileStatus struct {
	Socket  string `toml:"socket"`
	Metrics string `toml:"metrics"`
}
