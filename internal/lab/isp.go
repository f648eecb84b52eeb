package lab

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/routerd/routerd/netns"
)

// The ISP's addressing. The "internet" lives on the isp namespace's loopback; the router's WAN and test clients hang off the "dn" bridge.
var (
	ISPDown4    = netip.MustParsePrefix("203.0.113.1/24")     // gateway of the router's WAN
	ISPDown6    = netip.MustParsePrefix("2001:db8:100::1/64") // on-link IPv6 of the WAN
	ISPDNS4     = netip.MustParseAddr("192.0.2.53")           // upstream DNS
	ISPDNS6     = netip.MustParseAddr("2001:db8:e::53")       //
	Echo4       = netip.MustParseAddr("192.0.2.10")           // the echo service
	Echo6       = netip.MustParseAddr("2001:db8:e::10")       //
	EchoAlt4    = []netip.Addr{netip.MustParseAddr("192.0.2.20"), netip.MustParseAddr("192.0.2.30"), netip.MustParseAddr("198.18.5.5")}
	CachedName4 = netip.MustParseAddr("198.18.7.7") // cached.example, TTL 300
	EchoAlt6    = []netip.Addr{netip.MustParseAddr("2001:db8:e::20"), netip.MustParseAddr("2001:db8:e::30")}
	EchoPorts   = []int{80, 25, 443, 8080}
	EchoUDP     = 7
	ISPLease4   = [2]netip.Addr{netip.MustParseAddr("203.0.113.100"), netip.MustParseAddr("203.0.113.199")}
	ISPPool6    = [2]netip.Addr{netip.MustParseAddr("2001:db8:100::100"), netip.MustParseAddr("2001:db8:100::1ff")}
	ISPDelegDN  = "example.net"
	// NTP: a synchronised server (stratum 1, named NTPName) and one that
	// is not (it answers with the leap alarm, stratum 0).
	NTP4       = netip.MustParseAddr("192.0.2.123")
	NTPUnsync4 = netip.MustParseAddr("192.0.2.124")
	NTPName    = "ntp.example"
)

// ISPOptions tunes the ISP.
type ISPOptions struct {
	DHCPv6    bool          // serve DHCPv6 IA_NA and RA on the WAN link
	SLAAC     bool          // advertise the WAN prefix for SLAAC (RA only)
	PD        bool          // kea-dhcp6 on the WAN link: IA_NA and delegated prefixes (with an RA for the route)
	LeaseTime time.Duration // DHCPv4 lease time; dnsmasq's minimum is 2m
	T1, T2    time.Duration // renewal and rebinding times, when set
	Records   map[string]string
}

// ISP is the "internet": dnsmasq for the router's WAN (DHCP) and as upstream
// DNS, and an echo service that answers with the source address it saw.
type ISP struct {
	NS      *NS
	Dnsmasq *Proc
	Kea6    *Proc
	lab     *Lab
	ports   int
	opts    ISPOptions
	dir     string
}

// NewISP builds the isp namespace and starts its services.
func (l *Lab) NewISP(opts ISPOptions) *ISP {
	l.T.Helper()
	if opts.LeaseTime == 0 {
		opts.LeaseTime = time.Hour
	}
	isp := &ISP{NS: l.NewNS("isp"), lab: l, opts: opts}
	n := isp.NS
	n.MustRun("sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1")
	n.MustRun("ip", "link", "add", "name", "dn", "type", "bridge")
	n.MustRun("ip", "addr", "add", ISPDown4.String(), "dev", "dn")
	n.MustRun("ip", "addr", "add", ISPDown6.String(), "dev", "dn", "nodad")
	n.MustRun("ip", "link", "set", "dev", "dn", "up")
	for _, a := range append([]netip.Addr{ISPDNS4, Echo4, NTP4, NTPUnsync4, DoT4}, EchoAlt4...) {
		n.MustRun("ip", "addr", "add", a.String()+"/32", "dev", "lo")
	}
	for _, a := range append([]netip.Addr{ISPDNS6, Echo6}, EchoAlt6...) {
		n.MustRun("ip", "addr", "add", a.String()+"/128", "dev", "lo", "nodad")
	}
	isp.startDnsmasq()
	isp.startEcho()
	return isp
}

