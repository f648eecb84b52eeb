// Package blocklist keeps lists of destinations forced onto one path (the
// RKN registry through the VPN, a bank directly): it fetches them on a
// schedule, parses and validates every line, refuses entries that would
// capture the router's own networks or the tunnel's endpoint, aggregates,
// and swaps them into nftables sets in one transaction. The last good copy
// of every list is kept in state_dir and applied at start, before any
// download. Domain lists are matched by the resolver, which puts the
// answers' addresses into the sets before the client sees them.
package blocklist

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/netip"
	"strings"

	"github.com/routerd/routerd/internal/iprange"
)

// Parsed is one list after parsing: merged ranges, domains and counts.
type Parsed struct {
	Format         string // as detected for "auto"
	V4             []iprange.R4
	V6             []iprange.R6
	Domains        []string
	Lines          int // non-empty, non-comment lines
	Entries        int // accepted entries (before merging)
	Rejected       int // unparsable
	Samples        []string
	Refused        int // would capture a protected network
	RefusedSamples []string
}

// Protected is what no list may capture: merged, sorted ranges.
type Protected struct {
	V4 []iprange.R4
	V6 []iprange.R6
}

// Bogons are address space no list may route: unspecified, private, CGNAT,
// loopback, link-local, multicast and reserved. Documentation and
// benchmarking ranges are not among them: they are harmless to route.
var Bogons = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"), netip.MustParsePrefix("10.0.0.0/8"),
	netip.MustParsePrefix("100.64.0.0/10"), netip.MustParsePrefix("127.0.0.0/8"),
	netip.MustParsePrefix("169.254.0.0/16"), netip.MustParsePrefix("172.16.0.0/12"),
	netip.MustParsePrefix("192.168.0.0/16"), netip.MustParsePrefix("224.0.0.0/3"),
	netip.MustParsePrefix("::/8"), netip.MustParsePrefix("fc00::/7"),
	netip.MustParsePrefix("fe80::/10"), netip.MustParsePrefix("ff00::/8"),
}

// NewProtected builds the protected set from prefixes.
func NewProtected(ps ...netip.Prefix) *Protected {
	p := &Protected{}
	for _, x := range ps {
		if x.Addr().Is4() {
			p.V4 = append(p.V4, iprange.R4Of(x))
		} else {
			p.V6 = append(p.V6, iprange.R6Of(x))
		}
	}
	p.V4, p.V6 = iprange.Merge4(p.V4), iprange.Merge6(p.V6)
	return p
}

const maxSamples = 5

// Parse reads a list in format ("auto", "lines", "rkn-csv" or "domains"),
// line by line, never holding more than one line and the compact result.
func Parse(r io.Reader, format string, protect *Protected) (*Parsed, error) {
	return ParseMax(r, format, protect, 0)
}

// ParseMax is Parse that refuses a list of more than max entries (0: no
// limit): a list that grew a thousandfold is an error upstream or an
// attack, and would hold the router's memory.
func ParseMax(r io.Reader, format string, protect *Protected, max int) (*Parsed, error) {
	br := bufio.NewReaderSize(r, 1<<16)
	p := &Parsed{Format: format}
	if format == "auto" || format == "" {
		head, _ := br.Peek(1 << 16)
		p.Format = detect(head)
	}
	domains := map[string]struct{}{}
	for {
		line, err := readLine(br)
		if len(line) > 0 {
			p.line(line, protect, domains)
			if max > 0 && p.Entries > max {
				return nil, fmt.Errorf("more than %d entries (max_entries)", max)
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return p, fmt.Errorf("read list: %w", err)
		}
	}
	p.V4, p.V6 = iprange.Merge4(p.V4), iprange.Merge6(p.V6)
	for d := range domains {
		p.Domains = append(p.Domains, d)
	}
	return p, nil
}

// readLine returns the next line (without the newline), however long.
func readLine(br *bufio.Reader) ([]byte, error) {
	line, err := br.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		buf := append([]byte(nil), line...)
		for err == bufio.ErrBufferFull {
			line, err = br.ReadSlice('\n')
			buf = append(buf, line...)
		}
		line = buf
	}
	return bytes.TrimRight(line, "\r\n"), err
}

// detect guesses the format from the first lines: ';'-separated fields are
// the registry's CSV; addresses are lines; anything else names domains.
func detect(head []byte) string {
	addrs, names := 0, 0
	for _, line := range bytes.Split(head, []byte("\n")) {
		s := strings.TrimSpace(string(line))
		if s == "" || s[0] == '#' || strings.HasPrefix(s, "Updated:") {
			continue
		}
		if strings.Contains(s, ";") {
			return "rkn-csv"
		}
		tok := strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' })
		if len(tok) == 0 {
			continue
		}
		if _, _, ok := parseTarget(tok[0]); ok {
			addrs++
		} else {
			names++
		}
	}
	if names > addrs {
		return "domains"
	}
	return "lines"
}

