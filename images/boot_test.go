package images

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/routerd/routerd/internal/lab"
	"github.com/routerd/routerd/router/status"
)

// The VM's NICs. They differ from the lab router's veth MACs, which sit
// on the same bridges as the taps.
const (
	vmWANMAC = "52:54:00:12:34:01"
	vmLANMAC = "52:54:00:12:34:02"
)

// imageConfig is the appliance's config on the test image: the WAN on
// DHCP from the lab's ISP, one LAN with DHCP, a WireGuard tunnel to the
// lab's VPN provider that one client (by MAC) takes, everything else
// defaults (state_dir and socket where the image puts them).
func imageConfig(vp *lab.VPNProvider, vpnClientMAC string) string {
	return fmt.Sprintf(imageConfigBase+`
[vpn]
interface = "wg0"
private_key_file = "wg0.key"
addresses = [%q, %q]

[[vpn.peer]]
public_key = %q
endpoint = %q
allowed_ips = ["0.0.0.0/0", "::/0"]
persistent_keepalive = "5s"

[[routing.policy]]
name = "via-tunnel"
sources = [%q]
via = "vpn"
`, lab.VPNClient4, lab.VPNClient6, vp.Key.PublicKey(), vp.Endpoint(), vpnClientMAC)
}

const imageConfigBase = `hostname = "gw"

[wan]
name = "wan0"
match_mac = "` + vmWANMAC + `"
ipv4 = "dhcp"

[[lan]]
name = "lan0"
match_mac = "` + vmLANMAC + `"
addresses = ["192.168.11.1/24", "fd00:11::1/64"]

[lan.dhcp4]
range = ["192.168.11.100", "192.168.11.199"]

[routing]
default = "wan"
`

