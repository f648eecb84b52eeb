package router

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/routerd/routerd/internal/lifecycle"
	"github.com/routerd/routerd/internal/logring"
	"github.com/routerd/routerd/router/config"
	"github.com/routerd/routerd/router/control"
	"github.com/routerd/routerd/router/status"
)

// fake is a component whose Start blocks until released (a NIC that is
// slow to appear) or fails, and whose Stop may hang (a bug elsewhere).
type fake struct {
	name      string
	release   chan struct{} // nil: Start returns at once
	startErr  error
	hangStop  bool
	startedCh chan struct{}
	run       lifecycle.Group

	mu    sync.Mutex
	calls []string
}

func newFake(name string) *fake { return &fake{name: name, startedCh: make(chan struct{})} }

func (f *fake) Name() string { return f.name }

func (f *fake) Start(ctx context.Context) error {
	f.record("start")
	close(f.startedCh)
	f.run.Start(ctx)
	f.run.Go(func(ctx context.Context) { <-ctx.Done() })
	if f.release != nil {
		select {
		case <-f.release:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return f.startErr
}

func (f *fake) Stop(ctx context.Context) error {
	f.record("stop")
	if f.hangStop {
		<-ctx.Done()
		return ctx.Err()
	}
	return f.run.Stop(ctx)
}

func (f *fake) fillStatus(st *status.Status) { st.Routing = &status.Routing{} }

func (f *fake) record(s string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, s)
}

func (f *fake) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

// testSupervisor writes a minimal valid config, so that Reload can read it,
// and returns a supervisor whose components come from comps.
func testSupervisor(t testing.TB, comps func() []Component) (*Supervisor, *control.Client) {
	t.Helper()
	dir := t.TempDir()
	sock := filepath.Join(dir, "routerd.sock")
	path := filepath.Join(dir, "routerd.toml")
	if err := os.WriteFile(path, []byte(minimalConfig(dir, sock, "a")), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, hash, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	s := New(path, cfg, hash, slog.New(slog.DiscardHandler))
	s.newComponents = func(*config.Config) []Component { return comps() }
	s.stopTimeout = 200 * time.Millisecond
	return s, control.NewClient(sock)
}

func minimalConfig(dir, sock, host string) string {
	return `hostname = "` + host + `"
state_dir = "` + filepath.Join(dir, "state") + `"
[wan]
match_mac = "02:00:00:00:00:01"
[[lan]]
name = "lan0"
match_mac = "02:00:00:00:00:02"
addresses = ["192.168.1.1/24"]
[status]
socket = "` + sock + `"
`
}

// statusWithin asks for status over the control socket, as routerctl does,
// and fails the test if the answer takes longer than budget.
func statusWithin(t *testing.T, c *control.Client, budget time.Duration) *status.Status {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), budget)
	defer cancel()
	var st status.Status
	if err := c.Do(ctx, "GET", "/v1/status", &st, nil); err != nil {
		t.Fatalf("status within %v: %v", budget, err)
	}
	return &st
}

func waitSocket(t *testing.T, c *control.Client) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := c.Do(ctx, "GET", "/v1/status", nil, nil)
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("control socket never answered: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func states(st *status.Status) map[string]status.State {
	out := map[string]status.State{}
	for _, c := range st.Components {
		out[c.Name] = c.State
	}
	return out
}

