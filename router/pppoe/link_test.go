package pppoe

import (
	"bytes"
	"crypto/md5"
	"encoding/binary"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)

// isp plays the access concentrator's PPP side, as pppd on the ISP's
// side does: it asks for auth, assigns 198.51.100.7 and two DNS servers.
type isp struct {
	t        *testing.T
	auth     uint16
	password string
	id       byte
	ackedOur bool
}

func (s *isp) req(proto uint16, opts []option) []byte {
	s.id++
	return ctlPacket{Code: codeConfReq, ID: s.id, Data: marshalOptions(opts)}.frame(proto)
}

// answer is what the ISP sends back for one client frame.
func (s *isp) answer(f []byte) [][]byte {
	proto, info, err := parseFrame(f)
	if err != nil {
		s.t.Fatalf("client sent %x: %v", f, err)
	}
	p, err := parsePacket(info)
	if err != nil {
		s.t.Fatalf("client sent %x: %v", f, err)
	}
	switch {
	case proto == ProtoLCP && p.Code == codeConfReq:
		return [][]byte{ctlPacket{Code: codeConfAck, ID: p.ID, Data: p.Data}.frame(proto)}
	case proto == ProtoLCP && p.Code == codeConfAck:
		if s.auth == ProtoCHAP {
			ch := append([]byte{4}, "abcd"...)
			return [][]byte{ctlPacket{Code: 1, ID: 42, Data: append(ch, "isp"...)}.frame(ProtoCHAP)}
		}
	case proto == ProtoLCP && p.Code == codeEchoReq:
		return [][]byte{ctlPacket{Code: codeEchoReply, ID: p.ID, Data: []byte{0, 0, 0, 9}}.frame(proto)}
	case proto == ProtoCHAP && p.Code == 2:
		h := md5.Sum(append(append([]byte{p.ID}, s.password...), "abcd"...))
		if !bytes.Equal(p.Data[1:17], h[:]) || string(p.Data[17:]) != "user" {
			return [][]byte{ctlPacket{Code: 4, ID: p.ID, Data: []byte("bad password")}.frame(ProtoCHAP)}
		}
		return [][]byte{ctlPacket{Code: 3, ID: p.ID}.frame(ProtoCHAP), s.req(ProtoIPCP, []option{{ipcpAddress, []byte{198, 51, 100, 1}}})}
	case proto == ProtoPAP && p.Code == 1:
		n := int(p.Data[0])
		if string(p.Data[1:1+n]) != "user" || string(p.Data[2+n:]) != s.password {
			return [][]byte{ctlPacket{Code: 3, ID: p.ID, Data: append([]byte{5}, "wrong"...)}.frame(ProtoPAP)}
		}
		return [][]byte{ctlPacket{Code: 2, ID: p.ID, Data: []byte{0}}.frame(ProtoPAP), s.req(ProtoIPCP, []option{{ipcpAddress, []byte{198, 51, 100, 1}}})}
	case proto == ProtoIPCP && p.Code == codeConfReq:
		opts, _ := parseOptions(p.Data)
		want := []option{{ipcpAddress, []byte{198, 51, 100, 7}}, {ipcpDNS1, []byte{192, 0, 2, 53}}, {ipcpDNS2, []byte{192, 0, 2, 54}}}
		if bytes.Equal(marshalOptions(opts), marshalOptions(want)) {
			return [][]byte{ctlPacket{Code: codeConfAck, ID: p.ID, Data: p.Data}.frame(proto)}
		}
		return [][]byte{ctlPacket{Code: codeConfNak, ID: p.ID, Data: marshalOptions(want)}.frame(proto)}
	case proto == ProtoIPv6CP && p.Code == codeConfReq:
		return [][]byte{ctlPacket{Code: codeConfAck, ID: p.ID, Data: p.Data}.frame(proto)}
	}
	return nil
}

// converse runs the exchange until neither side has more to say.
func converse(t *testing.T, l *Link, s *isp, first [][]byte, lcpReq bool) {
	queue := first
	if lcpReq {
		queue = append(queue, nil)
		toClient := [][]byte{s.req(ProtoLCP, []option{{1, []byte{0x05, 0xd4}}, {3, authData(s.auth)}, {5, []byte{1, 2, 3, 4}}})}
		for _, f := range toClient {
			queue = append(queue, l.Handle(f, t0)...)
		}
	}
	for i := 0; len(queue) > 0 && i < 100; i++ {
		f := queue[0]
		queue = queue[1:]
		if f == nil {
			continue
		}
		for _, a := range s.answer(f) {
			queue = append(queue, l.Handle(a, t0)...)
		}
	}
}

