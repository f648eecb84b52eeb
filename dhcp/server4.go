package dhcp

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/rfc1035label"
	"github.com/routerd/routerd/internal/lograte"
	"golang.org/x/sys/unix"
)

// Reservation pins an address (and a hostname) to a MAC.
type Reservation struct {
	MAC      net.HardwareAddr
	IP       netip.Addr
	Hostname string
}

// Server4Config configures the DHCPv4 server of one LAN interface.
type Server4Config struct {
	Iface        string
	Addr         netip.Prefix // the router's address on the LAN
	Start, End   netip.Addr   // the pool
	LeaseTime    time.Duration
	Router       netip.Addr
	DNS          []netip.Addr
	NTP          []netip.Addr // option 42
	Domain       string
	MTU          int
	Reservations []Reservation
	// Routes go to clients as classless static routes (option 121), with
	// the default route via Router: a client that takes option 121
	// ignores option 3 (RFC 3442).
	Routes       []Route4
	DomainSearch []string    // option 119
	Options      []RawOption // sent as given, after routerd's own
	Log          *slog.Logger
}

// Route4 is a classless static route for clients.
type Route4 struct {
	Dst netip.Prefix
	Gw  netip.Addr
}

// RawOption is an option by code, already encoded.
type RawOption struct {
	Code  uint8
	Value []byte
}

// Server4 is the DHCPv4 server of one LAN interface.
type Server4 struct {
	cfg   Server4Config
	store *Store

	mu     sync.Mutex
	offers map[netip.Addr]offer // addresses offered, held briefly
	next   netip.Addr           // where the next pool scan starts
	counters
	socketLoop
	byMAC map[string]Reservation
	byIP  map[netip.Addr]Reservation
	// warn keeps per-event warnings (pool exhausted, DECLINE) to one a
	// minute: a hostile client cannot flood the log with them.
	warn *lograte.Limiter
	// declines are the recent DECLINEs, for their rate limit.
	declines *rateWindow
}

type offer struct {
	key     string
	expires time.Time
}

// offerHold is how long an offered address is kept for its client.
const offerHold = 30 * time.Second

// declineQuarantine is how long a declined address is not handed out.
const declineQuarantine = 10 * time.Minute

// NewServer4 returns a server for cfg keeping leases in store.
func NewServer4(cfg Server4Config, store *Store) *Server4 {
	s := &Server4{cfg: cfg, store: store, offers: map[netip.Addr]offer{}, next: cfg.Start,
		byMAC: map[string]Reservation{}, byIP: map[netip.Addr]Reservation{},
		socketLoop: newSocketLoop(), warn: lograte.New(time.Minute),
		declines: &rateWindow{max: maxDeclines, window: declineWindow}}
	for _, r := range cfg.Reservations {
		s.byMAC[r.MAC.String()] = r
		s.byIP[r.IP] = r
	}
	return s
}

// Run serves until ctx ends.
func (s *Server4) Run(ctx context.Context) {
	s.run(ctx, 2*time.Second, func(err error) {
		s.count("socket_errors")
		s.cfg.Log.Warn("DHCPv4 listen", "iface", s.cfg.Iface, "err", err)
	}, func() (func(context.Context), func(), error) {
		conn, raw, err := s.listen()
		if err != nil {
			return nil, nil, err
		}
		return func(ctx context.Context) { s.serve(ctx, conn, raw) }, func() { conn.Close(); raw.Close() }, nil
	})
}

// listen opens the server's UDP socket on port 67 bound to its interface,
// and a packet socket to answer clients that have no address yet.
func (s *Server4) listen() (net.PacketConn, *frameSender, error) {
	ifi, err := net.InterfaceByName(s.cfg.Iface)
	if err != nil {
		return nil, nil, err
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, err
	}
	for _, o := range []int{unix.SO_REUSEADDR, unix.SO_BROADCAST} {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, o, 1); err != nil {
			unix.Close(fd)
			return nil, nil, fmt.Errorf("DHCPv4 socket option %d on %s: %w", o, s.cfg.Iface, err)
		}
	}
	if err := unix.BindToDevice(fd, s.cfg.Iface); err != nil {
		unix.Close(fd)
		return nil, nil, fmt.Errorf("bind to %s: %w", s.cfg.Iface, err)
	}
	if err := unix.Bind(fd, &unix.SockaddrInet4{Port: 67}); err != nil {
		unix.Close(fd)
		return nil, nil, fmt.Errorf("bind :67 on %s: %w", s.cfg.Iface, err)
	}
	conn, err := filePacketConn(fd, "dhcp4-"+s.cfg.Iface)
	if err != nil {
		return nil, nil, err
	}
	raw, err := newFrameSender(ifi)
	if err != nil {
		conn.Close()
		return nil, nil, err
	}
	return conn, raw, nil
}

