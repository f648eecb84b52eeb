// Command demo builds the lab topology (an ISP, a VPN provider, a LAN with
// two clients), runs routerd on it and shows routerctl status and the path
// each client's traffic takes. make demo runs it; it needs root.
//
// With DEMO_KEEP=1 it leaves everything running until Ctrl-C, so the
// namespaces can be explored with ip netns exec.
package main

import (
	"fmt"
	"net/netip"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/routerd/routerd/internal/lab"
)

// runner is the lab.T of a program: failures end it after cleanup.
type runner struct {
	cleanups []func()
	failed   bool
}

func (r *runner) Helper()                      {}
func (r *runner) Logf(format string, a ...any) { fmt.Printf(format+"\n", a...) }
func (r *runner) Cleanup(f func())             { r.cleanups = append(r.cleanups, f) }
func (r *runner) Failed() bool                 { return r.failed }
func (r *runner) Errorf(format string, a ...any) {
	r.failed = true
	fmt.Fprintf(os.Stderr, "demo: "+format+"\n", a...)
}

func (r *runner) Fatalf(format string, a ...any) {
	r.Errorf(format, a...)
	runtime.Goexit()
}

func (r *runner) cleanup() {
	for i := len(r.cleanups) - 1; i >= 0; i-- {
		r.cleanups[i]()
	}
}

func main() {
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "demo: needs root (it builds network namespaces)")
		os.Exit(1)
	}
	r := &runner{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		demo(r)
	}()
	<-done
	r.cleanup()
	if r.failed {
		os.Exit(1)
	}
}

func step(format string, a ...any) { fmt.Printf("\n==> "+format+"\n", a...) }

// Policies are tried in order; the first that matches decides.
const demoPolicy = `
[[routing.policy]]
name = "smtp-out"
destination_ports = ["tcp/25"]
via = "vpn"

[[routing.policy]]
name = "tv-direct"
sources = ["192.168.11.60", "02:42:ac:01:01:02"]  # by address, and by MAC for its SLAAC addresses
via = "wan"

# Served by the lab's ISP: the registry lists 192.0.2.20 and blocked.example.
[[blocklist]]
name = "rkn"
url = "http://192.0.2.10:8081/rkn.csv"
via = "vpn"
`

func demo(t *runner) {
	l := lab.New(t)
	step("building the lab: isp (dnsmasq, echo), vpn provider (wireguard-go), router, LAN with two clients")
	isp := l.NewISP(lab.ISPOptions{SLAAC: true})
	vp := l.NewVPNProvider(isp)
	r := l.NewRouter(isp)
	lan := r.AddLAN()
	laptop, tv := lan.AddClient(), lan.AddClient()
	laptop.SetStatic(50)
	tv.SetStatic(60)
	lists := isp.ServeLists()
	lists.Set("rkn.csv", "Updated: 2026-11-22 08:00:00 +0000\n"+
		lab.EchoAlt4[0].String()+";;;Court;1-2026;2026-01-01\n"+
		";*.blocked.example;https://www.blocked.example/;Court;2-2026;2026-01-02\n")
	cfg := r.Config(lab.ConfigOptions{VPN: vp, Default: "vpn", WANIPv6: "slaac", NoDHCP: true, Extra: demoPolicy})
	step("routerd config (%s)", r.WriteConfig(cfg))
	fmt.Print(cfg)
	step("starting routerd in namespace %s", r.NS.Name)
	rd := r.StartRouterd(cfg)
	l.Eventually(30*time.Second, "WAN lease and VPN handshake", func() error {
		out, err := rd.Ctl("status")
		if err != nil {
			return err
		}
		if !strings.Contains(out, "dhcp  bound") || !strings.Contains(out, "): up") {
			return fmt.Errorf("not yet")
		}
		return nil
	})

	step("which path each client takes: the ISP's echo service says whom it saw")
	fmt.Printf("    the router's WAN address comes from the ISP; the VPN provider's public address is %s\n\n", lab.VPNPublic4.Addr())
	for _, c := range []struct {
		name string
		c    *lab.Client
		why  string
	}{{"laptop 192.168.11.50", laptop, "routing.default = vpn"}, {"tv     192.168.11.60", tv, "policy tv-direct; tcp/25 by smtp-out"}} {
		for _, dst := range []struct {
			addr netip.Addr
			port int
		}{{lab.Echo4, 80}, {lab.Echo6, 80}, {lab.Echo4, 25}} {
			seen := "FAILED"
			if err := lab.Poll(15*time.Second, func() (err error) { seen, err = c.c.Echo(dst.addr, dst.port); return err }); err != nil {
				seen = "FAILED: " + err.Error()
			}
			path := "WAN"
			if seen == lab.VPNPublic4.Addr().String() || seen == lab.VPNPublic6.Addr().String() {
				path = "VPN"
			}
			fmt.Printf("    %s -> %-22s seen as %-30s => via %s (%s)\n", c.name, netip.AddrPortFrom(dst.addr, uint16(dst.port)), seen, path, c.why)
		}
	}

	step("routerctl blocklist refresh (waits for the download)")
	out, err := rd.Ctl("blocklist", "refresh")
	fmt.Print(out, errOr(err, ""), "\n")
	step("blocklist rkn (via vpn) wins over the tv's policy: a listed address, and a listed domain once resolved")
	for _, dst := range []struct {
		what string
		name string
		addr netip.Addr
	}{{"listed address", "", lab.EchoAlt4[0]}, {"listed domain", "cdn.blocked.example", lab.EchoAlt4[2]}, {"unlisted", "", lab.EchoAlt4[1]}} {
		if dst.name != "" {
			out, err := tv.Dig(lan.Router4().Addr(), "+short", dst.name, "A")
			fmt.Printf("    tv resolves %s: %s %v\n", dst.name, strings.Join(strings.Fields(out), " "), errOr(err, ""))
		}
		seen := "FAILED"
		if err := lab.Poll(15*time.Second, func() (err error) { seen, err = tv.Echo(dst.addr, 80); return err }); err != nil {
			seen = "FAILED: " + err.Error()
		}
		path := "WAN"
		if seen == lab.VPNPublic4.Addr().String() {
			path = "VPN"
		}
		fmt.Printf("    tv     -> %-22s seen as %-30s => via %s (%s)\n", netip.AddrPortFrom(dst.addr, 80), seen, path, dst.what)
	}

	step("kill switch: the VPN provider goes down; the laptop gets nothing, the tv is unaffected")
	vp.Stop()
	_, err = laptop.Echo(lab.Echo4, 80)
	fmt.Printf("    laptop -> %s: %v\n", lab.Echo4, errOr(err, "reached it (leak!)"))
	seen, err := tv.Echo(lab.Echo4, 80)
	fmt.Printf("    tv     -> %s: seen as %s %v\n", lab.Echo4, seen, errOr(err, ""))
	vp.Start()
	fmt.Println("    (provider back up)")

	out, _ = rd.Ctl("status")
	step("routerctl status")
	fmt.Print(out)
	keep(l)
}

func errOr(err error, ok string) string {
	if err != nil {
		return "no answer (" + strings.TrimSpace(lastLine(err.Error())) + ")"
	}
	return ok
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndex(s, "\n"); i >= 0 {
		return s[i+1:]
	}
	return s
}

func keep(l *lab.Lab) {
	if os.Getenv("DEMO_KEEP") == "" {
		return
	}
	step("DEMO_KEEP is set: the lab stays up until Ctrl-C (namespaces %s-*)", l.Prefix)
	c := make(chan os.Signal, 1)
	signal.Notify(c, os.Interrupt, syscall.SIGTERM)
	<-c
}
