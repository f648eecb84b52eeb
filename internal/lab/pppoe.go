package lab

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
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
