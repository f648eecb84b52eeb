package lab

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/routerd/routerd/router/control"
)

// Fixed MACs of the router's "NICs": routerd finds them by these.
const (
	WANMAC    = "02:42:ac:00:00:01"
	BackupMAC = "02:42:ac:00:00:02" // the backup uplink's NIC (AddBackupWAN)
	// LAN NIC i (from 1) has MAC 02:42:ac:00:01:0i.
)

// LANMAC returns the MAC of the router's i-th LAN NIC (from 1).
func LANMAC(i int) string { return fmt.Sprintf("02:42:ac:00:01:%02x", i) }

// Router is the namespace standing in for the appliance's main namespace.
// Its NICs are veth ends with fixed MACs and temporary names (ethN) that
// routerd finds and renames.
type Router struct {
	NS   *NS
	ISP  *ISP
	LANs []*Switch
	// WANPort and BackupPort are the ISP's ends of the router's uplinks:
	// pull them (Uplink*) to fail one.
	WANPort, BackupPort string
	lab                 *Lab
	nics                int
	State               string // routerd's state_dir
	Sock                string // routerd's control socket
	Conf                string // where its config is written ("": the lab's routerd.toml)
}

// NewRouter builds the router namespace with its WAN NIC wired to the ISP.
func (l *Lab) NewRouter(isp *ISP) *Router {
	l.T.Helper()
	return l.newRouter(l.NewNS("router"), isp)
}

// NewRouterInInitNS is NewRouter with the router in the machine's initial
// network namespace, as routerd on the appliance is (there, for one,
// nf_conntrack_max is writable). Only in the VM lab (RequireOwnMachine):
// the machine is the guest's, and thrown away after.
func (l *Lab) NewRouterInInitNS(isp *ISP) *Router {
	l.T.Helper()
	if !InVM() {
		l.T.Fatalf("lab: NewRouterInInitNS outside the VM lab would change this machine (call RequireOwnMachine first)")
	}
	n := &NS{Name: l.Prefix + "-router", lab: l}
	if out, err := hostCmd("ip", "netns", "attach", n.Name, "1").CombinedOutput(); err != nil {
		l.T.Fatalf("lab: ip netns attach %s 1: %v: %s", n.Name, err, out)
	}
	// Deleting the name only unmounts it: the initial namespace stays.
	l.mu.Lock()
	l.ns = append(l.ns, n)
	l.mu.Unlock()
	return l.newRouter(n, isp)
}

func (l *Lab) newRouter(ns *NS, isp *ISP) *Router {
	l.T.Helper()
	r := &Router{NS: ns, ISP: isp, lab: l,
		State: filepath.Join(l.Dir, "state"), Sock: filepath.Join(l.Dir, "run", "routerd.sock")}
	if isp != nil {
		r.WANPort = isp.Attach(r.NS, r.nextNIC(), WANMAC)
	}
	return r
}

func (r *Router) nextNIC() string {
	name := fmt.Sprintf("eth%d", r.nics)
	r.nics++
	return name
}

// Switch is a LAN segment: a bridge in its own namespace with the router's
// LAN NIC and the clients on it.
type Switch struct {
	NS      *NS
	Index   int    // 1-based
	Name    string // the LAN interface name routerd gives the router's NIC
	Subnet4 netip.Prefix
	Subnet6 netip.Prefix
	Clients []*Client
	NIC     string // the router's NIC on this LAN before routerd renames it
	MAC     string // that NIC's MAC
	// Ports are further switches (other rooms) on the same LAN, each
	// wired to a router NIC of its own: the LAN is a bridge of them.
	Ports []*Switch
	// Access is the LAN's lan.access ("": the default, all).
	Access string
	// Extra are raw lines in the LAN's [[lan]] table.
	Extra string
	lab   *Lab
	first int // its clients' numbers start after this
}

// Router4 and Router6 are the router's addresses on this LAN.
func (s *Switch) Router4() netip.Prefix { return hostIn(s.Subnet4, 1) }
func (s *Switch) Router6() netip.Prefix { return hostIn(s.Subnet6, 1) }

func hostIn(p netip.Prefix, i int) netip.Prefix {
	a := p.Addr()
	for ; i > 0; i-- {
		a = a.Next()
	}
	return netip.PrefixFrom(a, p.Bits())
}

