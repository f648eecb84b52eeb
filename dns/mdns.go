package dns

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"syscall"

	"github.com/grandcat/zeroconf"
	"github.com/miekg/dns"
	"github.com/routerd/routerd/internal/lifecycle"

	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"
)

var mdnsGroup = &net.UDPAddr{IP: net.IPv4(224, 0, 0, 251), Port: 5353}

// How long answers are collected. A responder answers unique records (a
// host's A) at once and shared ones (DNS-SD PTRs) after 20-120 ms (RFC
// 6762 §6), so browsing waits longer.
const (
	mdnsHostWindow   = 300 * time.Millisecond
	mdnsBrowseWindow = 700 * time.Millisecond
)

// mdnsForwarder answers .local questions by asking the LAN: a one-shot
// query (RFC 6762 §5.1) from an ephemeral port, to which responders answer
// by unicast, on each LAN interface, merging what comes back.
type mdnsForwarder struct {
	ifaces []string
	mu     sync.Mutex
	asked  uint64
	got    uint64
}

// lookup asks every LAN interface and returns the merged answer: records
// answering q in Answer, the rest (SRV, TXT, addresses of a browse) in
// Extra. No answer within the window is NXDOMAIN.
func (m *mdnsForwarder) lookup(ctx context.Context, q dns.Question) (*dns.Msg, error) {
	window := mdnsHostWindow
	if q.Qtype == dns.TypePTR || q.Qtype == dns.TypeSRV || q.Qtype == dns.TypeTXT || q.Qtype == dns.TypeANY {
		window = mdnsBrowseWindow
	}
	query := new(dns.Msg)
	query.Id = dns.Id()
	// The QU bit (RFC 6762 §5.4) asks for a unicast answer: legacy-aware
	// responders (avahi) answer a one-shot query by unicast anyway, and
	// others (zeroconf libraries) only do with the bit set.
	query.Question = []dns.Question{{Name: q.Name, Qtype: q.Qtype, Qclass: dns.ClassINET | 1<<15}}
	wire, err := query.Pack()
	if err != nil {
		return nil, err
	}
	type result struct {
		rrs []dns.RR
		err error
	}
	results := make(chan result, len(m.ifaces))
	var wg sync.WaitGroup
	for _, ifname := range m.ifaces {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rrs, err := askLink(ctx, ifname, wire, query.Id, window)
			results <- result{rrs, err}
		}()
	}
	wg.Wait()
	close(results)
	m.mu.Lock()
	m.asked++
	m.mu.Unlock()
	var rrs []dns.RR
	var errs []error
	for r := range results {
		rrs = append(rrs, r.rrs...)
		if r.err != nil {
			errs = append(errs, r.err)
		}
	}
	resp := mdnsAnswer(q, rrs)
	if len(resp.Answer) == 0 && len(errs) > 0 && len(errs) == len(m.ifaces) {
		// Not asked at all: that is no proof the name does not exist.
		return nil, fmt.Errorf("mDNS %s: %w", q.Name, errors.Join(errs...))
	}
	if len(resp.Answer) == 0 {
		resp.Rcode = dns.RcodeNameError
		return resp, nil
	}
	m.mu.Lock()
	m.got++
	m.mu.Unlock()
	return resp, nil
}

// mdnsAnswer builds the answer to q from what the LAN's responders sent:
// records for q's name and type answer it; other records of the .local
// zone (a service's SRV, TXT and addresses) go in the additional section.
// Anything else is dropped: a host on the LAN must not get records for
// other zones to a client under the router's name.
func mdnsAnswer(q dns.Question, rrs []dns.RR) *dns.Msg {
	resp := new(dns.Msg)
	seen := map[string]bool{}
	for _, rr := range rrs {
		h := rr.Header()
		h.Class &^= 1 << 15 // the cache-flush bit means nothing to a unicast client
		if !isLocalName(h.Name) && !strings.EqualFold(h.Name, q.Name) {
			continue
		}
		key := rr.String()
		if seen[key] {
			continue
		}
		seen[key] = true
		if strings.EqualFold(h.Name, q.Name) && (h.Rrtype == q.Qtype || q.Qtype == dns.TypeANY) {
			resp.Answer = append(resp.Answer, rr)
		} else {
			resp.Extra = append(resp.Extra, rr)
		}
	}
	return resp
}