// serve reads requests and answers them, several at a time so that lease
// commits share fsyncs; it returns on ctx's end or a Reopen.
func (s *Server4) serve(ctx context.Context, conn net.PacketConn, raw *frameSender) {
	sem := make(chan struct{}, 64)
	var wg sync.WaitGroup
	defer wg.Wait()
	err := readLoop(ctx, conn, s.reopen, make([]byte, 1500), func(b []byte, from net.Addr) {
		req, err := dhcpv4.FromBytes(b)
		if err != nil {
			s.count("drop_malformed")
			return
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			var src netip.Addr
			if ua, ok := from.(*net.UDPAddr); ok {
				src = ua.AddrPort().Addr().Unmap()
			}
			if resp := s.HandleFrom(req, src, time.Now()); resp != nil {
				s.send(conn, raw, req, resp)
			}
		}()
	})
	if err != nil {
		s.cfg.Log.Warn("DHCPv4 read", "iface", s.cfg.Iface, "err", err)
	}
}

// Handle answers one request, or returns nil to stay silent. It is the
// server's whole protocol logic, without sockets. A RELEASE through Handle
// is taken as sent from its client's own address (ciaddr).
func (s *Server4) Handle(req *dhcpv4.DHCPv4, now time.Time) *dhcpv4.DHCPv4 {
	ci, _ := netip.AddrFromSlice(req.ClientIPAddr.To4())
	return s.HandleFrom(req, ci, now)
}

// HandleFrom is Handle for a request that came from src (its IP source).
func (s *Server4) HandleFrom(req *dhcpv4.DHCPv4, src netip.Addr, now time.Time) *dhcpv4.DHCPv4 {
	if req.OpCode != dhcpv4.OpcodeBootRequest || req.HWType != 1 || len(req.ClientHWAddr) != 6 {
		s.count("drop_not_ethernet_request")
		return nil
	}
	mt := req.MessageType()
	s.count("in_" + strings.ToLower(mt.String()))
	if !req.GatewayIPAddr.IsUnspecified() && req.GatewayIPAddr != nil {
		gi, _ := netip.AddrFromSlice(req.GatewayIPAddr.To4())
		if !s.cfg.Addr.Masked().Contains(gi) {
			s.count("drop_relay_other_subnet")
			return nil
		}
	}
	switch mt {
	case dhcpv4.MessageTypeDiscover:
		return s.discover(req, now)
	case dhcpv4.MessageTypeRequest:
		return s.request(req, now)
	case dhcpv4.MessageTypeRelease:
		s.release(req, src)
	case dhcpv4.MessageTypeDecline:
		s.decline(req, now)
	case dhcpv4.MessageTypeInform:
		return s.inform(req)
	default:
		s.count("drop_unhandled_type")
	}
	return nil
}

func (s *Server4) key(req *dhcpv4.DHCPv4) string {
	l := Lease{Iface: s.cfg.Iface, MAC: req.ClientHWAddr.String()}
	if cid := req.Options.Get(dhcpv4.OptionClientIdentifier); len(cid) > 0 {
		l.CID = hex.EncodeToString(cid)
	}
	return l.Key()
}

func (s *Server4) discover(req *dhcpv4.DHCPv4, now time.Time) *dhcpv4.DHCPv4 {
	key := s.key(req)
	if s.tooMany(req.ClientHWAddr.String(), key, now) {
		s.count("drop_leases_per_mac")
		return nil
	}
	addr, ok := s.choose(req, key, now)
	if !ok {
		s.count("drop_pool_exhausted")
		if ok, held := s.warn.Allow("pool", now); ok {
			s.cfg.Log.Warn("DHCPv4 pool exhausted", "iface", s.cfg.Iface, "client", req.ClientHWAddr, "since_last_warning", held)
		}
		return nil
	}
	s.mu.Lock()
	s.offers[addr] = offer{key: key, expires: now.Add(offerHold)}
	s.mu.Unlock()
	return s.reply(req, dhcpv4.MessageTypeOffer, addr)
}

