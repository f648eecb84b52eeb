package e2e

import (
	"fmt"
	"image"
	"image/color"
	"image/png"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/routerd/routerd/internal/lab"
)

// TestRemoteAccess: the household's devices on the road. routerctl remote
// add makes a phone's WireGuard config and QR code (the code, scanned
// from what the terminal shows, is the same config); a "phone" on the
// ISP side set up from that config, as the WireGuard app would, reaches
// the NAS on the LAN (which sees the phone's tunnel address) and the
// router's resolver; a laptop added with --full sends everything home and
// leaves by routing.default's path (the VPN); remote delete cuts the phone
// off.
func TestRemoteAccess(t *testing.T) {
	lab.Require(t, "wireguard-go", "wg", "curl", "dig", "zbarimg")
	var nas *lab.Client
	a := newAppliance(t, lab.ConfigOptions{NoDHCP: true}, `
[remote]
interface = "wg1"
listen_port = 51821
addresses = ["10.99.0.1/24"]
endpoint = "home.example:51821"
`, func(a *appliance) {
		nas = a.lan.AddClient()
		nas.SetStatic(50)
		lab.ServeEcho(a.l, nas.NS, 8080)
	})
	endpoint := fmt.Sprintf("%s:51821", a.wan)

	out, err := a.rd.Ctl("remote", "add", "phone")
	if err != nil {
		t.Fatalf("remote add phone: %v\n%s", err, out)
	}
	conf, qr := splitRemoteAdd(t, out)
	if got := decodeQR(t, a.l.Dir, qr); got != conf {
		t.Errorf("the QR code says\n%s\nthe config is\n%s", got, conf)
	}
	phone := newRoadDevice(t, a, "phone", conf, endpoint, 77)
	a.l.Eventually(30*time.Second, "the phone reaches the NAS through the tunnel", func() error {
		got, err := phone.Run("curl", "-sS", "--max-time", "3", "http://192.168.11.50:8080/")
		if err != nil {
			return err
		}
		if got = strings.TrimSpace(got); got != "10.99.0.2" {
			return fmt.Errorf("the NAS saw %q", got)
		}
		return nil
	})
	if got, err := phone.Run("dig", "+short", "+time=2", "+tries=2", "@10.99.0.1", "echo.example"); err != nil || strings.TrimSpace(got) != lab.Echo4.String() {
		t.Errorf("the phone asks the router's resolver: %q, %v", got, err)
	}
	// A split tunnel: the internet is the phone's own.
	if got, err := phone.Run("curl", "-sS", "--max-time", "3", "http://"+lab.Echo4.String()+"/"); err != nil || strings.TrimSpace(got) != "203.0.113.77" {
		t.Errorf("the phone's own internet: seen as %q (%v), want its own address", got, err)
	}

	out, err = a.rd.Ctl("remote", "add", "laptop", "--full")
	if err != nil {
		t.Fatalf("remote add laptop --full: %v\n%s", err, out)
	}
	conf, _ = splitRemoteAdd(t, out)
	if !strings.Contains(conf, "Address = 10.99.0.3/32") || !strings.Contains(conf, "AllowedIPs = 0.0.0.0/0, ::/0") {
		t.Errorf("the laptop's config:\n%s", conf)
	}
	laptop := newRoadDevice(t, a, "laptop", conf, endpoint, 78)
	a.l.Eventually(30*time.Second, "the laptop's internet leaves home by the VPN", func() error {
		got, err := laptop.Run("curl", "-sS", "--max-time", "3", "http://"+lab.Echo4.String()+"/")
		if err != nil {
			return err
		}
		if got = strings.TrimSpace(got); got != lab.VPNPublic4.Addr().String() {
			return fmt.Errorf("seen as %q", got)
		}
		return nil
	})

	out, err = a.rd.Ctl("remote", "list")
	if err != nil || !strings.Contains(out, "phone") || !strings.Contains(out, "laptop") {
		t.Errorf("remote list: %v\n%s", err, out)
	}
	if out, err := a.rd.Ctl("remote", "delete", "phone"); err != nil {
		t.Fatalf("remote delete phone: %v\n%s", err, out)
	}
	a.l.Eventually(30*time.Second, "the phone is cut off", func() error {
		if got, err := phone.Run("curl", "-sS", "--max-time", "2", "http://192.168.11.50:8080/"); err == nil {
			return fmt.Errorf("the phone still reaches the NAS: %s", got)
		}
		return nil
	})
	st := mustStatus(t, a.rd)
	if st.Remote == nil || len(st.Remote.Peers) != 1 || st.Remote.Peers[0].Name != "laptop" {
		t.Errorf("status remote: %+v, want the laptop only", st.Remote)
	}
}

