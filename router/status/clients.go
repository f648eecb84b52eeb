package status

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// Clients is who is using the line: routerctl clients, and a short
// section of status.
type Clients struct {
	Since time.Time     `json:"since"` // the local midnight the totals count from
	Hosts []ClientUsage `json:"hosts"` // the busiest now first
	Error string        `json:"error,omitempty"`
}

// ClientUsage is one LAN host's use of the line: its addresses (IPv4 and
// IPv6, one device by its MAC), both paths.
type ClientUsage struct {
	Name      string    `json:"name,omitempty"` // from its DHCP lease
	MAC       string    `json:"mac,omitempty"`
	Addresses []string  `json:"addresses"`
	Segment   string    `json:"segment,omitempty"`
	Path      string    `json:"path,omitempty"` // "wan" | "vpn": its busiest connection's
	UpRate    float64   `json:"up_bps"`         // over the last 3 s
	DownRate  float64   `json:"down_bps"`
	UpToday   uint64    `json:"up_bytes_today"`
	DownToday uint64    `json:"down_bytes_today"`
	LastSeen  time.Time `json:"last_seen"`
}

// WriteText prints the clients as routerctl clients does: every host
// seen today.
func (c *Clients) WriteText(w io.Writer) error {
	return c.write(w, len(c.Hosts))
}

func (c *Clients) write(w io.Writer, n int) error {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tADDRESSES\tSEGMENT\tPATH\tUP NOW\tDOWN NOW\tUP TODAY\tDOWN TODAY")
	for _, h := range c.Hosts[:min(n, len(c.Hosts))] {
		name := h.Name
		if name == "" {
			name = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", name, strings.Join(h.Addresses, " "), dash(h.Segment), dash(h.Path),
			bitRate(uint64(h.UpRate)), bitRate(uint64(h.DownRate)), byteCount(h.UpToday), byteCount(h.DownToday))
	}
	if c.Error != "" {
		fmt.Fprintf(tw, "error: %s\n", oneLine(c.Error))
	}
	return tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// renderClients is status's short view: the five busiest now.
func renderClients(st *Status, w io.Writer) {
	c := st.Clients
	if c == nil || len(c.Hosts) == 0 && c.Error == "" {
		return
	}
	section(w, "Clients (busiest now; all of them: routerctl clients)")
	_ = c.write(w, 5) // as the other sections: WriteText reports the writer's error
}
