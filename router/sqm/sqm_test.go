package sqm

import (
	"encoding/binary"
	"testing"
	"time"

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
