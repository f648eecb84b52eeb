// Command demo builds the lab topology (an ISP, a VPN provider, a LAN with
// two clients), runs routerd on it and shows routerctl status and the path
// each client's traffic takes. make demo runs it; it needs root.
//
// With DEMO_KEEP=1 it leaves everything running until Ctrl-C, so the
// namespaces can be explored with ip netns exec.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"syscall"

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
func (r *runner) Fatalf(format string, a ...any) {
	r.failed = true
	fmt.Fprintf(os.Stderr, "demo: "+format+"\n", a...)
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

func demo(t *runner) {
	l := lab.New(t)
	step("building the lab: isp (dnsmasq, echo), vpn provider (wireguard-go), router, LAN with two clients")
	isp := l.NewISP(lab.ISPOptions{})
	vp := l.NewVPNProvider(isp)
	r := l.NewRouter(isp)
	lan := r.AddLAN()
	lan.AddClient()
	lan.AddClient()
	cfg := r.Config(lab.ConfigOptions{VPN: vp, Default: "vpn"})
	step("routerd config (%s)", r.WriteConfig(cfg))
	fmt.Print(cfg)
	step("starting routerd in namespace %s", r.NS.Name)
	rd := r.StartRouterd(cfg)
	out, _ := rd.Ctl("status")
	step("routerctl status")
	fmt.Print(out)
	step("namespaces: %s-*; routerd's networking arrives with the next issues, so no client paths yet", l.Prefix)
	keep(l)
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
