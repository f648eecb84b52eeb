// Package api is routerd's control API: the HTTP handlers behind the
// control socket, which routerctl and the SSH boundary talk to. It owns
// what is HTTP about a request (its arguments parsed and checked, the
// answer encoded, a failure's status code, streams flushed line by line)
// and nothing of what the request does: that is the Backend's, which the
// supervisor implements. The requests and the types they exchange are
// control's, defined once for server and client.
package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"strconv"
	"time"

	"github.com/routerd/routerd/internal/logring"
	"github.com/routerd/routerd/router/control"
	"github.com/routerd/routerd/router/status"
)

// Backend is the running appliance as the control API sees it. A method
// fails with an error; one made by Coded carries its status code (else
// 500). ErrNotRunning (wrapped) says that what was asked for is not
// running now (503).
type Backend interface {
	Status() *status.Status
	Reload() error

	ConfigFile() ([]byte, error)
	ApplyConfig(body []byte, confirm time.Duration) (control.ApplyResult, error)
	ConfirmConfig() error

	VPNPubkey() (string, error)
	Leases() ([]status.Lease, error)
	RemoteAdd(name string, full bool) (control.RemoteDevice, error)
	RemoteDelete(name string) error
	PortMapDelete(proto string, port uint16) error

	// DNSLog is the query log (of client, if valid), and with follow the
	// questions as they come until stop.
	DNSLog(client netip.Addr, follow bool) (past []status.DNSQuery, next <-chan status.DNSQuery, stop func(), err error)
	DNSTop(n int) (status.DNSTop, error)
	Clients() (status.Clients, error)
	Logs(component string, since time.Time, follow bool) (past []logring.Entry, next <-chan logring.Entry, stop func(), err error)
	PreviousBootLog() ([]byte, error)

	Bans() ([]status.Ban, error)
	Unban(a netip.Addr) error
	RefreshBlocklists(ctx context.Context, name string) ([]status.Blocklist, error)

	Power(reboot bool) error
	Update(image io.Reader, req UpdateRequest) (status.UpdateAnswer, error)
}

// UpdateRequest is an upload's arguments (routerctl update).
type UpdateRequest struct {
	SHA256         string
	Signature      string // base64, as given; the backend parses it
	RebootAt       string // "", "now", "never" or HH:MM
	AllowDowngrade bool
}

// ErrNotRunning is wrapped by a backend's error when what was asked for
// is not running (no such section in the config, or routerd starting).
var ErrNotRunning = errors.New("not running")

// Coded gives err the status code its answer carries.
func Coded(code int, err error) error { return &codedError{code, err} }

type codedError struct {
	code int
	err  error
}

func (e *codedError) Error() string { return e.err.Error() }
func (e *codedError) Unwrap() error { return e.err }

// maxConfigSize bounds a config sent by config apply.
const maxConfigSize = 1 << 20

