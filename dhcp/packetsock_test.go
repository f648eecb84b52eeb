package dhcp

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"golang.org/x/net/bpf"
)

// TestClientFilter runs the client socket's filter on the packets a WAN
// carries: only what can be a DHCP answer reaches routerd.
func TestClientFilter(t *testing.T) {
	vm, err := bpf.NewVM(mustDisassemble(t, clientFilter))
	if err != nil {
		t.Fatal(err)
	}
	server, client := netip.MustParseAddr("203.0.113.1"), netip.MustParseAddr("203.0.113.100")
	payload := make([]byte, 300)
	fragment := func(p []byte) []byte {
		p = append([]byte(nil), p...)
		binary.BigEndian.PutUint16(p[6:], 0x2000|185) // more fragments, offset 1480
		return p
	}
	withOptions := func(p []byte) []byte { // a 24-byte IP header
		q := append(append([]byte(nil), p[:20]...), 1, 1, 1, 0)
		q[0] = 0x46
		return append(q, p[20:]...)
	}
	tcp := ipv4UDP(server, client, 67, 68, payload)
	tcp[9] = 6
	for _, tt := range []struct {
		name string
		pkt  []byte
		want bool
	}{
		{"DHCP answer", ipv4UDP(server, client, 67, 68, payload), true},
		{"DHCP answer, IP options", withOptions(ipv4UDP(server, client, 67, 68, payload)), true},
		{"DHCP answer broadcast", ipv4UDP(server, netip.MustParseAddr("255.255.255.255"), 67, 68, payload), true},
		{"DNS answer", ipv4UDP(server, client, 53, 40000, payload), false},
		{"DHCP request (to the server port)", ipv4UDP(client, server, 68, 67, payload), false},
		{"DNS to port 68 from options", withOptions(ipv4UDP(server, client, 68, 53, payload)), false},
		{"TCP", tcp, false},
		{"later fragment", fragment(ipv4UDP(server, client, 67, 68, payload)), false},
		{"truncated", ipv4UDP(server, client, 67, 68, payload)[:21], false},
	} {
		n, err := vm.Run(tt.pkt)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if got := n > 0; got != tt.want {
			t.Errorf("%s: accepted = %v, want %v", tt.name, got, tt.want)
		}
		if tt.want && n < len(tt.pkt) {
			t.Errorf("%s: %d of %d bytes kept", tt.name, n, len(tt.pkt))
		}
	}
}

func mustDisassemble(t *testing.T, raw []bpf.RawInstruction) []bpf.Instruction {
	t.Helper()
	prog, ok := bpf.Disassemble(raw)
	if !ok {
		t.Fatal("filter does not disassemble")
	}
	return prog
}