func (p *Parsed) line(line []byte, protect *Protected, domains map[string]struct{}) {
	s := string(line)
	switch p.Format {
	case "rkn-csv":
		if strings.HasPrefix(s, "Updated:") {
			return
		}
		p.Lines++
		// ip;domain;url;org;number;date: addresses in field 1 separated
		// by '|', a domain in field 2.
		fields := strings.SplitN(s, ";", 3)
		ok := false
		for _, t := range strings.Split(fields[0], "|") {
			if t = strings.TrimSpace(t); t != "" {
				ok = p.target(t, protect) || ok
			}
		}
		if len(fields) > 1 {
			if d, valid := normDomain(fields[1]); valid {
				domains[d] = struct{}{}
				p.Entries++
				ok = true
			}
		}
		if !ok {
			p.reject(s)
		}
	case "domains":
		s = strings.TrimSpace(stripComment(s))
		if s == "" {
			return
		}
		p.Lines++
		d, valid := normDomain(s)
		if !valid {
			p.reject(s)
			return
		}
		domains[d] = struct{}{}
		p.Entries++
	default: // lines
		s = strings.TrimSpace(stripComment(s))
		if s == "" {
			return
		}
		p.Lines++
		s = strings.ReplaceAll(s, " - ", "-")
		for _, t := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' }) {
			if !p.target(t, protect) {
				p.reject(t)
			}
		}
	}
}

// target adds one address, CIDR or range; false if it does not parse.
// An entry overlapping a protected network is refused (and counted), but
// is not a parse error.
func (p *Parsed) target(t string, protect *Protected) bool {
	r4, r6, ok := parseTarget(t)
	if !ok {
		return false
	}
	if r4 != nil {
		if protect != nil && iprange.Overlaps4(*r4, protect.V4) {
			p.refuse(t)
			return true
		}
		p.V4 = append(p.V4, *r4)
	} else {
		if protect != nil && iprange.Overlaps6(*r6, protect.V6) {
			p.refuse(t)
			return true
		}
		p.V6 = append(p.V6, *r6)
	}
	p.Entries++
	return true
}

// parseTarget parses "1.2.3.4", "1.2.3.0/24", "1.2.3.4-1.2.3.9" and the
// IPv6 forms.
func parseTarget(t string) (*iprange.R4, *iprange.R6, bool) {
	if lo, hi, isRange := strings.Cut(t, "-"); isRange {
		a, err1 := netip.ParseAddr(lo)
		b, err2 := netip.ParseAddr(hi)
		if err1 != nil || err2 != nil || a.Is4() != b.Is4() || b.Less(a) || a.Zone() != "" || b.Zone() != "" {
			return nil, nil, false
		}
		if a.Is4() {
			return &iprange.R4{Lo: iprange.V4(a), Hi: iprange.V4(b)}, nil, true
		}
		return nil, &iprange.R6{Lo: a.As16(), Hi: b.As16()}, true
	}
	var pf netip.Prefix
	if strings.Contains(t, "/") {
		x, err := netip.ParsePrefix(t)
		if err != nil {
			return nil, nil, false
		}
		pf = x.Masked()
	} else {
		a, err := netip.ParseAddr(t)
		if err != nil || a.Zone() != "" {
			return nil, nil, false
		}
		pf = netip.PrefixFrom(a, a.BitLen())
	}
	if pf.Addr().Is4In6() {
		pf = netip.PrefixFrom(pf.Addr().Unmap(), max(pf.Bits()-96, 0))
	}
	if pf.Addr().Is4() {
		r := iprange.R4Of(pf)
		return &r, nil, true
	}
	r := iprange.R6Of(pf)
	return nil, &r, true
}

func stripComment(s string) string {
	if i := strings.IndexAny(s, "#;"); i >= 0 {
		return s[:i]
	}
	return s
}

// normDomain validates and normalises a domain entry: lower case, no
// trailing dot, a leading "*." dropped (an entry covers its subdomains).
func normDomain(s string) (string, bool) {
	s = strings.ToLower(strings.TrimSuffix(strings.TrimSpace(s), "."))
	s = strings.TrimPrefix(s, "*.")
	if s == "" || len(s) > 253 || !strings.Contains(s, ".") {
		return "", false
	}
	if _, err := netip.ParseAddr(s); err == nil {
		return "", false
	}
	for _, l := range strings.Split(s, ".") {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return "", false
		}
		for _, r := range l {
			if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
				return "", false
			}
		}
	}
	return s, true
}

func (p *Parsed) reject(s string) {
	p.Rejected++
	if len(p.Samples) < maxSamples {
		p.Samples = append(p.Samples, clip(s))
	}
}

func (p *Parsed) refuse(s string) {
	p.Refused++
	if len(p.RefusedSamples) < maxSamples {
		p.RefusedSamples = append(p.RefusedSamples, clip(s))
	}
}

func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}
