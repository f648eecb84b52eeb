package status

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// sections is the order routerctl status prints in: what the box is made
// of (NICs, namespaces, routing), its uplinks (WAN, VPN), what it serves
// (LAN, DNS), then how traffic was steered and dropped.
var sections = []func(*Status, io.Writer){
	renderNICs,
	renderNetns,
	renderRouting,
	renderWAN,
	renderSQM,
	renderVPN,
	renderRelay,
	renderLAN,
	renderClients,
	renderDNS,
	renderReflector,
	renderContainers,
	renderRemote,
	renderPortMap,
	renderPolicy,
	renderBlocklists,
	renderFirewall,
	renderAdmin,
	renderTime,
	renderUpdate,
}

func renderUpdate(st *Status, w io.Writer) {
	u := st.Update
	if u == nil {
		return
	}
	section(w, "Boot slots")
	for _, s := range u.Slots {
		var marks []string
		if s.Running {
			marks = append(marks, "running")
		}
		if s.Committed {
			marks = append(marks, "committed")
		}
		v := "empty"
		if s.Version != "" {
			v = fmt.Sprintf("%s, built %s", s.Version, s.BuildTime.Format(time.RFC3339))
		}
		fmt.Fprintf(w, "slot %s\t%s%s\n", s.Name, v, bracket(strings.Join(marks, ", ")))
	}
	if a := u.Attempt; a != nil {
		if a.Probation.IsZero() {
			fmt.Fprintf(w, "update\t%s written to slot %s at %s; boots at the next reboot\n", a.Version, a.Slot, a.At.Format(time.RFC3339))
		} else {
			fmt.Fprintf(w, "update\t%s on probation in slot %s since %s (rolls back unless healthy)\n", a.Version, a.Slot, a.Probation.Format(time.TimeOnly))
		}
	}
	if len(u.BootOrder) > 0 {
		fmt.Fprintf(w, "firmware boot order\t%s\n", strings.Join(u.BootOrder, ", "))
	}
	if u.RebootAt != nil {
		fmt.Fprintf(w, "reboot\tscheduled at %s\n", u.RebootAt.Format(time.RFC3339))
	}
	if r := u.Last; r != nil {
		line := fmt.Sprintf("%s %s (slot %s, from %s) at %s", strings.ToUpper(r.Outcome), r.Version, r.Slot, r.From, r.At.Format(time.RFC3339))
		if r.Reason != "" {
			line += ": " + oneLine(r.Reason)
		}
		fmt.Fprintf(w, "last update\t%s\n", line)
	}
	if u.Error != "" {
		fmt.Fprintf(w, "error\t%s\n", oneLine(u.Error))
	}
}

func bracket(s string) string {
	if s == "" {
		return ""
	}
	return " (" + s + ")"
}

func renderTime(st *Status, w io.Writer) {
	t := st.Time
	if t == nil {
		return
	}
	section(w, "Time")
	state := "NOT SYNCHRONISED"
	if t.Synced {
		state = fmt.Sprintf("synchronised to %s (stratum %d), offset %+.3f ms at %s", t.Server, t.Stratum, t.OffsetMS, t.LastSync.Format(time.TimeOnly))
	}
	fmt.Fprintf(w, "clock\t%s, %s\n", t.Now.Format(time.RFC3339), state)
	if !t.SetsClock {
		fmt.Fprintf(w, "\tmeasured and served only (time.set_clock = false)\n")
	}
	fmt.Fprintf(w, "floor\t%s\n", t.Floor.Format(time.RFC3339))
	if t.Steps > 0 {
		fmt.Fprintf(w, "steps\t%d, last %s\n", t.Steps, t.LastStep)
	}
	for _, s := range t.Servers {
		switch {
		case s.Error != "":
			fmt.Fprintf(w, "server %s\t%s\n", s.Name, oneLine(s.Error))
		default:
			mark := ""
			if s.Used {
				mark = ", used"
			} else if s.Outlier {
				mark = ", OUTLIER"
			}
			fmt.Fprintf(w, "server %s\t%s stratum %d, offset %+.3f ms, rtt %.3f ms%s\n", s.Name, s.Addr, s.Stratum, s.OffsetMS, s.RTTMS, mark)
		}
	}
	if len(t.Serving) > 0 {
		fmt.Fprintf(w, "serving\t%s: %d answered, %d dropped\n", strings.Join(t.Serving, ", "), t.Served, t.Dropped)
	}
	if t.Error != "" {
		fmt.Fprintf(w, "error\t%s\n", oneLine(t.Error))
	}
}