// buildImage runs mkimage with cfg and the files of data (relative path
// -> content) on the data partition.
func buildImage(t *testing.T, dir, cfg string, data map[string]string, valid bool) string {
	t.Helper()
	bin := os.Getenv("ROUTERD_BIN_DIR")
	if bin == "" {
		t.Fatal("ROUTERD_BIN_DIR is not set: run through make image-test or make test")
	}
	cfgFile := filepath.Join(dir, "routerd.toml")
	os.WriteFile(cfgFile, []byte(cfg), 0o644)
	if out, err := exec.Command(filepath.Join(bin, "routerd"), "--config", cfgFile, "--check").CombinedOutput(); (err == nil) != valid {
		t.Fatalf("routerd --check of the test config: %v (want valid=%v)\n%s", err, valid, out)
	}
	dataDir := filepath.Join(dir, "data")
	os.MkdirAll(dataDir, 0o755)
	for name, content := range data {
		os.MkdirAll(filepath.Dir(filepath.Join(dataDir, name)), 0o755)
		os.WriteFile(filepath.Join(dataDir, name), []byte(content), 0o600)
	}
	img := filepath.Join(dir, "routerd.img")
	start := time.Now()
	args := []string{"run", "./mkimage", "-routerd", filepath.Join(bin, "routerd"), "-config", cfgFile, "-out", img,
		"-cache", "build/cache", "-data-dir", dataDir}
	if os.Getenv("IMAGE_DEBUG") != "" {
		args = append(args, "-cmdline", "console=ttyS0,115200n8 routerd.log_level=debug")
	}
	cmd := lab.Command(context.Background(), append([]string{"go"}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("mkimage: %v\n%s", err, out)
	}
	t.Logf("%s(built in %s)", out, time.Since(start).Round(time.Millisecond))
	return img
}

// qmp sends commands over qemu's machine protocol.
func qmp(t *testing.T, sock string, cmds ...string) {
	t.Helper()
	c, err := net.DialTimeout("unix", sock, 5*time.Second)
	if err != nil {
		t.Fatalf("qmp: %v", err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(c)
	r.ReadString('\n') // greeting
	for _, cmd := range append([]string{"qmp_capabilities"}, cmds...) {
		fmt.Fprintf(c, `{"execute": %q}`+"\n", cmd)
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				t.Fatalf("qmp %s: %v", cmd, err)
			}
			var m map[string]any
			json.Unmarshal([]byte(line), &m)
			if _, ok := m["return"]; ok {
				break
			}
			if e, ok := m["error"]; ok {
				t.Fatalf("qmp %s: %v", cmd, e)
			}
		}
	}
}

// TestImageBoots builds the image and boots it in qemu (TCG, OVMF) with
// its WAN on the lab's ISP and its LAN on a switch with a client: the
// console says ready, the client gets a lease from the appliance and
// reaches the ISP's echo through it, and the ACPI power button powers it
// off cleanly with its leases saved on the data partition.
//
// The box is managed as a user would: its RTC is dead (2020), and routerd
// raises the clock to its floor, then steps it to the ISP's NTP time; an
// https blocklist (certificates from a lab CA that became valid a minute
// ago) downloads once the clock is right; from the LAN client, OpenSSH
// runs status, logs, config apply and finally poweroff.
func TestImageBoots(t *testing.T) {
	requireQemu(t, "udhcpc", "curl", "dnsmasq", "chronyd", "ssh", "ssh-keygen", "dig")
	l := lab.New(t)
	isp := l.NewISP(lab.ISPOptions{})
	isp.ServeNTP()
	lists, caPEM := isp.ServeListsTLS()
	lists.Set("direct.txt", "93.184.216.0/24\n") // not a bogon: lists may not capture those
	vp := l.NewVPNProvider(isp)
	host := l.NewRouter(isp) // the namespace qemu runs in: eth0 on the ISP, eth1 to the LAN switch
	lan := host.AddLAN()
	client, tunnelled := lan.AddClient(), lan.AddClient()
	key := filepath.Join(l.Dir, "admin")
	if out, err := lab.Command(context.Background(), "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v\n%s", err, out)
	}
	pub, _ := os.ReadFile(key + ".pub")
	// routerd --check on this side reads the CA beside the config too.
	os.WriteFile(filepath.Join(l.Dir, "lab-ca.pem"), caPEM, 0o644)
	cfg := imageConfig(vp, tunnelled.MAC) + fmt.Sprintf(`
[time]
servers = [%q]
serve = true

[admin]
listen = ["lan0"]

[[blocklist]]
name = "direct"
url = %q
ca_file = "lab-ca.pem"
via = "wan"
`, lab.NTPName, lab.ListTLSURL("direct.txt"))
	img := buildImage(t, l.Dir, cfg, map[string]string{"state/wg0.key": vp.ClientKey.String() + "\n",
		"authorized_keys": string(pub), "lab-ca.pem": string(caPEM)}, true)
	fi, _ := os.Stat(img)
	nics := wire(host, lan)
	boot := time.Now()
	vm := startVM(t, l, host.NS, img, false, append(nics, "-rtc", "base=2020-01-01")...)
	console := vm.console

	var ready time.Duration
	l.Eventually(180*time.Second, "the ready line on the serial console", func() error {
		if done, err := vm.proc.Exited(); done {
			return fmt.Errorf("qemu exited: %v", err)
		}
		if !strings.Contains(console(), `msg="routerd ready"`) {
			return fmt.Errorf("not yet")
		}
		ready = time.Since(boot)
		return nil
	})
	t.Logf("image %d MiB; ready %.1fs after qemu started (TCG)", fi.Size()>>20, ready.Seconds())

	// The WAN lease and the LAN services come up after ready.
	var wan netip.Addr
	l.Eventually(60*time.Second, "the WAN lease", func() error {
		m := regexp.MustCompile(`msg="WAN lease" .*address=(203\.0\.113\.\d+)/`).FindStringSubmatch(console())
		if m == nil {
			return fmt.Errorf("not yet")
		}
		wan = netip.MustParseAddr(m[1])
		return nil
	})
	lease, err := client.UDHCPC("laptop")
	if err != nil {
		t.Fatalf("no lease from the appliance: %v\n%s", err, console())
	}
	if !netip.MustParsePrefix("192.168.11.0/24").Contains(lease.IP) || lease.Router != "192.168.11.1" {
		t.Errorf("lease %+v, want an address in 192.168.11.0/24 with router 192.168.11.1", lease)
	}
	var seen string
	l.Eventually(30*time.Second, "the client reaches the echo through the appliance", func() (err error) {
		seen, err = client.Echo(lab.Echo4, 80)
		return err
	})
	if seen != wan.String() {
		t.Errorf("the echo saw %s, want the appliance's WAN address %s", seen, wan)
	}
	// The tunnelled client: kernel WireGuard inside the VM.
	if _, err := tunnelled.UDHCPC("phone"); err != nil {
		t.Fatalf("no lease for the second client: %v", err)
	}
	l.Eventually(60*time.Second, "the tunnelled client reaches the echo through the VPN", func() (err error) {
		seen, err = tunnelled.Echo(lab.Echo4, 80)
		if err == nil && seen != lab.VPNPublic4.Addr().String() {
			return fmt.Errorf("seen as %s, want the VPN provider's %s", seen, lab.VPNPublic4.Addr())
		}
		return err
	})
	if !strings.Contains(console(), `implementation=kernel`) {
		t.Errorf("the tunnel did not use the image's kernel WireGuard:\n%s", console())
	}
	if strings.Contains(console(), `msg="start failed"`) {
		t.Errorf("a component failed to start on the image:\n%s", console())
	}

	// The clock: raised from 2020 to its floor, then to the ISP's time;
	// and the https list, which needed it.
	gw := "192.168.11.1"
	ssh := func(stdin string, args ...string) (string, error) {
		return vmSSH(client, key, strings.NewReader(stdin), args...)
	}
	var st status.Status
	l.Eventually(90*time.Second, "the appliance on the ISP's time, with the https list", func() error {
		out, err := ssh("", "status", "--json")
		if err != nil {
			return fmt.Errorf("ssh status --json: %v: %s", err, out)
		}
		st = status.Status{}
		if err := json.Unmarshal([]byte(out), &st); err != nil {
			return err
		}
		if st.Time == nil || !st.Time.Synced {
			return fmt.Errorf("time %+v", st.Time)
		}
		if st.Blocklists == nil || len(st.Blocklists.Lists) != 1 || st.Blocklists.Lists[0].LastSuccess.IsZero() {
			return fmt.Errorf("blocklists %+v", st.Blocklists)
		}
		return nil
	})
	if d := time.Since(st.Time.Now); d.Abs() > 10*time.Second {
		t.Errorf("the appliance's clock is %s, %s off the lab's", st.Time.Now, d)
	}
	if bl := st.Blocklists.Lists[0]; bl.LastError != "" || bl.Prefixes4 != 1 {
		t.Errorf("the https list: %+v", bl)
	}
	for _, want := range []string{"raised to its floor, the build time", "first synchronisation with " + lab.NTPName} {
		if !strings.Contains(console(), want) {
			t.Errorf("the console does not say the clock was %q", want)
		}
	}
	// It waited for the clock rather than fail on the certificate's dates.
	if strings.Contains(console(), "certificate") {
		t.Errorf("the https list was tried before the clock was right:\n%s", console())
	}
	if out, err := ssh("", "status"); err != nil || !strings.Contains(out, "synchronised to "+lab.NTPName) {
		t.Errorf("ssh status (%v):\n%s", err, out)
	}
	if out, err := ssh("", "logs", "--component", "time"); err != nil || !strings.Contains(out, "clock stepped") {
		t.Errorf("ssh logs --component time (%v):\n%s", err, out)
	}
	// A config change from the LAN, written to the data partition.
	running, err := ssh("", "config", "show")
	if err != nil || running != cfg {
		t.Errorf("ssh config show (%v) is not the image's config:\n%s", err, running)
	}
	changed := cfg + "\n[[dns.record]]\nname = \"applied.lan\"\naddresses = [\"192.168.11.77\"]\n"
	if out, err := ssh(changed, "config", "apply"); err != nil {
		t.Fatalf("ssh config apply: %v\n%s", err, out)
	}
	l.Eventually(60*time.Second, "the applied config in force", func() error {
		out, err := ssh("", "status", "--json")
		if err != nil {
			return fmt.Errorf("ssh status --json: %v: %s", err, out)
		}
		var now status.Status
		if err := json.Unmarshal([]byte(out), &now); err != nil {
			return err
		}
		if now.ConfigHash == st.ConfigHash || now.Phase != status.PhaseReady {
			return fmt.Errorf("config %.12s, %s", now.ConfigHash, now.Phase)
		}
		out, _ = client.NS.Run("dig", "+short", "+time=1", "+tries=1", "@"+gw, "applied.lan")
		if strings.TrimSpace(out) != "192.168.11.77" {
			return fmt.Errorf("applied.lan = %q", out)
		}
		return nil
	})

	// Off, from the LAN.
	if out, err := ssh("", "poweroff"); err != nil {
		t.Errorf("ssh poweroff: %v\n%s", err, out)
	}
	vm.waitPoweroff(t, "routerd: powering off")
	if cfgNow, err := lab.Command(context.Background(), "mtype", "-i", img+"@@"+dataOffset(t, img), "::/routerd.toml").CombinedOutput(); err != nil || !strings.Contains(string(cfgNow), "applied.lan") {
		t.Errorf("the data partition's routerd.toml lacks the applied change (%v):\n%s", err, cfgNow)
	}
	// The lease outlived the poweroff, on the data partition.
	// (In the journal, or in the snapshot that the clock's step wrote
	// when it moved the leases.)
	var leases []byte
	for _, f := range []string{"leases.journal", "leases.snapshot"} {
		b, _ := lab.Command(context.Background(), "mtype", "-i", img+"@@"+dataOffset(t, img), "::/state/leases/"+f).CombinedOutput()
		leases = append(leases, b...)
	}
	if !strings.Contains(strings.ToLower(string(leases)), strings.ToLower(client.MAC)) {
		t.Errorf("the lease store on the data partition lacks the client %s:\n%s", client.MAC, leases)
	}
	// So did this boot's log: init's lines and the appliance's.
	bootLog, err := lab.Command(context.Background(), "mtype", "-i", img+"@@"+dataOffset(t, img), "::/log/boot.log").CombinedOutput()
	if err != nil || !strings.Contains(string(bootLog), `msg="routerd ready"`) || !strings.Contains(string(bootLog), "powering off") {
		t.Errorf("this boot's log on the data partition (%v):\n%s", err, bootLog)
	}
}

