package router

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/routerd/routerd/internal/lifecycle"
	"github.com/routerd/routerd/router/status"
	"github.com/routerd/routerd/router/vpn"
	"golang.org/x/net/netutil"
)

// metricsComp serves the status model as Prometheus text metrics on
// status.metrics. It is a component so a reload that changes the address
// moves it.
type metricsComp struct {
	log    *slog.Logger
	addr   string
	status func() *status.Status
	srv    *http.Server
	run    lifecycle.Group // the server's goroutine
}

func newMetricsComp(addr string, status func() *status.Status, log *slog.Logger) *metricsComp {
	return &metricsComp{addr: addr, status: status, log: log}
}

func (c *metricsComp) Name() string { return "metrics" }

func (c *metricsComp) Start(ctx context.Context) error {
	ln, err := net.Listen("tcp", c.addr)
	if err != nil {
		return fmt.Errorf("listen for metrics on %s: %w", c.addr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		writeMetrics(c.status(), w)
	})
	c.srv = metricsServer(mux)
	srv := c.srv
	c.run.Start(ctx)
	c.run.Go(func(context.Context) { // ends when Stop closes srv
		if err := srv.Serve(netutil.LimitListener(ln, metricsMaxConns)); err != nil && !errors.Is(err, http.ErrServerClosed) {
			c.log.Error("metrics stopped serving", "addr", c.addr, "err", err)
		}
	})
	return nil
}

// The metrics endpoint may face the LAN: whatever a host there does (open
// connections and keep them idle, send a request slowly, never read the
// answer), it holds a few connections for seconds, not forever.
var (
	metricsIdle     = 60 * time.Second
	metricsMaxConns = 16
)

func metricsServer(h http.Handler) *http.Server {
	return &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second,
		WriteTimeout: 30 * time.Second, IdleTimeout: metricsIdle, MaxHeaderBytes: 8 << 10}
}

// Stop closes at once: a scrape in flight may be waiting for the status
// lock that a reload holds while it stops the components.
func (c *metricsComp) Stop(ctx context.Context) error {
	if c.srv == nil {
		return nil
	}
	if err := c.srv.Close(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return errors.Join(err, c.run.Stop(ctx))
	}
	return c.run.Stop(ctx)
}