func renderAdmin(st *Status, w io.Writer) {
	a := st.Admin
	if a == nil {
		return
	}
	section(w, fmt.Sprintf("SSH management (port %d)", a.Port))
	fmt.Fprintf(w, "host key\t%s\n", a.HostKey)
	fmt.Fprintf(w, "listening\t%s\n", orDash(strings.Join(a.Listening, ", ")))
	fmt.Fprintf(w, "authorized keys\t%d\n", a.Keys)
	fmt.Fprintf(w, "sessions\t%d open, %d commands run, %d failed authentications\n", a.Sessions, a.Commands, a.AuthFailures)
	fmt.Fprintf(w, "banned\t%d (routerctl ban list)\n", a.Banned)
	for _, e := range a.Errors {
		fmt.Fprintf(w, "error\t%s\n", oneLine(e))
	}
}

// WriteText renders the status for a person, section by section.
func (st *Status) WriteText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "routerd %s, up %s, %s\n", st.Version, time.Duration(st.Uptime)*time.Second, st.Phase)
	fmt.Fprintf(tw, "config %s (sha256 %.12s)\n", st.ConfigPath, st.ConfigHash)
	if r := st.Reload; r != nil {
		if r.Error != "" {
			fmt.Fprintf(tw, "last reload %s REFUSED: %s\n", r.At.Format(time.RFC3339), oneLine(r.Error))
		} else {
			fmt.Fprintf(tw, "last reload %s ok\n", r.At.Format(time.RFC3339))
		}
	}
	if st.ConfirmBy != nil {
		fmt.Fprintf(tw, "config change NOT CONFIRMED: rolls back by itself at %s unless `config confirm` comes first\n", st.ConfirmBy.Format(time.TimeOnly))
	}
	if r := st.Rollback; r != nil {
		fmt.Fprintf(tw, "last rollback %s: %s\n", r.At.Format(time.RFC3339), oneLine(r.Error))
	}
	section(tw, "Components")
	fmt.Fprintln(tw, "NAME\tSTATE\tSINCE\tERROR")
	for _, c := range st.Components {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", c.Name, c.State, ago(c.Since), oneLine(c.Error))
	}
	for _, r := range sections {
		r(st, tw)
	}
	return tw.Flush()
}

// WriteText renders the leases as a table.
func (ls *Leases) WriteText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	writeLeases(tw, ls.Leases)
	return tw.Flush()
}

// WriteText renders the lists as a table.
func (bs *Blocklists) WriteText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	writeBlocklists(tw, bs.Lists)
	return tw.Flush()
}

func renderNICs(st *Status, w io.Writer) {
	if st.NICs == nil {
		return
	}
	section(w, "NICs")
	fmt.Fprintln(w, "NAME\tROLE\tMATCH MAC\tMAC\tNETNS\tSTATE\tRX\tTX\tADOPTED\tERROR")
	for _, n := range st.NICs.NICs {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s/%d\t%s/%d\t%d (re %d)\t%s\n", n.Name, n.Role, n.MatchMAC, orDash(n.CurrentMAC),
			n.Namespace, n.State, bytesH(n.RxBytes), n.RxPackets, bytesH(n.TxBytes), n.TxPackets, n.Adopted, n.Readopted, oneLine(n.Error))
	}
}

func renderNetns(st *Status, w io.Writer) {
	if st.Netns == nil {
		return
	}
	section(w, "Namespaces and transit links")
	for _, n := range st.Netns.Namespaces {
		if !n.Exists {
			fmt.Fprintf(w, "%s (%s)\tMISSING\n", n.Name, n.Role)
			continue
		}
		fmt.Fprintf(w, "%s (%s)\t%s\n", n.Name, n.Role, strings.Join(n.Links, "\n\t"))
	}
}

func renderRouting(st *Status, w io.Writer) {
	if st.Routing == nil {
		return
	}
	section(w, "Routing")
	for _, r := range st.Routing.Rules {
		fmt.Fprintf(w, "\t%s\n", r)
	}
	keys := make([]string, 0, len(st.Routing.Routes))
	for k := range st.Routing.Routes {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, ns := range keys {
		for i, r := range st.Routing.Routes[ns] {
			label := ""
			if i == 0 {
				label = ns
			}
			fmt.Fprintf(w, "%s\t%s\n", label, r)
		}
	}
}

func bytesH(n uint64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1fG", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1fM", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1fK", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%dB", n)
}

