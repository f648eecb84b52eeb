package config

import "path/filepath"

// The layout of state_dir: what routerd keeps there across restarts, each
// under one name.
const (
	StateLeases      = "leases"                // the LAN's DHCP leases (dhcp.Store)
	StateWANDHCP4    = "wan-dhcp4.json"        // the WAN DHCPv4 client's lease
	StateBackupDHCP4 = "wan-backup-dhcp4.json" // the backup uplink's
	StatePDHint      = "wan-dhcp6-prefix"      // the delegated prefix, asked for again
	StateSSHHostKey  = "ssh_host_ed25519_key"  // the SSH server's host key
	StateNetns       = "netns.json"            // what the namespaces component made
	StateNICs        = "nics.json"             // the NICs adopted, for teardown
	StateBlocklists  = "blocklists"            // the lists' last good copies
	StateClock       = "clock"                 // the clock's floor
	StateRelay       = "relay.json"            // what the relay made
)

// StatePath is the path of one of state_dir's files (State...).
func (c *Config) StatePath(name string) string { return filepath.Join(c.StateDir, name) }
