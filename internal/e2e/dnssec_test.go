package e2e

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/routerd/routerd/internal/lab"
)

// digged is what a LAN client's dig saw.
type digged struct {
	status string // NOERROR, SERVFAIL...
	ad     bool
	ede    string // "6", or ""
	addrs  []string
	rrsig  bool
	out    string
}

var (
	digFlags = regexp.MustCompile(`;; flags:([^;]*);`)
	digEDE   = regexp.MustCompile(`; EDE: (\d+)`)
	digA     = regexp.MustCompile(`(?m)^\S+\s+\d+\s+IN\s+A\s+(\S+)$`)
)

func digFull(t *testing.T, c *lab.Client, server netip.Addr, args ...string) digged {
	t.Helper()
	out, err := c.Dig(server, args...)
	if err != nil {
		t.Fatalf("dig %v: %v\n%s", args, err, out)
	}
	var d digged
	d.out = out
	if i := strings.Index(out, "status: "); i >= 0 {
		d.status = strings.TrimSuffix(strings.Fields(out[i+len("status: "):])[0], ",")
	}
	if m := digFlags.FindStringSubmatch(out); m != nil {
		d.ad = strings.Contains(" "+m[1]+" ", " ad ")
	}
	if m := digEDE.FindStringSubmatch(out); m != nil {
		d.ede = m[1]
	}
	for _, m := range digA.FindAllStringSubmatch(out, -1) {
		d.addrs = append(d.addrs, m[1])
	}
	d.rrsig = regexp.MustCompile(`(?m)\sIN\s+RRSIG\s`).MatchString(out)
	return d
}

// TestDNSSEC: with dns.dnssec on and the lab's test. zone as the trust
// anchor, routerd validates what nsd serves (zones signed by
// ldns-signzone): a signed zone's answers carry AD (NSEC and NSEC3,
// positive, negative, wildcard, CNAME); a zone whose data no longer
// matches its signatures, or whose signatures expired, is SERVFAIL with
// the Extended DNS Error that says why, unless the client sets CD; an
// unsigned zone is answered without AD; the router's own names are
// answered as ever. A name a validated NSEC record already proves absent
// is answered without a packet to the upstream.
func TestDNSSEC(t *testing.T) {
	lab.Require(t, "dnsmasq", "dig", "nsd", "ldns-keygen", "ldns-signzone", "nft")
	l := lab.New(t)
	isp := l.NewISP(lab.ISPOptions{})
	_, anchor := isp.ServeSigned(0)
	if err := os.WriteFile(filepath.Join(l.Dir, "anchors.ds"), []byte(anchor), 0o644); err != nil {
		t.Fatal(err)
	}
	// Questions reaching nsd, counted.
	isp.NS.MustRun("nft", "add table inet authq")
	isp.NS.MustRun("nft", "add chain inet authq in { type filter hook input priority 0 ; }")
	isp.NS.MustRun("nft", "add rule inet authq in ip daddr "+lab.Auth4.String()+" udp dport 53 counter")
	asked := func() string {
		return regexp.MustCompile(`packets \d+`).FindString(isp.NS.MustRun("nft", "list chain inet authq in"))
	}

	r := l.NewRouter(isp)
	lan := r.AddLAN()
	c := lan.AddClient()
	c.SetStatic(50)
	rd := r.StartRouterd(r.Config(lab.ConfigOptions{Upstreams: []string{lab.Auth4.String() + ":53"},
		DNSExtra: "dnssec = true\ntrust_anchors = \"anchors.ds\"\n" + `
[[dns.record]]
name = "printer.lan"
addresses = ["192.168.11.9"]
`}))
	waitWANLease(t, l, rd, nil)
	gw := lan.Router4().Addr()
	l.Eventually(20*time.Second, "a validated answer", func() error {
		if d := digFull(t, c, gw, "+dnssec", "www.secure.test", "A"); !d.ad {
			return fmt.Errorf("dig:\n%s", d.out)
		}
		return nil
	})

	for _, tc := range []struct {
		args   []string
		status string
		ad     bool
		ede    string
		addr   string
		rrsig  bool
	}{
		{[]string{"+dnssec", "www.secure.test"}, "NOERROR", true, "", lab.SignedAddr["www.secure.test"], true},
		{[]string{"www.secure.test"}, "NOERROR", true, "", lab.SignedAddr["www.secure.test"], false}, // dig sets AD; no DO, no RRSIG
		{[]string{"+noadflag", "www.secure.test"}, "NOERROR", false, "", lab.SignedAddr["www.secure.test"], false},
		{[]string{"alias.secure.test"}, "NOERROR", true, "", lab.SignedAddr["www.secure.test"], false},
		{[]string{"any.wild.secure.test"}, "NOERROR", true, "", lab.SignedAddr["wild.secure.test"], false},
		{[]string{"nothere.secure.test"}, "NXDOMAIN", true, "", "", false},
		{[]string{"www.secure.test", "AAAA"}, "NOERROR", true, "", "", false},
		{[]string{"www.nsec3.test"}, "NOERROR", true, "", lab.SignedAddr["www.nsec3.test"], false},
		{[]string{"nothere.nsec3.test"}, "NXDOMAIN", true, "", "", false},
		{[]string{"www.nsec3.test", "TXT"}, "NOERROR", true, "", "", false},
		{[]string{"www.insecure.test"}, "NOERROR", false, "", lab.SignedAddr["www.insecure.test"], false},
		{[]string{"www.broken.test"}, "SERVFAIL", false, "6", "", false},
		{[]string{"+cd", "www.broken.test"}, "NOERROR", false, "", lab.SignedAddr["www.broken.test"], false},
		{[]string{"www.expired.test"}, "SERVFAIL", false, "7", "", false},
		{[]string{"printer.lan"}, "NOERROR", false, "", "192.168.11.9", false},
	} {
		d := digFull(t, c, gw, tc.args...)
		addr := strings.Join(d.addrs, " ")
		if d.status != tc.status || d.ad != tc.ad || d.ede != tc.ede || addr != tc.addr || d.rrsig != tc.rrsig {
			t.Errorf("dig %v: %s AD %v EDE %q %q RRSIG %v; want %s AD %v EDE %q %q RRSIG %v\n%s", tc.args,
				d.status, d.ad, d.ede, addr, d.rrsig, tc.status, tc.ad, tc.ede, tc.addr, tc.rrsig, d.out)
		}
	}

	// nothere.secure.test's NSEC records cover other.secure.test too:
	// its NXDOMAIN comes without asking nsd.
	before := asked()
	if d := digFull(t, c, gw, "other.secure.test"); d.status != "NXDOMAIN" || !d.ad {
		t.Errorf("other.secure.test: %s AD %v\n%s", d.status, d.ad, d.out)
	}
	if after := asked(); after != before {
		t.Errorf("nsd was asked for a name a validated NSEC proves absent: %s, then %s", before, after)
	}

	st, err := getStatus(rd)
	if err != nil || st.DNS == nil || st.DNS.DNSSEC == nil {
		t.Fatalf("status: %v %+v", err, st)
	}
	v := st.DNS.DNSSEC
	if v.Secure == 0 || v.Insecure == 0 || v.Bogus < 2 || v.Synthesized < 1 || !strings.Contains(v.LastBogus, "expired") ||
		strings.Join(v.Anchors, " ") != "test." {
		t.Errorf("DNSSEC status %+v", v)
	}
	text, _ := rd.Ctl("status")
	if !strings.Contains(text, "validating (anchors test.)") {
		t.Errorf("routerctl status has no DNSSEC line:\n%s", text)
	}
}
