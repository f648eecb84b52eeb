package config

// Parsers of the config's value syntaxes, some shared with other packages.

import (
	"encoding/base64"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// ParsePortRange parses "tcp/25" or "udp/5000-5010".
func ParsePortRange(s string) (PortRange, error) {
	proto, ports, ok := strings.Cut(s, "/")
	if !ok || (proto != "tcp" && proto != "udp") {
		return PortRange{}, fmt.Errorf("want tcp/PORT or udp/PORT[-PORT]")
	}
	from, to, err := parsePorts(ports)
	if err != nil {
		return PortRange{}, err
	}
	return PortRange{Proto: proto, From: from, To: to}, nil
}

// parsePorts parses "443" or "60000-60100".
func parsePorts(s string) (from, to uint16, err error) {
	lo, hi, isRange := strings.Cut(s, "-")
	if from, err = parsePort(lo); err != nil {
		return 0, 0, err
	}
	to = from
	if isRange {
		if to, err = parsePort(hi); err != nil {
			return 0, 0, err
		}
		if to < from {
			return 0, 0, fmt.Errorf("port range %d-%d is reversed", from, to)
		}
	}
	return from, to, nil
}

func (r PortRange) String() string {
	if r.From == r.To {
		return fmt.Sprintf("%s/%d", r.Proto, r.From)
	}
	return fmt.Sprintf("%s/%d-%d", r.Proto, r.From, r.To)
}

func parsePort(s string) (uint16, error) {
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil || n < 1 || n > 65535 {
		return 0, fmt.Errorf("port %q is outside 1-65535", s)
	}
	return uint16(n), nil
}

func parseAddrOrPrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		return p.Masked(), err
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("bad address %q", s)
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// parseUpstream reads a DNS upstream: "9.9.9.9", "[2620:fe::fe]:53", or
// DNS over TLS: "tls://9.9.9.9#dns.quad9.net" (port 853 by default; the
// name after # is what the server's certificate must be valid for).
func parseUpstream(s string) (Upstream, error) {
	rest, isTLS := strings.CutPrefix(s, "tls://")
	if !isTLS {
		ap, err := parseUpstreamAddr(s, 53)
		return Upstream{Addr: ap}, err
	}
	addr, name, _ := strings.Cut(rest, "#")
	ap, err := parseUpstreamAddr(addr, 853)
	if err != nil {
		return Upstream{}, err
	}
	if name == "" {
		return Upstream{}, fmt.Errorf("a DNS-over-TLS upstream needs the name its certificate is for: tls://%s#dns.example.net", addr)
	}
	if !validDomain(strings.TrimSuffix(name, ".")) {
		return Upstream{}, fmt.Errorf("%q is not a host name", name)
	}
	return Upstream{Addr: ap, TLS: true, ServerName: name}, nil
}

func parseUpstreamAddr(s string, defPort uint16) (netip.AddrPort, error) {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		if ap.Port() == 0 {
			return ap, fmt.Errorf("port 0")
		}
		return ap, nil
	}
	if a, err := netip.ParseAddr(s); err == nil && a.Zone() == "" {
		return netip.AddrPortFrom(a, defPort), nil
	}
	return netip.AddrPort{}, fmt.Errorf("want an IP address with optional port (9.9.9.9:53, [2620:fe::fe]:53, tls://9.9.9.9#dns.quad9.net)")
}

func parseToAddrPort(s string, defPort uint16) (netip.AddrPort, error) {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		if ap.Port() == 0 {
			return ap, fmt.Errorf("port 0")
		}
		return ap, nil
	}
	if a, err := netip.ParseAddr(s); err == nil {
		return netip.AddrPortFrom(a, defPort), nil
	}
	return netip.AddrPort{}, fmt.Errorf("want ip:port")
}

// parseEndpoint accepts host:port and [v6]:port with a port in 1-65535.
func parseEndpoint(s string) (Endpoint, error) {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return Endpoint{}, fmt.Errorf("want host:port or [v6]:port")
	}
	p, err := parsePort(port)
	if err != nil {
		return Endpoint{}, err
	}
	if a, err := netip.ParseAddr(host); err == nil {
		if a.Is6() && !strings.HasPrefix(s, "[") {
			return Endpoint{}, fmt.Errorf("IPv6 endpoints need brackets: [%s]:%s", host, port)
		}
		return Endpoint{Addr: a.Unmap(), Port: p}, nil
	}
	if !validDomain(strings.TrimSuffix(host, ".")) {
		return Endpoint{}, fmt.Errorf("%q is neither an IP address nor a host name", host)
	}
	return Endpoint{Host: host, Port: p}, nil
}

func parseRate(s string) (Rate, error) {
	n, unit, ok := strings.Cut(s, "/")
	c, err := strconv.ParseUint(n, 10, 32)
	if !ok || err != nil || c == 0 {
		return Rate{}, fmt.Errorf("want N/second, N/minute or N/hour with N > 0")
	}
	switch unit {
	case "second", "minute", "hour":
	default:
		return Rate{}, fmt.Errorf("unit %q is not second, minute or hour", unit)
	}
	return Rate{N: c, Unit: unit}, nil
}

func wgKey(s string) ([32]byte, bool) {
	var k [32]byte
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(b) != 32 {
		return k, false
	}
	copy(k[:], b)
	return k, true
}

func validLabel(s string) bool {
	if len(s) == 0 || len(s) > 63 || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
			return false
		}
	}
	return true
}

func validDomain(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for _, l := range strings.Split(s, ".") {
		if !validLabel(l) && !(l != "" && strings.Trim(l, "_abcdefghijklmnopqrstuvwxyz0123456789-") == "") {
			return false
		}
	}
	return true
}

func validNetnsName(s string) bool {
	return s != "" && len(s) <= 64 && s != "." && s != ".." && !strings.ContainsAny(s, "/ \t\n\x00")
}

func validSetName(s string) bool {
	if s == "" || len(s) > 32 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}

func isZero(m net.HardwareAddr) bool {
	for _, b := range m {
		if b != 0 {
			return false
		}
	}
	return true
}

func quoteList(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = strconv.Quote(s)
	}
	return strings.Join(q, ", ")
}

// parseSize reads "512KiB", "64MiB", "1GiB" or a plain number of bytes.
func parseSize(s string) (int64, error) {
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		m      int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}} {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSuffix(s, u.suffix), u.m
			break
		}
	}
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil || n <= 0 || n > (1<<40)/mult {
		return 0, fmt.Errorf("bad size %q", s)
	}
	return n * mult, nil
}
