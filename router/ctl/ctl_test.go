package ctl

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/routerd/routerd/internal/lifecycle"
	"github.com/routerd/routerd/router/api"
	"github.com/routerd/routerd/router/control"
	"github.com/routerd/routerd/router/status"
)

// TestRunRemote: over SSH, update reads standard input only and
// --allow-downgrade is the console's; both are refused before anything is
// opened or sent (the client here has no server: reaching it would fail
// differently).
func TestRunRemote(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"update", "/etc/shadow"}, "standard input"},
		{[]string{"update", "--reboot-at", "never", "/etc/shadow"}, "standard input"},
		{[]string{"update", "--allow-downgrade"}, "for the console"},
	} {
		var stdout, stderr bytes.Buffer
		code := RunRemote(context.Background(), nil, c.args, strings.NewReader(""), &stdout, &stderr)
		if code != 1 || !strings.Contains(stderr.String(), c.want) || strings.Contains(stderr.String(), "sha256") {
			t.Errorf("%q: exit %d, %q; want 1 and %q", c.args, code, stderr.String(), c.want)
		}
	}
	for _, args := range [][]string{{"update"}, {"update", "--sha256", "ab", "--reboot-at", "now"}, {"status"}} {
		if err := remoteAllowed(args); err != nil {
			t.Errorf("%q refused: %v", args, err)
		}
	}
}

// fakeAPI serves a few control API answers on a unix socket, as routerd
// does, and records what it was asked.
func fakeAPI(t *testing.T) (*control.Client, *[]string) {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "routerd.sock")
	l, err := api.Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var asked []string
	mux := http.NewServeMux()
	record := func(r *http.Request) {
		mu.Lock()
		asked = append(asked, r.Method+" "+r.URL.RequestURI())
		mu.Unlock()
	}
	mux.HandleFunc("GET /v1/bans", func(w http.ResponseWriter, r *http.Request) {
		record(r)
		control.WriteJSON(w, status.Bans{Bans: []status.Ban{{Addr: "2001:db8:1::/64", Side: "wan", Until: time.Date(2026, 12, 2, 7, 0, 0, 0, time.UTC)}}})
	})
	mux.HandleFunc("GET /v1/clients", func(w http.ResponseWriter, r *http.Request) {
		record(r)
		control.WriteJSON(w, status.Clients{Hosts: []status.ClientUsage{{Name: "laptop", Path: "wan", UpRate: 8e6}}})
	})
	mux.HandleFunc("DELETE /v1/bans/{addr}", func(w http.ResponseWriter, r *http.Request) {
		record(r)
		control.WriteJSON(w, struct{}{})
	})
	mux.HandleFunc("POST /v1/reload", func(w http.ResponseWriter, r *http.Request) {
		record(r)
		control.WriteError(w, http.StatusUnprocessableEntity, errors.New("routerd.toml: 2 errors"))
	})
	mux.HandleFunc("POST /v1/update", func(w http.ResponseWriter, r *http.Request) {
		record(r)
		b, _ := io.ReadAll(r.Body)
		control.WriteJSON(w, status.UpdateAnswer{Slot: "B", Version: string(b), Steps: []string{"received " + string(b)}})
	})
	var run lifecycle.Group
	run.Start(context.Background())
	srv := api.Serve(&run, l, mux, func(err error) { t.Errorf("serve: %v", err) })
	t.Cleanup(func() {
		srv.Close()
		if err := run.Stop(context.Background()); err != nil {
			t.Errorf("stop serving: %v", err)
		}
	})
	return control.NewClient(sock), &asked
}

// TestCommands runs routerctl's commands against a fake API, without
// root: what each asks, what it prints, and its exit code (0 done, 1 the
// router refused, with its reason, 2 usage).
func TestCommands(t *testing.T) {
	c, asked := fakeAPI(t)
	for _, tc := range []struct {
		args  []string
		stdin string
		code  int
		out   string // in stdout, or stderr when code != 0
		asks  string
	}{
		{[]string{"ban", "list"}, "", 0, "2001:db8:1::/64  wan", "GET /v1/bans"},
		{[]string{"ban", "delete", "2001:db8:1::5"}, "", 0, "is no longer banned", "DELETE /v1/bans/2001:db8:1::5"},
		{[]string{"reload"}, "", 1, "routerctl: routerd.toml: 2 errors", "POST /v1/reload"},
		{[]string{"update", "--reboot-at", "never", "--allow-downgrade"}, "v9", 0, "received v9", "POST /v1/update?allow_downgrade=1&reboot_at=never"},
		// --json prints a table as one line: -f's output is JSON lines.
		{[]string{"clients", "--json"}, "", 0, `{"since":"0001-01-01T00:00:00Z","hosts":[{`, "GET /v1/clients"},
		{[]string{"ban"}, "", 2, "", ""},
		{[]string{"nosuch"}, "", 2, "", ""},
	} {
		*asked = nil
		var stdout, stderr bytes.Buffer
		code := Run(context.Background(), c, tc.args, strings.NewReader(tc.stdin), &stdout, &stderr)
		got := stdout.String()
		if code != 0 {
			got = stderr.String()
		}
		if code != tc.code || !strings.Contains(got, tc.out) {
			t.Errorf("%q: exit %d, %q; want %d and %q", tc.args, code, got, tc.code, tc.out)
		}
		if want := tc.asks; (want == "" && len(*asked) != 0) || (want != "" && (len(*asked) != 1 || (*asked)[0] != want)) {
			t.Errorf("%q asked %q, want %q", tc.args, *asked, want)
		}
	}
}
