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
	"sync/atomic"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv6"
	"github.com/insomniacslk/dhcp/iana"
	"github.com/insomniacslk/dhcp/rfc1035label"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"
)

// Server6Config configures the stateful DHCPv6 server of one LAN.
type Server6Config struct {
	Iface      string
	Addr       netip.Prefix // the router's IPv6 address on the LAN
	Start, End netip.Addr
	LeaseTime  time.Duration
	DNS        []netip.Addr
	NTP        []netip.Addr // option 56, server addresses (RFC 5908)
	Domain     string
	Log        *slog.Logger
}

// Server6 hands out IA_NA addresses from a range, leases keyed by DUID and
// IAID and kept in the shared store.
type Server6 struct {
	cfg    Server6Config
	store  *Store
	global atomic.Pointer[[]GlobalPrefix] // from the delegated prefix

	mu     sync.Mutex
	duid   dhcpv6.DUID
	offers map[netip.Addr]offer
	next   netip.Addr
	scan   int // addresses a search for a free one looks at
	counters
	socketLoop
	declines *rateWindow // as DHCPv4's: maxDeclines per declineWindow
}

// NewServer6 returns a server for cfg.
func NewServer6(cfg Server6Config, store *Store) *Server6 {
	return &Server6{cfg: cfg, store: store, socketLoop: newSocketLoop(), offers: map[netip.Addr]offer{},
		next: cfg.Start, scan: scanLimit(cfg.Start, cfg.End), declines: &rateWindow{max: maxDeclines, window: declineWindow}}
}

// maxIAs is how many IA_NAs of one message are served.
const maxIAs = 8

// scanLimit is how many addresses a search for a free one looks at: the
// whole range when it is small, 65536 otherwise.
func scanLimit(start, end netip.Addr) int {
	a, b := start.As16(), end.As16()
	for i := 0; i < 14; i++ {
		if a[i] != b[i] {
			return 1 << 16
		}
	}
	n := (int(b[14])<<8 | int(b[15])) - (int(a[14])<<8 | int(a[15])) + 1
	return max(n, 1)
}

var allServers = net.ParseIP("ff02::1:2")

// Run serves until ctx ends.
func (s *Server6) Run(ctx context.Context) {
	s.run(ctx, 2*time.Second, func(err error) {
		s.count("socket_errors")
		s.cfg.Log.Warn("DHCPv6 listen", "iface", s.cfg.Iface, "err", err)
	}, func() (func(context.Context), func(), error) {
		conn, err := s.listen()
		if err != nil {
			return nil, nil, err
		}
		return func(ctx context.Context) { s.serve(ctx, conn) }, func() { conn.Close() }, nil
	})
}

func (s *Server6) listen() (net.PacketConn, error) {
	ifi, err := net.InterfaceByName(s.cfg.Iface)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	// DUID-LL from the interface's MAC: stable across restarts.
	s.duid = &dhcpv6.DUIDLL{HWType: iana.HWTypeEthernet, LinkLayerAddr: ifi.HardwareAddr}
	s.mu.Unlock()
	fd, err := unix.Socket(unix.AF_INET6, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	if err := errors.Join(unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1),
		unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 1)); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("DHCPv6 socket options on %s: %w", s.cfg.Iface, err)
	}
	if err := unix.BindToDevice(fd, s.cfg.Iface); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("bind to %s: %w", s.cfg.Iface, err)
	}
	if err := unix.Bind(fd, &unix.SockaddrInet6{Port: dhcpv6.DefaultServerPort}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("bind :547 on %s: %w", s.cfg.Iface, err)
	}
	conn, err := filePacketConn(fd, "dhcp6-"+s.cfg.Iface)
	if err != nil {
		return nil, err
	}
	if err := ipv6.NewPacketConn(conn).JoinGroup(ifi, &net.UDPAddr{IP: allServers}); err != nil {
		conn.Close()
		return nil, fmt.Errorf("join ff02::1:2 on %s: %w", s.cfg.Iface, err)
	}
	return conn, nil
}

