package control

import (
	"net/url"
	"testing"
)

func TestEndpointURL(t *testing.T) {
	if got := BanDelete.URL(nil, "2001:db8::/64"); got != "/v1/bans/2001:db8::%2F64" {
		t.Errorf("BanDelete.URL = %q", got)
	}
	if got := BlocklistRefresh.URL(url.Values{"name": {"rkn"}}); got != "/v1/blocklist/refresh?name=rkn" {
		t.Errorf("BlocklistRefresh.URL = %q", got)
	}
	if got := Status.Pattern(); got != "GET /v1/status" {
		t.Errorf("Status.Pattern = %q", got)
	}
}
