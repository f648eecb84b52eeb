package portmap

import (
	"encoding/binary"
	"net/netip"
	"testing"
	"time"
)

var (
	t0      = time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	wan     = netip.MustParseAddr("203.0.113.157")
	xbox    = netip.MustParseAddr("192.168.1.50")
	tunnel  = netip.MustParseAddr("192.168.1.60") // a VPN-path client
	tunnel2 = netip.MustParseAddr("192.168.1.51")
)

func newHandler() (*Handler, *[]string) {
	var log []string
	t := NewTable(Policy{From: 1024, To: 65535, MaxPerClient: 2, MaxLifetime: time.Hour,
		Allowed: func(a netip.Addr) bool { return a != tunnel }})
	t.OnChange = func(added, removed []Mapping) {
		for _, m := range added {
			log = append(log, "+"+m.Proto)
		}
		for _, m := range removed {
			log = append(log, "-"+m.Proto)
		}
	}
	return &Handler{Table: t, External: func() netip.Addr { return wan }, Start: t0.Add(-time.Minute)}, &log
}

func pmpMap(op byte, internal, external uint16, lifetime uint32) []byte {
	b := make([]byte, 12)
	b[1] = op
	binary.BigEndian.PutUint16(b[4:], internal)
	binary.BigEndian.PutUint16(b[6:], external)
	binary.BigEndian.PutUint32(b[8:], lifetime)
	return b
}

func TestNATPMP(t *testing.T) {
	h, log := newHandler()
	r := h.Handle([]byte{0, 0}, xbox, t0)
	if len(r) != 12 || r[1] != 128 || binary.BigEndian.Uint16(r[2:]) != 0 || netip.AddrFrom4([4]byte(r[8:12])) != wan ||
		binary.BigEndian.Uint32(r[4:]) != 60 {
		t.Fatalf("external address answer % x", r)
	}
	r = h.Handle(pmpMap(2, 3074, 3074, 7200), xbox, t0)
	if binary.BigEndian.Uint16(r[2:]) != 0 || binary.BigEndian.Uint16(r[10:]) != 3074 || binary.BigEndian.Uint32(r[12:]) != 3600 {
		t.Fatalf("map: % x (want port 3074, lifetime capped at 3600)", r)
	}
	// Another client wants the same port: the next one.
	other := netip.MustParseAddr("192.168.1.51")
	if r = h.Handle(pmpMap(2, 3074, 3074, 60), other, t0); binary.BigEndian.Uint16(r[10:]) != 3075 {
		t.Errorf("a taken port: got %d, want 3075", binary.BigEndian.Uint16(r[10:]))
	}
	// The per-client cap.
	h.Handle(pmpMap(1, 3074, 3074, 600), xbox, t0)
	if r = h.Handle(pmpMap(1, 9000, 9000, 60), xbox, t0); binary.BigEndian.Uint16(r[2:]) != pmpNoResources {
		t.Errorf("a third mapping: result %d, want %d", binary.BigEndian.Uint16(r[2:]), pmpNoResources)
	}
	if r = h.Handle(pmpMap(2, 80, 80, 60), tunnel, t0); binary.BigEndian.Uint16(r[2:]) != pmpRefused {
		t.Errorf("a VPN-path client: result %d, want refused", binary.BigEndian.Uint16(r[2:]))
	}
	// Below the allowed range: moved into it.
	if r = h.Handle(pmpMap(2, 80, 80, 60), other, t0); binary.BigEndian.Uint16(r[10:]) != 1024 {
		t.Errorf("port 80 asked: got %d, want 1024", binary.BigEndian.Uint16(r[10:]))
	}
	h.Handle(pmpMap(2, 0, 0, 0), xbox, t0) // delete all of xbox's TCP
	h.Table.Expire(t0.Add(61 * time.Second))
	if got := len(h.Table.List()); got != 1 {
		t.Errorf("%d mappings left, want xbox's UDP one", got)
	}
	// xbox TCP, other TCP, xbox UDP, other TCP (1024); xbox's TCP
	// deleted; other's two expired.
	if got := join(*log); got != "+tcp +tcp +udp +tcp -tcp -tcp -tcp" {
		t.Errorf("changes %s", got)
	}
}

func pcpMap(client netip.Addr, nonce byte, proto byte, internal, external uint16, lifetime uint32) []byte {
	b := make([]byte, 60)
	b[0], b[1] = 2, 1
	binary.BigEndian.PutUint32(b[4:], lifetime)
	a := client.As16()
	copy(b[8:], a[:])
	b[24] = nonce
	b[36] = proto
	binary.BigEndian.PutUint16(b[40:], internal)
	binary.BigEndian.PutUint16(b[42:], external)
	return b
}

func TestPCP(t *testing.T) {
	h, _ := newHandler()
	r := h.Handle(pcpMap(xbox, 7, 17, 3478, 3478, 600), xbox, t0)
	if len(r) != 60 || r[1] != 0x81 || r[3] != pcpSuccess || binary.BigEndian.Uint16(r[42:]) != 3478 ||
		binary.BigEndian.Uint32(r[4:]) != 600 || netip.AddrFrom16([16]byte(r[44:60])).Unmap() != wan || r[24] != 7 {
		t.Fatalf("map: % x", r)
	}
	if r = h.Handle(pcpMap(xbox, 8, 17, 3478, 3478, 600), xbox, t0); r[3] != pcpNotAuthorized {
		t.Errorf("renewal with another nonce: result %d", r[3])
	}
	if r = h.Handle(pcpMap(netip.MustParseAddr("192.168.1.99"), 7, 17, 80, 80, 600), xbox, t0); r[3] != pcpAddressMismatch {
		t.Errorf("for another address: result %d, want ADDRESS_MISMATCH", r[3])
	}
	if r = h.Handle(pcpMap(xbox, 7, 0, 0, 0, 600), xbox, t0); r[3] != pcpUnsuppProtocol {
		t.Errorf("all protocols: result %d", r[3])
	}
	bad := pcpMap(xbox, 7, 6, 80, 80, 600)
	bad = append(bad, 1, 0, 0, 0) // a mandatory option it does not know
	if r = h.Handle(bad, xbox, t0); r[3] != pcpUnsuppOption {
		t.Errorf("an unknown mandatory option: result %d", r[3])
	}
	if r = h.Handle([]byte{1, 1, 0, 0}, xbox, t0); len(r) != 24 || r[0] != 2 || r[3] != pcpUnsuppVersion {
		t.Errorf("version 1: % x", r)
	}
	if r = h.Handle(pcpMap(xbox, 7, 17, 3478, 0, 0), xbox, t0); r[3] != pcpSuccess || len(h.Table.List()) != 0 {
		t.Errorf("delete: result %d, %d left", r[3], len(h.Table.List()))
	}
}

func join(ss []string) string {
	out := ""
	for i, s := range ss {
		if i > 0 {
			out += " "
		}
		out += s
	}
	return out
}

func FuzzHandle(f *testing.F) {
	f.Add([]byte{0, 0})
	f.Add(pmpMap(2, 3074, 3074, 60))
	f.Add(pcpMap(xbox, 7, 17, 3478, 3478, 600))
	f.Fuzz(func(t *testing.T, pkt []byte) {
		h, _ := newHandler()
		r := h.Handle(pkt, xbox, t0)
		if r != nil && len(r) > 1100 {
			t.Fatalf("an answer of %d bytes", len(r))
		}
		for _, m := range h.Table.List() {
			if m.Client != xbox || m.External < 1024 {
				t.Fatalf("a mapping %+v", m)
			}
		}
	})
}
