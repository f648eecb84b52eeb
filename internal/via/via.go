// Package via names the two ways out of the router, the WAN and the VPN,
// and the packet mark that sends a connection down each. The config, the
// firewall, the routing rules, the resolver and the blocklists all speak
// of paths in this one type, so "vpn" is parsed once, at the config.
package via

import "fmt"

// Path is a way out of the router. The zero value is no path.
type Path uint8

const (
	WAN Path = iota + 1 // directly through the wan namespace
	VPN                 // through the tunnel in the vpn namespace
)

// Paths is every path, WAN first.
var Paths = []Path{WAN, VPN}

// Mask is routerd's part of the packet mark; other software may use the
// rest.
const Mask = 0xff

// Mark is the packet mark that routes a connection by p (the fwmark rules
// send it to p's table). The values are part of the ruleset contract.
func (p Path) Mark() uint32 {
	switch p {
	case WAN:
		return 0x1
	case VPN:
		return 0x2
	}
	return 0
}

// FromMark is the path a packet mark sends by, or 0 for none.
func FromMark(mark uint32) Path {
	for _, p := range Paths {
		if mark&Mask == p.Mark() {
			return p
		}
	}
	return 0
}

func (p Path) String() string {
	switch p {
	case WAN:
		return "wan"
	case VPN:
		return "vpn"
	}
	return ""
}

// Parse returns the path named s ("wan" or "vpn").
func Parse(s string) (Path, error) {
	for _, p := range Paths {
		if s == p.String() {
			return p, nil
		}
	}
	return 0, fmt.Errorf("%q is not a path: want %q or %q", s, WAN, VPN)
}

// MarshalText writes the path's name, for status JSON.
func (p Path) MarshalText() ([]byte, error) { return []byte(p.String()), nil }

// UnmarshalText reads a path's name.
func (p *Path) UnmarshalText(b []byte) error {
	v, err := Parse(string(b))
	if err != nil {
		return err
	}
	*p = v
	return nil
}