const (
	ovmfCode = "/usr/share/OVMF/OVMF_CODE_4M.fd"
	ovmfVars = "/usr/share/OVMF/OVMF_VARS_4M.fd"
)

func requireQemu(t *testing.T, tools ...string) {
	t.Helper()
	lab.Require(t, append([]string{"qemu-system-x86_64", "sgdisk", "mformat", "mtype", "objcopy", "apt-get", "dpkg-deb"}, tools...)...)
	if _, err := os.Stat(ovmfCode); err != nil {
		lab.Require(t, "OVMF (package ovmf)")
	}
}

// vm is the image booted in qemu: TCG, OVMF, the image as a virtio disk,
// a virtio RNG, the serial console captured, QMP on a socket.
type vm struct {
	proc *lab.Proc
	qmp  string
}

// wire puts the VM's WAN on the lab router namespace's uplink to the ISP
// and its LAN on the LAN switch, through taps and bridges, and returns
// qemu's NIC arguments.
func wire(host *lab.Router, lan *lab.Switch) []string {
	for _, b := range []struct{ br, tap, nic string }{{"brw", "tapw", "eth0"}, {"brl", "tapl", lan.NIC}} {
		host.NS.MustRun("ip", "link", "add", "name", b.br, "type", "bridge")
		host.NS.MustRun("ip", "tuntap", "add", "dev", b.tap, "mode", "tap")
		for _, port := range []string{b.tap, b.nic} {
			host.NS.MustRun("ip", "link", "set", "dev", port, "master", b.br, "up")
		}
		host.NS.MustRun("ip", "link", "set", "dev", b.br, "up")
	}
	if os.Getenv("IMAGE_DEBUG") != "" {
		host.NS.Start("tcpdump", "tcpdump", "-n", "-e", "--immediate-mode", "-i", "brw")
	}
	return []string{
		"-netdev", "tap,id=wan,ifname=tapw,script=no,downscript=no", "-device", "virtio-net-pci,netdev=wan,mac=" + vmWANMAC,
		"-netdev", "tap,id=lan,ifname=tapl,script=no,downscript=no", "-device", "virtio-net-pci,netdev=lan,mac=" + vmLANMAC,
	}
}

