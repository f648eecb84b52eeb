// Package portmap lets LAN devices ask the router for a port on its WAN
// address (game consoles, P2P: "strict NAT" otherwise): NAT-PMP (RFC 6886)
// and PCP's MAP (RFC 6887), which share UDP port 5351. It owns the
// protocols' wire formats (Handle cores, fuzzed: every byte comes from
// the LAN) and the table of mappings with its policy (a client maps only
// to itself, within the allowed ports, at most so many, each for a
// bounded time). Putting a mapping into the firewall is the router's.
package portmap

import (
	"errors"
	"net/netip"
	"slices"
	"sync"
	"time"
)

// Mapping is one port of the WAN address forwarded to a LAN host.
type Mapping struct {
	Proto    string     `json:"proto"` // "tcp" | "udp"
	External uint16     `json:"external"`
	Client   netip.Addr `json:"client"`
	Internal uint16     `json:"internal"`
	Expires  time.Time  `json:"expires"`
	By       string     `json:"by"` // "natpmp" | "pcp" | "upnp"
	// Description is UPnP's (what the application called it).
	Description string `json:"description,omitempty"`
	// Nonce is PCP's: only the same nonce may renew or delete it.
	Nonce [12]byte `json:"nonce"`
}

// Policy bounds what clients may map.
type Policy struct {
	From, To     uint16 // the external ports allowed
	MaxPerClient int
	MaxLifetime  time.Duration
	// Allowed says whether a client may map at all (a client whose
	// traffic takes the VPN may not: its connections do not leave by
	// the WAN, so nothing from the WAN could answer).
	Allowed func(client netip.Addr) bool
}

// Errors a request can meet, which each protocol turns into its result
// code.
var (
	ErrNotAuthorized = errors.New("not authorized")   // a VPN-path client, or another's mapping
	ErrNoResources   = errors.New("no resources")     // the client's quota, or no free port
	ErrUnsupported   = errors.New("unsupported")      // protocol
	ErrMismatch      = errors.New("address mismatch") // PCP: the client's address is not the packet's
	ErrConflict      = errors.New("port taken")       // UPnP: the exact port asked for is another's
)

type key struct {
	proto string
	port  uint16
}

// Table is the mappings. Changes made by Map, Unmap and Expire are
// reported to OnChange (added, removed), in the caller's goroutine, while
// the table is locked: the router puts them in the firewall in order.
type Table struct {
	policy   Policy
	OnChange func(added, removed []Mapping)

	mu sync.Mutex
	m  map[key]Mapping
}

// NewTable returns an empty table.
func NewTable(p Policy) *Table { return &Table{policy: p, m: map[key]Mapping{}} }

// Restore puts mappings back (from before a restart), dropping expired
// ones and any the policy no longer allows; it reports what it kept.
func (t *Table) Restore(ms []Mapping, now time.Time) []Mapping {
	t.mu.Lock()
	defer t.mu.Unlock()
	var kept []Mapping
	for _, m := range ms {
		if !m.Expires.After(now) || m.External < t.policy.From || m.External > t.policy.To || (t.policy.Allowed != nil && !t.policy.Allowed(m.Client)) {
			continue
		}
		t.m[key{m.Proto, m.External}] = m
		kept = append(kept, m)
	}
	return kept
}

// Map maps a client's internal port for lifetime, on the suggested
// external port if it is free (or the client's already), else the
// nearest free one; renewing a client's mapping keeps its port.
func (t *Table) Map(req Mapping, lifetime time.Duration, now time.Time) (Mapping, error) {
	return t.mapPort(req, lifetime, now, false)
}

// MapExact is Map on exactly the external port asked for (UPnP's
// AddPortMapping): ErrConflict when it is another client's or not allowed.
func (t *Table) MapExact(req Mapping, lifetime time.Duration, now time.Time) (Mapping, error) {
	return t.mapPort(req, lifetime, now, true)
}