// choose picks the address to offer: the client's reservation, its current
// or last lease, the address it asks for, or the next free one in the pool.
func (s *Server4) choose(req *dhcpv4.DHCPv4, key string, now time.Time) (netip.Addr, bool) {
	if r, ok := s.byMAC[req.ClientHWAddr.String()]; ok {
		return r.IP, true
	}
	mac := req.ClientHWAddr.String()
	if l, ok := s.store.ByKey(key); ok && s.usable(l.Addr, key, mac, now) {
		return l.Addr, true
	}
	if want, ok := netip.AddrFromSlice(req.RequestedIPAddress().To4()); ok && s.inPool(want) && s.usable(want, key, mac, now) {
		return want, true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.next
	for range s.poolSize() {
		if s.freeLocked(a, key, mac, now) {
			s.next = s.advance(a)
			return a, true
		}
		a = s.advance(a)
	}
	return netip.Addr{}, false
}

func (s *Server4) advance(a netip.Addr) netip.Addr { return nextInRange(a, s.cfg.Start, s.cfg.End) }

func (s *Server4) poolSize() int {
	a, b := s.cfg.Start.As4(), s.cfg.End.As4()
	return int(binary.BigEndian.Uint32(b[:])-binary.BigEndian.Uint32(a[:])) + 1
}

func (s *Server4) inPool(a netip.Addr) bool {
	return a.Is4() && s.cfg.Start.Compare(a) <= 0 && a.Compare(s.cfg.End) <= 0
}

// usable reports whether a may go to the client with key and mac.
func (s *Server4) usable(a netip.Addr, key, mac string, now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.freeLocked(a, key, mac, now)
}

func (s *Server4) freeLocked(a netip.Addr, key, mac string, now time.Time) bool {
	if a == s.cfg.Addr.Addr() {
		return false
	}
	if r, ok := s.byIP[a]; ok && r.MAC.String() != mac {
		return false // reserved for someone else
	}
	if o, ok := s.offers[a]; ok && o.key != key && now.Before(o.expires) {
		return false
	}
	if l, ok := s.store.ByAddr(a); ok && l.Key() != key && !l.Expired(now) {
		return false
	}
	return !s.store.Declined(a, now)
}

func (s *Server4) request(req *dhcpv4.DHCPv4, now time.Time) *dhcpv4.DHCPv4 {
	key := s.key(req)
	serverID := req.ServerIdentifier()
	if serverID != nil && !serverID.IsUnspecified() {
		if sid, _ := netip.AddrFromSlice(serverID.To4()); sid != s.cfg.Addr.Addr() {
			// The client chose another server: forget our offer.
			s.forgetOffer(key)
			s.count("drop_other_server")
			return nil
		}
	}
	want, _ := netip.AddrFromSlice(req.RequestedIPAddress().To4())
	if ci, ok := netip.AddrFromSlice(req.ClientIPAddr.To4()); ok && !ci.IsUnspecified() {
		want = ci // RENEWING or REBINDING: the address is ciaddr
	}
	if !want.IsValid() || want.IsUnspecified() {
		s.count("drop_no_address")
		return nil
	}
	if !s.cfg.Addr.Masked().Contains(want) {
		return s.nak(req, "address not on this network")
	}
	_, reserved := s.byIP[want]
	if r, ok := s.byMAC[req.ClientHWAddr.String()]; ok && r.IP != want {
		return s.nak(req, "a reserved address waits for this client")
	}
	if !s.inPool(want) && !reserved {
		return s.nak(req, "address outside the pool")
	}
	if s.tooMany(req.ClientHWAddr.String(), key, now) {
		s.count("drop_leases_per_mac")
		return s.nak(req, "too many leases for this hardware address")
	}
	if !s.usable(want, key, req.ClientHWAddr.String(), now) {
		return s.nak(req, "address in use")
	}
	l := Lease{Iface: s.cfg.Iface, Addr: want, MAC: req.ClientHWAddr.String(), Expires: now.Add(s.cfg.LeaseTime),
		Hostname: Sanitize(req.HostName()), Reserved: reserved}
	if cid := req.Options.Get(dhcpv4.OptionClientIdentifier); len(cid) > 0 {
		l.CID = hex.EncodeToString(cid)
	}
	if r, ok := s.byMAC[l.MAC]; ok && r.Hostname != "" {
		l.Hostname = r.Hostname
	}
	if err := s.store.Grant(l); err != nil {
		if errors.Is(err, ErrTaken) {
			return s.nak(req, "address in use")
		}
		s.count("drop_store_error")
		s.cfg.Log.Error("commit DHCPv4 lease", "err", err)
		return nil // no ACK for a lease that is not on disk
	}
	s.forgetOffer(key)
	return s.reply(req, dhcpv4.MessageTypeAck, want)
}

func (s *Server4) forgetOffer(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for a, o := range s.offers {
		if o.key == key {
			delete(s.offers, a)
		}
	}
}

func (s *Server4) inform(req *dhcpv4.DHCPv4) *dhcpv4.DHCPv4 {
	resp := s.reply(req, dhcpv4.MessageTypeAck, netip.Addr{})
	if resp != nil {
		resp.Options.Del(dhcpv4.OptionIPAddressLeaseTime)
		resp.Options.Del(dhcpv4.OptionRenewTimeValue)
		resp.Options.Del(dhcpv4.OptionRebindingTimeValue)
	}
	return resp
}

func (s *Server4) nak(req *dhcpv4.DHCPv4, why string) *dhcpv4.DHCPv4 {
	resp, err := dhcpv4.NewReplyFromRequest(req,
		dhcpv4.WithMessageType(dhcpv4.MessageTypeNak),
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(s.cfg.Addr.Addr().AsSlice())),
		dhcpv4.WithOption(dhcpv4.OptMessage(why)))
	if err != nil {
		return nil
	}
	s.count("out_nak")
	return resp
}

