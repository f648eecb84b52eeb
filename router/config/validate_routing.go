package config

import (
	"crypto/x509"
	"fmt"
	"math"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/routerd/routerd/internal/via"
)

// [routing] and [[blocklist]]: which path traffic takes.

func (v *validator) routing(f *fileRouting) {
	r := &v.c.Routing
	def := via.WAN
	if v.c.VPN != nil {
		def = via.VPN
	}
	r.Default = v.via("routing.default", or(f.Default, def.String()))
	r.Router = v.via("routing.router", or(f.Router, via.WAN.String()))
	names := map[string]int{}
	var views uint8
	for i, fp := range f.Policy {
		pp := idx("routing.policy", i)
		pol := Policy{Name: fp.Name, Via: v.via(pp+".via", fp.Via)}
		if fp.Name == "" {
			v.p.errf(pp+".name", "required")
		} else if j, dup := names[fp.Name]; dup {
			v.p.errf(pp+".name", "%q is also the name of routing.policy[%d]", fp.Name, j)
		} else {
			names[fp.Name] = i
		}
		for j, s := range fp.Sources {
			sel, ok := v.selector(idx(pp+".sources", j), s)
			if !ok {
				v.p.errf(idx(pp+".sources", j), "%q is not an IP, CIDR, MAC or [[lan]] name", s)
				continue
			}
			pol.SourceIfaces = appendIf(pol.SourceIfaces, sel.lan, sel.lan != "")
			pol.SourceMACs = appendIf(pol.SourceMACs, sel.mac, sel.mac != nil)
			pol.SourceAddrs = appendIf(pol.SourceAddrs, sel.prefix, sel.prefix.IsValid())
		}
		for j, s := range fp.Destinations {
			pf, err := parseAddrOrPrefix(s)
			if err != nil {
				v.p.errf(idx(pp+".destinations", j), "%q is not an IP or CIDR", s)
				continue
			}
			pol.Destinations = append(pol.Destinations, pf)
		}
		for j, s := range fp.DestinationPorts {
			pr, err := ParsePortRange(s)
			if err != nil {
				v.p.errf(idx(pp+".destination_ports", j), "%q: %v", s, err)
				continue
			}
			pol.DestinationPorts = append(pol.DestinationPorts, pr)
		}
		for j, u := range fp.Users {
			if u == "" || strings.ContainsAny(u, ":/ \t\n") {
				v.p.errf(idx(pp+".users", j), "%q is not a user name or uid", u)
				continue
			}
			pol.Users = append(pol.Users, u)
		}
		for j, cg := range fp.Cgroups {
			clean := path.Clean(strings.Trim(cg, "/"))
			if cg == "" || clean == "." || strings.HasPrefix(clean, "..") || strings.ContainsAny(cg, "\n\x00") {
				v.p.errf(idx(pp+".cgroups", j), "%q is not a cgroup v2 path (such as \"system.slice/transmission.service\")", cg)
				continue
			}
			pol.Cgroups = append(pol.Cgroups, clean)
		}
		for j, u := range fp.DNS {
			up, err := parseUpstream(u)
			if err != nil {
				v.p.errf(idx(pp+".dns", j), "%q: %v", u, err)
				continue
			}
			pol.DNS = append(pol.DNS, up)
		}
		if len(fp.DNS) > 0 {
			switch {
			case len(fp.Destinations)+len(fp.DestinationPorts) > 0:
				v.p.errf(pp+".dns", "a question is not about a destination: a policy with its own DNS selects clients (sources) or processes (users, cgroups), without destinations or destination_ports")
			case views == 255:
				v.p.errf(pp+".dns", "at most 255 policies have their own DNS servers")
			default:
				views++
				pol.View = views
			}
		}
		if pol.Local() && len(fp.Sources) > 0 {
			v.p.errf(pp+".sources", "a policy selects LAN clients (sources) or this host's processes (users, cgroups), not both: make it two policies")
		}
		if len(fp.Sources)+len(fp.Destinations)+len(fp.DestinationPorts)+len(fp.Users)+len(fp.Cgroups) == 0 {
			v.p.errf(pp, "matches everything: give sources, destinations, destination_ports, users or cgroups (or set routing.default instead)")
		}
		r.Policies = append(r.Policies, pol)
	}
}

// selected is one entry naming LAN hosts: a [[lan]] name, a MAC or an IP
// or CIDR (one of the three is set).
type selected struct {
	lan    string
	mac    net.HardwareAddr
	prefix netip.Prefix
}

// selector reads an entry naming LAN hosts (a policy's sources, a firewall
// rule's sides). A malformed MAC is reported here and selects nothing; ok
// is false for an entry of no kind at all, which the caller reports.
func (v *validator) selector(path, s string) (sel selected, ok bool) {
	switch {
	case v.isLAN(s):
		sel.lan = s
	case strings.Count(s, ":") == 5 && !strings.Contains(s, "::"):
		sel.mac = v.mac(path, s)
	default:
		pf, err := parseAddrOrPrefix(s)
		if err != nil {
			return sel, false
		}
		sel.prefix = pf
	}
	return sel, true
}

func appendIf[T any](xs []T, x T, cond bool) []T {
	if cond {
		return append(xs, x)
	}
	return xs
}