// Status answers while a component's Start waits (a missing NIC, wan.wait)
// and during a reload, and shows which component it is waiting for.
func TestStatusNeverStalls(t *testing.T) {
	built := make(chan *fake, 2) // each generation's slow component
	s, c := testSupervisor(t, func() []Component {
		slow := newFake("lan")
		slow.release = make(chan struct{})
		built <- slow
		return []Component{newFake("nics"), slow}
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	waitSocket(t, c)
	slow := <-built
	<-slow.startedCh

	const budget = 200 * time.Millisecond
	st := statusWithin(t, c, budget)
	if got, want := states(st), map[string]status.State{"nics": status.Running, "lan": status.Starting}; !maps.Equal(got, want) {
		t.Errorf("while lan starts: states = %v, want %v", got, want)
	}
	if st.Routing == nil {
		t.Error("while lan starts: the started component's section is missing")
	}
	if st.Phase != status.PhaseStarting {
		t.Errorf("while lan starts: phase %q, want %q", st.Phase, status.PhaseStarting)
	}
	close(slow.release)

	// A reload whose new lan component blocks in Start.
	if err := os.WriteFile(s.path, []byte(minimalConfig(filepath.Dir(s.path), filepath.Join(filepath.Dir(s.path), "routerd.sock"), "b")), 0o600); err != nil {
		t.Fatal(err)
	}
	reloaded := make(chan error, 1)
	go func() { reloaded <- s.Reload() }()
	slow = <-built
	<-slow.startedCh
	for i := 0; i < 5; i++ {
		st = statusWithin(t, c, budget)
	}
	if got, want := states(st)["lan"], status.Starting; got != want {
		t.Errorf("during reload: lan = %v, want %v", got, want)
	}
	if st.Phase != status.PhaseReloading {
		t.Errorf("during reload: phase %q, want %q", st.Phase, status.PhaseReloading)
	}
	close(slow.release)
	if err := <-reloaded; err != nil {
		t.Fatalf("Reload: %v", err)
	}
	if st := statusWithin(t, c, budget); st.Phase != status.PhaseReady {
		t.Errorf("after reload: phase %q, want %q", st.Phase, status.PhaseReady)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
}

// A component whose Start failed, and one whose Stop hangs, do not keep
// routerd from stopping, and every component is asked to stop.
func TestStopAlwaysReturns(t *testing.T) {
	failed := newFake("wan")
	failed.startErr = errors.New("no carrier")
	stuck := newFake("dns")
	stuck.hangStop = true
	last := newFake("metrics")
	s, c := testSupervisor(t, func() []Component { return []Component{failed, stuck, last} })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	waitSocket(t, c)
	st := statusWithin(t, c, 200*time.Millisecond)
	if got, want := states(st), map[string]status.State{"wan": status.Failed, "dns": status.Running, "metrics": status.Running}; !maps.Equal(got, want) {
		t.Errorf("states = %v, want %v", got, want)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
	for _, f := range []*fake{failed, stuck, last} {
		if got, want := f.Calls(), []string{"start", "stop"}; !slices.Equal(got, want) {
			t.Errorf("%s: calls = %v, want %v", f.name, got, want)
		}
	}
}

// FuzzControlAPI: any request on the control socket gets an answer (JSON
// for the API) without a panic, and none powers the machine off outside
// the image's init.
func FuzzControlAPI(f *testing.F) {
	for _, seed := range []struct{ method, target, body string }{
		{"GET", "/v1/status", ""},
		{"GET", "/v1/leases", ""},
		{"POST", "/v1/reload", ""},
		{"POST", "/v1/blocklist/refresh?name=rkn", ""},
		{"GET", "/v1/vpn/pubkey", ""},
		{"POST", "/v1/poweroff", "{}"},
		{"DELETE", "/v1/status/../../etc/passwd", "x"},
		{"GET", "/debug/pprof/", ""},
		{"GET", "/v1/config", ""},
		{"POST", "/v1/config?confirm=5s", "hostname = \"x\"\n[wan]\n"},
		{"POST", "/v1/config/confirm", ""},
		{"GET", "/v1/logs?follow=1&since=10m&component=dns", ""},
		{"GET", "/v1/logs?previous=1", ""},
		{"GET", "/v1/bans", ""},
		{"DELETE", "/v1/bans/not-an-address", ""},
	} {
		f.Add(seed.method, seed.target, seed.body)
	}
	s, _ := testSupervisor(f, func() []Component { return []Component{newFake("lan")} })
	s.started = time.Now()
	s.Logs = logring.New(1 << 16)
	s.log = slog.New(logring.NewHandler(s.Logs, slog.DiscardHandler))
	s.log.Info("a line to serve")
	mux := s.controlMux()
	f.Fuzz(func(t *testing.T, method, target, body string) {
		// Profiles block for their duration by design (root's tool).
		if strings.HasPrefix(target, "/debug/pprof/profile") || strings.HasPrefix(target, "/debug/pprof/trace") {
			return
		}
		// Streams (logs -f) end with the request, as when routerctl quits.
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, method, "http://routerd"+target, strings.NewReader(body))
		if err != nil || req.URL.Path == "" {
			return
		}
		// Bans live in the host's own nftables here: only the lab may
		// touch those.
		if strings.HasPrefix(req.URL.Path, "/v1/bans") {
			return
		}
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, req)
		if w.Code == http.StatusOK && req.URL.Path == "/v1/poweroff" {
			t.Fatal("poweroff accepted outside the image")
		}
		plain := req.URL.Path == "/v1/config" && req.Method == "GET" || req.URL.Path == "/v1/logs" && w.Code == http.StatusOK
		if strings.HasPrefix(req.URL.Path, "/v1/") && !plain && (w.Code < 300 || w.Code >= 400) && !json.Valid(w.Body.Bytes()) {
			t.Fatalf("%s %s: %d, body not JSON: %q", method, target, w.Code, w.Body.String())
		}
	})
}
