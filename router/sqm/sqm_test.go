package sqm

import (
	"encoding/binary"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// TestCakeOptions: the attributes say what tc-cake(8) would for
// "bandwidth 38mbit diffserv4 dual-srchost overhead 38 mpu 84 noatm".
func TestCakeOptions(t *testing.T) {
	c := Cake{Rate: 38e6, Overhead: 38, MPU: 84, FlowMode: FlowDualSrc}
	attrs, err := nl.ParseRouteAttr(c.options().Serialize()[4:])
	if err != nil {
		t.Fatal(err)
	}
	got := map[uint16][]byte{}
	for _, a := range attrs {
		got[a.Attr.Type] = a.Value
	}
	u32 := func(k uint16) uint32 { return binary.NativeEndian.Uint32(got[k]) }
	if r := binary.NativeEndian.Uint64(got[tcaCakeBaseRate64]); r != 38e6/8 {
		t.Errorf("rate %d bytes/s, want %d", r, int(38e6/8))
	}
	for k, want := range map[uint16]uint32{tcaCakeDiffservMode: diffserv4, tcaCakeFlowMode: FlowDualSrc, tcaCakeOverhead: 38,
		tcaCakeMPU: 84, tcaCakeATM: FramingNone, tcaCakeIngress: 0, tcaCakeNAT: 0, tcaCakeSplitGSO: 1} {
		if v := u32(k); v != want {
			t.Errorf("attribute %d = %d, want %d", k, v, want)
		}
	}
	neg := Cake{Rate: 1e6, Overhead: -4}
	for _, a := range must(nl.ParseRouteAttr(neg.options().Serialize()[4:])) {
		if a.Attr.Type == tcaCakeOverhead && int32(binary.NativeEndian.Uint32(a.Value)) != -4 {
			t.Errorf("a negative overhead encoded as %d", int32(binary.NativeEndian.Uint32(a.Value)))
		}
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// statsMessage builds a qdisc message as the kernel sends one for CAKE.
func statsMessage() []byte {
	kind := nl.NewRtAttr(unix.TCA_KIND, nl.ZeroTerminated("cake"))
	opts := nl.NewRtAttr(unix.TCA_OPTIONS, nil)
	opts.AddRtAttr(tcaCakeBaseRate64, nl.Uint64Attr(1e6))
	st := nl.NewRtAttr(tcaStats2|unix.NLA_F_NESTED, nil)
	basic := make([]byte, 16)
	binary.NativeEndian.PutUint64(basic, 123456)
	binary.NativeEndian.PutUint32(basic[8:], 99)
	st.AddRtAttr(tcaStatsBasic, basic)
	queue := make([]byte, 20)
	binary.NativeEndian.PutUint32(queue[8:], 7)
	st.AddRtAttr(tcaStatsQueue, queue)
	app := st.AddRtAttr(tcaStatsApp|unix.NLA_F_NESTED, nil)
	tins := app.AddRtAttr(cakeStatsTinStats|unix.NLA_F_NESTED, nil)
	for i := 1; i <= 4; i++ {
		tin := tins.AddRtAttr(i|unix.NLA_F_NESTED, nil)
		tin.AddRtAttr(tinSentPackets, nl.Uint32Attr(uint32(100*i)))
		tin.AddRtAttr(tinDroppedPackets, nl.Uint32Attr(uint32(i)))
		tin.AddRtAttr(tinAvgDelayUS, nl.Uint32Attr(uint32(500*i)))
		tin.AddRtAttr(tinThresholdRate64, nl.Uint64Attr(uint64(1e6/i)))
	}
	var b []byte
	for _, a := range []*nl.RtAttr{kind, opts, st} {
		b = append(b, a.Serialize()...)
	}
	return b
}

func TestParseStats(t *testing.T) {
	s, err := parseStats(statsMessage())
	if err != nil {
		t.Fatal(err)
	}
	if s.Rate != 8e6 || s.Bytes != 123456 || s.Packets != 99 || s.Drops != 7 || len(s.Tins) != 4 {
		t.Fatalf("%+v", s)
	}
	if v := s.Tins[3]; v.Name != "voice" || v.Sent != 400 || v.Drops != 4 || v.AvgDelay != 2*time.Millisecond || v.Rate != 2e6 {
		t.Errorf("voice tin %+v", v)
	}
}

// FuzzParseStats: whatever the kernel's message holds, parsing it never
// reads past an attribute.
func FuzzParseStats(f *testing.F) {
	f.Add(statsMessage())
	f.Add([]byte{8, 0, 7, 0, 4, 0, 4, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = parseStats(b)
	})
}

// A class's filters: per family of its hosts, per port at either end, the
// host on the LAN side of the direction; each sets the tin and redirects;
// all the rest is redirected after them.
func TestClassFilters(t *testing.T) {
	classes := []Class{
		{Tin: TinBulk, Hosts: []netip.Prefix{netip.MustParsePrefix("192.168.1.50/32")}},
		{Tin: TinVoice, Ports: []PortRange{{Proto: unix.IPPROTO_UDP, Lo: 3478, Hi: 3480}}},
	}
	up := filters(classes, 7, 100, netlink.HANDLE_MIN_EGRESS)
	// bulk: one IPv4 filter; voice: IPv4 and IPv6 × source and
	// destination port; the redirect.
	if len(up) != 1+4+1 {
		t.Fatalf("%d filters: %v", len(up), up)
	}
	bulk := up[0].(*netlink.Flower)
	if !bulk.SrcIP.Equal(net.IPv4(192, 168, 1, 50)) || bulk.DestIP != nil || bulk.Protocol != unix.ETH_P_IP || bulk.Priority != 1 {
		t.Errorf("upload bulk filter: %+v", bulk)
	}
	if skb := bulk.Actions[0].(*netlink.SkbEditAction); *skb.Priority != 0x10001 {
		t.Errorf("bulk priority %#x, want 1:1", *skb.Priority)
	}
	if m := bulk.Actions[1].(*netlink.MirredAction); m.Ifindex != 100 {
		t.Errorf("bulk redirect to %d", m.Ifindex)
	}
	v6 := 0
	for _, f := range up[1:5] {
		fl := f.(*netlink.Flower)
		if fl.Protocol == unix.ETH_P_IP && fl.Priority != 3 {
			t.Errorf("the second class's IPv4 filter at priority %d", fl.Priority)
		}
		if fl.DstPortRangeMin == 0 && fl.SrcPortRangeMin == 0 || *fl.IPProto != unix.IPPROTO_UDP {
			t.Errorf("voice filter without its ports: %+v", fl)
		}
		if fl.Protocol == unix.ETH_P_IPV6 {
			v6++
			if fl.Priority != 4 { // the second class's IPv6
				t.Errorf("IPv6 filter at priority %d", fl.Priority)
			}
		}
	}
	if v6 != 2 {
		t.Errorf("%d IPv6 voice filters, want 2", v6)
	}
	if m, ok := up[5].(*netlink.MatchAll); !ok || m.Priority != prioRedirect {
		t.Errorf("last filter %+v, want the redirect", up[5])
	}
	// Downloads go to the host.
	down := filters(classes, 7, 101, netlink.HANDLE_MIN_INGRESS)
	if b := down[0].(*netlink.Flower); !b.DestIP.Equal(net.IPv4(192, 168, 1, 50)) || b.SrcIP != nil {
		t.Errorf("download bulk filter: %+v", b)
	}
	// Handles are unique per priority.
	seen := map[[2]uint32]bool{}
	for _, f := range append(up, down...) {
		k := [2]uint32{uint32(f.Attrs().Priority)<<16 | f.Attrs().Parent&0xffff, f.Attrs().Handle}
		if seen[k] {
			t.Errorf("handle %x twice at priority %d", f.Attrs().Handle, f.Attrs().Priority)
		}
		seen[k] = true
	}
}