func (isp *ISP) startDnsmasq() {
	dir := filepath.Join(isp.lab.Dir, "isp")
	os.MkdirAll(dir, 0o755)
	args := []string{"dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null",
		"--pid-file=" + filepath.Join(dir, "dnsmasq.pid"),
		"--dhcp-leasefile=" + filepath.Join(dir, "dnsmasq.leases"),
		"--no-resolv", "--no-hosts", "--bind-interfaces", "--log-dhcp", "--log-queries", "--log-facility=-",
		"--interface=dn", "--listen-address=" + ISPDNS4.String(), "--listen-address=" + ISPDNS6.String(),
		"--except-interface=lo", "--no-ping", "--dhcp-authoritative",
		"--local=/example/", // like a real resolver: unknown names do not exist
		fmt.Sprintf("--dhcp-range=%s,%s,255.255.255.0,%ds", ISPLease4[0], ISPLease4[1], int(isp.opts.LeaseTime.Seconds())),
		"--dhcp-option=option:router," + ISPDown4.Addr().String(),
		"--dhcp-option=option:dns-server," + ISPDNS4.String(),
		"--host-record=echo.example," + Echo4.String() + "," + Echo6.String(),
		"--host-record=" + NTPName + "," + NTP4.String(),
		"--host-record=alt1.example," + EchoAlt4[0].String() + "," + EchoAlt6[0].String(),
		"--host-record=alt2.example," + EchoAlt4[1].String() + "," + EchoAlt6[1].String(),
		"--host-record=www.blocked.example," + EchoAlt4[2].String(),
		// With a TTL, so that routerd serves it from its cache.
		"--host-record=cached.example," + CachedName4.String() + ",300",
		"--cname=cdn.blocked.example,www.blocked.example",
		"--txt-record=big.example," + strings.Repeat("x", 250) + "," + strings.Repeat("y", 250) + "," + strings.Repeat("z", 250),
	}
	if isp.opts.T1 > 0 {
		args = append(args, fmt.Sprintf("--dhcp-option-force=option:T1,%d", int(isp.opts.T1.Seconds())))
	}
	if isp.opts.T2 > 0 {
		args = append(args, fmt.Sprintf("--dhcp-option-force=option:T2,%d", int(isp.opts.T2.Seconds())))
	}
	for name, addr := range isp.opts.Records {
		args = append(args, "--host-record="+name+","+addr)
	}
	if isp.opts.SLAAC || isp.opts.PD {
		args = append(args, "--enable-ra", "--dhcp-range=::,constructor:dn,ra-only,64,1h")
	}
	if isp.opts.DHCPv6 {
		args = append(args, "--enable-ra",
			fmt.Sprintf("--dhcp-range=%s,%s,64,%ds", ISPPool6[0], ISPPool6[1], int(isp.opts.LeaseTime.Seconds())),
			"--dhcp-option=option6:dns-server,["+ISPDNS6.String()+"]")
	}
	isp.Dnsmasq = isp.NS.Start("isp-dnsmasq", args...)
	isp.dir = dir
	if isp.opts.PD {
		isp.startKea6(ISPDelegation)
	}
	// dnsmasq is ready once it answers DNS.
	isp.lab.Eventually(10*time.Second, "isp dnsmasq answers", func() error {
		out, err := isp.NS.Run("dig", "+short", "+time=1", "+tries=1", "@"+ISPDNS4.String(), "echo.example")
		if err != nil {
			return err
		}
		if strings.TrimSpace(out) != Echo4.String() {
			return fmt.Errorf("dig echo.example = %q", out)
		}
		return nil
	})
}

// ServeNTP runs chrony as the ISP's time servers: NTP4 (NTPName) at
// stratum 1 from the host's clock, and NTPUnsync4, which has no source and
// so answers unsynchronised. Neither touches the host's clock (-x).
func (isp *ISP) ServeNTP() {
	for _, srv := range []struct {
		addr netip.Addr
		conf string
	}{{NTP4, "local stratum 1\n"}, {NTPUnsync4, ""}} {
		base := filepath.Join(isp.dir, "chrony-"+srv.addr.String())
		conf := srv.conf + "allow all\nbindaddress " + srv.addr.String() + "\ncmdport 0\npidfile " + base + ".pid\n"
		if err := os.WriteFile(base+".conf", []byte(conf), 0o644); err != nil {
			isp.lab.T.Fatalf("lab: %v", err)
		}
		isp.NS.Start("isp-chrony-"+srv.addr.String(), "chronyd", "-d", "-x", "-u", "root", "-f", base+".conf")
	}
	isp.lab.Eventually(10*time.Second, "isp chrony answers", func() error {
		_, err := isp.NS.Run("ntpdig", "-t", "1", NTP4.String())
		return err
	})
}

// Delegated prefixes come from here, /56 each.
var ISPDelegation = netip.MustParsePrefix("2001:db8:f000::/40")

