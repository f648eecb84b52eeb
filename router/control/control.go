// Package control is the transport between routerd and routerctl: HTTP with
// JSON bodies over a unix socket that only root can reach (directory 0700,
// socket 0600): the requests and their types, defined once (api.go), and
// the client. It knows nothing of what is served: router/api serves the
// socket and routerctl decodes the answers.
//
// Being plain HTTP, the socket can also be read by hand:
//
//	curl --unix-socket /run/routerd/routerd.sock http://routerd/v1/status
package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"syscall"
	"time"
)

// DefaultSocket is where routerd listens and routerctl asks unless told
// otherwise.
const DefaultSocket = "/run/routerd/routerd.sock"

// Error is the body of every non-2xx answer.
type Error struct {
	Error string `json:"error"`
}

// WriteJSON writes v as the answer.
func WriteJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v) // to a client that went away; v is routerd's own type, which encodes
}

// WriteError answers with status code and a one-line reason.
func WriteError(w http.ResponseWriter, code int, err error) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(Error{Error: err.Error()}) // to a client that went away
}

// Client talks to routerd's control socket.
type Client struct {
	Socket string
	hc     *http.Client
}

// NewClient returns a client for the socket at path.
func NewClient(path string) *Client {
	return &Client{Socket: path, hc: &http.Client{
		Timeout: 60 * time.Second,
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		}},
	}}
}

// WithTimeout returns a client like c whose requests may take d.
func (c *Client) WithTimeout(d time.Duration) *Client {
	hc := *c.hc
	hc.Timeout = d
	return &Client{Socket: c.Socket, hc: &hc}
}

// ErrNotRunning means nothing listens on the socket.
var ErrNotRunning = errors.New("routerd is not running")

// Do sends a request and decodes a JSON answer into out (which may be nil),
// or returns the server's error as a Go error. raw, when non-nil, receives
// the body unparsed.
func (c *Client) Do(ctx context.Context, method, path string, out any, raw *[]byte) error {
	return c.DoBody(ctx, method, path, nil, out, raw)
}

// Stream copies the body of a GET answer to w as it arrives (routerctl
// logs -f), until the answer ends or ctx does.
func (c *Client) Stream(ctx context.Context, path string, w io.Writer) error {
	req, err := http.NewRequestWithContext(ctx, "GET", "http://routerd"+path, nil)
	if err != nil {
		return err
	}
	hc := *c.hc
	hc.Timeout = 0 // a follower may listen for hours; ctx ends it
	resp, err := hc.Do(req)
	if err != nil {
		if errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED) {
			return fmt.Errorf("%w (no socket at %s)", ErrNotRunning, c.Socket)
		}
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		body, _ := io.ReadAll(resp.Body)
		var e Error
		if json.Unmarshal(body, &e) == nil && e.Error != "" {
			return errors.New(e.Error)
		}
		return fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	_, err = io.Copy(w, resp.Body)
	if ctx.Err() != nil {
		return nil // the reader stopped following
	}
	return err
}

// DoBody is Do with a request body.
func (c *Client) DoBody(ctx context.Context, method, path string, body io.Reader, out any, raw *[]byte) error {
	if body != nil {
		// The HTTP client closes a body it can close; the caller's reader
		// (over SSH, the session's channel) is not ours to close.
		body = io.NopCloser(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://routerd"+path, body)
	if err != nil {
		return err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		if errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED) {
			return fmt.Errorf("%w (no socket at %s)", ErrNotRunning, c.Socket)
		}
		return err
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		var e Error
		if json.Unmarshal(answer, &e) == nil && e.Error != "" {
			return errors.New(e.Error)
		}
		return fmt.Errorf("%s %s: %s", method, path, resp.Status)
	}
	if raw != nil {
		*raw = answer
	}
	if out != nil {
		return json.Unmarshal(answer, out)
	}
	return nil
}