func (s *Server4) reply(req *dhcpv4.DHCPv4, mt dhcpv4.MessageType, yiaddr netip.Addr) *dhcpv4.DHCPv4 {
	mask := net.CIDRMask(s.cfg.Addr.Bits(), 32)
	bcast := lastOf(s.cfg.Addr)
	lt := s.cfg.LeaseTime
	mods := []dhcpv4.Modifier{
		dhcpv4.WithMessageType(mt),
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(s.cfg.Addr.Addr().AsSlice())),
		dhcpv4.WithNetmask(mask),
		dhcpv4.WithOption(dhcpv4.OptBroadcastAddress(bcast.AsSlice())),
		dhcpv4.WithOption(dhcpv4.OptIPAddressLeaseTime(lt)),
		dhcpv4.WithOption(dhcpv4.OptRenewTimeValue(lt / 2)),
		dhcpv4.WithOption(dhcpv4.OptRebindingTimeValue(lt * 7 / 8)),
	}
	if yiaddr.IsValid() {
		mods = append(mods, dhcpv4.WithYourIP(yiaddr.AsSlice()))
	}
	if s.cfg.Router.IsValid() {
		mods = append(mods, dhcpv4.WithOption(dhcpv4.OptRouter(s.cfg.Router.AsSlice())))
	}
	var dns []net.IP
	for _, d := range s.cfg.DNS {
		dns = append(dns, d.AsSlice())
	}
	if len(dns) > 0 {
		mods = append(mods, dhcpv4.WithOption(dhcpv4.OptDNS(dns...)))
	}
	if s.cfg.Domain != "" {
		mods = append(mods, dhcpv4.WithOption(dhcpv4.OptDomainName(s.cfg.Domain)))
	}
	var ntp []net.IP
	for _, a := range s.cfg.NTP {
		ntp = append(ntp, a.AsSlice())
	}
	if len(ntp) > 0 {
		mods = append(mods, dhcpv4.WithOption(dhcpv4.OptNTPServers(ntp...)))
	}
	if s.cfg.MTU != 0 {
		mods = append(mods, dhcpv4.WithGeneric(dhcpv4.OptionInterfaceMTU, binary.BigEndian.AppendUint16(nil, uint16(s.cfg.MTU))))
	}
	if len(s.cfg.Routes) > 0 {
		var routes []*dhcpv4.Route
		if s.cfg.Router.IsValid() {
			routes = append(routes, &dhcpv4.Route{Dest: &net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)}, Router: s.cfg.Router.AsSlice()})
		}
		for _, r := range s.cfg.Routes {
			routes = append(routes, &dhcpv4.Route{Dest: &net.IPNet{IP: r.Dst.Addr().AsSlice(), Mask: net.CIDRMask(r.Dst.Bits(), 32)}, Router: r.Gw.AsSlice()})
		}
		mods = append(mods, dhcpv4.WithOption(dhcpv4.OptClasslessStaticRoute(routes...)))
	}
	if len(s.cfg.DomainSearch) > 0 {
		mods = append(mods, dhcpv4.WithOption(dhcpv4.OptDomainSearch(&rfc1035label.Labels{Labels: s.cfg.DomainSearch})))
	}
	for _, o := range s.cfg.Options {
		mods = append(mods, dhcpv4.WithGeneric(dhcpv4.GenericOptionCode(o.Code), o.Value))
	}
	resp, err := dhcpv4.NewReplyFromRequest(req, mods...)
	if err != nil {
		s.count("drop_build_error")
		return nil
	}
	s.count("out_" + strings.ToLower(mt.String()))
	return resp
}