func (s *Server6) serve(ctx context.Context, conn net.PacketConn) {
	err := readLoop(ctx, conn, s.reopen, make([]byte, 4096), func(b []byte, from net.Addr) {
		pkt, err := dhcpv6.FromBytes(b)
		if err != nil {
			s.count("drop_malformed")
			return
		}
		msg, ok := pkt.(*dhcpv6.Message)
		if !ok {
			s.count("drop_relayed") // relay messages are not served
			return
		}
		resp := s.Handle(msg, time.Now())
		if resp == nil {
			return
		}
		if _, err := conn.WriteTo(resp.ToBytes(), from); err != nil {
			s.count("send_errors")
		}
	})
	if err != nil {
		s.cfg.Log.Warn("DHCPv6 read", "iface", s.cfg.Iface, "err", err)
	}
}

// Handle answers one message, or returns nil.
func (s *Server6) Handle(msg *dhcpv6.Message, now time.Time) *dhcpv6.Message {
	s.count("in_" + strings.ToLower(msg.Type().String()))
	cid := msg.Options.ClientID()
	if cid == nil {
		s.count("drop_no_client_id")
		return nil
	}
	if sid := msg.Options.ServerID(); sid != nil && !sid.Equal(s.serverID()) {
		s.count("drop_other_server")
		return nil
	}
	duid := hex.EncodeToString(cid.ToBytes())
	var resp *dhcpv6.Message
	var err error
	switch msg.Type() {
	case dhcpv6.MessageTypeSolicit:
		commit := msg.GetOneOption(dhcpv6.OptionRapidCommit) != nil
		ias := s.assign(msg, duid, now, commit)
		if commit {
			resp, err = dhcpv6.NewReplyFromMessage(msg, s.common(ias)...)
		} else {
			resp, err = dhcpv6.NewAdvertiseFromSolicit(msg, s.common(ias)...)
		}
	case dhcpv6.MessageTypeRequest, dhcpv6.MessageTypeRenew, dhcpv6.MessageTypeRebind:
		resp, err = dhcpv6.NewReplyFromMessage(msg, append(s.common(s.assign(msg, duid, now, true)), s.fqdnReply(msg))...)
	case dhcpv6.MessageTypeConfirm:
		code := iana.StatusSuccess
		for _, ia := range msg.Options.IANA() {
			for _, a := range ia.Options.Addresses() {
				if ad, ok := netip.AddrFromSlice(a.IPv6Addr); !ok || !s.cfg.Addr.Masked().Contains(ad) {
					code = iana.StatusNotOnLink
				}
			}
		}
		resp, err = dhcpv6.NewReplyFromMessage(msg, s.status(code, "confirm"))
	case dhcpv6.MessageTypeRelease:
		s.releaseAll(msg, duid, false, now)
		resp, err = dhcpv6.NewReplyFromMessage(msg, s.status(iana.StatusSuccess, "released"))
	case dhcpv6.MessageTypeDecline:
		s.releaseAll(msg, duid, true, now)
		resp = &dhcpv6.Message{MessageType: dhcpv6.MessageTypeReply, TransactionID: msg.TransactionID}
		resp.AddOption(msg.GetOneOption(dhcpv6.OptionClientID))
		s.status(iana.StatusSuccess, "declined")(resp)
	case dhcpv6.MessageTypeInformationRequest:
		resp, err = dhcpv6.NewReplyFromMessage(msg, s.common(nil)...)
	default:
		s.count("drop_unhandled_type")
		return nil
	}
	if err != nil || resp == nil {
		s.count("drop_build_error")
		return nil
	}
	if sid := resp.Options.ServerID(); sid == nil {
		resp.AddOption(dhcpv6.OptServerID(s.serverID()))
	}
	s.count("out_" + strings.ToLower(resp.Type().String()))
	return resp
}

func (s *Server6) serverID() dhcpv6.DUID {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.duid == nil {
		s.duid = &dhcpv6.DUIDLL{HWType: iana.HWTypeEthernet, LinkLayerAddr: net.HardwareAddr{0, 0, 0, 0, 0, 0}}
	}
	return s.duid
}

