package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/routerd/routerd/internal/lab"
	"github.com/routerd/routerd/router/status"
)

// TestDNSOverTLS: with a DNS-over-TLS upstream (unbound on the ISP side,
// its certificate from a lab CA), LAN clients' questions are answered
// through it; a wrong name in the upstream's config gets no answer and the
// status says why; with the upstream down, the clients get SERVFAIL. Not
// one plaintext DNS packet reaches the ISP from the router throughout.
func TestDNSOverTLS(t *testing.T) {
	lab.Require(t, "dnsmasq", "unbound", "dig", "nft", "ss")
	l := lab.New(t)
	isp := l.NewISP(lab.ISPOptions{})
	unbound, ca := isp.ServeDoT()
	if err := os.WriteFile(filepath.Join(l.Dir, "dot-ca.pem"), ca, 0o644); err != nil {
		t.Fatal(err)
	}
	// Plain DNS from the router's side of the ISP, counted.
	isp.NS.MustRun("nft", "add table inet plaindns")
	isp.NS.MustRun("nft", "add chain inet plaindns in { type filter hook input priority 0 ; }")
	isp.NS.MustRun("nft", "add rule inet plaindns in iifname dn udp dport 53 counter")
	isp.NS.MustRun("nft", "add rule inet plaindns in iifname dn tcp dport 53 counter")
	plain := func() string {
		out := isp.NS.MustRun("nft", "list chain inet plaindns in")
		return strings.Join(regexp.MustCompile(`packets \d+`).FindAllString(out, -1), ", ")
	}

	r := l.NewRouter(isp)
	lan := r.AddLAN()
	c := lan.AddClient()
	c.SetStatic(50)
	config := func(name string) string {
		return r.Config(lab.ConfigOptions{Upstreams: []string{"tls://" + lab.DoT4.String() + "#" + name}, DNSExtra: "tls_ca_file = \"dot-ca.pem\"\n"})
	}
	rd := r.StartRouterd(config(lab.DoTName))
	waitWANLease(t, l, rd, nil)
	gw := lan.Router4().Addr()
	dig := func(name string) string {
		out, _ := c.Dig(gw, name)
		return out
	}
	// Only unbound knows secret.dot.example: the answer came over TLS.
	l.Eventually(20*time.Second, "an answer through the DoT upstream", func() error {
		if got := dig("secret.dot.example"); !strings.Contains(got, "198.51.100.99") {
			return fmt.Errorf("dig: %s", got)
		}
		return nil
	})
	if got := dig("echo.example"); !strings.Contains(got, lab.Echo4.String()) {
		t.Errorf("echo.example through unbound: %s", got)
	}
	up := dnsUpstream(t, rd)
	if up.Protocol != "tls" || up.ServerName != lab.DoTName || !strings.HasPrefix(up.Handshake, "TLS 1.3") || up.Answered < 2 {
		t.Errorf("upstream status %+v", up)
	}

	// The certificate is not for this name: no answer, and why.
	os.WriteFile(rd.ConfigPath, []byte(config("wrong.example")), 0o600)
	if _, err := rd.Ctl("reload"); err != nil {
		t.Fatal(err)
	}
	l.Eventually(20*time.Second, "the handshake refused", func() error {
		if got := dig("other.example"); !strings.Contains(got, "SERVFAIL") {
			return fmt.Errorf("dig: %s", got)
		}
		if up := dnsUpstream(t, rd); !strings.Contains(up.Handshake, "not wrong.example") {
			return fmt.Errorf("handshake %q", up.Handshake)
		}
		return nil
	})

	// The upstream down: SERVFAIL, and still nothing in the clear.
	os.WriteFile(rd.ConfigPath, []byte(config(lab.DoTName)), 0o600)
	if _, err := rd.Ctl("reload"); err != nil {
		t.Fatal(err)
	}
	unbound.Stop()
	l.Eventually(20*time.Second, "SERVFAIL with the upstream down", func() error {
		if got := dig("down.example"); !strings.Contains(got, "SERVFAIL") {
			return fmt.Errorf("dig: %s", got)
		}
		return nil
	})
	if got := plain(); got != "packets 0, packets 0" {
		t.Errorf("plaintext DNS reached the ISP from the router: %s", got)
	}
}

func dnsUpstream(t *testing.T, rd *lab.Routerd) status.Upstream {
	t.Helper()
	st, err := getStatus(rd)
	if err != nil || st.DNS == nil || len(st.DNS.Upstreams) != 1 {
		t.Fatalf("DNS status: %v %+v", err, st)
	}
	return st.DNS.Upstreams[0]
}