// startVM boots img. The firmware's variables live in the lab (a fresh
// copy of OVMF's the first time, kept across restarts of qemu: a power
// cut keeps them too). Without reboots, a reboot ends qemu.
func startVM(t *testing.T, l *lab.Lab, ns *lab.NS, img string, reboots bool, extra ...string) *vm {
	t.Helper()
	vars := filepath.Join(l.Dir, "OVMF_VARS.fd")
	if _, err := os.Stat(vars); err != nil {
		b, err := os.ReadFile(ovmfVars)
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(vars, b, 0o644)
	}
	v := &vm{qmp: filepath.Join(l.Dir, "qmp.sock")}
	args := append([]string{"qemu-system-x86_64", "-machine", "q35", "-accel", "tcg", "-m", "512", "-smp", "1",
		"-display", "none", "-monitor", "none", "-chardev", "stdio,id=con,signal=off", "-serial", "chardev:con",
		"-drive", "if=pflash,format=raw,readonly=on,file=" + ovmfCode, "-drive", "if=pflash,format=raw,file=" + vars,
		"-drive", "file=" + img + ",format=raw,if=virtio", "-device", "virtio-rng-pci",
		"-qmp", "unix:" + v.qmp + ",server=on,wait=off"}, extra...)
	if !reboots {
		args = append(args, "-no-reboot")
	}
	v.proc = ns.StartNet("qemu", args...)
	return v
}