// splitRemoteAdd splits remote add's output into the config (without the
// comment line) and the QR code's lines.
func splitRemoteAdd(t *testing.T, out string) (conf string, qr []string) {
	t.Helper()
	lines := strings.Split(out, "\n")
	i := 0
	for i < len(lines) && !strings.HasPrefix(lines[i], "[Interface]") {
		i++
	}
	j := i
	for j < len(lines) && !strings.HasPrefix(lines[j], "PersistentKeepalive") {
		j++
	}
	if j == len(lines) {
		t.Fatalf("no config in:\n%s", out)
	}
	conf = strings.Join(lines[i:j+1], "\n") + "\n"
	for _, l := range lines[j+1:] {
		if strings.TrimSpace(l) != "" {
			qr = append(qr, l)
		}
	}
	return conf, qr
}

// decodeQR turns the terminal's QR code back into an image and has
// zbarimg read it: two modules a character, the glyph (upper half, lower
// half, both) drawing the light ones on a black background.
func decodeQR(t *testing.T, dir string, lines []string) string {
	t.Helper()
	const scale, quiet = 4, 4
	rows := make([][]rune, len(lines))
	w := 0
	for i, l := range lines {
		l = strings.TrimSuffix(strings.TrimPrefix(l, "\x1b[40;97m"), "\x1b[0m")
		rows[i] = []rune(l)
		w = max(w, len(rows[i]))
	}
	img := image.NewGray(image.Rect(0, 0, (w+2*quiet)*scale, (2*len(rows)+2*quiet)*scale))
	for i := range img.Pix {
		img.Pix[i] = 0xff
	}
	dark := func(x, y int) {
		for dx := range scale {
			for dy := range scale {
				img.SetGray((x+quiet)*scale+dx, (y+quiet)*scale+dy, color.Gray{})
			}
		}
	}
	for y, r := range rows {
		for x, c := range r {
			light := map[rune][2]bool{'█': {true, true}, '▀': {true, false}, '▄': {false, true}, ' ': {false, false}}[c]
			if !light[0] {
				dark(x, 2*y)
			}
			if !light[1] {
				dark(x, 2*y+1)
			}
		}
	}
	path := filepath.Join(dir, "qr.png")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := png.Encode(f, img); err != nil {
		t.Fatal(err)
	}
	f.Close()
	out, err := exec.Command("zbarimg", "--raw", "-q", path).Output()
	if err != nil {
		t.Fatalf("zbarimg: %v", err)
	}
	return strings.TrimSuffix(string(out), "\n")
}

// newRoadDevice is a device on the internet (the ISP's segment, address
// 203.0.113.host) set up from a wg-quick config as the WireGuard app would,
// with the router's endpoint as the device would resolve it.
func newRoadDevice(t *testing.T, a *appliance, name, conf, endpoint string, host int) *lab.NS {
	t.Helper()
	ns := a.l.NewNS(name)
	a.isp.Attach(ns, "eth0", "")
	ns.MustRun("ip", "addr", "add", fmt.Sprintf("203.0.113.%d/24", host), "dev", "eth0")
	ns.MustRun("ip", "link", "set", "eth0", "up")
	ns.MustRun("ip", "route", "add", "default", "via", lab.ISPDown4.Addr().String())
	kv := map[string]string{}
	for _, l := range strings.Split(conf, "\n") {
		if k, v, ok := strings.Cut(l, " = "); ok {
			kv[k] = v
		}
	}
	dev := a.l.Prefix + name[:2]
	sock := filepath.Join("/var/run/wireguard", dev+".sock")
	os.Remove(sock)
	ns.Start(name+"-wireguard-go", "wireguard-go", "-f", dev)
	a.l.Eventually(10*time.Second, "wireguard-go UAPI socket", func() error {
		_, err := os.Stat(sock)
		return err
	})
	a.l.OnCleanup(func() { os.Remove(sock) })
	key := filepath.Join(a.l.Dir, name+".key")
	os.WriteFile(key, []byte(kv["PrivateKey"]+"\n"), 0o600)
	allowed := strings.ReplaceAll(kv["AllowedIPs"], " ", "")
	ns.MustRun("wg", "set", dev, "private-key", key, "peer", kv["PublicKey"], "endpoint", endpoint,
		"allowed-ips", allowed, "persistent-keepalive", kv["PersistentKeepalive"])
	for _, addr := range strings.Split(kv["Address"], ", ") {
		ns.MustRun("ip", "addr", "add", addr, "dev", dev)
	}
	ns.MustRun("ip", "link", "set", dev, "up")
	for _, p := range strings.Split(allowed, ",") {
		if pf := netip.MustParsePrefix(p); pf.Addr().Is4() {
			if pf.Bits() == 0 {
				// The whole internet through the tunnel, but the tunnel's
				// own packets to the router.
				ns.MustRun("ip", "route", "add", strings.Split(endpoint, ":")[0]+"/32", "via", lab.ISPDown4.Addr().String())
				ns.MustRun("ip", "route", "replace", "default", "dev", dev)
				continue
			}
			ns.MustRun("ip", "route", "replace", p, "dev", dev)
		}
	}
	return ns
}
