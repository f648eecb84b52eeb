package blocklist

import (
	"context"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/routerd/routerd/internal/lab"
	"github.com/routerd/routerd/internal/via"
	"github.com/routerd/routerd/rules"
)

type fixture struct {
	t   *testing.T
	ns  *lab.NS
	dir string
}

func newFixture(t *testing.T) *fixture {
	lab.Require(t, "nft")
	l := lab.New(t)
	return &fixture{t: t, ns: l.NewNS("bl"), dir: t.TempDir()}
}

func (f *fixture) manager(lists ...List) *Manager { return f.managerWith(nil, lists...) }

// managerWith starts a manager whose config tune changed.
func (f *fixture) managerWith(tune func(*Config), lists ...List) *Manager {
	for i := range lists {
		if lists[i].Refresh == 0 {
			lists[i].Refresh = time.Hour
		}
		if lists[i].Format == "" {
			lists[i].Format = "auto"
		}
		lists[i].MinRatio, lists[i].Timeout, lists[i].MaxSize = 0.5, 10*time.Second, 1<<20
	}
	cfg := Config{NS: f.ns.Name, Dir: f.dir, Lists: lists, LANIfaces: []string{"lan0"}, Mask: 0xff,
		Protect: func() *Protected {
			return NewProtected(append(Bogons, netip.MustParsePrefix("198.51.100.7/32"))...)
		},
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if tune != nil {
		tune(&cfg)
	}
	m := New(cfg)
	if err := m.Start(context.Background()); err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { m.Stop(context.Background()) })
	return m
}

// set returns the set's elements as nft prints them.
func (f *fixture) set(name string) string {
	out := f.ns.MustRun("nft", "list", "set", "inet", rules.ListsTable, name)
	if i := strings.Index(out, "elements = {"); i >= 0 {
		out = out[i+len("elements = {"):]
		out = out[:strings.Index(out, "}")]
		return strings.Join(strings.Fields(out), " ")
	}
	return ""
}

func refresh(t *testing.T, m *Manager, name string) Status {
	t.Helper()
	sts, err := m.RefreshNow(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	return sts[0]
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestFileListLifecycle: a file list is applied merged; a change is
// applied as a diff; garbage, an empty file and a shrunk list keep the last
// good one and say why; a restart applies the saved copy before anything
// is read.
func TestFileListLifecycle(t *testing.T) {
	f := newFixture(t)
	src := filepath.Join(t.TempDir(), "list.txt")
	write(t, src, "203.0.113.0/25\n203.0.113.128/25\n192.0.2.1\n192.0.2.2\n198.51.100.7\n2001:db8:9::/48\n")
	m := f.manager(List{Name: "rkn", File: src, Via: via.VPN})
	st := refresh(t, m, "rkn")
	if got, want := f.set(rules.SetVPN4), "192.0.2.1-192.0.2.2, 203.0.113.0/24,"; got != strings.TrimSuffix(want, ",") {
		t.Errorf("vpn4 = %q, want %q", got, want)
	}
	if got, want := f.set(rules.SetVPN6), "2001:db8:9::/48"; got != want {
		t.Errorf("vpn6 = %q, want %q", got, want)
	}
	if st.Refused != 1 || st.Prefixes4 != 2 || st.Lines != 6 {
		t.Errorf("status = %+v; want 6 lines, 2 prefixes, 1 refused (the tunnel's endpoint)", st)
	}

	write(t, src, "203.0.113.0/24\n192.0.2.3\n2001:db8:9::/48\n")
	refresh(t, m, "rkn")
	if got, want := f.set(rules.SetVPN4), "192.0.2.3, 203.0.113.0/24"; got != want {
		t.Errorf("after change: vpn4 = %q, want %q", got, want)
	}

	for _, tc := range []struct{ name, content, why string }{
		{"garbage", "<html>\n<body>503</body>\n</html>\n", "garbage"},
		{"empty", "# nothing\n", "empty"},
		{"shrunk", "192.0.2.3\n", "shrunk from 3 to 1"},
	} {
		write(t, src, tc.content)
		st := refresh(t, m, "rkn")
		if !strings.Contains(st.LastError, tc.why) || st.LastResult != "kept last good copy" {
			t.Errorf("%s: status %q / %q, want the last good copy kept because %q", tc.name, st.LastResult, st.LastError, tc.why)
		}
		if got, want := f.set(rules.SetVPN4), "192.0.2.3, 203.0.113.0/24"; got != want {
			t.Errorf("%s: vpn4 = %q, want the last good %q", tc.name, got, want)
		}
	}

	// A restart with the source gone: the saved copy is in force at once.
	m.Stop(context.Background())
	f.ns.MustRun("nft", "flush", "set", "inet", rules.ListsTable, rules.SetVPN4)
	os.Remove(src)
	m2 := New(m.cfg)
	if err := m2.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer m2.Stop(context.Background())
	if got, want := f.set(rules.SetVPN4), "192.0.2.3, 203.0.113.0/24"; got != want {
		t.Errorf("after restart: vpn4 = %q, want the saved %q", got, want)
	}
}

// TestURLList: conditional requests (an unchanged list costs a 304, not a
// parse), retries on server errors, the size cap, and two lists on one
// path forming one union.
func TestURLList(t *testing.T) {
	f := newFixture(t)
	var mu sync.Mutex
	body, status, hits := "192.0.2.0/24\n", 200, 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		hits++
		if status != 200 {
			w.WriteHeader(status)
			return
		}
		etag := `"` + body + `"`
		etag = strings.ReplaceAll(etag, "\n", ";")
		if r.Header.Get("If-None-Match") == etag {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		w.Header().Set("ETag", etag)
		io.WriteString(w, body)
	}))
	defer srv.Close()
	other := filepath.Join(t.TempDir(), "other.txt")
	write(t, other, "192.0.3.0/24\n")
	m := f.manager(List{Name: "web", URL: srv.URL, Via: via.VPN}, List{Name: "local", File: other, Via: via.VPN})
	refresh(t, m, "")
	if got, want := f.set(rules.SetVPN4), "192.0.2.0/23"; got != want {
		t.Errorf("union: vpn4 = %q, want %q", got, want)
	}
	if st := refresh(t, m, "web"); st.LastResult != "not modified" {
		t.Errorf("second fetch: %q, want not modified", st.LastResult)
	}

	mu.Lock()
	status, hits = 503, 0
	mu.Unlock()
	st := refresh(t, m, "web")
	mu.Lock()
	if hits != 3 || !strings.Contains(st.LastError, "503") {
		t.Errorf("after 503s: %d attempts, error %q; want 3 attempts and the status in the error", hits, st.LastError)
	}
	status = 200
	body = strings.Repeat("192.0.2.1\n", 200_000) // 2 MB, over the 1 MiB cap
	mu.Unlock()
	if st := refresh(t, m, "web"); !strings.Contains(st.LastError, "max_size") {
		t.Errorf("oversized list: error %q, want it refused by max_size", st.LastError)
	}
	if got, want := f.set(rules.SetVPN4), "192.0.2.0/23"; got != want {
		t.Errorf("after failures: vpn4 = %q, want %q", got, want)
	}
	if _, err := m.RefreshNow(context.Background(), "nope"); err == nil {
		t.Error("refreshing an unknown list succeeded")
	}
}

