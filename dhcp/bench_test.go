package dhcp

import (
	"net"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// BenchmarkHandleDORA measures the server's own cost per DISCOVER+REQUEST,
// lease commits (fsync) included, many exchanges in flight at once.
func BenchmarkHandleDORA(b *testing.B) {
	s := testServer(b, nil)
	s.cfg.End = s.cfg.Start.Next().Next().Next().Next().Next().Next().Next().Next().Next().Next() // a few addresses, clients cycle
	b.ReportAllocs()
	b.SetParallelism(16)
	var n uint32
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := int(n%8) + 1
			n++
			m := net.HardwareAddr{2, 0, 0, 0, 0, byte(i)}
			d, _ := dhcpv4.NewDiscovery(m)
			offer := s.Handle(d, time.Now())
			if offer == nil {
				continue
			}
			req, _ := dhcpv4.NewRequestFromOffer(offer)
			s.Handle(req, time.Now())
		}
	})
	b.ReportMetric(float64(s.store.Stats().Records)/float64(max(1, s.store.Stats().Commits)), "records/fsync")
}
