package lab

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// The ISP's PPPoE side: Debian's pppoe-server (built without kernel mode:
// it relays each session to its pppd through a pty, which the wire does
// not show), one pppd per session, as an access concentrator runs it.

var (
	PPPoEGateway4 = netip.MustParseAddr("198.51.100.1")  // the ISP's end of each session
	PPPoEClient4  = netip.MustParseAddr("198.51.100.10") // the address the first session gets
)

// PPPoEACMAC is the access concentrator's MAC (the ISP's dn bridge's).
const PPPoEACMAC = "02:15:00:00:00:ac"

// PPPoEOptions shape the access concentrator.
type PPPoEOptions struct {
	VLAN     int    // serve on the dn bridge's VLAN (Deutsche Telekom: 7); 0 untagged
	Auth     string // "chap" or "pap"
	User     string
	Password string
	ACName   string
	IPv6     bool // IPv6CP (pppd's +ipv6); ServeDHCPv6 then serves DHCPv6 over the session
}

// PPPoEServer is the running access concentrator.
type PPPoEServer struct {
	Proc *Proc
	dir  string
	isp  *ISP
}

// ServePPPoE starts pppoe-server on the ISP's side of the WAN link. Its
// pppd reads secrets and options from a directory bind-mounted over
// /etc/ppp in the private mount namespace ip netns exec gives it, so the
// host's /etc/ppp is neither read nor touched.
func (isp *ISP) ServePPPoE(o PPPoEOptions) *PPPoEServer {
	l := isp.lab
	l.T.Helper()
	// pppoe-server reads its MAC once, at start, and writes it into every
	// frame; a bridge without an address of its own set takes its
	// lowest port's, which changes as the router attaches.
	isp.NS.MustRun("ip", "link", "set", "dev", "dn", "address", PPPoEACMAC)
	// The link-local address pppd gives each session's interface is
	// usable at once (a point-to-point link has nobody to clash with), so
	// that kea can bind to it as soon as it is there.
	isp.NS.MustRun("sysctl", "-qw", "net.ipv6.conf.default.accept_dad=0")
	dev := "dn"
	if o.VLAN != 0 {
		dev = fmt.Sprintf("dn.%d", o.VLAN)
		isp.NS.MustRun("ip", "link", "add", "link", "dn", "name", dev, "type", "vlan", "id", fmt.Sprint(o.VLAN))
		isp.NS.MustRun("ip", "link", "set", dev, "up")
	}
	dir := filepath.Join(l.Dir, "isp-ppp")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		l.T.Fatalf("lab: %v", err)
	}
	secret := fmt.Sprintf("%q * %q *\n", o.User, o.Password)
	opts := []string{
		"require-" + o.Auth, "name isp", "lcp-echo-interval 5", "lcp-echo-failure 3",
		"ms-dns " + ISPDNS4.String(), "nodefaultroute", "noipv6", "mtu 1492", "mru 1492",
		"nodetach", "debug", "logfile " + filepath.Join(dir, "pppd.log"), "nodeflate", "nobsdcomp", "noccp",
	}
	if o.IPv6 {
		opts = slices.DeleteFunc(opts, func(s string) bool { return s == "noipv6" })
		opts = append(opts, "+ipv6")
	}
	for name, content := range map[string]string{
		"chap-secrets": secret, "pap-secrets": secret, "options": "",
		"pppoe-server-options": strings.Join(opts, "\n") + "\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			l.T.Fatalf("lab: %v", err)
		}
	}
	args := []string{"pppoe-server", "-F", "-I", dev, "-L", PPPoEGateway4.String(), "-R", PPPoEClient4.String(), "-N", "4",
		"-O", "/etc/ppp/pppoe-server-options"}
	if o.ACName != "" {
		args = append(args, "-C", o.ACName)
	}
	script := "mount --bind " + dir + " /etc/ppp && exec " + strings.Join(args, " ")
	s := &PPPoEServer{Proc: isp.NS.Start("isp-pppoe-server", "sh", "-c", script), dir: dir, isp: isp}
	l.OnCleanup(s.HangUp)
	t := l.T
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("--- the ISP's pppd log:\n%s", s.PPPDLog())
		}
	})
	return s
}

// PPPDLog is what the ISP's pppd logged.
func (s *PPPoEServer) PPPDLog() string {
	b, _ := os.ReadFile(filepath.Join(s.dir, "pppd.log"))
	return string(b)
}

// HangUp ends every session from the ISP's side, as a forced disconnect
// does: pppd terminates LCP and the server sends PADT.
// Only this server's: pppd (nodetach) stays its child, and other tests'
// servers may run beside it.
func (s *PPPoEServer) HangUp() {
	parent := fmt.Sprint(s.Proc.Cmd.Process.Pid)
	hostCmd("pkill", "-TERM", "-P", parent, "-x", "pppd").Run()
	Poll(10*time.Second, func() error {
		if out, err := hostCmd("pgrep", "-P", parent, "-x", "pppd").Output(); err == nil {
			return fmt.Errorf("pppd still running: %s", strings.TrimSpace(string(out)))
		}
		return nil
	})
}

