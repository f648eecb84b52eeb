package router

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/routerd/routerd/router/config"
)

// TestKeepsSigningKey: a config applied through the API may add the update
// signing key but neither drop nor change it.
func TestKeepsSigningKey(t *testing.T) {
	k1 := ed25519.PublicKey(make([]byte, ed25519.PublicKeySize))
	k2 := ed25519.PublicKey(append(make([]byte, ed25519.PublicKeySize-1), 1))
	with := func(k ed25519.PublicKey) *config.Config { return &config.Config{Update: config.Update{Key: k}} }
	for _, c := range []struct {
		cur, next ed25519.PublicKey
		refused   string
	}{
		{nil, nil, ""},
		{nil, k1, ""},
		{k1, k1, ""},
		{k1, nil, "cannot be removed"},
		{k1, k2, "cannot be changed"},
	} {
		err := keepsSigningKey(with(c.cur), with(c.next))
		if c.refused == "" && err != nil || c.refused != "" && (err == nil || !strings.Contains(err.Error(), c.refused)) {
			t.Errorf("from key %v to %v: %v, want %q", c.cur != nil, c.next != nil, err, c.refused)
		}
	}
}

// TestApplyEdges: a config that moves the control socket is refused; the
// confirmation deadline is on disk, beside the config, before the new
// config is in place; and a rollback does not wait behind the new config's
// start-up hanging (a NIC it waits for), it preempts it.
func TestApplyEdges(t *testing.T) {
	built := make(chan *fake, 3)
	gen := 0
	s, c := testSupervisor(t, func() []Component {
		gen++
		f := newFake("lan")
		if gen == 2 {
			f.release = make(chan struct{}) // never: the new config hangs in start-up
		}
		built <- f
		return []Component{f}
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	waitSocket(t, c)
	<-built
	dir := filepath.Dir(s.path)
	sock := filepath.Join(dir, "routerd.sock")

	if _, code, err := s.applyConfig([]byte(minimalConfig(dir, filepath.Join(dir, "other.sock"), "b")), 0); code != http.StatusConflict || err == nil || !strings.Contains(err.Error(), "status.socket") {
		t.Errorf("moving the control socket: %d %v, want 409", code, err)
	}
	res, _, err := s.applyConfig([]byte(minimalConfig(dir, sock, "b")), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(s.path + ".confirm-by"); err != nil || res.ConfirmBy.IsZero() {
		t.Fatalf("the deadline beside the config: %v (%v)", err, res.ConfirmBy)
	}
	slow := <-built
	<-slow.startedCh // the new config's start-up hangs
	rolled := make(chan struct{})
	go func() { s.rollback("test"); close(rolled) }()
	select {
	case <-rolled:
	case <-time.After(20 * time.Second):
		t.Fatal("the rollback waited behind a start-up that hangs")
	}
	if h := s.config().Hostname; h != "a" {
		t.Errorf("after the rollback the config is %q's, want a's", h)
	}
	if _, err := os.Stat(s.path + ".confirm-by"); err == nil {
		t.Error("the deadline is still on disk after the rollback")
	}
	cancel()
	<-done
}

func TestWithoutPeerBlock(t *testing.T) {
	text := `hostname = "gw"

[remote]
interface = "wg1"

[[remote.peer]]
name = "phone"
public_key = "x"

[[remote.peer]]
name = "laptop" # the work one
public_key = "y"

[status]
socket = "/run/routerd.sock"
`
	got, ok := withoutPeerBlock([]byte(text), "laptop")
	want := strings.Replace(text, "[[remote.peer]]\nname = \"laptop\" # the work one\npublic_key = \"y\"\n\n", "", 1)
	if !ok || string(got) != want {
		t.Errorf("without laptop (%v):\n%s\nwant\n%s", ok, got, want)
	}
	if _, ok := withoutPeerBlock([]byte(text), "tablet"); ok {
		t.Error("removed a device that is not there")
	}
}

func TestNextRemoteAddrs(t *testing.T) {
	rc := &config.Remote{Addresses: []netip.Prefix{netip.MustParsePrefix("10.99.0.1/30"), netip.MustParsePrefix("fd00:99::1/64")},
		Peers: []config.RemotePeer{{Addresses: []netip.Prefix{netip.MustParsePrefix("fd00:99::2/128")}}}}
	got, err := nextRemoteAddrs(rc)
	if err != nil || fmt.Sprint(got) != "[10.99.0.2/32 fd00:99::3/128]" {
		t.Errorf("next = %v, %v", got, err)
	}
	rc.Peers = append(rc.Peers, config.RemotePeer{Addresses: []netip.Prefix{netip.MustParsePrefix("10.99.0.2/32")}})
	if _, err := nextRemoteAddrs(rc); err == nil {
		t.Error("a /30 with the router and one device has room for another")
	}
}