// The text exposition format escapes a label value's backslash, double
// quote and line feed, and nothing else: UTF-8 goes as it is. (Go's %q
// escapes more, and a scraper would read "\u00e9" as six characters.) HELP
// escapes backslash and line feed. The writer is hand-written, not a
// library: it is forty lines, and TestMetricsFormat holds it to the format.
var (
	labelEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
	helpEscaper  = strings.NewReplacer(`\`, `\\`, "\n", `\n`)
)

// metricWriter gathers samples by family and writes each family as one
// group, HELP and TYPE first, as the exposition format requires.
type metricWriter struct {
	order    []string
	families map[string]*family
}

type family struct {
	typ, help string
	samples   []string
}

func (m *metricWriter) emit(name, typ, help string, value float64, labels ...string) {
	name = "routerd_" + name
	f := m.families[name]
	if f == nil {
		f = &family{typ: typ, help: help}
		m.families[name] = f
		m.order = append(m.order, name)
	}
	var lb strings.Builder
	for i := 0; i+1 < len(labels); i += 2 {
		if lb.Len() > 0 {
			lb.WriteByte(',')
		}
		lb.WriteString(labels[i] + `="` + labelEscaper.Replace(labels[i+1]) + `"`)
	}
	if lb.Len() > 0 {
		f.samples = append(f.samples, fmt.Sprintf("%s{%s} %g", name, lb.String(), value))
	} else {
		f.samples = append(f.samples, fmt.Sprintf("%s %g", name, value))
	}
}

func (m *metricWriter) flush(w io.Writer) {
	for _, name := range m.order {
		f := m.families[name]
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n", name, helpEscaper.Replace(f.help), name, f.typ)
		for _, s := range f.samples {
			fmt.Fprintln(w, s)
		}
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// WriteMetrics renders the status as Prometheus text exposition: every
// counter routerctl status shows, as numbers with labels.
func writeMetrics(st *status.Status, w io.Writer) {
	m := &metricWriter{families: map[string]*family{}}
	defer m.flush(w)
	m.emit("uptime_seconds", "gauge", "Seconds since routerd started.", st.Uptime)
	for _, c := range st.Components {
		m.emit("component_up", "gauge", "1 when the component is running.", b2f(c.State == status.Running), "component", c.Name)
	}
	if st.NICs != nil {
		for _, n := range st.NICs.NICs {
			m.emit("nic_up", "gauge", "1 when the NIC is up with carrier.", b2f(n.State == "up"), "nic", n.Name)
			for _, v := range []struct {
				name string
				val  uint64
			}{{"rx_bytes", n.RxBytes}, {"tx_bytes", n.TxBytes}, {"rx_packets", n.RxPackets}, {"tx_packets", n.TxPackets},
				{"rx_errors", n.RxErrors}, {"tx_errors", n.TxErrors}, {"rx_dropped", n.RxDropped}, {"tx_dropped", n.TxDropped}} {
				m.emit("nic_"+v.name+"_total", "counter", "NIC "+strings.ReplaceAll(v.name, "_", " ")+".", float64(v.val), "nic", n.Name)
			}
			m.emit("nic_readopted_total", "counter", "Times the NIC came back after going away.", float64(n.Readopted), "nic", n.Name)
		}
	}
	if st.WAN != nil && st.WAN.DHCP != nil {
		m.emit("wan_dhcp_bound", "gauge", "1 while the WAN holds a DHCPv4 lease.", b2f(st.WAN.DHCP.State == status.DHCPBound))
		if !st.WAN.DHCP.Expires.IsZero() {
			m.emit("wan_dhcp_lease_expiry_seconds", "gauge", "Seconds until the WAN lease runs out.", time.Until(st.WAN.DHCP.Expires).Seconds())
		}
	}
	if st.WAN != nil && st.WAN.PPPoE != nil {
		p := st.WAN.PPPoE
		m.emit("wan_pppoe_up", "gauge", "1 while the PPPoE session is up.", b2f(p.State == "up"))
		m.emit("wan_pppoe_reconnects_total", "counter", "PPPoE sessions or attempts that ended.", float64(p.Reconnects))
		if p.EchoRTT > 0 {
			m.emit("wan_pppoe_echo_rtt_seconds", "gauge", "Round trip of the last LCP echo.", p.EchoRTT.Seconds())
		}
	}
	if st.WAN != nil && st.WAN.Failover != nil {
		f := st.WAN.Failover
		for _, u := range f.Uplinks {
			m.emit("wan_uplink_up", "gauge", "1 while the uplink's probes answer.", b2f(u.State == "up"), "uplink", u.Uplink)
			m.emit("wan_uplink_active", "gauge", "1 for the uplink that carries the traffic.", b2f(u.Uplink == f.Active), "uplink", u.Uplink)
			m.emit("wan_uplink_probe_loss_ratio", "gauge", "Share of the last 20 probes unanswered.", u.Loss, "uplink", u.Uplink)
			if u.RTT > 0 {
				m.emit("wan_uplink_probe_rtt_seconds", "gauge", "Round trip of the last answered probes.", u.RTT.Seconds(), "uplink", u.Uplink)
			}
		}
		m.emit("wan_failovers_total", "counter", "Switches of the traffic between uplinks.", float64(f.Count))
	}
	if q := st.SQM; q != nil {
		for _, d := range []struct {
			name string
			sh   *status.Shaper
		}{{"upload", q.Upload}, {"download", q.Download}} {
			if d.sh == nil {
				continue
			}
			m.emit("sqm_rate_bps", "gauge", "The shaper's rate (autorate moves it).", float64(d.sh.Rate), "direction", d.name)
			m.emit("sqm_sent_bytes_total", "counter", "Bytes the shaper passed.", float64(d.sh.Bytes), "direction", d.name)
			m.emit("sqm_drops_total", "counter", "Packets the shaper dropped.", float64(d.sh.Drops), "direction", d.name)
		}
	}
	if cl := st.Clients; cl != nil {
		m.clients(cl)
	}
	if v := st.VPN; v != nil {
		m.emit("vpn_up", "gauge", fmt.Sprintf("1 when the tunnel had a handshake in the last %v.", vpn.UpWithin), b2f(v.Up))
		for _, p := range v.Peers {
			m.emit("vpn_rx_bytes_total", "counter", "Bytes received from the peer.", float64(p.RxBytes), "peer", p.PublicKey)
			m.emit("vpn_tx_bytes_total", "counter", "Bytes sent to the peer.", float64(p.TxBytes), "peer", p.PublicKey)
			if !p.LastHandshake.IsZero() {
				m.emit("vpn_last_handshake_seconds", "gauge", "Seconds since the last handshake.", time.Since(p.LastHandshake).Seconds(), "peer", p.PublicKey)
			}
		}
	}
	if f := st.Firewall; f != nil {
		tables := make([]string, 0, len(f.Counters))
		for t := range f.Counters {
			tables = append(tables, t)
		}
		sort.Strings(tables)
		for _, t := range tables {
			for _, c := range f.Counters[t] {
				m.emit("nft_packets_total", "counter", "Packets counted by routerd's nftables counters.", float64(c.Packets), "table", t, "counter", c.Name)
			}
		}
		if ct := f.Conntrack; ct != nil {
			m.conntrack("", *ct)
		}
	}
	if a := st.Admin; a != nil {
		m.emit("ssh_auth_failures_total", "counter", "Failed SSH authentications.", float64(a.AuthFailures))
		m.emit("bans", "gauge", "Addresses banned now (failed SSH logins, WAN port scans).", float64(a.Banned))
	}
	if r := st.Relay; r != nil {
		m.conntrack("relay_", r.Conntrack)
		for _, p := range r.Peers {
			m.emit("relay_peer_rx_bytes_total", "counter", "Bytes received from the peer.", float64(p.RxBytes), "peer", p.Name)
			m.emit("relay_peer_tx_bytes_total", "counter", "Bytes sent to the peer.", float64(p.TxBytes), "peer", p.Name)
			if !p.LastHandshake.IsZero() {
				m.emit("relay_peer_last_handshake_seconds", "gauge", "Seconds since the peer's last handshake.", time.Since(p.LastHandshake).Seconds(), "peer", p.Name)
			}
		}
		for _, f := range r.Forwards {
			m.emit("relay_forward_packets_total", "counter", "Packets forwarded into the tunnel by the forward.", float64(f.Packets), "forward", f.Forward, "peer", f.Peer)
			m.emit("relay_forward_bytes_total", "counter", "Bytes forwarded into the tunnel by the forward.", float64(f.Bytes), "forward", f.Forward, "peer", f.Peer)
		}
	}
	if t := st.Time; t != nil {
		m.emit("time_synchronised", "gauge", "1 once the clock is synchronised with a time server.", b2f(t.Synced))
		m.emit("time_offset_seconds", "gauge", "The clock's offset at the last synchronisation, before it was corrected.", t.OffsetMS/1000)
		m.emit("time_steps_total", "counter", "Steps of the clock (raised to its floor, first sync, large offsets).", float64(t.Steps))
		m.emit("ntp_requests_total", "counter", "NTP client requests answered on the LAN.", float64(t.Served))
		m.emit("ntp_requests_dropped_total", "counter", "NTP datagrams dropped: malformed or not a client request.", float64(t.Dropped))
	}
	if l := st.LAN; l != nil {
		byIface := map[[2]string]int{}
		for _, lv := range l.Leases {
			byIface[[2]string{lv.Interface, lv.Family}]++
		}
		keys := make([][2]string, 0, len(byIface))
		for k := range byIface {
			keys = append(keys, k)
		}
		sort.Slice(keys, func(i, j int) bool { return keys[i][0]+keys[i][1] < keys[j][0]+keys[j][1] })
		for _, k := range keys {
			m.emit("dhcp_leases", "gauge", "Active LAN leases.", float64(byIface[k]), "iface", k[0], "family", k[1])
		}
		services := make([]string, 0, len(l.Stats))
		for s := range l.Stats {
			services = append(services, s)
		}
		sort.Strings(services)
		for _, s := range services {
			names := make([]string, 0, len(l.Stats[s]))
			for n := range l.Stats[s] {
				names = append(names, n)
			}
			sort.Strings(names)
			for _, n := range names {
				m.emit("lan_messages_total", "counter", "LAN service messages by kind (DHCP, DHCPv6, RA).", float64(l.Stats[s][n]), "service", s, "kind", n)
			}
		}
	}
	if d := st.DNS; d != nil {
		for _, v := range []struct {
			kind string
			n    uint64
		}{{"all", d.Queries}, {"local", d.Local}, {"cache_hit", d.CacheHits}, {"forwarded", d.Forwarded}, {"merged", d.Merged}, {"mdns", d.MDNSQueries},
			{"refused", d.Refused}, {"formerr", d.FormErr}, {"servfail", d.ServFail}} {
			m.emit("dns_queries_total", "counter", "DNS queries by how they were answered.", float64(v.n), "kind", v.kind)
		}
		m.emit("dns_cache_entries", "gauge", "Answers in the DNS cache.", float64(d.CacheSize))
		if v := d.DNSSEC; v != nil {
			for _, x := range []struct {
				verdict string
				n       uint64
			}{{"secure", v.Secure}, {"insecure", v.Insecure}, {"bogus", v.Bogus}, {"synthesized", v.Synthesized}} {
				m.emit("dns_dnssec_answers_total", "counter", "Upstream answers by DNSSEC verdict (synthesized: from validated NSEC, RFC 8198).", float64(x.n), "verdict", x.verdict)
			}
		}
		for _, u := range d.Upstreams {
			m.emit("dns_upstream_healthy", "gauge", "1 when the upstream answers.", b2f(u.Healthy), "upstream", u.Address)
			m.emit("dns_upstream_latency_seconds", "gauge", "Smoothed upstream latency.", u.LatencyMS/1000, "upstream", u.Address)
		}
	}
	if b := st.Blocklists; b != nil {
		for _, l := range b.Lists {
			m.emit("blocklist_prefixes", "gauge", "Merged prefixes in force per list.", float64(l.Prefixes4), "list", l.Name, "family", "v4")
			m.emit("blocklist_prefixes", "gauge", "Merged prefixes in force per list.", float64(l.Prefixes6), "list", l.Name, "family", "v6")
			m.emit("blocklist_domains", "gauge", "Domains in force per list.", float64(l.Domains), "list", l.Name)
			m.emit("blocklist_rejected_lines", "gauge", "Unreadable lines in the last good copy.", float64(l.Rejected), "list", l.Name)
			if !l.LastSuccess.IsZero() {
				m.emit("blocklist_last_success_timestamp_seconds", "gauge", "When the list was last fetched successfully.", float64(l.LastSuccess.Unix()), "list", l.Name)
			}
			m.emit("blocklist_failing", "gauge", "1 when the last refresh failed.", b2f(l.LastError != ""), "list", l.Name)
		}
	}
}

// conntrack emits a conntrack table's fill (prefix "relay_" for the
// relay's), by namespace where there are several, and the offloaded
// connections.
func (m *metricWriter) conntrack(prefix string, ct status.Conntrack) {
	if len(ct.Namespaces) > 1 {
		for _, ns := range slices.Sorted(maps.Keys(ct.Namespaces)) {
			n := ct.Namespaces[ns]
			m.emit(prefix+"conntrack_entries", "gauge", "Connections the namespace's conntrack table holds.", float64(n), "namespace", ns)
		}
	} else {
		m.emit(prefix+"conntrack_entries", "gauge", "Connections the conntrack table holds.", float64(ct.Count))
	}
	m.emit(prefix+"conntrack_capacity", "gauge", "The configured capacity (max_connections).", float64(ct.Capacity))
	m.emit(prefix+"conntrack_kernel_max", "gauge", "nf_conntrack_max as the kernel has it.", float64(ct.Max))
	m.emit(prefix+"conntrack_fill_ratio", "gauge", "Entries of the fullest table over the smaller of the capacity and the kernel's limit; new connections are dropped silently at 1.", ct.Fill)
	for _, ns := range slices.Sorted(maps.Keys(ct.Offloaded)) {
		n := ct.Offloaded[ns]
		m.emit(prefix+"flows_offloaded", "gauge", "Connections the flowtable forwards, past the forward chain.", float64(n), "namespace", ns)
	}
}

// metricsClients is how many LAN hosts /metrics names: the busiest today;
// the rest are summed as "other", so that the series stay few.
const metricsClients = 10

func (m *metricWriter) clients(cl *status.Clients) {
	hosts := slices.Clone(cl.Hosts)
	slices.SortStableFunc(hosts, func(a, b status.ClientUsage) int {
		return cmp.Compare(b.UpToday+b.DownToday, a.UpToday+a.DownToday)
	})
	var other status.ClientUsage
	for i, h := range hosts {
		if i >= metricsClients {
			other.UpToday, other.DownToday = other.UpToday+h.UpToday, other.DownToday+h.DownToday
			other.UpRate, other.DownRate = other.UpRate+h.UpRate, other.DownRate+h.DownRate
			continue
		}
		name := h.Name
		if name == "" && len(h.Addresses) > 0 {
			name = h.Addresses[0]
		}
		m.client(name, h)
	}
	if len(hosts) > metricsClients {
		m.client("other", other)
	}
}

func (m *metricWriter) client(name string, h status.ClientUsage) {
	m.emit("client_rate_bps", "gauge", "A LAN host's rate over the last 3 s (the 10 busiest today, then \"other\").", h.UpRate, "client", name, "direction", "up")
	m.emit("client_rate_bps", "gauge", "", h.DownRate, "client", name, "direction", "down")
	m.emit("client_today_bytes", "gauge", "A LAN host's bytes since local midnight.", float64(h.UpToday), "client", name, "direction", "up")
	m.emit("client_today_bytes", "gauge", "", float64(h.DownToday), "client", name, "direction", "down")
}
