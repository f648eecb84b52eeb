package status

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// PPPoE is the WAN's PPPoE session.
type PPPoE struct {
	State      string        `json:"state"` // "discovering", "authenticating", "up", "waiting"
	AC         string        `json:"ac,omitempty"`
	ACMAC      string        `json:"ac_mac,omitempty"`
	SessionID  uint16        `json:"session_id,omitempty"`
	Address    string        `json:"address,omitempty"`
	Peer       string        `json:"peer,omitempty"`
	MTU        int           `json:"mtu,omitempty"`
	Since      time.Time     `json:"since,omitzero"`
	EchoRTT    time.Duration `json:"echo_rtt_ns,omitempty"` // LCP echo round trip
	Reconnects int           `json:"reconnects"`
	LastEnd    string        `json:"last_end,omitempty"` // why the last session ended or attempt failed
	NextTry    time.Time     `json:"next_try,omitzero"`
}

// renderWANLink prints the WAN's VLAN and PPPoE session, if any.
func renderWANLink(wan *WAN, w io.Writer) {
	if wan.VLAN != 0 {
		fmt.Fprintf(w, "vlan\t%d (%s)\n", wan.VLAN, wan.Link)
	}
	p := wan.PPPoE
	if p == nil {
		return
	}
	fmt.Fprintf(w, "pppoe\t%s\t%s\n", p.State, orDash(p.Address))
	if p.SessionID != 0 {
		fmt.Fprintf(w, "\tsession %#04x with %s (%s)", p.SessionID, orDash(p.AC), p.ACMAC)
		if p.Peer != "" {
			fmt.Fprintf(w, ", peer %s, mtu %d, up %s", p.Peer, p.MTU, time.Since(p.Since).Round(time.Second))
		}
		if p.EchoRTT > 0 {
			fmt.Fprintf(w, ", echo rtt %s", p.EchoRTT.Round(10*time.Microsecond))
		}
		fmt.Fprintln(w)
	}
	if p.Reconnects > 0 || p.LastEnd != "" {
		fmt.Fprintf(w, "\treconnects %d, last end: %s\n", p.Reconnects, oneLine(orDash(p.LastEnd)))
	}
	if p.State == "waiting" && !p.NextTry.IsZero() {
		fmt.Fprintf(w, "\tnext try in %s\n", until(p.NextTry))
	}
}

// renderUplink prints an uplink: its link, IPv4 and IPv6 addressing.
func renderUplink(wan *WAN, w io.Writer) {
	renderWANLink(wan, w)
	if d := wan.DHCP; d != nil {
		fmt.Fprintf(w, "dhcp\t%s\t%s\n", d.State, orDash(d.Address))
		if d.Address != "" {
			fmt.Fprintf(w, "\trouter %s, dns %s, server %s\n", orDash(d.Router), orDash(strings.Join(d.DNS, " ")), orDash(d.Server))
			fmt.Fprintf(w, "\texpires in %s, next renew in %s\n", until(d.Expires), until(d.NextRenew))
		}
		if d.Error != "" {
			fmt.Fprintf(w, "\terror: %s\n", oneLine(d.Error))
		}
	} else if wan.PPPoE == nil {
		fmt.Fprintf(w, "static\t%s\n", wan.Addr)
	}
	if d := wan.DHCP6; d != nil {
		fmt.Fprintf(w, "dhcpv6\t%s\t%s\n", d.State, orDash(d.Address))
		if d.Delegated != "" {
			fmt.Fprintf(w, "\tdelegated prefix %s, expires in %s\n", d.Delegated, until(d.Expires))
		}
	} else if wan.Addr6 != "" {
		fmt.Fprintf(w, "static6\t%s\n", wan.Addr6)
	} else {
		fmt.Fprintf(w, "ipv6\t%s\n", wan.IPv6)
	}
}

// renderFailover prints the uplinks' health and the last switches.
func renderFailover(f *Failover, w io.Writer) {
	if f == nil {
		return
	}
	fmt.Fprintf(w, "failover\t%s active, probing %s\n", f.Active, strings.Join(f.Probe, " "))
	for _, u := range f.Uplinks {
		rtt := "-"
		if u.RTT > 0 {
			rtt = u.RTT.Round(10 * time.Microsecond).String()
		}
		fmt.Fprintf(w, "\t%s (%s)\t%s for %s, rtt %s, loss %.0f%%\n", u.Uplink, u.Iface, u.State,
			time.Since(u.Since).Round(time.Second), rtt, 100*u.Loss)
	}
	for _, s := range f.Switches {
		fmt.Fprintf(w, "\t%s\t%s -> %s: %s (%d connections reset)\n", s.At.Local().Format(time.DateTime), s.From, s.To, oneLine(s.Why), s.Flushed)
	}
}