// New returns the control API's handler over b.
func New(b Backend) http.Handler {
	mux := http.NewServeMux()
	handle := func(e control.Endpoint, f func(http.ResponseWriter, *http.Request) (any, error)) {
		mux.HandleFunc(e.Pattern(), func(w http.ResponseWriter, r *http.Request) {
			v, err := f(w, r)
			switch {
			case err != nil:
				fail(w, err)
			case v != nil:
				control.WriteJSON(w, v)
			}
		})
	}
	done := struct{}{}
	handle(control.Status, func(http.ResponseWriter, *http.Request) (any, error) { return b.Status(), nil })
	handle(control.Reload, func(http.ResponseWriter, *http.Request) (any, error) {
		return done, orCode(b.Reload(), http.StatusUnprocessableEntity)
	})
	handle(control.Config, func(w http.ResponseWriter, r *http.Request) (any, error) {
		text, err := b.ConfigFile()
		if err != nil {
			return nil, err
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write(text) // to a client that went away
		return nil, nil
	})
	handle(control.ConfigApply, func(w http.ResponseWriter, r *http.Request) (any, error) {
		var confirm time.Duration
		if v := r.URL.Query().Get("confirm"); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil || d < 5*time.Second || d > 24*time.Hour {
				return nil, Coded(http.StatusBadRequest, fmt.Errorf("--confirm %q: want a duration from 5s to 24h", v))
			}
			confirm = d
		}
		body, err := io.ReadAll(io.LimitReader(r.Body, maxConfigSize+1))
		if err != nil {
			return nil, Coded(http.StatusBadRequest, err)
		}
		if len(body) > maxConfigSize {
			return nil, Coded(http.StatusRequestEntityTooLarge, fmt.Errorf("a config of more than %d bytes", maxConfigSize))
		}
		return b.ApplyConfig(body, confirm)
	})
	handle(control.ConfigConfirm, func(http.ResponseWriter, *http.Request) (any, error) {
		return done, orCode(b.ConfirmConfig(), http.StatusConflict)
	})
	handle(control.VPNPubkey, func(http.ResponseWriter, *http.Request) (any, error) {
		k, err := b.VPNPubkey()
		return map[string]string{"public_key": k}, err
	})
	handle(control.Leases, func(http.ResponseWriter, *http.Request) (any, error) {
		ls, err := b.Leases()
		return status.Leases{Leases: ls}, err
	})
	handle(control.RemoteAdd, func(w http.ResponseWriter, r *http.Request) (any, error) {
		return b.RemoteAdd(r.PathValue("name"), r.URL.Query().Get("full") == "1")
	})
	handle(control.RemoteDelete, func(w http.ResponseWriter, r *http.Request) (any, error) {
		return map[string]string{"deleted": r.PathValue("name")}, b.RemoteDelete(r.PathValue("name"))
	})
	handle(control.PortMapDelete, func(w http.ResponseWriter, r *http.Request) (any, error) {
		proto, port := r.PathValue("proto"), r.PathValue("port")
		n, err := strconv.ParseUint(port, 10, 16)
		if err != nil {
			return nil, Coded(http.StatusNotFound, fmt.Errorf("no mapping of %s/%s", proto, port))
		}
		return map[string]string{"deleted": proto + "/" + port}, b.PortMapDelete(proto, uint16(n))
	})
	handle(control.DNSLog, func(w http.ResponseWriter, r *http.Request) (any, error) {
		q := r.URL.Query()
		var client netip.Addr
		if s := q.Get("client"); s != "" {
			a, err := netip.ParseAddr(s)
			if err != nil {
				return nil, Coded(http.StatusBadRequest, fmt.Errorf("--client %q: want an IP address", s))
			}
			client = a
		}
		past, next, stop, err := b.DNSLog(client, q.Get("follow") == "1")
		if err != nil {
			return nil, err
		}
		defer stop()
		asJSON := q.Get("json") == "1"
		stream(w, r, past, next, func(e status.DNSQuery) {
			if client.IsValid() && e.Client != client.String() {
				return
			}
			if asJSON {
				b, _ := json.Marshal(e) // routerd's own type: it encodes
				fmt.Fprintf(w, "%s\n", b)
				return
			}
			fmt.Fprintln(w, e.Line())
		})
		return nil, nil
	})
	handle(control.DNSTop, func(w http.ResponseWriter, r *http.Request) (any, error) {
		n, _ := strconv.Atoi(r.URL.Query().Get("n")) // not a number: the default
		if n <= 0 {
			n = 20
		}
		return b.DNSTop(n)
	})
	handle(control.Clients, func(w http.ResponseWriter, r *http.Request) (any, error) { return b.Clients() })
	handle(control.Logs, func(w http.ResponseWriter, r *http.Request) (any, error) {
		q := r.URL.Query()
		if q.Get("previous") == "1" {
			text, err := b.PreviousBootLog()
			if err != nil {
				return nil, err
			}
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			_, _ = w.Write(text) // to a client that went away
			return nil, nil
		}
		var since time.Time
		if v := q.Get("since"); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				return nil, Coded(http.StatusBadRequest, fmt.Errorf("--since %q: want a duration such as 10m", v))
			}
			since = time.Now().Add(-d)
		}
		component := q.Get("component")
		past, next, stop, err := b.Logs(component, since, q.Get("follow") == "1")
		if err != nil {
			return nil, err
		}
		defer stop()
		stream(w, r, past, next, func(e logring.Entry) {
			if component == "" || e.Component == component {
				fmt.Fprintln(w, e.Line)
			}
		})
		return nil, nil
	})
	handle(control.Bans, func(http.ResponseWriter, *http.Request) (any, error) {
		bs, err := b.Bans()
		if err != nil && len(bs) > 0 {
			err = nil // some namespaces answered: show what they have
		}
		return status.Bans{Bans: bs}, err
	})
	handle(control.BanDelete, func(w http.ResponseWriter, r *http.Request) (any, error) {
		a, err := netip.ParseAddr(r.PathValue("addr"))
		if err != nil {
			return nil, Coded(http.StatusBadRequest, fmt.Errorf("%q is not an IP address", r.PathValue("addr")))
		}
		return done, b.Unban(a)
	})
	handle(control.BlocklistRefresh, func(w http.ResponseWriter, r *http.Request) (any, error) {
		ctx, cancel := context.WithTimeout(r.Context(), 10*time.Minute)
		defer cancel()
		out, err := b.RefreshBlocklists(ctx, r.URL.Query().Get("name"))
		return status.Blocklists{Lists: out}, orCode(err, http.StatusNotFound)
	})
	handle(control.Poweroff, func(http.ResponseWriter, *http.Request) (any, error) { return done, b.Power(false) })
	handle(control.Reboot, func(http.ResponseWriter, *http.Request) (any, error) { return done, b.Power(true) })
	handle(control.Update, func(w http.ResponseWriter, r *http.Request) (any, error) {
		q := r.URL.Query()
		return b.Update(r.Body, UpdateRequest{SHA256: q.Get("sha256"), Signature: q.Get("signature"),
			RebootAt: q.Get("reboot_at"), AllowDowngrade: q.Get("allow_downgrade") == "1"})
	})
	// Profiles, for whoever can reach the socket (root): go tool pprof
	// against curl --unix-socket ... /debug/pprof/profile.
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		control.WriteError(w, http.StatusNotFound, errors.New("unknown request "+r.Method+" "+r.URL.Path))
	})
	return mux
}

// orCode gives err code unless it has one.
func orCode(err error, code int) error {
	var c *codedError
	if err == nil || errors.As(err, &c) || errors.Is(err, ErrNotRunning) {
		return err
	}
	return Coded(code, err)
}

// fail answers err with its status code.
func fail(w http.ResponseWriter, err error) {
	code := http.StatusInternalServerError
	var c *codedError
	switch {
	case errors.As(err, &c):
		code = c.code
	case errors.Is(err, ErrNotRunning):
		code = http.StatusServiceUnavailable
	}
	control.WriteError(w, code, err)
}

// stream answers with lines of text: past's, then next's as they come,
// each flushed, until the caller goes (next nil: past only).
func stream[T any](w http.ResponseWriter, r *http.Request, past []T, next <-chan T, write func(T)) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	for _, e := range past {
		write(e)
	}
	if next == nil {
		return
	}
	flusher, _ := w.(http.Flusher)
	for {
		if flusher != nil {
			flusher.Flush()
		}
		select {
		case <-r.Context().Done():
			return
		case e := <-next:
			write(e)
		}
	}
}