// AddLAN adds a LAN NIC to the router and a switch for clients behind it.
// LAN i gets 192.168.(10+i).0/24 and fd00:(10+i)::/64.
func (r *Router) AddLAN() *Switch {
	r.lab.T.Helper()
	i := len(r.LANs) + 1
	s := &Switch{
		NS: r.lab.NewNS(fmt.Sprintf("sw%d", i)), Index: i, Name: fmt.Sprintf("lan%d", i-1), lab: r.lab,
		Subnet4: netip.MustParsePrefix(fmt.Sprintf("192.168.%d.0/24", 10+i)),
		Subnet6: netip.MustParsePrefix(fmt.Sprintf("fd00:%d::/64", 10+i)),
	}
	s.NS.MustRun("ip", "link", "add", "name", "br", "type", "bridge")
	s.NS.MustRun("ip", "link", "set", "dev", "br", "up")
	s.NIC, s.MAC = r.nextNIC(), LANMAC(i)
	veth(r.lab, s.NS, "uplink", r.NS, s.NIC, s.MAC)
	s.NS.MustRun("ip", "link", "set", "dev", "uplink", "master", "br", "up")
	r.LANs = append(r.LANs, s)
	return s
}

// AddPort wires another router NIC to the LAN, with a switch of its own:
// routerd bridges the two (lan.ports). Its clients are numbered from 65
// (MACs 02:42:ac:01:ii:41...).
func (s *Switch) AddPort(r *Router) *Switch {
	r.lab.T.Helper()
	k := len(s.Ports) + 1
	p := &Switch{NS: r.lab.NewNS(fmt.Sprintf("sw%dp%d", s.Index, k)), Index: s.Index, Name: s.Name, lab: r.lab,
		Subnet4: s.Subnet4, Subnet6: s.Subnet6, first: 64 * k}
	p.NS.MustRun("ip", "link", "add", "name", "br", "type", "bridge")
	p.NS.MustRun("ip", "link", "set", "dev", "br", "up")
	p.NIC, p.MAC = r.nextNIC(), fmt.Sprintf("02:42:ac:00:%02x:%02x", 1+k, s.Index)
	veth(r.lab, p.NS, "uplink", r.NS, p.NIC, p.MAC)
	p.NS.MustRun("ip", "link", "set", "dev", "uplink", "master", "br", "up")
	s.Ports = append(s.Ports, p)
	return p
}

// lanLink is the [[lan]] lines naming the LAN's NICs.
func (s *Switch) lanLink() string {
	if len(s.Ports) == 0 {
		return fmt.Sprintf("match_mac = %q\n", s.MAC)
	}
	ports := []string{fmt.Sprintf("{ match_mac = %q }", s.MAC)}
	for _, p := range s.Ports {
		ports = append(ports, fmt.Sprintf("{ match_mac = %q }", p.MAC))
	}
	return "ports = [" + strings.Join(ports, ", ") + "]\n"
}

// ConfigOptions shape the routerd config the lab generates.
type ConfigOptions struct {
	VPN            *VPNProvider // nil: no [vpn] section
	VPNNoIPv6      bool         // the tunnel gets an IPv4 address only
	VPNImpl        string       // vpn.implementation ("": the default, auto)
	Default        string       // routing.default; "wan" without a VPN
	Router         string       // routing.router
	WANIPv6        string       // "off" unless set
	SetMAC         string
	WANWait        time.Duration
	NoDHCP         bool // leave the LANs without DHCP servers
	MDNS           bool // dns.mdns
	Upstreams      []string
	DNSExtra       string // raw lines in [dns] (e.g. tls_ca_file)
	Extra          string // raw TOML appended at the end
	LeaseTime      string
	PrivateKeyFile string
	Pool4          [2]int // first and last host of the DHCPv4 pool; default 100-199
	Metrics        string // status.metrics
}