// TestHTTPSListWaitsForTheClock: an https list is not fetched before the
// clock is synchronised (its certificate dates would fail on a box still
// in 2020), then it is, verified against the list's own CA (ca_file).
func TestHTTPSListWaitsForTheClock(t *testing.T) {
	f := newFixture(t)
	var hits atomic.Int32
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		io.WriteString(w, "192.0.2.0/24\n")
	}))
	defer srv.Close()
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	clock := make(chan struct{})
	m := f.managerWith(func(c *Config) { c.Clock, c.ClockWait = clock, time.Hour },
		List{Name: "web", URL: srv.URL, Via: via.VPN, RootCAs: pool})
	lab.New(t).Eventually(10*time.Second, "the list waiting for the clock", func() error {
		if st := m.Status()[0]; !strings.Contains(st.LastResult, "waiting for the clock") {
			return fmt.Errorf("status %q", st.LastResult)
		}
		return nil
	})
	if n := hits.Load(); n != 0 {
		t.Fatalf("%d downloads before the clock was synchronised", n)
	}
	close(clock)
	st := refresh(t, m, "web")
	if st.LastError != "" || hits.Load() == 0 {
		t.Fatalf("after the sync: %+v (%d downloads)", st, hits.Load())
	}
	if got, want := f.set(rules.SetVPN4), "192.0.2.0/24"; got != want {
		t.Errorf("vpn4 = %q, want %q", got, want)
	}

	// Without the CA the server's certificate is refused.
	m2 := f.managerWith(nil, List{Name: "untrusted", URL: srv.URL, Via: via.WAN})
	if st := refresh(t, m2, "untrusted"); !strings.Contains(st.LastError, "certificate") {
		t.Errorf("without ca_file: error %q, want a certificate error", st.LastError)
	}
}

// TestDomainList: an answer for a listed name (or a name whose CNAME chain
// reaches one) puts its addresses in the path's timeout set, for at least
// the floor; protected addresses and unlisted names stay out.
func TestDomainList(t *testing.T) {
	f := newFixture(t)
	src := filepath.Join(t.TempDir(), "domains.txt")
	write(t, src, "blocked.example\n*.wild.example\n")
	m := f.manager(List{Name: "names", File: src, Via: via.VPN, DomainTTLFloor: time.Hour})
	refresh(t, m, "names")
	m.Observe(via.WAN, []string{"www.example.", "cdn.blocked.example."}, []netip.Addr{netip.MustParseAddr("192.0.2.77"),
		netip.MustParseAddr("10.1.1.1"), netip.MustParseAddr("2001:db8::77")}, 30*time.Second)
	m.Observe(via.WAN, []string{"fine.example."}, []netip.Addr{netip.MustParseAddr("192.0.2.88")}, time.Minute)
	got := f.set(rules.SetVPN4DNS)
	if !strings.HasPrefix(got, "192.0.2.77 timeout 1h") || strings.Contains(got, "10.1.1.1") || strings.Contains(got, "192.0.2.88") {
		t.Errorf("vpn4_dns = %q, want only 192.0.2.77 with a 1h timeout", got)
	}
	if got := f.set(rules.SetVPN6DNS); !strings.HasPrefix(got, "2001:db8::77 timeout 1h") {
		t.Errorf("vpn6_dns = %q, want 2001:db8::77", got)
	}
}
