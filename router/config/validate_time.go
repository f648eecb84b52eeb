package config

import (
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// [time]: SNTP client and LAN NTP server.

func (v *validator) time(f *fileTime) {
	if f == nil {
		return
	}
	t := &Time{SetClock: true}
	if f.SetClock != nil {
		t.SetClock = *f.SetClock
	}
	if f.Serve != nil {
		t.Serve = *f.Serve
	}
	for i, s := range f.Servers {
		if !validTimeServer(s) {
			v.p.errf(idx("time.servers", i), "%q is not a host name or address, with an optional :port", s)
			continue
		}
		t.Servers = append(t.Servers, s)
	}
	if len(f.Servers) == 0 && t.Serve {
		v.p.errf("time.serve", "serving time needs time.servers to take it from")
	}
	v.c.Time = t
}

// validTimeServer accepts "name", "name:port", an address, "[v6]:port".
func validTimeServer(s string) bool {
	host := s
	if h, port, err := net.SplitHostPort(s); err == nil {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return false
		}
		host = h
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return true
	}
	labels := strings.Split(strings.TrimSuffix(host, "."), ".")
	for _, l := range labels {
		if !validLabel(l) {
			return false
		}
	}
	return len(labels) > 0
}
