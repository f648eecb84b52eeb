package lab

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Auth4 is where the ISP's authoritative server (nsd) answers for the
// lab's DNSSEC zones, all below test.
var Auth4 = netip.MustParseAddr("192.0.2.86")

// The lab's DNSSEC zones below test. (itself signed, the trust anchor):
//
//	secure.test.    signed (NSEC): www, alias → www, *.wild, zz
//	nsec3.test.     signed (NSEC3, no iterations): www
//	broken.test.    signed, then www's address changed (its signature fails)
//	expired.test.   signed with signatures that expired in 2020
//	insecure.test.  not signed; test. has no DS for it
//	many.test.      signed (NSEC), with names m0 ... m<many-1> (benchmarks: each
//	                answer with a signature of its own)
//
// Each zone's www has its own address, SignedAddr.
var SignedAddr = map[string]string{
	"www.secure.test":   "198.51.100.11",
	"wild.secure.test":  "198.51.100.12", // any name below wild.secure.test
	"www.nsec3.test":    "198.51.100.21",
	"www.broken.test":   "198.51.100.66", // signed as .31
	"www.expired.test":  "198.51.100.41",
	"www.insecure.test": "198.51.100.51",
}

// ServeSigned signs the lab's DNSSEC zones with ldns-signzone, serves them
// with nsd on Auth4:53, and returns the trust anchor (test.'s DS, in
// zone-file form). many is the number of names in many.test.
func (isp *ISP) ServeSigned(many int) (*Proc, string) {
	t := isp.lab.T
	t.Helper()
	dir := filepath.Join(isp.dir, "signed")
	os.MkdirAll(dir, 0o755)
	isp.NS.MustRun("ip", "addr", "add", Auth4.String()+"/32", "dev", "lo")
	run := func(argv ...string) string {
		t.Helper()
		record(argv[0])
		cmd := hostCmd(argv...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("lab: %s: %v\n%s", strings.Join(argv, " "), err, out)
		}
		return strings.TrimSpace(string(out))
	}
	head := func(zone string) string {
		return fmt.Sprintf("$ORIGIN %[1]s.\n$TTL 300\n@ IN SOA ns.test. host.%[1]s. 1 7200 3600 1209600 300\n@ IN NS ns.test.\n", zone)
	}
	// sign writes zone's signed file with a KSK and a ZSK, and returns
	// the KSK's DS record.
	sign := func(zone, body string, opts ...string) string {
		t.Helper()
		ksk := run("ldns-keygen", "-a", "ECDSAP256SHA256", "-k", zone+".")
		zsk := run("ldns-keygen", "-a", "ECDSAP256SHA256", zone+".")
		os.WriteFile(filepath.Join(dir, zone+".zone"), []byte(head(zone)+body), 0o644)
		run(append(append([]string{"ldns-signzone"}, opts...), zone+".zone", ksk, zsk)...)
		ds, err := os.ReadFile(filepath.Join(dir, ksk+".ds"))
		if err != nil {
			t.Fatalf("lab: %v", err)
		}
		return string(ds)
	}
	var test strings.Builder
	test.WriteString("ns IN A " + Auth4.String() + "\n")
	child := func(zone, body string, opts ...string) {
		test.WriteString(zone + ". IN NS ns.test.\n" + sign(zone, body, opts...))
	}
	child("secure.test", "www IN A 198.51.100.11\nalias IN CNAME www\n*.wild IN A 198.51.100.12\nzz IN A 198.51.100.13\n")
	child("nsec3.test", "www IN A 198.51.100.21\n", "-n", "-t", "0")
	child("broken.test", "www IN A 198.51.100.31\n")
	child("expired.test", "www IN A 198.51.100.41\n", "-i", "20200101000000", "-e", "20200201000000")
	var names strings.Builder
	for i := range many {
		fmt.Fprintf(&names, "m%d IN A 198.18.%d.%d\n", i, i>>8&0xff, i&0xff)
	}
	child("many.test", names.String())
	// Unsigned, and test. has no DS for it.
	test.WriteString("insecure.test. IN NS ns.test.\n")
	os.WriteFile(filepath.Join(dir, "insecure.test.zone.signed"), []byte(head("insecure.test")+"www IN A 198.51.100.51\n"), 0o644)
	anchor := sign("test", test.String())
	// Break broken.test after signing: www's record no longer matches
	// its signature.
	p := filepath.Join(dir, "broken.test.zone.signed")
	b, _ := os.ReadFile(p)
	os.WriteFile(p, []byte(strings.Replace(string(b), "198.51.100.31", "198.51.100.66", 1)), 0o644)

	conf := fmt.Sprintf(`server:
  ip-address: %[2]s
  port: 53
  username: ""
  chroot: ""
  zonesdir: "%[1]s"
  database: ""
  zonelistfile: "%[1]s/zone.list"
  pidfile: "%[1]s/nsd.pid"
  xfrdfile: "%[1]s/xfrd.state"
  xfrdir: "%[1]s"
  logfile: "%[1]s/nsd.log"
  server-count: 1
  verbosity: 1
  # No response rate limiting: the lab's resolvers all ask from one
  # address, as fast as a benchmark can.
  rrl-ratelimit: 0
  rrl-whitelist-ratelimit: 0
remote-control:
  control-enable: no
`, dir, Auth4)
	for _, z := range []string{"test", "secure.test", "nsec3.test", "broken.test", "expired.test", "insecure.test", "many.test"} {
		conf += fmt.Sprintf("zone:\n  name: %s.\n  zonefile: %s.zone.signed\n", z, z)
	}
	os.WriteFile(filepath.Join(dir, "nsd.conf"), []byte(conf), 0o644)
	record("nsd")
	proc := isp.NS.Start("isp-nsd", "nsd", "-d", "-c", filepath.Join(dir, "nsd.conf"))
	isp.lab.Eventually(10*time.Second, "nsd answers", func() error {
		out, err := isp.NS.Run("dig", "+time=1", "+tries=1", "+short", "@"+Auth4.String(), "www.secure.test", "A")
		if err != nil || !strings.Contains(out, "198.51.100.11") {
			return fmt.Errorf("not yet: %v %s", err, out)
		}
		return nil
	})
	return proc, anchor
}
