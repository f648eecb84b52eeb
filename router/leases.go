package router

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"
)

// LeaseView is one DHCP lease as routerctl shows it.
type LeaseView struct {
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

// LeasesStatus is the answer to routerctl leases.
type LeasesStatus struct {
	Leases []LeaseView `json:"leases"`
}

// WriteText renders the leases as a table.
func (ls *LeasesStatus) WriteText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	writeLeases(tw, ls.Leases)
	return tw.Flush()
}

func writeLeases(w io.Writer, leases []LeaseView) {
	fmt.Fprintln(w, "IFACE\tADDRESS\tCLIENT\tHOSTNAME\tEXPIRES")
	for _, l := range leases {
		client := l.MAC
		if l.DUID != "" {
			client = fmt.Sprintf("%s/%d", l.DUID, l.IAID)
		}
		exp := "in " + time.Until(l.Expires).Round(time.Second).String()
		if l.Reserved {
			exp += " (reserved)"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", l.Interface, l.Address, client, orDash(l.Hostname), exp)
	}
}
