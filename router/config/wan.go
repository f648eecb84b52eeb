package config

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"os"
	"time"
)

// WAN is the uplink NIC.
type WAN struct {
	Name     string
	MatchMAC net.HardwareAddr
	SetMAC   net.HardwareAddr // nil: keep the NIC's own
	Wait     time.Duration
	IPv4     string       // "dhcp" | "static" | "pppoe"
	Address  netip.Prefix // static only
	Gateway  netip.Addr   // static only
	IPv6     string       // "dhcp" | "slaac" | "static" | "off"
	Address6 netip.Prefix // static only
	Gateway6 netip.Addr   // static only
	Prefix6  netip.Prefix // static only, optional: the routed prefix pd_subnets come from
	MTU      int
	VLAN     int    // 802.1Q tag the ISP wants on the WAN link (0: untagged)
	PPPoE    *PPPoE // ipv4 = "pppoe"
	// Backup is [wan.backup], a second uplink (nil: none). It has no
	// backup of its own.
	Backup *Backup
}

// Backup is a second uplink (an LTE stick, a second line) that carries
// the household's traffic while the primary's probes go unanswered.
type Backup struct {
	WAN
	// Probe are the ICMP targets each uplink is probed with, through
	// that uplink, every ProbeInterval, each round answered if an answer
	// comes within ProbeTimeout: down after ProbeDown unanswered rounds,
	// up again after ProbeUp answered ones (mwan3's and OPNsense's
	// gateway monitoring).
	Probe         []netip.Addr
	ProbeInterval time.Duration
	ProbeTimeout  time.Duration
	ProbeDown     int
	ProbeUp       int
}

// Uplinks are the WAN's uplinks: the primary, and the backup if any.
func (w *WAN) Uplinks() []*WAN {
	if w.Backup == nil {
		return []*WAN{w}
	}
	return []*WAN{w, &w.Backup.WAN}
}

// PPPoE is [wan.pppoe].
type PPPoE struct {
	Username     string
	Password     Secret
	PasswordFile string // absolute (relative paths are resolved against the config's directory)
	Service      string // "" any
	ACName       string // "" any
	MTU          int    // 1500 (RFC 4638, baby-jumbo frames where the NIC allows) or 1492
	// LCPEcho is how often the link is probed with an LCP echo;
	// LCPFailures unanswered in a row end the session (pppd's
	// lcp-echo-interval and lcp-echo-failure, OpenWrt's keepalive).
	LCPEcho     time.Duration
	LCPFailures int
}

// Secret is a value that never appears in a log, status or printed
// config.
type Secret []byte

func (Secret) String() string                 { return "(secret)" }
func (s Secret) GoString() string             { return s.String() }
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Link is the Ethernet link the WAN's protocols (DHCP, PPPoE discovery)
// run on: the NIC, or its VLAN sub-interface (named like Linux's
// convention, NIC.ID).
func (w *WAN) Link() string {
	if w.VLAN == 0 {
		return w.Name
	}
	return vlanName(w.Name, w.VLAN)
}

// Iface is the interface that carries the WAN's addresses and traffic:
// the PPP interface with PPPoE, else Link. NAT, the firewall's WAN rules
// and the flowtable use it.
func (w *WAN) Iface() string {
	if w.IPv4 == "pppoe" {
		return pppName(w.Name)
	}
	return w.Link()
}

func vlanName(nic string, id int) string {
	suffix := fmt.Sprintf(".%d", id)
	if len(nic)+len(suffix) > 15 {
		nic = nic[:15-len(suffix)]
	}
	return nic + suffix
}

func pppName(nic string) string {
	n := "ppp-" + nic
	if len(n) > 15 {
		n = n[:15]
	}
	return n
}

// loadPasswords reads the PPPoE passwords of the uplinks.
func (w *WAN) loadPasswords(dir string) []FieldError {
	errs := w.loadPassword(dir, "wan")
	if w.Backup != nil {
		errs = append(errs, w.Backup.loadPassword(dir, "wan.backup")...)
	}
	return errs
}

// loadPassword reads the PPPoE password (the file's first line).
func (w *WAN) loadPassword(dir, path string) []FieldError {
	if w.PPPoE == nil || w.PPPoE.PasswordFile == "" {
		return nil
	}
	w.PPPoE.PasswordFile = inDir(dir, w.PPPoE.PasswordFile)
	b, err := os.ReadFile(w.PPPoE.PasswordFile)
	if err != nil {
		return []FieldError{{Path: path + ".pppoe.password_file", Msg: err.Error()}}
	}
	pw, _, _ := bytes.Cut(b, []byte("\n"))
	pw = bytes.TrimSuffix(pw, []byte("\r"))
	if len(pw) == 0 || len(pw) > 255 {
		return []FieldError{{Path: path + ".pppoe.password_file", Msg: fmt.Sprintf("%s: the first line is the password, 1-255 bytes", w.PPPoE.PasswordFile)}}
	}
	w.PPPoE.Password = Secret(pw)
	return nil
}