func (t *Table) mapPort(req Mapping, lifetime time.Duration, now time.Time, exact bool) (Mapping, error) {
	if req.Proto != "tcp" && req.Proto != "udp" {
		return Mapping{}, ErrUnsupported
	}
	if t.policy.Allowed != nil && !t.policy.Allowed(req.Client) {
		return Mapping{}, ErrNotAuthorized
	}
	lifetime = min(lifetime, t.policy.MaxLifetime)
	t.mu.Lock()
	defer t.mu.Unlock()
	if req.By == "upnp" {
		// UPnP names a mapping by its external port, and several may lead
		// to one internal port: the client's own is renewed (or moved),
		// another's is a conflict.
		k := key{req.Proto, req.External}
		if m, ok := t.m[k]; ok {
			if m.Client != req.Client {
				if exact {
					return Mapping{}, ErrConflict
				}
			} else {
				m.Internal, m.Description, m.Expires = req.Internal, req.Description, now.Add(lifetime)
				t.m[k] = m
				return m, nil
			}
		} else if exact && (req.External < t.policy.From || req.External > t.policy.To) {
			return Mapping{}, ErrConflict
		}
		return t.addLocked(req, lifetime, now)
	}
	// The client's mapping of this internal port already: renewed.
	for k, m := range t.m {
		if m.Client == req.Client && m.Proto == req.Proto && m.Internal == req.Internal {
			if m.By == "pcp" && req.By == "pcp" && m.Nonce != req.Nonce {
				return Mapping{}, ErrNotAuthorized
			}
			m.Expires = now.Add(lifetime)
			t.m[k] = m
			return m, nil
		}
	}
	return t.addLocked(req, lifetime, now)
}

// addLocked adds a new mapping for req, on its external port if free, else
// the nearest free one; t.mu is held.
func (t *Table) addLocked(req Mapping, lifetime time.Duration, now time.Time) (Mapping, error) {
	n := 0
	for _, m := range t.m {
		if m.Client == req.Client {
			n++
		}
	}
	if n >= t.policy.MaxPerClient {
		return Mapping{}, ErrNoResources
	}
	port, ok := t.freePort(req.Proto, req.External)
	if !ok {
		return Mapping{}, ErrNoResources
	}
	m := req
	m.External, m.Expires = port, now.Add(lifetime)
	t.m[key{m.Proto, port}] = m
	if t.OnChange != nil {
		t.OnChange([]Mapping{m}, nil)
	}
	return m, nil
}

// freePort is want if it is allowed and free, else the next free allowed
// port after it (wrapping round); t.mu is held.
func (t *Table) freePort(proto string, want uint16) (uint16, bool) {
	lo, hi := t.policy.From, t.policy.To
	if want < lo || want > hi {
		want = lo
	}
	for i := 0; i <= int(hi-lo); i++ {
		p := lo + uint16((int(want-lo)+i)%(int(hi-lo)+1))
		if _, used := t.m[key{proto, p}]; !used {
			return p, true
		}
	}
	return 0, false
}

// Unmap removes a client's mapping of an internal port (0: all its
// mappings of proto). PCP's must carry the mapping's nonce.
func (t *Table) Unmap(client netip.Addr, proto string, internal uint16, by string, nonce [12]byte) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	var gone []Mapping
	for k, m := range t.m {
		if m.Client != client || m.Proto != proto || (internal != 0 && m.Internal != internal) {
			continue
		}
		if by == "pcp" && m.By == "pcp" && m.Nonce != nonce {
			return ErrNotAuthorized
		}
		delete(t.m, k)
		gone = append(gone, m)
	}
	if len(gone) > 0 && t.OnChange != nil {
		t.OnChange(nil, gone)
	}
	return nil
}

// Get returns the mapping of an external port.
func (t *Table) Get(proto string, external uint16) (Mapping, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	m, ok := t.m[key{proto, external}]
	return m, ok
}

// Delete removes the mapping of an external port (routerctl portmap
// delete); false when there is none.
func (t *Table) Delete(proto string, external uint16) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	m, ok := t.m[key{proto, external}]
	if !ok {
		return false
	}
	delete(t.m, key{proto, external})
	if t.OnChange != nil {
		t.OnChange(nil, []Mapping{m})
	}
	return true
}

// Expire removes the mappings whose time is up.
func (t *Table) Expire(now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	var gone []Mapping
	for k, m := range t.m {
		if !m.Expires.After(now) {
			delete(t.m, k)
			gone = append(gone, m)
		}
	}
	if len(gone) > 0 && t.OnChange != nil {
		t.OnChange(nil, gone)
	}
}

// List is the mappings, by protocol and external port.
func (t *Table) List() []Mapping {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]Mapping, 0, len(t.m))
	for _, m := range t.m {
		out = append(out, m)
	}
	slices.SortFunc(out, func(a, b Mapping) int {
		if a.Proto != b.Proto {
			if a.Proto < b.Proto {
				return -1
			}
			return 1
		}
		return int(a.External) - int(b.External)
	})
	return out
}
