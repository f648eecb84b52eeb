package lab

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Client is a LAN host in its own namespace, on a switch, with interface
// eth0. It uses real client tools.
type Client struct {
	NS  *NS
	MAC string
	Sw  *Switch
	lab *Lab
	n   int
}

// AddClient adds a client namespace to the switch. Client j on switch i has
// MAC 02:42:ac:01:ii:jj.
func (s *Switch) AddClient() *Client {
	s.lab.T.Helper()
	j := s.first + len(s.Clients) + 1
	c := &Client{NS: s.lab.NewNS(fmt.Sprintf("c%d%d", s.Index, j)), MAC: fmt.Sprintf("02:42:ac:01:%02x:%02x", s.Index, j), Sw: s, lab: s.lab, n: j}
	veth(s.lab, s.NS, fmt.Sprintf("p%d", j), c.NS, "eth0", c.MAC)
	s.NS.MustRun("ip", "link", "set", "dev", fmt.Sprintf("p%d", j), "master", "br", "up")
	s.Clients = append(s.Clients, c)
	return c
}

// SetStatic gives the client a static address and default route on its LAN.
// host is the last octet / the IPv6 interface id.
func (c *Client) SetStatic(host int) (netip.Addr, netip.Addr) {
	c.lab.T.Helper()
	a4 := hostIn(c.Sw.Subnet4, host)
	a6 := hostIn(c.Sw.Subnet6, host)
	c.NS.MustRun("ip", "addr", "add", a4.String(), "dev", "eth0")
	c.NS.MustRun("ip", "addr", "add", a6.String(), "dev", "eth0", "nodad")
	c.NS.MustRun("ip", "route", "replace", "default", "via", c.Sw.Router4().Addr().String())
	c.NS.MustRun("ip", "-6", "route", "replace", "default", "via", c.Sw.Router6().Addr().String())
	return a4.Addr(), a6.Addr()
}

// Echo asks the ISP's echo service at addr:port (over HTTP) which source
// address it sees, i.e. which path the client's connection took.
func (c *Client) Echo(addr netip.Addr, port int) (string, error) {
	return c.EchoWithin(addr, port, 5*time.Second)
}

// EchoWithin is Echo giving up after d: a test that expects no answer
// waits no longer than it must.
func (c *Client) EchoWithin(addr netip.Addr, port int, d time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d+5*time.Second)
	defer cancel()
	out, err := c.NS.RunContext(ctx, "curl", "-sS", "--max-time", fmt.Sprint(d.Seconds()), fmt.Sprintf("http://%s/", netip.AddrPortFrom(addr, uint16(port))))
	return strings.TrimSpace(out), err
}

// Lease4 is what a DHCPv4 client was told.
type Lease4 struct {
	IP       netip.Addr
	Mask     int
	Router   string
	DNS      string
	Domain   string
	Lease    string
	ServerID string
	MTU      string
	NTP      string // option 42
}

const udhcpcScript = `#!/bin/sh
# udhcpc event script for the lab: configure eth0, record what the server said.
case "$1" in
deconfig) ip -4 addr flush dev "$interface"; ip link set "$interface" up ;;
bound|renew)
	ip -4 addr flush dev "$interface"
	ip addr add "$ip/${mask:-24}" dev "$interface"
	[ -n "$router" ] && ip route replace default via "${router%% *}"
	echo "ip=$ip mask=$mask router=$router dns=$dns domain=$domain lease=$lease serverid=$serverid mtu=$mtu ntp=$ntpsrv" > "$LAB_OUT.tmp"
	mv "$LAB_OUT.tmp" "$LAB_OUT" ;;
esac
echo "$1 $ip" >> "$LAB_OUT.events"
`

