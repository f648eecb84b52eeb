package control

import (
	"net/url"
	"strings"
	"time"
)

// Endpoint is one request of the control API. The requests are defined
// here once: routerd registers its handlers by them (Pattern), routerctl,
// the SSH boundary and the boot health check ask by them (Method, URL).
type Endpoint struct {
	Method string
	Path   string // with {name} wildcards, as http.ServeMux takes them
}

// The control API.
var (
	Status           = Endpoint{"GET", "/v1/status"}
	Reload           = Endpoint{"POST", "/v1/reload"}
	Leases           = Endpoint{"GET", "/v1/leases"}
	VPNPubkey        = Endpoint{"GET", "/v1/vpn/pubkey"}
	Logs             = Endpoint{"GET", "/v1/logs"} // a stream with ?follow
	Bans             = Endpoint{"GET", "/v1/bans"}
	BanDelete        = Endpoint{"DELETE", "/v1/bans/{addr}"}
	Config           = Endpoint{"GET", "/v1/config"}
	ConfigApply      = Endpoint{"POST", "/v1/config"} // ?confirm=D
	ConfigConfirm    = Endpoint{"POST", "/v1/config/confirm"}
	Poweroff         = Endpoint{"POST", "/v1/poweroff"}
	Reboot           = Endpoint{"POST", "/v1/reboot"}
	Update           = Endpoint{"POST", "/v1/update"}            // the image in the body
	BlocklistRefresh = Endpoint{"POST", "/v1/blocklist/refresh"} // ?name=N
	DNSLog           = Endpoint{"GET", "/v1/dns/log"}            // a stream with ?follow, ?client=A, ?json
	DNSTop           = Endpoint{"GET", "/v1/dns/top"}            // ?n=N
	RemoteAdd        = Endpoint{"POST", "/v1/remote/{name}"}     // ?full=1
	RemoteDelete     = Endpoint{"DELETE", "/v1/remote/{name}"}
	PortMapDelete    = Endpoint{"DELETE", "/v1/portmap/{proto}/{port}"}
	Clients          = Endpoint{"GET", "/v1/clients"}
)

// ApplyResult answers routerctl config apply.
type ApplyResult struct {
	Hash      string    `json:"config_hash"`
	Unchanged bool      `json:"unchanged,omitempty"`
	ConfirmBy time.Time `json:"confirm_by,omitempty"`
}

// RemoteDevice is what remote add answers: the device's WireGuard config.
type RemoteDevice struct {
	Name   string `json:"name"`
	Config string `json:"config"` // wg-quick format, with the device's private key
}

// Pattern is the endpoint as http.ServeMux registers it.
func (e Endpoint) Pattern() string { return e.Method + " " + e.Path }

// URL is the endpoint's path with its wildcards filled by args, in order
// (each escaped), and the query q (nil or empty: none).
func (e Endpoint) URL(q url.Values, args ...string) string {
	p := e.Path
	for _, a := range args {
		i := strings.Index(p, "{")
		j := strings.Index(p, "}")
		if i < 0 || j < i {
			break
		}
		p = p[:i] + url.PathEscape(a) + p[j+1:]
	}
	if len(q) > 0 {
		p += "?" + q.Encode()
	}
	return p
}
