package status

import "time"

// Relay is routerd as a relay: its tunnel, forwards, NAT and the
// conntrack table that every forwarded connection takes a slot of.
type Relay struct {
	Interface      string         `json:"interface"`
	Implementation string         `json:"implementation"`
	PublicKey      string         `json:"public_key"`
	ListenPort     int            `json:"listen_port"`
	Peers          []RelayPeer    `json:"peers"`
	Forwards       []RelayForward `json:"forwards"`
	NAT            string         `json:"nat"` // "masquerade", "snat pool A, B", "none"
	MSS4           int            `json:"mss4"`
	MSS6           int            `json:"mss6"`
	Conntrack      Conntrack      `json:"conntrack"`
	Warnings       []string       `json:"warnings,omitempty"`
	Error          string         `json:"error,omitempty"`
}

// RelayPeer is one home router behind the relay.
type RelayPeer struct {
	Name          string    `json:"name"`
	PublicKey     string    `json:"public_key"`
	AllowedIPs    []string  `json:"allowed_ips"`
	Endpoint      string    `json:"endpoint,omitempty"`
	LastHandshake time.Time `json:"last_handshake,omitzero"`
	RxBytes       int64     `json:"rx_bytes"`
	TxBytes       int64     `json:"tx_bytes"`
}

// RelayForward is a public port or range and its packets.
type RelayForward struct {
	Name    string `json:"name,omitempty"`
	Forward string `json:"forward"` // "tcp 443 → 10.64.0.2"
	Peer    string `json:"peer"`
	Packets uint64 `json:"packets"`
	Bytes   uint64 `json:"bytes"`
	NAT     string `json:"nat,omitempty"` // snat = "pool": the pool and its capacity
}
