package status

import (
	"fmt"
	"io"
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
