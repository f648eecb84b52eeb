package router

import (
	"net/netip"
	"testing"

	"github.com/routerd/routerd/router/config"
)

func TestParseInspect(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		want       containerAddrs
	}{
		{"bridge", `{"State":{"Running":true},"NetworkSettings":{"IPAddress":"172.17.0.2","Networks":{"bridge":{"IPAddress":"172.17.0.2","GlobalIPv6Address":""}}}}`,
			containerAddrs{V4: netip.MustParseAddr("172.17.0.2")}},
		{"two networks, the first by name wins", `{"State":{"Running":true},"NetworkSettings":{"Networks":{"zeta":{"IPAddress":"172.19.0.3"},"app":{"IPAddress":"172.18.0.5","GlobalIPv6Address":"fd00:db8::5"}}}}`,
			containerAddrs{V4: netip.MustParseAddr("172.18.0.5"), V6: netip.MustParseAddr("fd00:db8::5")}},
		{"stopped", `{"State":{"Running":false},"NetworkSettings":{"Networks":{"bridge":{"IPAddress":""}}}}`, containerAddrs{Err: "not running"}},
		{"host networking", `{"State":{"Running":true},"NetworkSettings":{"Networks":{"host":{"IPAddress":""}}}}`,
			containerAddrs{Err: "no address (host networking? publish \"host:PORT\" instead)"}},
	} {
		if got := parseInspect([]byte(tc.body)); got != tc.want {
			t.Errorf("%s: %+v, want %+v", tc.name, got, tc.want)
		}
	}
	if got := parseInspect([]byte("{")); got.Err == "" || got.V4.IsValid() {
		t.Errorf("malformed answer: %+v, want an error", got)
	}
}

func TestPublishWith(t *testing.T) {
	lanHost := config.Publish{Name: "nas", Port: 443, To: netip.MustParseAddrPort("192.168.1.10:443")}
	web := config.Publish{Name: "web", Port: 80, Container: "web", ContainerPort: 8080}
	db := config.Publish{Name: "db", Port: 5432, Container: "db", ContainerPort: 5432}
	got := publishWith([]config.Publish{lanHost, web, db}, map[string]containerAddrs{
		"web": {V4: netip.MustParseAddr("172.17.0.2"), V6: netip.MustParseAddr("fd00:db8::2")},
		"db":  {Err: "not running"},
	})
	if len(got) != 2 || got[0].To != lanHost.To || got[1].To != netip.MustParseAddrPort("172.17.0.2:8080") ||
		got[1].To6 != netip.MustParseAddrPort("[fd00:db8::2]:8080") {
		t.Errorf("publishWith = %+v, want the LAN host and web at 172.17.0.2:8080 and [fd00:db8::2]:8080, db left out", got)
	}
}