func authData(p uint16) []byte {
	if p == ProtoCHAP {
		return []byte{0xc2, 0x23, 5}
	}
	return []byte{0xc0, 0x23}
}

func TestLinkUp(t *testing.T) {
	for _, auth := range []uint16{ProtoCHAP, ProtoPAP} {
		l := NewLink(LinkConfig{Username: "user", Password: []byte("secret"), Magic: 0x11223344, IPv6: true, IfaceID: [8]byte{2, 0, 0, 0, 0, 0, 0, 1}})
		s := &isp{t: t, auth: auth, password: "secret"}
		converse(t, l, s, l.Open(t0), true)
		if !l.Up4() {
			t.Fatalf("auth %#x: link not up: phase %d, reason %q", auth, l.Phase, l.Reason)
		}
		if l.Local != netip.MustParseAddr("198.51.100.7") || l.Peer != netip.MustParseAddr("198.51.100.1") || l.DNS[0] != netip.MustParseAddr("192.0.2.53") {
			t.Errorf("auth %#x: local %s peer %s dns %v", auth, l.Local, l.Peer, l.DNS)
		}
		if l.MTU() != 1492 {
			t.Errorf("MTU %d, want 1492", l.MTU())
		}
	}
}

func TestLinkWrongPassword(t *testing.T) {
	for _, auth := range []uint16{ProtoCHAP, ProtoPAP} {
		l := NewLink(LinkConfig{Username: "user", Password: []byte("nope"), Magic: 1})
		converse(t, l, &isp{t: t, auth: auth, password: "secret"}, l.Open(t0), true)
		if l.Phase != PhaseDead || !strings.Contains(l.AuthFailure, "refused") {
			t.Errorf("auth %#x: phase %d, failure %q", auth, l.Phase, l.AuthFailure)
		}
	}
}

func TestLinkEcho(t *testing.T) {
	l := NewLink(LinkConfig{Username: "user", Password: []byte("secret"), Magic: 7, EchoInterval: time.Second, EchoFailures: 3})
	converse(t, l, &isp{t: t, auth: ProtoPAP, password: "secret"}, l.Open(t0), true)
	now := t0
	for i := 0; i < 10 && l.Phase != PhaseDead; i++ {
		now = now.Add(time.Second)
		l.Tick(now)
	}
	if l.Phase != PhaseDead || !strings.Contains(l.Reason, "echo") {
		t.Fatalf("unanswered echoes: phase %d reason %q", l.Phase, l.Reason)
	}
	// Answered ones keep it up and measure the round trip.
	l = NewLink(LinkConfig{Username: "user", Password: []byte("secret"), Magic: 7, EchoInterval: time.Second})
	s := &isp{t: t, auth: ProtoPAP, password: "secret"}
	converse(t, l, s, l.Open(t0), true)
	now = t0
	for i := 0; i < 10; i++ {
		now = now.Add(time.Second)
		for _, f := range l.Tick(now) {
			for _, a := range s.answer(f) {
				l.Handle(a, now.Add(20*time.Millisecond))
			}
		}
	}
	if !l.Up4() || l.EchoRTT != 20*time.Millisecond {
		t.Fatalf("answered echoes: up %v, rtt %v, reason %q", l.Up4(), l.EchoRTT, l.Reason)
	}
}

func TestDiscovery(t *testing.T) {
	ac := net.HardwareAddr{2, 0, 0, 0, 0, 0xac}
	d := NewDiscovery(DiscoveryConfig{HostUniq: []byte{1, 2}, MaxPayload: 1500})
	o := d.Start(t0)
	p, err := ParsePacket(o.Payload)
	if err != nil || p.Code != CodePADI {
		t.Fatalf("PADI: %v %+v", err, p)
	}
	// An offer for another client (another Host-Uniq) is not ours.
	other := (&Packet{Code: CodePADO, Tags: []Tag{{TagACName, []byte("x")}, {TagHostUniq, []byte{9}}}}).Marshal()
	if out, _, _ := d.Handle(ac, other, t0); out != nil {
		t.Fatal("answered another client's PADO")
	}
	pado := (&Packet{Code: CodePADO, Tags: []Tag{{TagACName, []byte("bras1")}, {TagHostUniq, []byte{1, 2}}, {TagACCookie, []byte("c")}}}).Marshal()
	out, _, _ := d.Handle(ac, pado, t0)
	if out == nil || !bytes.Equal(out.Dst, ac) {
		t.Fatalf("no PADR to the AC: %+v", out)
	}
	padr, _ := ParsePacket(out.Payload)
	if c, ok := padr.Tag(TagACCookie); padr.Code != CodePADR || !ok || string(c) != "c" {
		t.Fatalf("PADR %+v lacks the cookie", padr)
	}
	mp := binary.BigEndian.AppendUint16(nil, 1500)
	pads := (&Packet{Code: CodePADS, SessionID: 0x1234, Tags: []Tag{{TagHostUniq, []byte{1, 2}}, {TagPPPMaxPayload, mp}}}).Marshal()
	if _, began, _ := d.Handle(ac, pads, t0); !began || d.Session != 0x1234 || d.MaxPayload != 1500 || d.ACName != "bras1" {
		t.Fatalf("PADS: began %v, %+v", began, d)
	}
	padt := (&Packet{Code: CodePADT, SessionID: 0x1234}).Marshal()
	if _, _, ended := d.Handle(ac, padt, t0); !ended {
		t.Fatal("PADT did not end the session")
	}
}