// RestartKea6 restarts the ISP's DHCPv6 server with its leases forgotten
// and prefixes delegated from pool instead: what a customer sees when the
// ISP renumbers.
func (isp *ISP) RestartKea6(pool netip.Prefix) {
	isp.lab.T.Helper()
	isp.Kea6.Stop()
	os.Remove(filepath.Join(isp.dir, "kea6.leases"))
	isp.startKea6(pool)
}

// startKea6 runs kea-dhcp6 on the WAN link: addresses from ISPPool6 and
// /56 prefixes from pool. LeaseTime, T1 and T2 of the options set its
// lifetimes when given (the valid lifetime; preferred is half of it).
func (isp *ISP) startKea6(pool netip.Prefix) {
	dir := isp.dir
	valid, t1, t2 := 3600*time.Second, 900*time.Second, 1500*time.Second
	if isp.opts.T1 > 0 {
		valid, t1, t2 = isp.opts.LeaseTime, isp.opts.T1, isp.opts.T2
	}
	conf := fmt.Sprintf(`{"Dhcp6": {
  "interfaces-config": {"interfaces": ["dn/%s"]},
  "data-directory": %q,
  "server-id": {"type": "LL", "persist": false},
  "lease-database": {"type": "memfile", "persist": true, "name": %q, "lfc-interval": 0},
  "preferred-lifetime": %d, "valid-lifetime": %d, "renew-timer": %d, "rebind-timer": %d,
  "subnet6": [{"id": 1, "subnet": "2001:db8:100::/64", "interface": "dn",
    "pools": [{"pool": "%s - %s"}],
    "pd-pools": [{"prefix": "%s", "prefix-len": %d, "delegated-len": 56}],
    "option-data": [{"name": "dns-servers", "data": "%s"}]}],
  "loggers": [{"name": "kea-dhcp6", "severity": "INFO", "output_options": [{"output": "stdout"}]}]
}}`, ISPDown6.Addr(), dir, filepath.Join(dir, "kea6.leases"),
		int(valid/2/time.Second), int(valid/time.Second), int(t1/time.Second), int(t2/time.Second),
		ISPPool6[0], ISPPool6[1], pool.Addr(), pool.Bits(), ISPDNS6)
	path := filepath.Join(dir, "kea6.json")
	os.WriteFile(path, []byte(conf), 0o644)
	k := isp.NS.Start("isp-kea6", "env", "KEA_PIDFILE_DIR="+dir, "KEA_LOCKFILE_DIR="+dir, "kea-dhcp6", "-c", path)
	isp.Kea6 = k
	isp.lab.Eventually(10*time.Second, "kea-dhcp6 started", func() error {
		if !strings.Contains(k.Log.String(), "DHCP6_STARTED") {
			return fmt.Errorf("not yet:\n%s", k.Log.String())
		}
		return nil
	})
}

// startEcho listens on every echo address and port inside the isp namespace.
// The UDP echo has a socket per address: an answer must come from the
// address that was asked (a wildcard socket's would come from the route's
// source, which no NAT or conntrack on the way would take for an answer).
func (isp *ISP) startEcho() {
	ServeEcho(isp.lab, isp.NS, EchoPorts...)
	addrs := append([]netip.Addr{Echo4, Echo6}, EchoAlt4...)
	for _, a := range append(addrs, EchoAlt6...) {
		var pc net.PacketConn
		err := netns.Do(isp.NS.Name, func() (err error) {
			pc, err = net.ListenPacket("udp", netip.AddrPortFrom(a, uint16(EchoUDP)).String())
			return err
		})
		if err != nil {
			isp.lab.T.Fatalf("lab: echo listen udp %s:%d: %v", a, EchoUDP, err)
		}
		go func() {
			buf := make([]byte, 2048)
			for {
				_, from, err := pc.ReadFrom(buf)
				if err != nil {
					return
				}
				host, _, _ := net.SplitHostPort(from.String())
				pc.WriteTo([]byte(host+"\n"), from)
			}
		}()
		isp.lab.OnCleanup(func() { pc.Close() })
	}
}

// ServeEcho runs the echo service on TCP ports in namespace ns: just
// enough HTTP for curl, answering with the client's source address as seen
// there. /bytes?n=N streams N bytes instead, for transfers.
func ServeEcho(l *Lab, ns *NS, ports ...int) {
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		host, _, _ := net.SplitHostPort(r.RemoteAddr)
		fmt.Fprintln(w, host)
	})
	mux.HandleFunc("/bytes", func(w http.ResponseWriter, r *http.Request) {
		var n int64
		fmt.Sscan(r.URL.Query().Get("n"), &n)
		buf := make([]byte, 32<<10)
		for n > 0 {
			k := min(n, int64(len(buf)))
			if _, err := w.Write(buf[:k]); err != nil {
				return
			}
			n -= k
		}
	})
	for _, port := range ports {
		var ln net.Listener
		err := netns.Do(ns.Name, func() (err error) {
			ln, err = net.Listen("tcp", fmt.Sprintf("[::]:%d", port))
			return err
		})
		if err != nil {
			l.T.Fatalf("lab: echo listen tcp/%d in %s: %v", port, ns.Name, err)
		}
		srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		go srv.Serve(ln)
		l.OnCleanup(func() { srv.Close() })
	}
}