func (v *vm) console() string { return v.proc.Log.String() }

// showConsole logs the serial console in verbose runs (make image-test):
// the boot is worth seeing.
func (v *vm) showConsole(t *testing.T) {
	if testing.Verbose() {
		t.Logf("serial console:\n%s", v.console())
	}
}

// powerButton presses the ACPI power button and expects a clean stop and
// a poweroff.
func (v *vm) powerButton(t *testing.T) {
	t.Helper()
	qmp(t, v.qmp, "system_powerdown")
	v.waitPoweroff(t, "power button pressed", "routerd: powering off")
}

// waitPoweroff expects the VM to power off cleanly by itself, saying
// want on the console.
func (v *vm) waitPoweroff(t *testing.T, want ...string) {
	t.Helper()
	defer v.showConsole(t)
	select {
	case <-v.proc.Done():
	case <-time.After(90 * time.Second):
		t.Fatalf("still running 90s after the power button:\n%s", v.console())
	}
	if _, err := v.proc.Exited(); err != nil {
		t.Errorf("qemu: %v", err)
	}
	for _, want := range want {
		if !strings.Contains(v.console(), want) {
			t.Errorf("console lacks %q:\n%s", want, v.console())
		}
	}
}

// TestImageBadConfig: an image whose config is wrong says why on the
// console, keeps init running (no kernel panic, no reboot loop) and still
// powers off on the button.
func TestImageBadConfig(t *testing.T) {
	requireQemu(t)
	l := lab.New(t)
	bad := strings.Replace(imageConfigBase, `ipv4 = "dhcp"`, `ipv4 = "dhcp"`+"\nset_mac = \"01:00:5e:00:00:01\"", 1)
	img := buildImage(t, l.Dir, bad, nil, false)
	v := startVM(t, l, l.NewNS("vm"), img, false)
	l.Eventually(180*time.Second, "the config errors on the console", func() error {
		if done, err := v.proc.Exited(); done {
			return fmt.Errorf("qemu exited: %v", err)
		}
		for _, want := range []string{"routerd.toml: wan.set_mac", "the config is not usable"} {
			if !strings.Contains(v.console(), want) {
				return fmt.Errorf("no %q yet", want)
			}
		}
		return nil
	})
	if strings.Contains(v.console(), "appliance started") || strings.Contains(v.console(), "Kernel panic") {
		t.Errorf("a bad config started the appliance or panicked:\n%s", v.console())
	}
	v.powerButton(t)
}

// vmSSH runs a routerctl command on the VM from a LAN client, with OpenSSH.
func vmSSH(client *lab.Client, key string, stdin io.Reader, args ...string) (string, error) {
	cmd := vmSSHCmd(client, key, stdin, args...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// vmSSHCmd is vmSSH's command, not started. It gives up on a VM that is
// gone (a power cut) within seconds.
func vmSSHCmd(client *lab.Client, key string, stdin io.Reader, args ...string) *exec.Cmd {
	argv := append([]string{"ssh", "-i", key, "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
		"-o", "BatchMode=yes", "-o", "ConnectTimeout=10", "-o", "ServerAliveInterval=2", "-o", "ServerAliveCountMax=2",
		"-o", "IdentitiesOnly=yes", "-o", "LogLevel=ERROR", "admin@192.168.11.1"}, args...)
	cmd := client.NS.Cmd(argv...)
	cmd.Stdin = stdin
	return cmd
}

// vmStatus is routerctl status --json over SSH.
func vmStatus(client *lab.Client, key string) (*status.Status, error) {
	out, err := vmSSH(client, key, nil, "status", "--json")
	if err != nil {
		return nil, fmt.Errorf("ssh status --json: %v: %s", err, out)
	}
	var st status.Status
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		return nil, err
	}
	return &st, nil
}

// dataOffset is the byte offset of partition 2 (routerd-data).
func dataOffset(t *testing.T, img string) string {
	out, err := lab.Command(context.Background(), "sgdisk", "-i", "2", img).CombinedOutput()
	if err != nil {
		t.Fatalf("sgdisk: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`First sector: (\d+)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("sgdisk -i 2: %s", out)
	}
	var first int64
	fmt.Sscan(string(m[1]), &first)
	return fmt.Sprint(first * 512)
}
