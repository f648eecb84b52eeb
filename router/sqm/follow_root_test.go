package sqm

import (
	"net"
	"os"
	"testing"
	"time"

	"github.com/routerd/routerd/internal/rawicmp"
)

// The loop's socket work against the kernel's own answers: a timestamp
// request to the loopback address is answered (Linux answers them), and
// the reply is read with the kernel's receive time.
func TestTimestampLoopback(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("raw sockets need root")
	}
	c, err := rawicmp.Listen("", "")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sent := time.Now()
	if _, err := c.WriteTo(timestampRequest(77, 1, msOfDay(sent)), &net.IPAddr{IP: net.IPv4(127, 0, 0, 1)}); err != nil {
		t.Fatal(err)
	}
	f := &Follower{}
	got := f.read(t.Context(), c, make([]byte, 1500), 77, time.Now().Add(2*time.Second))
	if len(got) == 0 {
		t.Fatal("no answer to a timestamp request on the loopback")
	}
	if o := got[0]; o.Up < -time.Millisecond || o.Up > 50*time.Millisecond || o.Down < -time.Millisecond || o.Down > 50*time.Millisecond {
		t.Errorf("one-way delays on the loopback: %+v", o)
	}
}