// Attach wires a new namespace to the ISP's dn bridge, as the router's WAN
// is: a veth pair with ifname (and mac, when given) on the far side. It
// returns the ISP's end.
func (isp *ISP) Attach(far *NS, ifname, mac string) string {
	return isp.attachTo("dn", far, ifname, mac)
}

func (isp *ISP) attachTo(bridge string, far *NS, ifname, mac string) string {
	isp.lab.T.Helper()
	isp.ports++
	port := fmt.Sprintf("d%d", isp.ports)
	veth(isp.lab, isp.NS, port, far, ifname, mac)
	isp.NS.MustRun("ip", "link", "set", "dev", port, "master", bridge, "up")
	return port
}

// Leases returns dnsmasq's DHCPv4 lease file.
func (isp *ISP) Leases() string {
	b, _ := os.ReadFile(filepath.Join(isp.lab.Dir, "isp", "dnsmasq.leases"))
	return string(b)
}

// veth creates a veth pair with one end in each namespace, both down-side
// names chosen by the caller. The far end is brought up; the near end is
// left for the caller to enslave.
func veth(l *Lab, near *NS, nearName string, far *NS, farName, farMAC string) {
	l.T.Helper()
	args := []string{"ip", "link", "add", "name", nearName, "netns", near.Name, "type", "veth", "peer", "name", farName, "netns", far.Name}
	if farMAC != "" {
		args = append(args, "address", farMAC)
	}
	cmd := hostCmd(args...)
	if out, err := cmd.CombinedOutput(); err != nil {
		l.T.Fatalf("lab: %s: %v: %s", strings.Join(args, " "), err, out)
	}
	// routerd may adopt (and rename) a NIC the moment it appears; then
	// bringing it up is routerd's job, not ours.
	if out, err := far.Run("ip", "link", "set", "dev", farName, "up"); err != nil && !strings.Contains(out, "Cannot find device") {
		l.T.Fatalf("lab: %v", err)
	}
}

// ListsPort is where the ISP serves blocklists over HTTP, on every ISP
// address (the echo service has the usual ports).
const ListsPort = 8081

// ListServer serves blocklists from the isp namespace, as a list provider
// does. Tests change a list, or make the server fail, between refreshes.
type ListServer struct {
	mu       sync.Mutex
	files    map[string]string
	failWith int // an HTTP status to answer everything with; 0: serve
	hits     int
}

// ServeLists starts the list server.
func (isp *ISP) ServeLists() *ListServer {
	ls := &ListServer{files: map[string]string{}}
	var ln net.Listener
	err := netns.Do(isp.NS.Name, func() (err error) {
		ln, err = net.Listen("tcp", fmt.Sprintf("[::]:%d", ListsPort))
		return err
	})
	if err != nil {
		isp.lab.T.Fatalf("lab: list server: %v", err)
	}
	srv := &http.Server{Handler: ls, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	isp.lab.OnCleanup(func() { srv.Close() })
	return ls
}

// ListsTLSPort is where the ISP serves blocklists over https.
const ListsTLSPort = 8443

// ServeListsTLS starts the list server over https, with a certificate
// for Echo4 from a fresh lab CA, and returns the CA certificate (PEM) for
// the client to trust (blocklist.ca_file). The certificates become valid
// a minute before now: a client whose clock is behind refuses them.
func (isp *ISP) ServeListsTLS() (*ListServer, []byte) {
	caPEM, certPEM, keyPEM, err := labCA(Echo4)
	if err != nil {
		isp.lab.T.Fatalf("lab: CA: %v", err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		isp.lab.T.Fatalf("lab: CA: %v", err)
	}
	ls := &ListServer{files: map[string]string{}}
	var ln net.Listener
	err = netns.Do(isp.NS.Name, func() (err error) {
		ln, err = net.Listen("tcp", fmt.Sprintf("[::]:%d", ListsTLSPort))
		return err
	})
	if err != nil {
		isp.lab.T.Fatalf("lab: list server: %v", err)
	}
	srv := &http.Server{Handler: ls, ReadHeaderTimeout: 5 * time.Second, TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}}}
	go srv.ServeTLS(ln, "", "")
	isp.lab.OnCleanup(func() { srv.Close() })
	return ls, caPEM
}