// UDHCPC runs busybox udhcpc once (until it has a lease) with hostname as
// option 12, and returns the lease.
func (c *Client) UDHCPC(hostname string) (Lease4, error) {
	script := c.script("udhcpc.sh", udhcpcScript)
	out := filepath.Join(c.lab.Dir, c.NS.Name+".udhcpc")
	args := []string{"env", "LAB_OUT=" + out, "udhcpc", "-f", "-q", "-n", "-i", "eth0", "-s", script, "-t", "10", "-T", "1", "-A", "1"}
	if hostname != "" {
		args = append(args, "-x", "hostname:"+hostname)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if o, err := c.NS.RunContext(ctx, args...); err != nil {
		return Lease4{}, fmt.Errorf("%v\n%s", err, o)
	}
	return readLease4(out)
}

// StartUDHCPC runs udhcpc in the background (renewing) and returns the file
// its script writes each lease to.
func (c *Client) StartUDHCPC(hostname string) (*Proc, string) {
	script := c.script("udhcpc.sh", udhcpcScript)
	c.n++
	out := filepath.Join(c.lab.Dir, fmt.Sprintf("%s.udhcpc-bg%d", c.NS.Name, c.n))
	args := []string{"env", "LAB_OUT=" + out, "udhcpc", "-f", "-i", "eth0", "-s", script, "-t", "10", "-T", "1", "-A", "1"}
	if hostname != "" {
		args = append(args, "-x", "hostname:"+hostname)
	}
	return c.NS.Start(c.NS.Name+"-udhcpc", args...), out
}

const dhclientScript = `#!/bin/sh
# dhclient event script for the lab: configure eth0, record the lease.
case "$reason" in
PREINIT) ip link set "$interface" up ;;
BOUND|RENEW|REBIND|REBOOT)
	ip -4 addr flush dev "$interface"
	ip addr add "$new_ip_address/$new_subnet_mask" dev "$interface"
	[ -n "$new_routers" ] && ip route replace default via "${new_routers%% *}"
	echo "ip=$new_ip_address mask=$new_subnet_mask router=$new_routers dns=$new_domain_name_servers domain=$new_domain_name lease=$new_dhcp_lease_time serverid=$new_dhcp_server_identifier mtu=$new_interface_mtu" > "$LAB_OUT.tmp"
	mv "$LAB_OUT.tmp" "$LAB_OUT" ;;
PREINIT6) ip link set "$interface" up ;;
BOUND6|RENEW6|REBIND6|REBOOT6)
	[ -n "$new_ip6_address" ] && ip -6 addr replace "$new_ip6_address/128" dev "$interface" nodad
	echo "ip=$new_ip6_address mask=$new_ip6_prefixlen dns=$new_dhcp6_name_servers domain=$new_dhcp6_domain_search lease=$new_max_life serverid=$new_dhcp6_server_id" > "$LAB_OUT.tmp"
	mv "$LAB_OUT.tmp" "$LAB_OUT" ;;
esac
echo "$reason $new_ip_address$new_ip6_address" >> "$LAB_OUT.events"
`

// StartDhclient runs ISC dhclient (-6 for DHCPv6) in the foreground and
// returns the process and the file its script writes the lease to. conf
// lines, if any, become its dhclient.conf (send fqdn.fqdn "name";).
func (c *Client) StartDhclient(v6 bool, conf ...string) (*Proc, string) {
	c.lab.T.Helper()
	fam, tag := "-4", "dhclient4"
	if v6 {
		fam, tag = "-6", "dhclient6"
	}
	base := filepath.Join(c.lab.Dir, c.NS.Name+"."+tag)
	// dhclient runs its script with a clean environment: the output path
	// goes into the script itself.
	script := c.script(c.NS.Name+"-"+tag+".sh", strings.Replace(dhclientScript, "\n", "\nLAB_OUT="+base+".lease\n", 1))
	args := []string{"dhclient", fam, "-d", "-v", "-sf", script,
		"-lf", base + ".leases", "-pf", base + ".pid"}
	if len(conf) > 0 {
		cf := base + ".conf"
		if err := os.WriteFile(cf, []byte(strings.Join(conf, "\n")+"\n"), 0o644); err != nil {
			c.lab.T.Fatalf("lab: %v", err)
		}
		args = append(args, "-cf", cf)
	}
	args = append(args, "eth0")
	return c.NS.Start(c.NS.Name+"-"+tag, args...), base + ".lease"
}

// ReadLease4 waits for a client script to have written a lease to file.
func (c *Client) WaitLease(file string, timeout time.Duration) (Lease4, error) {
	var l Lease4
	err := Poll(timeout, func() (err error) {
		l, err = readLease4(file)
		return err
	})
	return l, err
}

func readLease4(file string) (Lease4, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return Lease4{}, err
	}
	var l Lease4
	for _, f := range strings.Fields(string(b)) {
		k, v, _ := strings.Cut(f, "=")
		switch k {
		case "ip":
			l.IP, err = netip.ParseAddr(v)
			if err != nil {
				return l, fmt.Errorf("lease file %s: %w", file, err)
			}
		case "mask":
			fmt.Sscan(v, &l.Mask)
			if strings.Contains(v, ".") {
				m := netip.MustParseAddr(v).As4()
				l.Mask = 0
				for _, b := range m {
					for ; b != 0; b <<= 1 {
						l.Mask++
					}
				}
			}
		case "router":
			l.Router = v
		case "dns":
			l.DNS = v
		case "domain":
			l.Domain = v
		case "lease":
			l.Lease = v
		case "serverid":
			l.ServerID = v
		case "mtu":
			l.MTU = v
		case "ntp":
			l.NTP = v
		}
	}
	return l, nil
}

func (c *Client) script(name, text string) string {
	path := filepath.Join(c.lab.Dir, name)
	if _, err := os.Stat(path); err == nil {
		return path
	}
	if err := os.WriteFile(path, []byte(text), 0o755); err != nil {
		c.lab.T.Fatalf("lab: %v", err)
	}
	return path
}

// Dig runs dig in the client against server and returns its output.
func (c *Client) Dig(server netip.Addr, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	return c.NS.RunContext(ctx, append([]string{"dig", "@" + server.String(), "+time=2", "+tries=2"}, args...)...)
}