func (v *validator) blocklist(path string, f *fileBlocklist) {
	b := Blocklist{Name: f.Name, URL: f.URL, File: f.File, MinRatio: 0.5, DomainTTLFloor: time.Hour,
		Timeout: 2 * time.Minute, MaxSize: DefaultListMaxSize, MaxEntries: DefaultListMaxEntries, Path: path,
		Block: strings.HasPrefix(path, "dns.block")}
	if f.Name == "" {
		v.p.errf(path+".name", "required")
	} else if !validSetName(f.Name) {
		v.p.errf(path+".name", "%q: use letters, digits, '-' and '_' (at most 32)", f.Name)
	}
	for _, o := range v.c.Blocklists {
		if o.Name == f.Name && f.Name != "" {
			v.p.errf(path+".name", "%q is used by %s", f.Name, o.Path)
		}
	}
	switch {
	case f.URL != "" && f.File != "":
		v.p.errf(path, "has both url and file; give exactly one")
	case f.URL == "" && f.File == "":
		v.p.errf(path, "needs a url or a file")
	case f.URL != "":
		u, err := url.Parse(f.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			v.p.errf(path+".url", "%q is not an http(s) URL", f.URL)
		}
	case !filepath.IsAbs(f.File):
		v.p.errf(path+".file", "%q must be an absolute path", f.File)
	}
	if b.CAFile = f.CAFile; f.CAFile != "" && !strings.HasPrefix(f.URL, "https://") {
		v.p.errf(path+".ca_file", "applies to https URLs only")
	}
	if b.Block {
		b.Format = v.enum(path+".format", or(f.Format, "auto"), "auto", "hosts", "adblock", "domains")
		b.Null = v.enum(path+".answer", or(f.Answer, "nxdomain"), "nxdomain", "null") == "null"
		for i, l := range f.LANs {
			if !v.isLAN(l) {
				v.p.errf(idx(path+".lans", i), "%q is not a [[lan]] name", l)
			}
		}
		b.LANs = f.LANs
		if f.Via != "" || f.DomainTTLFloor != "" {
			v.p.errf(path, "via and domain_ttl_floor are [[blocklist]]'s: a DNS block list answers names, it routes nothing")
		}
	} else {
		b.Format = v.enum(path+".format", or(f.Format, "auto"), "auto", "lines", "rkn-csv", "domains")
		if f.Answer != "" || len(f.LANs) > 0 {
			v.p.errf(path, "answer and lans are [[dns.block]]'s: a [[blocklist]] routes its destinations")
		}
	}
	def := "24h"
	if f.File != "" {
		def = "1h"
	}
	b.Refresh = v.duration(path+".refresh", or(f.Refresh, def))
	if b.Refresh > 0 && b.Refresh < time.Minute {
		v.p.errf(path+".refresh", "%s is too often (at least 1m)", f.Refresh)
	}
	if !b.Block {
		b.Via = v.via(path+".via", f.Via)
	}
	if f.MinRatio != nil {
		if *f.MinRatio < 0 || *f.MinRatio > 1 || math.IsNaN(*f.MinRatio) {
			v.p.errf(path+".min_ratio", "%v is outside 0-1", *f.MinRatio)
		} else {
			b.MinRatio = *f.MinRatio
		}
	}
	if f.DomainTTLFloor != "" {
		b.DomainTTLFloor = v.duration(path+".domain_ttl_floor", f.DomainTTLFloor)
	}
	if f.Timeout != "" {
		b.Timeout = v.duration(path+".timeout", f.Timeout)
	}
	if f.MaxSize != "" {
		n, err := parseSize(f.MaxSize)
		if err != nil || n < 1<<10 {
			v.p.errf(path+".max_size", "%q is not a size of at least 1KiB (e.g. \"64MiB\")", f.MaxSize)
		} else {
			b.MaxSize = n
		}
	}
	if f.MaxEntries != nil {
		if *f.MaxEntries < 1 || *f.MaxEntries > 20_000_000 {
			v.p.errf(path+".max_entries", "%d is outside 1-20000000", *f.MaxEntries)
		} else {
			b.MaxEntries = int(*f.MaxEntries)
		}
	}
	v.c.Blocklists = append(v.c.Blocklists, b)
}

// A list's defaults fit the image: its data partition (32 MiB) keeps the
// last good copy of every list, and a parsed list lives in memory.
const (
	DefaultListMaxSize    = 32 << 20
	DefaultListMaxEntries = 1_000_000
)

// loadCAs reads the list's ca_file (relative to dir) into a pool that also
// holds the system's roots.
func (b *Blocklist) loadCAs(path, dir string) []FieldError {
	pool, file, errs := loadCAFile(path+".ca_file", dir, b.CAFile, true)
	b.CAFile, b.RootCAs = file, pool
	return errs
}

// loadCAs reads dns.tls_ca_file: only its CAs are trusted for the
// upstreams (a private resolver does not want the whole web PKI).
func (d *DNS) loadCAs(dir string) []FieldError {
	pool, file, errs := loadCAFile("dns.tls_ca_file", dir, d.TLSCAFile, false)
	d.TLSCAFile, d.TLSRoots = file, pool
	return errs
}

// loadCAFile reads a PEM file of CAs (relative to dir), with the system's
// roots or alone.
func loadCAFile(key, dir, file string, withSystem bool) (*x509.CertPool, string, []FieldError) {
	if file == "" {
		return nil, "", nil
	}
	file = inDir(dir, file)
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, file, []FieldError{{Path: key, Msg: err.Error()}}
	}
	pool := x509.NewCertPool()
	if withSystem {
		if sys, err := x509.SystemCertPool(); err == nil {
			pool = sys
		}
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, file, []FieldError{{Path: key, Msg: fmt.Sprintf("%s holds no PEM certificate", file)}}
	}
	return pool, file, nil
}
