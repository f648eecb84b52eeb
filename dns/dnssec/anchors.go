package dnssec

import (
	"fmt"
	"io"
	"regexp"
	"strings"

	"github.com/miekg/dns"
)

// rootAnchors are the root zone's key-signing keys as IANA publishes them
// (https://data.iana.org/root-anchors/root-anchors.xml): KSK-2017 and
// KSK-2024. A box that sits in a drawer through a rollover needs a new
// build, or dns.trust_anchors.
const rootAnchors = `
. IN DS 20326 8 2 E06D44B80B8F1D39A95C0B0D7C65D08458E880409BBC683457104237C7F8EC8D
. IN DS 38696 8 2 683D2D0ACB8C9B712A1948B27F741219298D0A450D612C483AF444A4C0FB2B16
`

// RootAnchors returns the built-in trust anchors of the root zone.
func RootAnchors() []dns.RR {
	rrs, err := ParseAnchors(strings.NewReader(rootAnchors), "built-in")
	if err != nil {
		panic(err)
	}
	return rrs
}

// parseLine finds the line number in a miekg/dns zone parser error.
var parseLine = regexp.MustCompile(`at line: (\d+):`)

// ParseAnchors reads trust anchors in zone-file form: DS or DNSKEY
// records (unbound's trust-anchor-file, BIND's and ldns's key files).
// Other records and comments are allowed and ignored; every record that
// does not parse is an error.
func ParseAnchors(r io.Reader, file string) ([]dns.RR, error) {
	zp := dns.NewZoneParser(r, ".", file)
	var out []dns.RR
	for rr, ok := zp.Next(); ok; rr, ok = zp.Next() {
		switch rr := rr.(type) {
		case *dns.DS, *dns.DNSKEY:
			out = append(out, rr)
		}
	}
	if err := zp.Err(); err != nil {
		// miekg/dns quotes the token it choked on: never repeat a file's
		// content (the file may not be trust anchors at all), only where.
		where := "a line"
		if m := parseLine.FindStringSubmatch(err.Error()); m != nil {
			where = "line " + m[1]
		}
		return nil, fmt.Errorf("trust anchors %s: %s is not a record in zone-file form", file, where)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("trust anchors %s: no DS or DNSKEY record", file)
	}
	return out, nil
}
