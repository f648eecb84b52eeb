// Package domainset is a compact set of domain names, for lists of a
// million (ad blocking): 8 bytes a name, a sorted array of 64-bit hashes,
// looked up for a name and each of its parents without allocating. Two
// names sharing a hash (one in 2^64 per pair: a million-name list against
// all the names a household asks in a year stays far below one in a
// million) would be taken for each other.
package domainset

import (
	"encoding/binary"
	"errors"
	"slices"
)

// Set is an immutable set; the zero Set is empty.
type Set struct{ h []uint64 }

// Hash is a name's key: FNV-1a over its bytes in lower case, without a
// trailing dot.
func Hash[T string | []byte](name T) uint64 {
	n := len(name)
	if n > 0 && name[n-1] == '.' {
		n--
	}
	const offset, prime = 14695981039346656037, 1099511628211
	h := uint64(offset)
	for i := 0; i < n; i++ {
		c := name[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		h ^= uint64(c)
		h *= prime
	}
	return h
}

// Builder collects names.
type Builder struct{ h []uint64 }

// Add adds a name (any case, trailing dot or not).
func (b *Builder) Add(name string) { b.h = append(b.h, Hash(name)) }

// AddBytes is Add for a name in bytes.
func (b *Builder) AddBytes(name []byte) { b.h = append(b.h, Hash(name)) }

// Len is how many names were added, duplicates included.
func (b *Builder) Len() int { return len(b.h) }

// Set returns the set of what was added; the builder is empty after.
func (b *Builder) Set() Set {
	h := b.h
	b.h = nil
	slices.Sort(h)
	return Set{h: slices.Clip(slices.Compact(h))}
}

// Len is the number of names in the set.
func (s Set) Len() int { return len(s.h) }

// Has reports whether the name is in the set.
func (s Set) Has(name []byte) bool { return s.has(Hash(name)) }

func (s Set) has(h uint64) bool {
	_, ok := slices.BinarySearch(s.h, h)
	return ok
}

// Match reports whether the name or one of its parents is in the set (an
// entry covers its subdomains), and which: the matching suffix of name.
func (s Set) Match(name []byte) ([]byte, bool) {
	if len(s.h) == 0 {
		return nil, false
	}
	for i := 0; i < len(name); {
		if s.has(Hash(name[i:])) {
			return name[i:], true
		}
		j := i
		for j < len(name) && name[j] != '.' {
			j++
		}
		i = j + 1
	}
	return nil, false
}

// MarshalBinary is the set as stored: its hashes, little-endian.
func (s Set) MarshalBinary() ([]byte, error) {
	b := make([]byte, 0, 8*len(s.h))
	for _, h := range s.h {
		b = binary.LittleEndian.AppendUint64(b, h)
	}
	return b, nil
}

// UnmarshalBinary reads what MarshalBinary wrote.
func (s *Set) UnmarshalBinary(b []byte) error {
	if len(b)%8 != 0 {
		return errors.New("domain set: length not a multiple of 8")
	}
	h := make([]uint64, len(b)/8)
	for i := range h {
		h[i] = binary.LittleEndian.Uint64(b[8*i:])
	}
	if !slices.IsSorted(h) {
		return errors.New("domain set: not sorted")
	}
	s.h = h
	return nil
}
