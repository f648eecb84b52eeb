package nflog

import (
	"encoding/binary"
	"testing"

	"github.com/mdlayher/netlink"
)

func packet(t testing.TB, family byte, attrs []netlink.Attribute) []byte {
	b, err := netlink.MarshalAttributes(attrs)
	if err != nil {
		t.Fatal(err)
	}
	return append([]byte{family, 0, 0x20, 0x51}, b...)
}

// TestParse: a netdev table's message (family 5) is read like an inet
// one; an attribute of the wrong size is left out, not misread.
func TestParse(t *testing.T) {
	be := func(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }
	b := packet(t, 5, []netlink.Attribute{
		{Type: attrPrefix, Data: []byte("syn_fin_lan0\x00")},
		{Type: attrIndev, Data: be(3)},
		{Type: attrOutdev, Data: []byte{1, 2}},
		{Type: attrPayload, Data: []byte{0x45, 0, 0, 20}},
	})
	m, err := Parse(b)
	if err != nil || m.Family != 5 || m.Prefix != "syn_fin_lan0" || m.InDev != 3 || m.OutDev != 0 || len(m.Payload) != 4 {
		t.Errorf("Parse = %+v, %v", m, err)
	}
	if _, err := Parse([]byte{2, 0}); err == nil {
		t.Error("a short message parsed")
	}
}

func FuzzParse(f *testing.F) {
	f.Add(packet(f, 2, []netlink.Attribute{{Type: attrPrefix, Data: []byte("input\x00")}, {Type: attrPayload, Data: []byte{0x60}}}))
	f.Add([]byte{5, 0, 0, 0, 8, 0, 4, 0, 0, 0, 0, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		Parse(b)
	})
}
