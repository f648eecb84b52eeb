package iprange

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"slices"
)

// R4 and R6 are inclusive ranges in compact form: 8 and 32 bytes, against
// Range's 48. A half-million-entry blocklist is held in these.
type (
	R4 struct{ Lo, Hi uint32 }
	R6 struct{ Lo, Hi [16]byte }
)

// V4 converts an IPv4 address.
func V4(a netip.Addr) uint32 { b := a.As4(); return binary.BigEndian.Uint32(b[:]) }

// R4Of and R6Of convert a prefix.
func R4Of(p netip.Prefix) R4 { r := FromPrefix(p); return R4{V4(r.From), V4(r.To)} }
func R6Of(p netip.Prefix) R6 { r := FromPrefix(p); return R6{r.From.As16(), r.To.As16()} }

// Merge4 sorts and merges overlapping and adjacent ranges in place.
func Merge4(rs []R4) []R4 {
	if len(rs) < 2 {
		return rs
	}
	slices.SortFunc(rs, func(a, b R4) int {
		switch {
		case a.Lo < b.Lo:
			return -1
		case a.Lo > b.Lo:
			return 1
		}
		return 0
	})
	out := rs[:1]
	for _, r := range rs[1:] {
		last := &out[len(out)-1]
		if r.Lo <= last.Hi || (last.Hi != ^uint32(0) && r.Lo == last.Hi+1) {
			last.Hi = max(last.Hi, r.Hi)
			continue
		}
		out = append(out, r)
	}
	return out
}

// Merge6 is Merge4 for IPv6.
func Merge6(rs []R6) []R6 {
	if len(rs) < 2 {
		return rs
	}
	slices.SortFunc(rs, func(a, b R6) int { return bytes.Compare(a.Lo[:], b.Lo[:]) })
	out := rs[:1]
	for _, r := range rs[1:] {
		last := &out[len(out)-1]
		next, ok := inc16(last.Hi)
		if bytes.Compare(r.Lo[:], last.Hi[:]) <= 0 || (ok && r.Lo == next) {
			if bytes.Compare(r.Hi[:], last.Hi[:]) > 0 {
				last.Hi = r.Hi
			}
			continue
		}
		out = append(out, r)
	}
	return out
}

func inc16(a [16]byte) ([16]byte, bool) {
	for i := 15; i >= 0; i-- {
		a[i]++
		if a[i] != 0 {
			return a, true
		}
	}
	return a, false
}

// Diff4 returns the ranges of b not in a and of a not in b (both merged
// and sorted): what to add and what to delete to turn a into b.
func Diff4(a, b []R4) (add, del []R4) {
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		switch {
		case j == len(b) || (i < len(a) && lessR4(a[i], b[j])):
			del = append(del, a[i])
			i++
		case i == len(a) || lessR4(b[j], a[i]):
			add = append(add, b[j])
			j++
		default: // equal
			i++
			j++
		}
	}
	return add, del
}

func lessR4(x, y R4) bool { return x.Lo < y.Lo || (x.Lo == y.Lo && x.Hi < y.Hi) }

// Diff6 is Diff4 for IPv6.
func Diff6(a, b []R6) (add, del []R6) {
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		switch {
		case j == len(b) || (i < len(a) && lessR6(a[i], b[j])):
			del = append(del, a[i])
			i++
		case i == len(a) || lessR6(b[j], a[i]):
			add = append(add, b[j])
			j++
		default:
			i++
			j++
		}
	}
	return add, del
}

func lessR6(x, y R6) bool {
	if c := bytes.Compare(x.Lo[:], y.Lo[:]); c != 0 {
		return c < 0
	}
	return bytes.Compare(x.Hi[:], y.Hi[:]) < 0
}

// Overlaps4 reports whether r overlaps any of the merged, sorted ranges.
func Overlaps4(r R4, sorted []R4) bool {
	i, _ := slices.BinarySearchFunc(sorted, r.Lo, func(x R4, lo uint32) int {
		switch {
		case x.Hi < lo:
			return -1
		case x.Lo > lo:
			return 1
		}
		return 0
	})
	return i < len(sorted) && sorted[i].Lo <= r.Hi
}

// Overlaps6 is Overlaps4 for IPv6.
func Overlaps6(r R6, sorted []R6) bool {
	i, _ := slices.BinarySearchFunc(sorted, r.Lo, func(x R6, lo [16]byte) int {
		switch {
		case bytes.Compare(x.Hi[:], lo[:]) < 0:
			return -1
		case bytes.Compare(x.Lo[:], lo[:]) > 0:
			return 1
		}
		return 0
	})
	return i < len(sorted) && bytes.Compare(sorted[i].Lo[:], r.Hi[:]) <= 0
}

// Contains reports whether a is in one of the merged, sorted ranges of
// its family.
func Contains(a netip.Addr, v4 []R4, v6 []R6) bool {
	a = a.Unmap()
	if a.Is4() {
		v := V4(a)
		return Overlaps4(R4{Lo: v, Hi: v}, v4)
	}
	v := a.As16()
	return Overlaps6(R6{Lo: v, Hi: v}, v6)
}