func renderWAN(st *Status, w io.Writer) {
	if st.WAN == nil {
		return
	}
	section(w, "WAN")
	renderUplink(st.WAN, w)
	if pd := st.WAN.PD; pd != nil {
		show := func(label string, d DelegatedPrefix) {
			fmt.Fprintf(w, "%s\t%s, preferred %s, valid %s\n", label, d.Prefix, until(d.PreferredUntil), until(d.ValidUntil))
			for _, s := range d.Subnets {
				fmt.Fprintf(w, "\t%s %s\n", s.LAN, s.Prefix)
			}
		}
		if pd.Current != nil {
			show("on the LANs", *pd.Current)
		}
		for _, d := range pd.Deprecated {
			show("deprecated", d)
		}
		if pd.Error != "" {
			fmt.Fprintf(w, "\tprefix delegation: %s\n", oneLine(pd.Error))
		}
	}
	if st.WAN.Backup != nil {
		fmt.Fprintln(w, "backup uplink")
		renderUplink(st.WAN.Backup, w)
	}
	renderFailover(st.WAN.Failover, w)
}

func until(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return time.Until(t).Round(time.Second).String()
}

func renderVPN(st *Status, w io.Writer) {
	if st.VPN == nil {
		return
	}
	v := st.VPN
	state := "DOWN (no recent handshake)"
	if v.Up {
		state = "up"
	}
	section(w, fmt.Sprintf("VPN %s (%s, listen port %d): %s", v.Interface, v.Implementation, v.ListenPort, state))
	fmt.Fprintf(w, "public key\t%s\n", v.PublicKey)
	for _, p := range v.Peers {
		hs := "never"
		if !p.LastHandshake.IsZero() {
			hs = ago(p.LastHandshake)
		}
		fmt.Fprintf(w, "peer %.12s…\tendpoint %s, handshake %s, rx %s, tx %s\n", p.PublicKey, orDash(p.Endpoint), hs,
			bytesH(uint64(p.RxBytes)), bytesH(uint64(p.TxBytes)))
	}
	if v.Error != "" {
		fmt.Fprintf(w, "error\t%s\n", oneLine(v.Error))
	}
}

func renderRelay(st *Status, w io.Writer) {
	r := st.Relay
	if r == nil {
		return
	}
	section(w, fmt.Sprintf("Relay %s (%s, listen port %d)", r.Interface, r.Implementation, r.ListenPort))
	fmt.Fprintf(w, "public key\t%s\n", r.PublicKey)
	fmt.Fprintf(w, "nat\t%s\n", r.NAT)
	fmt.Fprintf(w, "mss clamp\t%d (IPv4), %d (IPv6)\n", r.MSS4, r.MSS6)
	writeConntrack(w, r.Conntrack)
	if r.Conntrack.Offloaded != nil {
		fmt.Fprintf(w, "flow offload\t%d connections\n", r.Conntrack.Offloaded["relay"])
	}
	for _, msg := range r.Warnings {
		fmt.Fprintf(w, "WARNING\t%s\n", msg)
	}
	fmt.Fprintln(w, "PEER\tALLOWED IPS\tENDPOINT\tHANDSHAKE\tRX\tTX")
	for _, p := range r.Peers {
		hs := "never"
		if !p.LastHandshake.IsZero() {
			hs = ago(p.LastHandshake)
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", p.Name, strings.Join(p.AllowedIPs, ","), orDash(p.Endpoint), hs,
			bytesH(uint64(p.RxBytes)), bytesH(uint64(p.TxBytes)))
	}
	fmt.Fprintln(w, "FORWARD\tPEER\tPACKETS\tBYTES")
	for _, f := range r.Forwards {
		name := f.Forward
		if f.Name != "" {
			name = f.Name + ": " + name
		}
		fmt.Fprintf(w, "%s\t%s\t%d\t%s\n", name, orDash(f.Peer), f.Packets, bytesH(f.Bytes))
		if f.NAT != "" {
			fmt.Fprintf(w, "\t%s\n", f.NAT)
		}
	}
	if r.Error != "" {
		fmt.Fprintf(w, "error\t%s\n", oneLine(r.Error))
	}
}