// common is the options every answer carries: server ID, DNS, domain, and
// the identity associations.
func (s *Server6) common(ias []*dhcpv6.OptIANA) []dhcpv6.Modifier {
	mods := []dhcpv6.Modifier{dhcpv6.WithServerID(s.serverID())}
	var dns []net.IP
	for _, d := range s.cfg.DNS {
		dns = append(dns, d.AsSlice())
	}
	if len(dns) > 0 {
		mods = append(mods, dhcpv6.WithDNS(dns...))
	}
	if s.cfg.Domain != "" {
		mods = append(mods, dhcpv6.WithDomainSearchList(s.cfg.Domain))
	}
	if len(s.cfg.NTP) > 0 {
		o := &dhcpv6.OptNTPServer{}
		for _, a := range s.cfg.NTP {
			sub := dhcpv6.NTPSuboptionSrvAddr(a.AsSlice())
			o.Suboptions = append(o.Suboptions, &sub)
		}
		mods = append(mods, dhcpv6.WithOption(o))
	}
	// AddOption, not WithOption: WithOption replaces an option of the same
	// code, and a client asking for two IA_NAs must get both.
	for _, ia := range ias {
		mods = append(mods, func(d dhcpv6.DHCPv6) { d.AddOption(ia) })
	}
	return mods
}

func (s *Server6) status(code iana.StatusCode, msg string) dhcpv6.Modifier {
	return dhcpv6.WithOption(&dhcpv6.OptStatusCode{StatusCode: code, StatusMessage: msg})
}

// assign answers each IA_NA of msg: the client's existing address, the one
// it asks for, or a free one. With commit the lease is made durable first.
func (s *Server6) assign(msg *dhcpv6.Message, duid string, now time.Time, commit bool) []*dhcpv6.OptIANA {
	var out []*dhcpv6.OptIANA
	renew := msg.Type() == dhcpv6.MessageTypeRenew || msg.Type() == dhcpv6.MessageTypeRebind
	ias := msg.Options.IANA()
	if len(ias) > maxIAs {
		// A client has one IA_NA per interface; hundreds in one message
		// would each cost a pool scan.
		s.count("drop_extra_ia")
		ias = ias[:maxIAs]
	}
	for _, ia := range ias {
		iaid := binary.BigEndian.Uint32(ia.IaId[:])
		key := (&Lease{Iface: s.cfg.Iface, DUID: duid, IAID: iaid}).Key()
		resp := &dhcpv6.OptIANA{IaId: ia.IaId, T1: s.cfg.LeaseTime / 2, T2: s.cfg.LeaseTime * 4 / 5}
		addr, ok := s.choose(ia, key, now)
		if renew {
			// RENEW/REBIND: only the client's own binding can be extended.
			if l, has := s.store.ByKey(key); !has || !l.Addr.IsValid() {
				resp.Options.Add(&dhcpv6.OptStatusCode{StatusCode: iana.StatusNoBinding, StatusMessage: "no binding"})
				out = append(out, resp)
				continue
			} else {
				addr, ok = l.Addr, true
			}
		}
		if !ok {
			resp.Options.Add(&dhcpv6.OptStatusCode{StatusCode: iana.StatusNoAddrsAvail, StatusMessage: "pool exhausted"})
			s.count("drop_pool_exhausted")
			out = append(out, resp)
			continue
		}
		if commit {
			l := Lease{Iface: s.cfg.Iface, Addr: addr, DUID: duid, IAID: iaid, Expires: now.Add(s.cfg.LeaseTime),
				Hostname: clientHostname6(msg)}
			if old, has := s.store.ByKey(key); has && l.Hostname == "" {
				l.Hostname = old.Hostname
			}
			if err := s.store.Grant(l); err != nil {
				resp.Options.Add(&dhcpv6.OptStatusCode{StatusCode: iana.StatusNoAddrsAvail, StatusMessage: "address unavailable"})
				out = append(out, resp)
				continue
			}
		} else {
			s.mu.Lock()
			s.offers[addr] = offer{key: key, expires: now.Add(offerHold)}
			s.mu.Unlock()
		}
		resp.Options.Add(&dhcpv6.OptIAAddress{IPv6Addr: addr.AsSlice(), PreferredLifetime: s.cfg.LeaseTime, ValidLifetime: s.cfg.LeaseTime})
		// The lease's twin in each global prefix: same interface id, so
		// one binding (and one name in DNS) covers both; a prefix being
		// renumbered away goes with preferred 0.
		if g := s.global.Load(); g != nil {
			for _, p := range *g {
				preferred, valid := p.left(now)
				resp.Options.Add(&dhcpv6.OptIAAddress{IPv6Addr: InPrefix(p.Prefix, addr).AsSlice(),
					PreferredLifetime: min(preferred, s.cfg.LeaseTime).Truncate(time.Second), ValidLifetime: min(valid, s.cfg.LeaseTime).Truncate(time.Second)})
			}
		}
		out = append(out, resp)
	}
	return out
}

