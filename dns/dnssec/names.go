package dnssec

import (
	"strings"

	"github.com/miekg/dns"
)

// canonical is name as this package keys and compares it: fully
// qualified, lower case.
func canonical(name string) string { return dns.CanonicalName(name) }

// labels returns name's labels in wire form (escapes undone, ASCII lower
// case), the leftmost first. The root has none.
func labels(name string) [][]byte {
	var buf [256]byte
	n, err := dns.PackDomainName(dns.Fqdn(name), buf[:], 0, nil, false)
	if err != nil {
		return nil
	}
	var out [][]byte
	for off := 0; off < n && buf[off] != 0; {
		l := int(buf[off])
		lab := make([]byte, l)
		for i, c := range buf[off+1 : off+1+l] {
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			lab[i] = c
		}
		out = append(out, lab)
		off += 1 + l
	}
	return out
}

// compareNames orders names canonically (RFC 4034 §6.1): label by label
// from the right, each compared as lower-case octets, a name before its
// subdomains.
func compareNames(a, b string) int {
	la, lb := labels(a), labels(b)
	for i := 1; i <= len(la) && i <= len(lb); i++ {
		if c := strings.Compare(string(la[len(la)-i]), string(lb[len(lb)-i])); c != 0 {
			return c
		}
	}
	return len(la) - len(lb)
}

// isSubdomain reports whether child is parent or below it.
func isSubdomain(parent, child string) bool { return dns.IsSubDomain(parent, child) }

// ancestors returns the names from just below top down to name, each one
// label longer than the last: ancestors("a.b.c.", "c.") = [b.c. a.b.c.].
// Nil when name is not below top.
func ancestors(name, top string) []string {
	name, top = canonical(name), canonical(top)
	if !isSubdomain(top, name) || name == top {
		return nil
	}
	idx := dns.Split(name)
	skip := dns.CountLabel(top)
	var out []string
	for i := len(idx) - skip - 1; i >= 0; i-- {
		out = append(out, name[idx[i]:])
	}
	return out
}

// closestEncloser is the longest name that is an ancestor of (or equal to)
// both a and b.
func closestEncloser(a, b string) string {
	la, lb := dns.Split(canonical(a)), dns.Split(canonical(b))
	a, b = canonical(a), canonical(b)
	best := "."
	for i, j := len(la)-1, len(lb)-1; i >= 0 && j >= 0; i, j = i-1, j-1 {
		if a[la[i]:] != b[lb[j]:] {
			break
		}
		best = a[la[i]:]
	}
	return best
}

// parentOf is name with its first label removed ("." for a TLD).
func parentOf(name string) string {
	i, end := dns.NextLabel(name, 0)
	if end {
		return "."
	}
	return name[i:]
}