// mdnsRecords are the records of one mDNS packet, if it is a response.
func mdnsRecords(b []byte) []dns.RR {
	var m dns.Msg
	if err := m.Unpack(b); err != nil || !m.Response {
		return nil
	}
	return append(m.Answer, m.Extra...)
}

// askLink sends the query on one interface and collects answers until the
// window closes.
func askLink(ctx context.Context, ifname string, wire []byte, id uint16, window time.Duration) ([]dns.RR, error) {
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return nil, err
	}
	lc := net.ListenConfig{Control: func(network, address string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) { serr = unix.BindToDevice(int(fd), ifname) })
		if err != nil {
			return err
		}
		return serr
	}}
	pc, err := lc.ListenPacket(ctx, "udp4", "0.0.0.0:0")
	if err != nil {
		return nil, err
	}
	defer pc.Close()
	p := ipv4.NewPacketConn(pc)
	if err := p.SetMulticastInterface(ifi); err != nil {
		return nil, fmt.Errorf("multicast on %s: %w", ifname, err)
	}
	if err := p.SetMulticastTTL(255); err != nil {
		return nil, fmt.Errorf("multicast TTL on %s: %w", ifname, err)
	}
	if _, err := pc.WriteTo(wire, mdnsGroup); err != nil {
		return nil, fmt.Errorf("send mDNS query on %s: %w", ifname, err)
	}
	deadline := time.Now().Add(window)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	pc.SetReadDeadline(deadline)
	var out []dns.RR
	buf := make([]byte, 9000)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return out, nil
			}
			return out, err
		}
		if ua, ok := from.(*net.UDPAddr); !ok || ua.Port != 5353 {
			continue // answers come from responders' port 5353 (RFC 6762 §6.7)
		}
		out = append(out, mdnsRecords(buf[:n])...)
	}
}

// announce makes the router itself answer to <hostname>.local on the LAN
// interfaces, with its addresses there.
func announce(hostname string, ifaces []string, addrs []netip.Addr) (*zeroconf.Server, error) {
	var nifs []net.Interface
	for _, n := range ifaces {
		ifi, err := net.InterfaceByName(n)
		if err != nil {
			return nil, err
		}
		nifs = append(nifs, *ifi)
	}
	var ips []string
	for _, a := range addrs {
		ips = append(ips, a.String())
	}
	// Hosts announce themselves as a workstation (port 9), as avahi does.
	return zeroconf.RegisterProxy(hostname, "_workstation._tcp", "local.", 9, hostname, ips, nil, nifs)
}

// hostResponder answers mDNS questions for the router's own name
// (<hostname>.local A and AAAA) on the LAN interfaces, each with the
// addresses of the interface it was asked on. (The DNS-SD announcer does
// not answer plain host queries.)
type hostResponder struct {
	name string // "gw.local."
	pc   *ipv4.PacketConn
	raw  net.PacketConn
	log  interface{ Debug(string, ...any) }
}

func startHostResponder(hostname string, ifaces []string, log interface{ Debug(string, ...any) }, run *lifecycle.Group) (*hostResponder, error) {
	raw, err := listenMDNS("udp4", "0.0.0.0:5353")
	if err != nil {
		return nil, fmt.Errorf("mDNS responder: %w", err)
	}
	pc := ipv4.NewPacketConn(raw)
	if err := errors.Join(pc.SetControlMessage(ipv4.FlagInterface, true), pc.SetMulticastTTL(255)); err != nil {
		raw.Close()
		return nil, fmt.Errorf("mDNS responder: %w", err)
	}
	for _, n := range ifaces {
		ifi, err := net.InterfaceByName(n)
		if err != nil {
			continue
		}
		if err := pc.JoinGroup(ifi, &net.UDPAddr{IP: mdnsGroup.IP}); err != nil {
			raw.Close()
			return nil, fmt.Errorf("mDNS responder: join on %s: %w", n, err)
		}
	}
	h := &hostResponder{name: dns.Fqdn(strings.ToLower(hostname) + ".local"), pc: pc, raw: raw, log: log}
	run.Go(func(context.Context) { h.serve() }) // ends when close closes the socket
	return h, nil
}