// Config returns a routerd config for this topology: namespaces named with
// the lab's prefix, the WAN on DHCP from the ISP, each LAN with DHCPv4,
// DHCPv6 and RA, the resolver forwarding to the ISP's DNS.
func (r *Router) Config(o ConfigOptions) string {
	var b strings.Builder
	p := r.lab.Prefix
	wait := o.WANWait
	if wait == 0 {
		wait = 10 * time.Second
	}
	lease := o.LeaseTime
	if lease == "" {
		lease = "1h"
	}
	fmt.Fprintf(&b, "hostname = \"gw\"\nstate_dir = %q\n\n", r.State)
	fmt.Fprintf(&b, "[netns]\nwan = %q\nvpn = %q\n\n", p+"-wan", p+"-vpn")
	fmt.Fprintf(&b, "[wan]\nname = \"wan0\"\nmatch_mac = %q\nwait = %q\nipv6 = %q\n", WANMAC, wait.String(), or(o.WANIPv6, "off"))
	if o.SetMAC != "" {
		fmt.Fprintf(&b, "set_mac = %q\n", o.SetMAC)
	}
	for _, s := range r.LANs {
		fmt.Fprintf(&b, "\n[[lan]]\nname = %q\n%saddresses = [%q, %q]\n", s.Name, s.lanLink(), s.Router4(), s.Router6())
		if s.Access != "" {
			fmt.Fprintf(&b, "access = %q\n", s.Access)
		}
		b.WriteString(s.Extra)
		if o.NoDHCP {
			continue
		}
		pool := o.Pool4
		if pool == [2]int{} {
			pool = [2]int{100, 199}
		}
		fmt.Fprintf(&b, "[lan.dhcp4]\nrange = [%q, %q]\nlease_time = %q\n", hostIn(s.Subnet4, pool[0]).Addr(), hostIn(s.Subnet4, pool[1]).Addr(), lease)
		fmt.Fprintf(&b, "[lan.dhcp6]\nrange = [%q, %q]\nlease_time = %q\n", hostIn(s.Subnet6, 0x100).Addr(), hostIn(s.Subnet6, 0x1ff).Addr(), lease)
	}
	ups := o.Upstreams
	if ups == nil {
		ups = []string{ISPDNS4.String() + ":53"}
	}
	q := make([]string, len(ups))
	for i, u := range ups {
		q[i] = fmt.Sprintf("%q", u)
	}
	fmt.Fprintf(&b, "\n[dns]\nupstream = [%s]\ndomain = \"lan\"\nmdns = %v\n%s", strings.Join(q, ", "), o.MDNS, o.DNSExtra)
	def := or(o.Default, "wan")
	if o.VPN != nil {
		keyFile := o.PrivateKeyFile
		if keyFile == "" {
			keyFile = "wg0.key"
			os.MkdirAll(r.State, 0o700)
			os.WriteFile(filepath.Join(r.State, keyFile), []byte(o.VPN.ClientKey.String()+"\n"), 0o600)
		}
		addrs := fmt.Sprintf("%q, %q", VPNClient4, VPNClient6)
		if o.VPNNoIPv6 {
			addrs = fmt.Sprintf("%q", VPNClient4)
		}
		fmt.Fprintf(&b, "\n[vpn]\ninterface = \"wg0\"\nprivate_key_file = %q\naddresses = [%s]\n", keyFile, addrs)
		if o.VPNImpl != "" {
			fmt.Fprintf(&b, "implementation = %q\n", o.VPNImpl)
		}
		fmt.Fprintf(&b, "[[vpn.peer]]\npublic_key = %q\nendpoint = %q\nallowed_ips = [\"0.0.0.0/0\", \"::/0\"]\npersistent_keepalive = \"5s\"\n",
			o.VPN.Key.PublicKey().String(), o.VPN.Endpoint())
	}
	fmt.Fprintf(&b, "\n[routing]\ndefault = %q\nrouter = %q\n", def, or(o.Router, "wan"))
	fmt.Fprintf(&b, "\n[status]\nsocket = %q\n", r.Sock)
	if o.Metrics != "" {
		fmt.Fprintf(&b, "metrics = %q\n", o.Metrics)
	}
	if o.Extra != "" {
		b.WriteString("\n" + o.Extra + "\n")
	}
	return b.String()
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

var (
	binOnce sync.Once
	binDir  string
	binErr  error
)

// Binaries returns the paths of routerd and routerctl: from ROUTERD_BIN_DIR
// when set (make test builds them once), otherwise built once per test
// process.
func Binaries(t T) (routerd, routerctl string) {
	t.Helper()
	routerd, routerctl, err := binaries()
	if err != nil {
		t.Fatalf("lab: %v", err)
	}
	return routerd, routerctl
}

func binaries() (routerd, routerctl string, err error) {
	binOnce.Do(func() {
		if d := os.Getenv("ROUTERD_BIN_DIR"); d != "" {
			binDir = d
			return
		}
		binDir, binErr = os.MkdirTemp("", "routerd-bin-")
		if binErr != nil {
			return
		}
		cmd := hostCmd("go", "build", "-o", binDir+"/", "github.com/routerd/routerd/cmd/routerd", "github.com/routerd/routerd/cmd/routerctl")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			binErr = fmt.Errorf("go build: %v: %s", err, out)
		}
	})
	if binErr != nil {
		return "", "", binErr
	}
	return filepath.Join(binDir, "routerd"), filepath.Join(binDir, "routerctl"), nil
}

// Routerd is a routerd process running in the router namespace.
type Routerd struct {
	Proc       *Proc
	ConfigPath string
	r          *Router
}

// WriteConfig writes cfg where StartRouterd will read it.
func (r *Router) WriteConfig(cfg string) string {
	r.lab.T.Helper()
	path := r.Conf
	if path == "" {
		path = filepath.Join(r.lab.Dir, "routerd.toml")
	}
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		r.lab.T.Fatalf("lab: %v", err)
	}
	return path
}

// StartRouterd writes cfg and starts routerd on it in the router namespace,
// then waits until its control socket answers. At cleanup it is stopped
// and, so that no namespace or link outlives the test, torn down.
func (r *Router) StartRouterd(cfg string) *Routerd {
	r.lab.T.Helper()
	rd := r.LaunchRouterd(cfg)
	rd.waitUntil("ready")
	return rd
}

