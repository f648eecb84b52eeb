package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/routerd/routerd/internal/logring"
	"github.com/routerd/routerd/router/control"
	"github.com/routerd/routerd/router/status"
)

// fake is a Backend whose every method not set here panics (the embedded
// nil interface): a request that reaches a method it should not fails the
// test loudly.
type fake struct {
	Backend
	reloadErr error
	unbanned  netip.Addr
	logs      chan logring.Entry
}

func (f *fake) Status() *status.Status { return &status.Status{Version: "v1"} }
func (f *fake) Reload() error          { return f.reloadErr }
func (f *fake) ConfirmConfig() error   { return errors.New("nothing to confirm") }
func (f *fake) Leases() ([]status.Lease, error) {
	return nil, fmt.Errorf("the LAN services: %w (routerd is starting)", ErrNotRunning)
}
func (f *fake) RemoteDelete(name string) error {
	return Coded(http.StatusNotFound, fmt.Errorf("no remote device named %q", name))
}
func (f *fake) Unban(a netip.Addr) error { f.unbanned = a; return nil }
func (f *fake) Logs(component string, since time.Time, follow bool) ([]logring.Entry, <-chan logring.Entry, func(), error) {
	return []logring.Entry{{Component: "dns", Line: "old line"}, {Component: "wan", Line: "wan line"}}, f.logs, func() {}, nil
}

func do(t *testing.T, h http.Handler, e control.Endpoint, query string, args ...string) (int, string) {
	t.Helper()
	u := e.URL(nil, args...)
	if query != "" {
		u += "?" + query
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(e.Method, u, strings.NewReader("")))
	return w.Code, strings.TrimSpace(w.Body.String())
}

// TestCodes: each kind of failure reaches routerctl with its status code
// and its reason; arguments are checked before the backend is asked.
func TestCodes(t *testing.T) {
	f := &fake{reloadErr: errors.New("routerd.toml: 2 errors")}
	h := New(f)
	for _, tc := range []struct {
		e     control.Endpoint
		query string
		args  []string
		code  int
		body  string
	}{
		{control.Status, "", nil, 200, `"version": "v1"`},
		{control.Reload, "", nil, 422, "routerd.toml: 2 errors"},
		{control.ConfigConfirm, "", nil, 409, "nothing to confirm"},
		{control.Leases, "", nil, 503, "routerd is starting"},
		{control.RemoteDelete, "", []string{"phone"}, 404, `no remote device named \"phone\"`},
		{control.ConfigApply, "confirm=1s", nil, 400, "want a duration from 5s to 24h"},
		{control.BanDelete, "", []string{"not-an-ip"}, 400, "is not an IP address"},
		{control.BanDelete, "", []string{"192.0.2.7"}, 200, "{}"},
		{control.PortMapDelete, "", []string{"tcp", "99999"}, 404, "no mapping of tcp/99999"},
		{control.Logs, "since=-1m", nil, 400, "want a duration"},
		{control.Logs, "component=wan", nil, 200, "wan line"},
		{control.Endpoint{Method: "GET", Path: "/v1/nothing"}, "", nil, 404, "unknown request GET /v1/nothing"},
	} {
		code, body := do(t, h, tc.e, tc.query, tc.args...)
		if code != tc.code || !strings.Contains(body, tc.body) {
			t.Errorf("%s %s?%s: %d %s, want %d with %q", tc.e.Method, tc.e.URL(nil, tc.args...), tc.query, code, body, tc.code, tc.body)
		}
	}
	if f.unbanned != netip.MustParseAddr("192.0.2.7") {
		t.Errorf("unbanned %v", f.unbanned)
	}
	if _, body := do(t, h, control.Logs, "component=wan"); strings.Contains(body, "old line") {
		t.Errorf("logs of wan show another component's line: %q", body)
	}
}

// TestFollowEndsWithItsClient: logs -f streams new lines as they come and
// returns when the client goes.
func TestFollowEndsWithItsClient(t *testing.T) {
	f := &fake{logs: make(chan logring.Entry)}
	srv := httptest.NewServer(New(f))
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+control.Logs.URL(nil)+"?follow=1", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	f.logs <- logring.Entry{Component: "dns", Line: "new line"}
	buf := make([]byte, 4096)
	var got string
	for !strings.Contains(got, "new line") {
		n, err := resp.Body.Read(buf)
		got += string(buf[:n])
		if err != nil {
			t.Fatalf("read %q: %v", got, err)
		}
	}
	cancel()
	if _, err := io.Copy(io.Discard, resp.Body); err == nil {
		t.Error("the stream did not end with its client")
	}
}