// ListTLSURL is the https address of a list on the ISP's list server.
func ListTLSURL(name string) string {
	return fmt.Sprintf("https://%s:%d/%s", Echo4, ListsTLSPort, name)
}

// labCA makes a CA and a server certificate signed by it for addr and
// names, and returns the CA and the server's certificate and key in PEM.
func labCA(addr netip.Addr, names ...string) (caPEM, certPEM, keyPEM []byte, err error) {
	notBefore, notAfter := time.Now().Add(-time.Minute), time.Now().Add(24*time.Hour)
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, err
	}
	ca := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "routerd lab CA"},
		NotBefore: notBefore, NotAfter: notAfter, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, nil, nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, err
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: addr.String()},
		NotBefore: notBefore, NotAfter: notAfter, IPAddresses: []net.IP{addr.AsSlice()}, DNSNames: names,
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, nil, nil, err
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), nil
}

// DoT4 is where the ISP serves DNS over TLS (unbound), with a certificate
// for DoTName from a lab CA.
var (
	DoT4    = netip.MustParseAddr("192.0.2.85")
	DoTName = "dot.example"
)

// ServeDoT runs unbound as a DNS-over-TLS resolver on DoT4:853 that
// forwards to the ISP's DNS and answers secret.dot.example itself (so an
// answer for it can only have come over TLS), and returns the lab CA
// (PEM) its certificate is from.
func (isp *ISP) ServeDoT() (*Proc, []byte) {
	ca, cert, key, err := labCA(DoT4, DoTName)
	if err != nil {
		isp.lab.T.Fatalf("lab: CA: %v", err)
	}
	dir := filepath.Join(isp.dir, "dot")
	os.MkdirAll(dir, 0o755)
	os.WriteFile(filepath.Join(dir, "cert.pem"), cert, 0o644)
	os.WriteFile(filepath.Join(dir, "key.pem"), key, 0o600)
	conf := fmt.Sprintf(`server:
  interface: %[2]s@853
  tls-service-key: "%[1]s/key.pem"
  tls-service-pem: "%[1]s/cert.pem"
  tls-port: 853
  access-control: 0.0.0.0/0 allow
  access-control: ::/0 allow
  username: ""
  chroot: ""
  directory: "%[1]s"
  pidfile: "%[1]s/unbound.pid"
  use-syslog: no
  logfile: ""
  verbosity: 1
  do-not-query-localhost: no
  module-config: "iterator"
  local-zone: "dot.example." static
  local-data: "secret.dot.example. 300 IN A 198.51.100.99"
remote-control:
  control-enable: no
forward-zone:
  name: "."
  forward-addr: %[3]s
`, dir, DoT4, ISPDNS4)
	os.WriteFile(filepath.Join(dir, "unbound.conf"), []byte(conf), 0o644)
	p := isp.NS.Start("isp-unbound-dot", "unbound", "-d", "-c", filepath.Join(dir, "unbound.conf"))
	isp.lab.Eventually(10*time.Second, "isp unbound listens on 853", func() error {
		out, err := isp.NS.Run("ss", "-Htln", "sport = :853")
		if err != nil || !strings.Contains(out, "853") {
			return fmt.Errorf("not yet: %v %s", err, out)
		}
		return nil
	})
	return p, ca
}

// ListURL is the address of a list on the ISP's list server.
func ListURL(name string) string {
	return fmt.Sprintf("http://%s:%d/%s", Echo4, ListsPort, name)
}

// Set makes name serve content.
func (ls *ListServer) Set(name, content string) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	ls.files[name] = content
}

// Fail makes every request answer status (0 serves again).
func (ls *ListServer) Fail(status int) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	ls.failWith = status
}

// Hits is how many requests the server answered.
func (ls *ListServer) Hits() int {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	return ls.hits
}

func (ls *ListServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ls.mu.Lock()
	ls.hits++
	fail := ls.failWith
	content, ok := ls.files[strings.TrimPrefix(r.URL.Path, "/")]
	ls.mu.Unlock()
	switch {
	case fail != 0:
		w.WriteHeader(fail)
	case !ok:
		http.NotFound(w, r)
	default:
		fmt.Fprint(w, content)
	}
}

// DNSLog is the ISP's DNS server's log in lower case. Names are
// case-insensitive, and routerd asks upstream in mixed case (0x20): a test
// looks for a question by its lower-case name.
func (isp *ISP) DNSLog() string { return strings.ToLower(isp.Dnsmasq.Log.String()) }