func (h *hostResponder) close() { h.raw.Close() }

func (h *hostResponder) serve() {
	buf := make([]byte, 9000)
	for {
		n, cm, from, err := h.pc.ReadFrom(buf)
		if err != nil {
			return
		}
		var q dns.Msg
		if q.Unpack(buf[:n]) != nil || q.Response || cm == nil {
			continue
		}
		ifi, err := net.InterfaceByIndex(cm.IfIndex)
		if err != nil {
			continue
		}
		src, _ := from.(*net.UDPAddr)
		legacy := src != nil && src.Port != 5353 // a one-shot query (RFC 6762 §6.7)
		resp := new(dns.Msg)
		resp.Response, resp.Authoritative = true, true
		unicast := legacy
		for _, question := range q.Question {
			if !strings.EqualFold(question.Name, h.name) {
				continue
			}
			unicast = unicast || question.Qclass&(1<<15) != 0
			resp.Answer = append(resp.Answer, h.records(ifi, question.Qtype, legacy)...)
			if legacy {
				resp.Question = append(resp.Question, dns.Question{Name: question.Name, Qtype: question.Qtype, Qclass: dns.ClassINET})
			}
		}
		if len(resp.Answer) == 0 {
			continue
		}
		if legacy {
			resp.Id = q.Id
		}
		out, err := resp.Pack()
		if err != nil {
			continue
		}
		dst := net.Addr(mdnsGroup)
		if unicast && src != nil {
			dst = src
		}
		if _, err := h.pc.WriteTo(out, &ipv4.ControlMessage{IfIndex: cm.IfIndex}, dst); err != nil {
			h.log.Debug("mDNS answer not sent", "to", dst, "err", err)
		}
	}
}

func (h *hostResponder) records(ifi *net.Interface, qtype uint16, legacy bool) []dns.RR {
	addrs, _ := ifi.Addrs()
	ttl := uint32(120)
	class := uint16(dns.ClassINET | 1<<15) // cache-flush: the name is ours alone
	if legacy {
		ttl, class = 10, dns.ClassINET
	}
	var out []dns.RR
	for _, a := range addrs {
		ipn, ok := a.(*net.IPNet)
		if !ok || ipn.IP.IsLinkLocalUnicast() {
			continue
		}
		hdr := dns.RR_Header{Name: h.name, Class: class, Ttl: ttl}
		if v4 := ipn.IP.To4(); v4 != nil && (qtype == dns.TypeA || qtype == dns.TypeANY) {
			hdr.Rrtype = dns.TypeA
			out = append(out, &dns.A{Hdr: hdr, A: v4})
		} else if v4 == nil && (qtype == dns.TypeAAAA || qtype == dns.TypeANY) {
			hdr.Rrtype = dns.TypeAAAA
			out = append(out, &dns.AAAA{Hdr: hdr, AAAA: ipn.IP})
		}
	}
	return out
}

// viaMDNS answers a .local question from the LAN's responders, cached.
func (r *Resolver) viaMDNS(q dns.Question) *dns.Msg {
	key := keyOf(routeMDNS, q, false)
	now := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	m, err := r.mdns.lookup(ctx, q)
	if err != nil {
		return &dns.Msg{MsgHdr: dns.MsgHdr{Rcode: dns.RcodeServerFailure}}
	}
	r.st.mdns.Add(1)
	if m.Rcode == dns.RcodeSuccess {
		r.cache.put(key, m, now)
	}
	return m
}