func TestDiscoveryRetries(t *testing.T) {
	d := NewDiscovery(DiscoveryConfig{})
	d.Start(t0)
	now, sent := t0, 0
	for i := 0; i < 100 && d.LastError == ""; i++ {
		now = d.Deadline()
		if d.Tick(now) != nil {
			sent++
		}
	}
	if d.LastError == "" || sent != discoveryAttempts {
		t.Fatalf("after %d PADIs: %q", sent, d.LastError)
	}
}

// FuzzDiscovery feeds a discovery in each state whatever the WAN sends.
func FuzzDiscovery(f *testing.F) {
	f.Add((&Packet{Code: CodePADO, Tags: []Tag{{TagACName, []byte("a")}}}).Marshal(), byte(0))
	f.Add((&Packet{Code: CodePADS, SessionID: 1}).Marshal(), byte(1))
	f.Add((&Packet{Code: CodePADT, SessionID: 1, Tags: []Tag{{TagGenericError, []byte("bye")}}}).Marshal(), byte(2))
	ac := net.HardwareAddr{2, 0, 0, 0, 0, 1}
	f.Fuzz(func(t *testing.T, b []byte, state byte) {
		if p, err := ParsePacket(b); err == nil {
			if q, err := ParsePacket(p.Marshal()); err != nil || len(q.Tags) != len(p.Tags) {
				t.Fatalf("round trip: %v", err)
			}
		}
		d := NewDiscovery(DiscoveryConfig{Service: "s"})
		d.Start(t0)
		pado := (&Packet{Code: CodePADO, Tags: []Tag{{TagServiceName, []byte("s")}}}).Marshal()
		if state%3 >= 1 {
			d.Handle(ac, pado, t0)
		}
		if state%3 == 2 {
			d.Handle(ac, (&Packet{Code: CodePADS, SessionID: 1}).Marshal(), t0)
		}
		d.Handle(ac, b, t0)
		d.Tick(t0.Add(time.Hour))
		d.PADT("x")
	})
}

// FuzzLink feeds a link in each phase whatever the ISP's PPP side sends.
func FuzzLink(f *testing.F) {
	f.Add(ctlPacket{Code: codeConfReq, ID: 1, Data: marshalOptions([]option{{1, []byte{5, 0xd4}}, {3, []byte{0xc2, 0x23, 5}}})}.frame(ProtoLCP), byte(0))
	f.Add(ctlPacket{Code: 1, ID: 1, Data: []byte{4, 1, 2, 3, 4, 'x'}}.frame(ProtoCHAP), byte(1))
	f.Add(ctlPacket{Code: codeConfNak, ID: 1, Data: marshalOptions([]option{{3, []byte{1, 2, 3, 4}}})}.frame(ProtoIPCP), byte(2))
	f.Add(ctlPacket{Code: codeConfReq, ID: 1, Data: marshalOptions([]option{{1, make([]byte, 8)}})}.frame(ProtoIPv6CP), byte(2))
	f.Add(ctlPacket{Code: codeEchoReq, ID: 3, Data: []byte{0, 0, 0, 1}}.frame(ProtoLCP), byte(2))
	f.Fuzz(func(t *testing.T, b []byte, phase byte) {
		for _, auth := range []uint16{ProtoPAP, ProtoCHAP} {
			l := NewLink(LinkConfig{Username: "u", Password: []byte("p"), Magic: 5, IPv6: true, IfaceID: [8]byte{1}})
			s := &isp{t: t, auth: auth, password: "p"}
			if phase%3 == 0 {
				l.Open(t0)
			} else {
				converse(t, l, s, l.Open(t0), phase%3 == 2)
			}
			for _, out := range l.Handle(b, t0) {
				if _, _, err := parseFrame(out); err != nil {
					t.Fatalf("sent a bad frame %x", out)
				}
			}
			l.Tick(t0.Add(time.Minute))
			l.Deadline()
			l.Close("x", t0)
		}
	})
}
