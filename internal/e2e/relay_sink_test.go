package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/routerd/routerd/internal/lab"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// plainSink is seed 000's sink: a plain WireGuard peer (wireguard-go and
// wg, not routerd) in a namespace on the ISP, that knows only its tunnel
// peer, the relay, and serves HTTP on its tunnel address.
func plainSink(t *testing.T, l *lab.Lab, isp *lab.ISP, relayKey wgtypes.Key, addr string) (*lab.NS, wgtypes.Key) {
	t.Helper()
	key, err := wgtypes.GeneratePrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	ns := l.NewNS("sink")
	isp.Attach(ns, "eth0", "")
	ns.MustRun("ip", "addr", "add", "203.0.113.77/24", "dev", "eth0")
	ns.MustRun("ip", "link", "set", "eth0", "up")
	ns.MustRun("ip", "route", "add", "default", "via", lab.ISPDown4.Addr().String())
	dev := l.Prefix + "s"
	sock := filepath.Join("/var/run/wireguard", dev+".sock")
	ns.Start("sink-wireguard-go", "wireguard-go", "-f", dev)
	l.Eventually(10*time.Second, "the sink's wireguard-go", func() error {
		_, err := os.Stat(sock)
		return err
	})
	l.OnCleanup(func() { os.Remove(sock) })
	keyFile := filepath.Join(l.Dir, "sink.key")
	os.WriteFile(keyFile, []byte(key.String()+"\n"), 0o600)
	// Its peer may send from any of the relay's tunnel addresses (seed
	// 000: the sink's allowed IPs hold the relay's whole tunnel subnet).
	ns.MustRun("wg", "set", dev, "private-key", keyFile, "peer", relayKey.PublicKey().String(),
		"endpoint", fmt.Sprintf("%s:%d", lab.RelayPublic4.Addr(), lab.VPNPort), "allowed-ips", "10.64.0.0/24", "persistent-keepalive", "1")
	ns.MustRun("ip", "addr", "add", addr+"/24", "dev", dev)
	ns.MustRun("ip", "link", "set", "dev", dev, "up")
	lab.ServeEcho(l, ns, 443)
	return ns, key
}

// TestRelayToPlainSink is seed 000 to the letter: the relay forwards a
// public port to a plain WireGuard peer that knows nothing of the internet
// (snat = "pool": it sees one of the relay's tunnel addresses, new
// connections spread over them), on one of the VPS's public addresses only
// (match_ips), writes its public key for the peers' configs, and drops
// the forwarding it does not own (forward_policy = "drop") while the VPS's
// own traffic goes on.
func TestRelayToPlainSink(t *testing.T) {
	lab.Require(t, "dnsmasq", "nsenter", "wireguard-go", "wg", "curl", "nft")
	l := lab.New(t)
	isp := l.NewISP(lab.ISPOptions{})
	relay := l.NewRelay(isp)
	_, sinkKey := plainSink(t, l, isp, relay.Key, "10.64.0.3")
	cfg := fmt.Sprintf(`hostname = "relay"
state_dir = %q

[relay]
public = "eth0"
interface = "wg0"
listen_port = %d
addresses = ["10.64.0.1/24", "10.64.0.11/24", "10.64.0.12/24"]
public_key_file = "wg0.pub"

[[relay.peer]]
name = "nas"
public_key = %q
allowed_ips = ["10.64.0.3/32"]

[[relay.forward]]
name = "nas"
proto = "tcp"
ports = "8443"
to = "10.64.0.3"
to_port = 443
snat = "pool"
match_ips = [%q]

[status]
socket = %q
`, relay.State, lab.VPNPort, sinkKey.PublicKey(), lab.RelayPool4[0], relay.Sock)
	rd := relay.StartRouterd(cfg)

	pub, err := os.ReadFile(filepath.Join(relay.State, "wg0.pub"))
	if err != nil || strings.TrimSpace(string(pub)) != relay.Key.PublicKey().String() {
		t.Errorf("public_key_file = %q, %v; want %s", pub, err, relay.Key.PublicKey())
	}
	url := fmt.Sprintf("http://%s:8443/", lab.RelayPool4[0])
	seen := map[string]bool{}
	l.Eventually(30*time.Second, "connections spread over the tunnel pool", func() error {
		out, err := isp.NS.Run("curl", "-sS", "--max-time", "3", "--interface", inetHost4.String(), url)
		if err != nil {
			return err
		}
		got := strings.TrimSpace(out)
		if !strings.HasPrefix(got, "10.64.0.") {
			return fmt.Errorf("the sink saw %q, want one of the relay's tunnel addresses", got)
		}
		seen[got] = true
		if len(seen) < 3 {
			return fmt.Errorf("sources so far %v", seen)
		}
		return nil
	})
	// The same port on the VPS's other public address is not forwarded.
	other := fmt.Sprintf("http://%s:8443/", lab.RelayPublic4.Addr())
	if out, err := isp.NS.Run("curl", "-sS", "--max-time", "2", "--interface", inetHost4.String(), other); err == nil {
		t.Errorf("the forward answered on %s too: %s", lab.RelayPublic4.Addr(), out)
	}
	// Forwarding the relay does not own: the ISP routes a packet for the
	// sink's ISP address through the VPS. Dropped and counted; the VPS's
	// own traffic still goes out.
	isp.NS.MustRun("ip", "route", "add", "203.0.113.99/32", "via", lab.RelayPublic4.Addr().String())
	relay.NS.MustRun("ip", "route", "add", "203.0.113.99/32", "via", lab.RelayISPSide4.Addr().String())
	isp.NS.Run("ping", "-c", "2", "-W", "1", "-I", inetHost4.String(), "203.0.113.99")
	l.Eventually(10*time.Second, "drop_forward counted", func() error {
		out, err := relay.NS.Run("nft", "list", "counter", "inet", "routerd", "drop_forward")
		if err != nil || strings.Contains(out, "packets 0 ") {
			return fmt.Errorf("%v %s", err, out)
		}
		return nil
	})
	st, err := getStatus(rd)
	if err != nil {
		t.Fatal(err)
	}
	if f := st.Relay.Forwards; len(f) != 1 || f[0].Packets == 0 || !strings.Contains(f[0].NAT, "10.64.0.11") {
		t.Errorf("status forwards = %+v, want the forward's packets and its pool", f)
	}
	if _, err := relay.NS.Run("curl", "-sS", "--max-time", "3", fmt.Sprintf("http://%s/", lab.Echo4)); err != nil {
		t.Errorf("the VPS's own traffic: %v", err)
	}
}