func renderLAN(st *Status, w io.Writer) {
	if st.LAN == nil {
		return
	}
	section(w, fmt.Sprintf("LAN leases (%d)", len(st.LAN.Leases)))
	writeLeases(w, st.LAN.Leases)
	section(w, "LAN services")
	fmt.Fprintln(w, "SERVICE\tCOUNTERS")
	keys := make([]string, 0, len(st.LAN.Stats))
	for k := range st.LAN.Stats {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		var parts []string
		for name, v := range st.LAN.Stats[k] {
			parts = append(parts, fmt.Sprintf("%s=%d", name, v))
		}
		sort.Strings(parts)
		fmt.Fprintf(w, "%s\t%s\n", k, strings.Join(parts, " "))
	}
	fmt.Fprintf(w, "lease store\t%d records in %d fsyncs\n", st.LAN.Store.Records, st.LAN.Store.Commits)
}

func writeLeases(w io.Writer, leases []Lease) {
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

func renderDNS(st *Status, w io.Writer) {
	if st.DNS == nil {
		return
	}
	d := st.DNS
	section(w, fmt.Sprintf("DNS (%.1f queries/s over the last minute)", d.QueriesPerSecond))
	fmt.Fprintf(w, "queries\t%d (local %d, cache hits %d, forwarded %d, merged in flight %d, mDNS %d/%d answered)\n",
		d.Queries, d.Local, d.CacheHits, d.Forwarded, d.Merged, d.MDNSAnswered, d.MDNSQueries)
	fmt.Fprintf(w, "cache\t%d entries, hit ratio %.0f%%\n", d.CacheSize, 100*d.CacheHitRatio)
	fmt.Fprintf(w, "refused\t%d (not from the LAN); formerr %d; servfail %d\n", d.Refused, d.FormErr, d.ServFail)
	if d.Blocked > 0 {
		fmt.Fprintf(w, "blocked\t%d (dns.block; routerctl dns top)\n", d.Blocked)
	}
	fmt.Fprintf(w, "listening\t%s\n", strings.Join(d.Listening, ", "))
	if v := d.DNSSEC; v != nil {
		fmt.Fprintf(w, "dnssec\tvalidating (anchors %s): secure %d, insecure %d, bogus %d; %d negative answers from validated NSEC\n",
			strings.Join(v.Anchors, " "), v.Secure, v.Insecure, v.Bogus, v.Synthesized)
		if v.LastBogus != "" {
			fmt.Fprintf(w, "last bogus\t%s\n", oneLine(v.LastBogus))
		}
	}
	fmt.Fprintln(w, "UPSTREAM\tPROTOCOL\tSOURCE\tHEALTHY\tLATENCY\tANSWERED\tFAILED\tRESENT")
	for _, u := range d.Upstreams {
		proto := orDash(u.Protocol)
		if u.ServerName != "" {
			proto += " (" + u.ServerName + ")"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%v\t%.1f ms\t%d\t%d\t%d\n", u.Address, proto, u.Source, u.Healthy, u.LatencyMS, u.Answered, u.Failed, u.Resent)
	}
	for _, u := range d.Upstreams {
		if u.Handshake != "" {
			fmt.Fprintf(w, "tls %s\t%s\n", u.Address, oneLine(u.Handshake))
		}
	}
}

func renderPolicy(st *Status, w io.Writer) {
	if st.Firewall == nil {
		return
	}
	section(w, "Policy (new LAN connections by decision)")
	fmt.Fprintln(w, "DECISION\tCONNECTIONS")
	for _, c := range st.Firewall.Counters["main"] {
		if strings.HasPrefix(c.Name, "policy_") || strings.HasPrefix(c.Name, "default_") || c.Name == "nat_loopback" || c.Name == "inbound_wan" {
			fmt.Fprintf(w, "%s\t%d\n", c.Name, c.Packets)
		}
	}
	for _, c := range st.Firewall.Counters["lists"] {
		fmt.Fprintf(w, "%s\t%d\n", c.Name, c.Packets)
	}
}

func renderFirewall(st *Status, w io.Writer) {
	if st.Firewall == nil {
		return
	}
	fw := st.Firewall
	section(w, fmt.Sprintf("Firewall (ruleset generation %d, applied %s)", fw.Generation, ago(fw.Applied)))
	if ct := fw.Conntrack; ct != nil {
		writeConntrack(w, *ct)
		if fw.Offload.Enabled {
			var devs []string
			for _, l := range slices.Sorted(maps.Keys(fw.Offload.Devices)) {
				devs = append(devs, l+" "+strings.Join(fw.Offload.Devices[l], ","))
			}
			total := 0
			for _, n := range ct.Offloaded {
				total += n
			}
			fmt.Fprintf(w, "flow offload\t%d connections (%s); flowtables: %s\n", total, perNamespace(ct.Offloaded), strings.Join(devs, " · "))
		} else {
			fmt.Fprintf(w, "flow offload\toff: %s\n", fw.Offload.Off)
		}
	}
	for _, msg := range fw.Warnings {
		fmt.Fprintf(w, "WARNING\t%s\n", msg)
	}
	renderSegments(fw, w)
	fmt.Fprintln(w, "TABLE\tDROP REASON\tPACKETS")
	labels := make([]string, 0, len(st.Firewall.Counters))
	for k := range st.Firewall.Counters {
		labels = append(labels, k)
	}
	sort.Strings(labels)
	for _, l := range labels {
		for _, c := range st.Firewall.Counters[l] {
			if strings.HasPrefix(c.Name, "drop_") {
				fmt.Fprintf(w, "%s\t%s\t%d\n", l, strings.TrimPrefix(c.Name, "drop_"), c.Packets)
			}
		}
	}
}

// writeConntrack is the conntrack line: the fullest namespace's fill of
// the limit, and each namespace's count when there are several.
func writeConntrack(w io.Writer, ct Conntrack) {
	per := ""
	if len(ct.Namespaces) > 1 {
		per = "; " + perNamespace(ct.Namespaces)
	}
	fmt.Fprintf(w, "conntrack\t%d of %d (%.0f%%): capacity %d, kernel max %d%s\n", ct.Count, ct.Limit, 100*ct.Fill, ct.Capacity, ct.Max, per)
	if ct.NotApplied != "" {
		fmt.Fprintf(w, "\tcapacity not applied: %s\n", oneLine(ct.NotApplied))
	}
	if ct.Error != "" {
		fmt.Fprintf(w, "\tunreadable: %s\n", oneLine(ct.Error))
	}
}

// perNamespace is "main 4, vpn 2, wan 4".
func perNamespace(m map[string]int) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

func renderBlocklists(st *Status, w io.Writer) {
	if st.Blocklists == nil {
		return
	}
	section(w, "Blocklists")
	writeBlocklists(w, st.Blocklists.Lists)
}

func writeBlocklists(w io.Writer, lists []Blocklist) {
	fmt.Fprintln(w, "NAME\tVIA\tFORMAT\tV4\tV6\tDOMAINS\tLINES\tREJECTED\tREFUSED\tLAST SUCCESS\tNEXT RUN\tRESULT")
	for _, l := range lists {
		next := "-"
		if !l.NextRun.IsZero() {
			next = "in " + time.Until(l.NextRun).Round(time.Second).String()
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t%s\t%s\n", l.Name, l.Via, l.Format, l.Prefixes4, l.Prefixes6,
			l.Domains, l.Lines, l.Rejected, l.Refused, ago(l.LastSuccess), next, orDash(l.LastResult))
	}
	for _, l := range lists {
		if l.LastError != "" {
			fmt.Fprintf(w, "  %s: last error: %s\n", l.Name, l.LastError)
		}
		if len(l.Samples) > 0 {
			fmt.Fprintf(w, "  %s: rejected, e.g.: %s\n", l.Name, strings.Join(l.Samples, " | "))
		}
		if len(l.RefusedSamples) > 0 {
			fmt.Fprintf(w, "  %s: refused (would capture the router's own networks), e.g.: %s\n", l.Name, strings.Join(l.RefusedSamples, " | "))
		}
	}
}

func section(w io.Writer, title string) {
	fmt.Fprintf(w, "\n%s\n", title)
}

func ago(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := time.Since(t)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh%02dm ago", int(d.Hours()), int(d.Minutes())%60)
	}
	return t.Format("2006-01-02 15:04")
}

func oneLine(s string) string { return strings.ReplaceAll(s, "\n", "; ") }

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// WriteText renders the bans as a table.
func (b *Bans) WriteText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ADDRESS\tSIDE\tUNTIL")
	for _, x := range b.Bans {
		fmt.Fprintf(tw, "%s\t%s\t%s (in %s)\n", x.Addr, x.Side, x.Until.Format(time.TimeOnly), until(x.Until))
	}
	return tw.Flush()
}
