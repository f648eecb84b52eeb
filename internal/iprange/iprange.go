// Package iprange merges IP prefixes and ranges: overlapping and adjacent
// ones become one, IPv4 and IPv6 apart. nftables interval sets reject
// overlapping elements, and a blocklist is far smaller merged.
package iprange

import (
	"net/netip"
	"slices"
)

// Range is an inclusive address range of one family.
type Range struct {
	From, To netip.Addr
}

// FromPrefix returns the range a prefix covers.
func FromPrefix(p netip.Prefix) Range {
	p = p.Masked()
	return Range{From: p.Addr(), To: Last(p)}
}

// Last returns the last address of p.
func Last(p netip.Prefix) netip.Addr {
	a := p.Masked().Addr().As16()
	bits := p.Bits()
	if p.Addr().Is4() {
		bits += 96
	}
	for i := bits; i < 128; i++ {
		a[i/8] |= 1 << (7 - i%8)
	}
	out := netip.AddrFrom16(a)
	if p.Addr().Is4() {
		return out.Unmap()
	}
	return out
}

// Merge sorts rs and merges overlapping and adjacent ranges in place,
// returning the shortened slice. IPv4 ranges sort before IPv6 ones and the
// families never merge.
func Merge(rs []Range) []Range {
	if len(rs) < 2 {
		return rs
	}
	slices.SortFunc(rs, func(a, b Range) int { return a.From.Compare(b.From) })
	out := rs[:1]
	for _, r := range rs[1:] {
		last := &out[len(out)-1]
		next := last.To.Next()
		if r.From.Is4() == last.To.Is4() && (r.From.Compare(last.To) <= 0 || (next.IsValid() && r.From == next)) {
			if r.To.Compare(last.To) > 0 {
				last.To = r.To
			}
			continue
		}
		out = append(out, r)
	}
	return out
}

// MergePrefixes merges prefixes into ranges.
func MergePrefixes(ps []netip.Prefix) []Range {
	rs := make([]Range, len(ps))
	for i, p := range ps {
		rs[i] = FromPrefix(p)
	}
	return Merge(rs)
}

// Prefixes returns the fewest prefixes that cover r exactly.
func (r Range) Prefixes() []netip.Prefix {
	var out []netip.Prefix
	from := r.From
	bitLen := from.BitLen()
	for {
		// the largest aligned block starting at from that ends within r
		bits := bitLen
		for bits > 0 {
			p := netip.PrefixFrom(from, bits-1)
			if p.Masked().Addr() != from || Last(p).Compare(r.To) > 0 {
				break
			}
			bits--
		}
		p := netip.PrefixFrom(from, bits)
		out = append(out, p)
		last := Last(p)
		if last.Compare(r.To) >= 0 {
			return out
		}
		from = last.Next()
	}
}
