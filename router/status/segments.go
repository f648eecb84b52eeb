package status

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// Segment is one LAN's reach: what its hosts may open connections to.
// Replies to connections opened towards it always pass.
type Segment struct {
	LAN      string   `json:"lan"`
	Access   string   `json:"access"`
	Internet bool     `json:"internet"`
	Reaches  []string `json:"reaches"` // the other LANs it may open connections to
}

// Rule is a [[firewall.rule]] with the packets it matched.
type Rule struct {
	Name    string `json:"name"`
	Action  string `json:"action"`
	Packets uint64 `json:"packets"`
}

// renderSegments prints the access matrix (a row per LAN: may it open
// connections to the internet and to each other LAN) and the rules.
func renderSegments(fw *Firewall, w io.Writer) {
	if len(fw.Segments) > 1 {
		cols := []string{"SEGMENT", "ACCESS", "INTERNET"}
		for _, s := range fw.Segments {
			cols = append(cols, "→"+s.LAN)
		}
		fmt.Fprintln(w, strings.Join(cols, "\t"))
		for _, s := range fw.Segments {
			row := []string{s.LAN, s.Access, yesNo(s.Internet)}
			for _, o := range fw.Segments {
				switch {
				case o.LAN == s.LAN:
					row = append(row, "-")
				default:
					row = append(row, yesNo(slices.Contains(s.Reaches, o.LAN)))
				}
			}
			fmt.Fprintln(w, strings.Join(row, "\t"))
		}
		fmt.Fprintln(w, "\t(replies to connections a LAN may open always pass; rules below come first)")
	}
	for _, r := range fw.Rules {
		fmt.Fprintf(w, "rule %s\t%s, %d packets\n", r.Name, r.Action, r.Packets)
	}
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// Reflector is the mDNS reflector: the LANs it relays between and its
// counts (relayed4/6, dropped_rate, dropped_malformed, skipped_legacy).
type Reflector struct {
	LANs     []string         `json:"lans"`
	Counters map[string]int64 `json:"counters"`
}

func renderReflector(st *Status, w io.Writer) {
	r := st.Reflector
	if r == nil {
		return
	}
	section(w, "mDNS reflector")
	fmt.Fprintf(w, "between\t%s\n", strings.Join(r.LANs, ", "))
	for _, k := range []string{"relayed4", "relayed6", "dropped_rate", "dropped_malformed", "skipped_legacy"} {
		if n := r.Counters[k]; n > 0 {
			fmt.Fprintf(w, "%s\t%d\n", k, n)
		}
	}
}

// Container is a published Docker container as Docker last reported it.
type Container struct {
	Name      string   `json:"name"`
	Addresses []string `json:"addresses,omitempty"`
	Error     string   `json:"error,omitempty"` // why it has none (not running, not found)
}

func renderContainers(st *Status, w io.Writer) {
	if len(st.Containers) == 0 {
		return
	}
	section(w, "Published containers")
	for _, c := range st.Containers {
		what := strings.Join(c.Addresses, ", ")
		if c.Error != "" {
			what = "unpublished: " + c.Error
		}
		fmt.Fprintf(w, "docker:%s\t%s\n", c.Name, what)
	}
}

func renderRemote(st *Status, w io.Writer) {
	r := st.Remote
	if r == nil {
		return
	}
	section(w, "Remote access ("+r.Interface+", devices reach "+r.Endpoint+")")
	r.table(w)
}

// WriteText writes routerctl remote list.
func (r *Remote) WriteText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	r.table(tw)
	return tw.Flush()
}

func (r *Remote) table(w io.Writer) {
	if r.Error != "" {
		fmt.Fprintf(w, "error\t%s\n", r.Error)
	}
	fmt.Fprintln(w, "DEVICE\tADDRESSES\tFULL\tENDPOINT\tHANDSHAKE\tRX\tTX")
	for _, p := range r.Peers {
		fmt.Fprintf(w, "%s\t%s\t%v\t%s\t%s\t%d\t%d\n", p.Name, strings.Join(p.Addresses, ", "), p.FullTunnel, orDash(p.Endpoint), ago(p.LastHandshake), p.RxBytes, p.TxBytes)
	}
}

func renderPortMap(st *Status, w io.Writer) {
	if st.PortMap == nil {
		return
	}
	section(w, "Port mappings (NAT-PMP, PCP)")
	st.PortMap.table(w)
}

// WriteText writes routerctl portmap list.
func (p *PortMap) WriteText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	p.table(tw)
	return tw.Flush()
}

func (p *PortMap) table(w io.Writer) {
	fmt.Fprintln(w, "PROTO\tEXTERNAL\tCLIENT\tINTERNAL\tBY\tEXPIRES")
	for _, m := range p.Mappings {
		fmt.Fprintf(w, "%s\t%d\t%s\t%d\t%s\tin %s\n", m.Proto, m.External, m.Client, m.Internal, m.By, time.Until(m.Expires).Round(time.Second))
	}
}
