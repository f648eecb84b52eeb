package e2e

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/routerd/routerd/internal/lab"
	"github.com/routerd/routerd/router/status"
)

// waitWANLease waits for routerd to report a bound WAN lease and returns it.
func waitWANLease(t *testing.T, l *lab.Lab, rd *lab.Routerd, cond func(*status.Status) error) *status.Status {
	t.Helper()
	var st *status.Status
	l.Eventually(30*time.Second, "WAN lease", func() (err error) {
		if st, err = getStatus(rd); err != nil {
			return err
		}
		if st.WAN == nil || st.WAN.DHCP == nil || st.WAN.DHCP.State != "bound" {
			return fmt.Errorf("WAN = %+v", st.WAN)
		}
		if cond != nil {
			return cond(st)
		}
		return nil
	})
	return st
}

// TestWANDHCP: the WAN gets its lease from the ISP's dnsmasq, renews it at
// T1 keeping its address, confirms it after a restart (INIT-REBOOT), and
// gets it back after the NIC resets.
func TestWANDHCP(t *testing.T) {
	lab.Require(t, "dnsmasq", "nsenter")
	l := lab.New(t)
	isp := l.NewISP(lab.ISPOptions{T1: 3 * time.Second, T2: 6 * time.Second})
	r := l.NewRouter(isp)
	r.AddLAN()
	rd := r.StartRouterd(r.Config(lab.ConfigOptions{}))
	wanNS := l.ExistingNS(l.Prefix + "-wan")

	st := waitWANLease(t, l, rd, nil)
	d := st.WAN.DHCP
	addr := netip.MustParsePrefix(d.Address)
	if !lab.ISPDown4.Contains(addr.Addr()) || d.Router != lab.ISPDown4.Addr().String() || d.Server != lab.ISPDown4.Addr().String() {
		t.Errorf("WAN lease = %+v, want an address in %s from the ISP", d, lab.ISPDown4)
	}
	if len(d.DNS) != 1 || d.DNS[0] != lab.ISPDNS4.String() {
		t.Errorf("WAN lease DNS = %v, want [%s]", d.DNS, lab.ISPDNS4)
	}
	if out := wanNS.MustRun("ip", "-4", "addr", "show", "wan0"); !strings.Contains(out, addr.String()) {
		t.Errorf("wan0 lacks %s:\n%s", addr, out)
	}
	if out := wanNS.MustRun("ip", "route", "show", "default"); !strings.Contains(out, "via "+lab.ISPDown4.Addr().String()+" dev wan0 proto dhcp") {
		t.Errorf("wan namespace default route = %q", out)
	}
	if !strings.Contains(isp.Leases(), " gw ") {
		t.Errorf("dnsmasq's lease lacks the router's hostname:\n%s", isp.Leases())
	}
	// The router itself reaches the internet from the wan namespace.
	if out, err := wanNS.Run("curl", "-sS", "--max-time", "5", "http://"+lab.Echo4.String()+"/"); err != nil || strings.TrimSpace(out) != addr.Addr().String() {
		t.Errorf("echo from the wan namespace = %q, %v; want %s", out, err, addr.Addr())
	}

	// Renewal at T1 (3s) keeps the address.
	acks := d.Counts["ack"]
	waitWANLease(t, l, rd, func(st *status.Status) error {
		if st.WAN.DHCP.Counts["ack"] < acks+2 {
			return fmt.Errorf("acks = %d, want renewals beyond %d", st.WAN.DHCP.Counts["ack"], acks)
		}
		if st.WAN.DHCP.Address != addr.String() {
			return fmt.Errorf("address changed on renewal: %s -> %s", addr, st.WAN.DHCP.Address)
		}
		return nil
	})

	// A restart confirms the saved lease instead of discovering anew.
	discovers := strings.Count(isp.Dnsmasq.Log.String(), "DHCPDISCOVER")
	rd.Restart()
	waitWANLease(t, l, rd, func(st *status.Status) error {
		if st.WAN.DHCP.Address != addr.String() {
			return fmt.Errorf("address after restart %s, want %s", st.WAN.DHCP.Address, addr)
		}
		return nil
	})
	if got := strings.Count(isp.Dnsmasq.Log.String(), "DHCPDISCOVER"); got != discovers {
		t.Errorf("restart sent %d DISCOVERs, want none (INIT-REBOOT)", got-discovers)
	}

	// The NIC resets: it comes back without addresses; the lease returns.
	wanNS.MustRun("ip", "link", "del", "wan0")
	isp.Attach(r.NS, "eth7", lab.WANMAC)
	l.Eventually(20*time.Second, "WAN address back after the NIC reset", func() error {
		out, err := wanNS.Run("ip", "-4", "addr", "show", "wan0")
		if err != nil {
			return err
		}
		if !strings.Contains(out, addr.String()) {
			return fmt.Errorf("wan0: %s", out)
		}
		out, err = wanNS.Run("curl", "-sS", "--max-time", "2", "http://"+lab.Echo4.String()+"/")
		if err != nil {
			return err
		}
		if strings.TrimSpace(out) != addr.Addr().String() {
			return fmt.Errorf("echo saw %q", out)
		}
		return nil
	})
}

// TestWANDHCPv6PD: with wan.ipv6 = "dhcp" the WAN gets an address (IA_NA)
// and a delegated prefix (IA_PD) from the ISP's kea, shown in status.
func TestWANDHCPv6PD(t *testing.T) {
	lab.Require(t, "dnsmasq", "nsenter", "kea-dhcp6")
	l := lab.New(t)
	isp := l.NewISP(lab.ISPOptions{PD: true})
	r := l.NewRouter(isp)
	r.AddLAN()
	rd := r.StartRouterd(r.Config(lab.ConfigOptions{WANIPv6: "dhcp"}))
	var d6 struct{ addr, prefix string }
	l.Eventually(40*time.Second, "WAN DHCPv6 lease with a delegated prefix", func() error {
		st, err := getStatus(rd)
		if err != nil {
			return err
		}
		if st.WAN == nil || st.WAN.DHCP6 == nil || st.WAN.DHCP6.State != "bound" || st.WAN.DHCP6.Delegated == "" {
			return fmt.Errorf("WAN = %+v", st.WAN)
		}
		d6.addr, d6.prefix = st.WAN.DHCP6.Address, st.WAN.DHCP6.Delegated
		return nil
	})
	a := netip.MustParseAddr(d6.addr)
	if a.Compare(lab.ISPPool6[0]) < 0 || a.Compare(lab.ISPPool6[1]) > 0 {
		t.Errorf("WAN IPv6 address %s outside the ISP's pool %s-%s", a, lab.ISPPool6[0], lab.ISPPool6[1])
	}
	p := netip.MustParsePrefix(d6.prefix)
	if p.Bits() != 56 || !lab.ISPDelegation.Contains(p.Addr()) {
		t.Errorf("delegated prefix %s, want a /56 from %s", p, lab.ISPDelegation)
	}
	wanNS := l.ExistingNS(l.Prefix + "-wan")
	if out := wanNS.MustRun("ip", "-6", "addr", "show", "wan0"); !strings.Contains(out, d6.addr+"/128") {
		t.Errorf("wan0 lacks %s/128:\n%s", d6.addr, out)
	}
	if text, _ := rd.Ctl("status"); !strings.Contains(text, "delegated prefix "+d6.prefix) {
		t.Errorf("routerctl status does not show the delegated prefix:\n%s", text)
	}
}