// LaunchRouterd is StartRouterd that returns as soon as the control socket
// answers, while routerd may still be starting.
func (r *Router) LaunchRouterd(cfg string) *Routerd {
	r.lab.T.Helper()
	path := r.WriteConfig(cfg)
	rd := &Routerd{ConfigPath: path, r: r}
	rd.launch()
	r.lab.OnCleanup(func() {
		rd.Proc.Stop()
		bin, _ := Binaries(r.lab.T)
		if out, err := r.NS.NetCmd(bin, "--config", path, "--teardown").CombinedOutput(); err != nil {
			// Teardown must remove what routerd made, whatever state it
			// was left in: a failure is a bug.
			r.lab.T.Errorf("routerd --teardown: %v\n%s", err, out)
		}
	})
	rd.waitUntil("")
	return rd
}

// Start (re)starts the routerd process and waits until it is ready: every
// component's Start has returned (status answers before that).
func (rd *Routerd) Start() {
	rd.r.lab.T.Helper()
	rd.launch()
	rd.waitUntil("ready")
}

func (rd *Routerd) launch() {
	bin, _ := Binaries(rd.r.lab.T)
	rd.Proc = rd.r.NS.StartNet("routerd", bin, "--config", rd.ConfigPath, "--log-level", "debug")
}

// waitUntil waits until status answers, in the given phase if not "".
func (rd *Routerd) waitUntil(phase string) {
	t := rd.r.lab.T
	t.Helper()
	err := Poll(startTimeout(), func() error {
		if done, err := rd.Proc.Exited(); done {
			return fmt.Errorf("routerd exited: %v", err)
		}
		out, err := rd.StatusJSON()
		if err != nil {
			return err
		}
		var st struct{ Phase string }
		if err := json.Unmarshal(out, &st); err != nil {
			return err
		}
		if phase != "" && st.Phase != phase {
			return fmt.Errorf("routerd is %s", st.Phase)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("lab: routerd did not come up: %v\n%s", err, rd.Proc.Log.String())
	}
}

// WaitTunnel waits until routerd's tunnel has had a handshake: until then
// its peer (a relay, say) does not know where it is, and what comes in for
// it is dropped.
func (rd *Routerd) WaitTunnel(timeout time.Duration) {
	t := rd.r.lab.T
	t.Helper()
	err := Poll(timeout, func() error {
		out, err := rd.StatusJSON()
		if err != nil {
			return err
		}
		var st struct{ VPN *struct{ Up bool } }
		if err := json.Unmarshal(out, &st); err != nil {
			return err
		}
		if st.VPN == nil || !st.VPN.Up {
			return fmt.Errorf("no handshake yet")
		}
		return nil
	})
	if err != nil {
		t.Fatalf("lab: routerd's tunnel: not up within %s: %v", timeout, err)
	}
}

// Restart stops routerd gracefully and starts it again.
func (rd *Routerd) Restart() {
	rd.Proc.Stop()
	rd.Start()
}

// Ctl runs routerctl against this routerd.
func (rd *Routerd) Ctl(args ...string) (string, error) {
	_, ctl := Binaries(rd.r.lab.T)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, ctl, append([]string{"--socket", rd.r.Sock}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("routerctl %s: %w: %s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// CtlLines runs routerctl with args (a following command: clients -f,
// logs -f) until ctx ends, calling line with each line it prints; one
// process for the whole run, so that a slow start (the VM lab) costs
// nothing per line.
func (rd *Routerd) CtlLines(ctx context.Context, line func(string), args ...string) error {
	_, ctl := Binaries(rd.r.lab.T)
	cmd := exec.CommandContext(ctx, ctl, append([]string{"--socket", rd.r.Sock}, args...)...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("routerctl %s: %w", strings.Join(args, " "), err)
	}
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		line(sc.Text())
	}
	err = cmd.Wait()
	if ctx.Err() != nil {
		return nil // stopped as asked
	}
	return fmt.Errorf("routerctl %s: %v: %s", strings.Join(args, " "), err, stderr.String())
}

// StatusJSON returns routerd's status model as JSON: what routerctl
// status --json prints (the API's answer as it is), asked of the control
// socket from this process. Tests poll it; a routerctl started for each
// poll costs the VM lab a fraction of a second of CPU under TCG, which
// the latency tests would measure and every wait would pay.
func (rd *Routerd) StatusJSON() ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var raw []byte
	var st json.RawMessage
	if err := control.NewClient(rd.r.Sock).Do(ctx, control.Status.Method, control.Status.URL(nil), &st, &raw); err != nil {
		return nil, fmt.Errorf("status: %w", err)
	}
	return raw, nil
}