// send delivers resp where RFC 2131 §4.1 says: to the relay, to the
// client's address, broadcast, or straight to the client's MAC when it has
// no address yet and can take unicast.
func (s *Server4) send(conn net.PacketConn, raw *frameSender, req, resp *dhcpv4.DHCPv4) {
	b := resp.ToBytes()
	var err error
	switch {
	case req.GatewayIPAddr != nil && !req.GatewayIPAddr.IsUnspecified():
		_, err = conn.WriteTo(b, &net.UDPAddr{IP: req.GatewayIPAddr, Port: 67})
	case resp.MessageType() == dhcpv4.MessageTypeNak:
		_, err = conn.WriteTo(b, &net.UDPAddr{IP: net.IPv4bcast, Port: 68})
	case req.ClientIPAddr != nil && !req.ClientIPAddr.IsUnspecified():
		_, err = conn.WriteTo(b, &net.UDPAddr{IP: req.ClientIPAddr, Port: 68})
	case req.IsBroadcast() || resp.YourIPAddr == nil || resp.YourIPAddr.IsUnspecified():
		_, err = conn.WriteTo(b, &net.UDPAddr{IP: net.IPv4bcast, Port: 68})
	default:
		yi, _ := netip.AddrFromSlice(resp.YourIPAddr.To4())
		frame := ipv4UDP(s.cfg.Addr.Addr(), yi, 67, 68, b)
		err = raw.send(frame, req.ClientHWAddr)
	}
	if err != nil {
		s.count("send_errors")
		s.cfg.Log.Warn("DHCPv4 send", "iface", s.cfg.Iface, "err", err)
	}
}

// ipv4UDP wraps payload in IPv4 and UDP headers, for the packet socket.
func ipv4UDP(src, dst netip.Addr, sport, dport uint16, payload []byte) []byte {
	b := make([]byte, 28+len(payload))
	ip := b[:20]
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:], uint16(len(b)))
	ip[8] = 64 // TTL
	ip[9] = unix.IPPROTO_UDP
	s4, d4 := src.As4(), dst.As4()
	copy(ip[12:16], s4[:])
	copy(ip[16:20], d4[:])
	binary.BigEndian.PutUint16(ip[10:], checksum(ip, 0))
	udp := b[20:]
	binary.BigEndian.PutUint16(udp[0:], sport)
	binary.BigEndian.PutUint16(udp[2:], dport)
	binary.BigEndian.PutUint16(udp[4:], uint16(8+len(payload)))
	copy(udp[8:], payload)
	// UDP checksum over the pseudo-header.
	pseudo := uint32(0)
	for i := 0; i < 4; i += 2 {
		pseudo += uint32(binary.BigEndian.Uint16(s4[i:])) + uint32(binary.BigEndian.Uint16(d4[i:]))
	}
	pseudo += unix.IPPROTO_UDP + uint32(len(udp))
	cs := checksum(udp, pseudo)
	if cs == 0 {
		cs = 0xffff
	}
	binary.BigEndian.PutUint16(udp[6:], cs)
	return b
}

func checksum(b []byte, sum uint32) uint16 {
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

func lastOf(p netip.Prefix) netip.Addr {
	a := p.Masked().Addr().As4()
	v := binary.BigEndian.Uint32(a[:]) | (1<<(32-p.Bits()) - 1)
	binary.BigEndian.PutUint32(a[:], v)
	return netip.AddrFrom4(a)
}

// Sanitize turns a client's hostname (option 12) into one DNS label, or ""
// when nothing usable is left.
func Sanitize(h string) string {
	h = strings.ToLower(h)
	if i := strings.IndexByte(h, '.'); i >= 0 {
		h = h[:i] // a client sending a FQDN: keep its first label
	}
	var b strings.Builder
	for _, r := range h {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		case r == '-' || r == '_' || r == ' ':
			b.WriteByte('-')
		}
	}
	out := strings.Trim(b.String(), "-")
	if len(out) > 63 {
		out = strings.TrimRight(out[:63], "-")
	}
	return out
}
