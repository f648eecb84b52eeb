package vpn

import (
	"context"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/routerd/routerd/router/config"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// The key is made once, private to root, and the same key comes back after
// a restart: the provider knows the router by it.
func TestLoadOrCreateKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state", "wg0.key")
	k1, err := LoadOrCreateKey(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := fi.Mode().Perm(), os.FileMode(0o600); got != want {
		t.Errorf("key file mode %v, want %v", got, want)
	}
	k2, err := LoadOrCreateKey(path)
	if err != nil {
		t.Fatal(err)
	}
	if k1 != k2 {
		t.Error("a second load made a new key")
	}
	if err := os.WriteFile(path, []byte("not a key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreateKey(path); err == nil {
		t.Error("a corrupt key file was accepted")
	}
}

// An endpoint given as an address needs no resolver; a name with no DNS
// server known yet is an error that names it, not a hang.
func TestResolve(t *testing.T) {
	tun := New(Config{})
	got, err := tun.resolve(context.Background(), config.Endpoint{Addr: netip.MustParseAddr("2001:db8::7"), Port: 51820})
	if err != nil {
		t.Fatal(err)
	}
	if want := "[2001:db8::7]:51820"; got.String() != want {
		t.Errorf("resolve = %s, want %s", got, want)
	}
	_, err = tun.resolve(context.Background(), config.Endpoint{Host: "vpn.example.net", Port: 51820})
	if err == nil || err.Error() != "no DNS server known yet to resolve vpn.example.net" {
		t.Errorf("resolve of a name without servers = %v", err)
	}
}

// sameConfig decides whether the device needs reconfiguring; a false
// "different" would reset handshakes at every check.
func TestSameConfig(t *testing.T) {
	priv, _ := wgtypes.GeneratePrivateKey()
	peer, _ := wgtypes.GeneratePrivateKey()
	port, ka := 51820, 25*time.Second
	ep := &net.UDPAddr{IP: net.ParseIP("198.51.100.7"), Port: 51820}
	_, all, _ := net.ParseCIDR("0.0.0.0/0")
	want := &wgtypes.Config{PrivateKey: &priv, ListenPort: &port, Peers: []wgtypes.PeerConfig{{
		PublicKey: peer.PublicKey(), Endpoint: ep, PersistentKeepaliveInterval: &ka, AllowedIPs: []net.IPNet{*all}}}}
	dev := &wgtypes.Device{PrivateKey: priv, ListenPort: port, Peers: []wgtypes.Peer{{
		PublicKey: peer.PublicKey(), Endpoint: ep, PersistentKeepaliveInterval: ka, AllowedIPs: []net.IPNet{*all}}}}
	if !sameConfig(dev, want) {
		t.Error("identical device and config reported different")
	}
	dev.Peers[0].Endpoint = &net.UDPAddr{IP: net.ParseIP("198.51.100.8"), Port: 51820}
	if sameConfig(dev, want) {
		t.Error("a moved endpoint reported the same")
	}
	dev.Peers[0].Endpoint = ep
	dev.Peers[0].AllowedIPs = nil
	if sameConfig(dev, want) {
		t.Error("missing allowed IPs reported the same")
	}
}