// PPPoEPool6 is where the ISP's DHCPv6 server over a PPPoE session gives
// addresses (IA_NA) from.
var PPPoEPool6 = netip.MustParsePrefix("2001:db8:200::/64")

// ServeDHCPv6 runs kea-dhcp6 on the session's interface at the ISP's end
// (once pppd made it and IPv6CP gave it its link-local address):
// addresses from PPPoEPool6 and /56 prefixes from ISPDelegation, routed
// over the session as the ISP's router would. It returns the interface.
func (s *PPPoEServer) ServeDHCPv6() string {
	isp, l := s.isp, s.isp.lab
	l.T.Helper()
	var iface string
	l.Eventually(60*time.Second, "the ISP's end of the session has IPv6", func() error {
		out, err := isp.NS.Run("ip", "-o", "-6", "addr", "show", "scope", "link")
		if err != nil {
			return err
		}
		for _, line := range strings.Split(out, "\n") {
			if f := strings.Fields(line); len(f) > 1 && strings.HasPrefix(f[1], "ppp") {
				iface = f[1]
				return nil
			}
		}
		return fmt.Errorf("no ppp interface with a link-local address:\n%s", out)
	})
	// pppd gives its end a point-to-point link-local address ("fe80::a
	// peer fe80::b/128"); kea takes the peer's for its own and cannot bind
	// to it. A plain one of the same address is what kea needs.
	out := isp.NS.MustRun("ip", "-o", "-6", "addr", "show", "dev", iface, "scope", "link")
	if f := strings.Fields(out); len(f) > 5 && f[4] == "peer" {
		isp.NS.MustRun("ip", "-6", "addr", "del", f[3], "peer", f[5], "dev", iface)
		isp.NS.MustRun("ip", "-6", "addr", "add", f[3]+"/64", "dev", iface, "nodad")
	}
	isp.NS.MustRun("ip", "-6", "route", "replace", PPPoEPool6.String(), "dev", iface)
	conf := fmt.Sprintf(`{"Dhcp6": {
  "interfaces-config": {"interfaces": [%q], "service-sockets-max-retries": 100, "service-sockets-retry-wait-time": 200},
  "data-directory": %q,
  "server-id": {"type": "EN", "enterprise-id": 2495, "identifier": "0102030405", "persist": false},
  "lease-database": {"type": "memfile", "persist": false},
  "preferred-lifetime": 1800, "valid-lifetime": 3600, "renew-timer": 900, "rebind-timer": 1500,
  "subnet6": [{"id": 1, "subnet": %q, "interface": %q,
    "pools": [{"pool": "%s - %s"}],
    "pd-pools": [{"prefix": "%s", "prefix-len": %d, "delegated-len": 56}],
    "option-data": [{"name": "dns-servers", "data": "%s"}]}],
  "loggers": [{"name": "kea-dhcp6", "severity": "INFO", "output_options": [{"output": "stdout"}]}]
}}`, iface, s.dir, PPPoEPool6, iface, PPPoEPool6.Addr().Next().Next(), "2001:db8:200::1ff",
		ISPDelegation.Addr(), ISPDelegation.Bits(), ISPDNS6)
	path := filepath.Join(s.dir, "kea6.json")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		l.T.Fatalf("lab: %v", err)
	}
	k := isp.NS.Start("isp-kea6-ppp", "env", "KEA_PIDFILE_DIR="+s.dir, "KEA_LOCKFILE_DIR="+s.dir, "kea-dhcp6", "-c", path)
	l.Eventually(10*time.Second, "kea-dhcp6 started on "+iface, func() error {
		if !strings.Contains(k.Log.String(), "DHCP6_STARTED") {
			return fmt.Errorf("not yet:\n%s", k.Log.String())
		}
		return nil
	})
	return iface
}

// Freeze stops the ISP's pppd and its relay without a word (SIGSTOP): the
// session goes silent, as when the ISP's side fails without telling, and
// only LCP echoes can notice. The server itself keeps answering, so a
// client that dials again gets a new session.
func (s *PPPoEServer) Freeze() {
	l := s.isp.lab
	l.T.Helper()
	out, err := hostCmd("pgrep", "-P", fmt.Sprint(s.Proc.Cmd.Process.Pid), "-x", "pppd").Output()
	if err != nil {
		l.T.Fatalf("lab: no pppd to freeze: %v", err)
	}
	var pids []string
	for _, pppd := range strings.Fields(string(out)) {
		pids = append(pids, pppd)
		if kids, err := hostCmd("pgrep", "-P", pppd).Output(); err == nil {
			pids = append(pids, strings.Fields(string(kids))...)
		}
	}
	if out, err := hostCmd(append([]string{"kill", "-STOP"}, pids...)...).CombinedOutput(); err != nil {
		l.T.Fatalf("lab: kill -STOP %v: %v: %s", pids, err, out)
	}
	// Continued before the lab's cleanup ends them: a stopped process
	// does not act on SIGTERM.
	l.T.Cleanup(func() { hostCmd(append([]string{"kill", "-CONT"}, pids...)...).Run() })
}