// SetGlobalPrefixes sets the prefixes from the WAN's delegation that
// this LAN's clients get addresses in, besides the configured range.
func (s *Server6) SetGlobalPrefixes(ps []GlobalPrefix) { s.global.Store(&ps) }

// clientHostname6 is the host name a client gives in its Client FQDN
// option (39, RFC 4704), as one DNS label, or "".
func clientHostname6(msg *dhcpv6.Message) string {
	f := msg.Options.FQDN()
	if f == nil || f.DomainName == nil || len(f.DomainName.Labels) == 0 {
		return ""
	}
	return Sanitize(f.DomainName.Labels[0])
}

// fqdnReply answers a Client FQDN option: the name the client is known by
// in the router's zone, with S set since the router's own resolver serves
// its AAAA and PTR records (RFC 4704 §4.1).
func (s *Server6) fqdnReply(msg *dhcpv6.Message) dhcpv6.Modifier {
	return func(d dhcpv6.DHCPv6) {
		h := clientHostname6(msg)
		if h == "" {
			return
		}
		name := h
		if s.cfg.Domain != "" {
			name += "." + s.cfg.Domain
		}
		d.AddOption(&dhcpv6.OptFQDN{Flags: 0x01, DomainName: &rfc1035label.Labels{Labels: []string{name}}})
	}
}

func (s *Server6) choose(ia *dhcpv6.OptIANA, key string, now time.Time) (netip.Addr, bool) {
	if l, ok := s.store.ByKey(key); ok && s.free(l.Addr, key, now) {
		return l.Addr, true
	}
	for _, a := range ia.Options.Addresses() {
		if want, ok := netip.AddrFromSlice(a.IPv6Addr); ok && s.inPool(want) && s.free(want, key, now) {
			return want, true
		}
	}
	s.mu.Lock()
	a := s.next
	s.mu.Unlock()
	// A range can be huge; a bounded scan from the cursor finds a free
	// address quickly because leases are few compared to the range. A
	// small range is scanned once around, no more.
	for i := 0; i < s.scan; i++ {
		if s.free(a, key, now) {
			s.mu.Lock()
			s.next = s.advance(a)
			s.mu.Unlock()
			return a, true
		}
		a = s.advance(a)
	}
	return netip.Addr{}, false
}

func (s *Server6) advance(a netip.Addr) netip.Addr { return nextInRange(a, s.cfg.Start, s.cfg.End) }

func (s *Server6) inPool(a netip.Addr) bool {
	return a.Is6() && s.cfg.Start.Compare(a) <= 0 && a.Compare(s.cfg.End) <= 0
}

func (s *Server6) free(a netip.Addr, key string, now time.Time) bool {
	if a == s.cfg.Addr.Addr() || s.store.Declined(a, now) {
		return false
	}
	s.mu.Lock()
	o, offered := s.offers[a]
	s.mu.Unlock()
	if offered && o.key != key && now.Before(o.expires) {
		return false
	}
	l, ok := s.store.ByAddr(a)
	return !ok || l.Key() == key || l.Expired(now)
}

func (s *Server6) releaseAll(msg *dhcpv6.Message, duid string, decline bool, now time.Time) {
	for _, ia := range msg.Options.IANA() {
		key := (&Lease{Iface: s.cfg.Iface, DUID: duid, IAID: binary.BigEndian.Uint32(ia.IaId[:])}).Key()
		l, ok := s.store.ByKey(key)
		if !ok {
			continue
		}
		if decline {
			if !s.declines.take(now) {
				s.count("drop_decline_rate")
				continue
			}
			if err := s.store.Decline(s.cfg.Iface, l.Addr, now.Add(declineQuarantine)); err != nil {
				s.cfg.Log.Error("decline", "err", err)
			}
		} else if err := s.store.Release(l); err != nil {
			s.cfg.Log.Error("release DHCPv6 lease", "err", err)
		}
	}
}
