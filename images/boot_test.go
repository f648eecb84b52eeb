package images

import (
	"bufio"
	"encoding/json"
	"fmt"
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
)

// The VM's NICs. They differ from the lab router's veth MACs, which sit
// on the same bridges as the taps.
const (
	vmWANMAC = "52:54:00:12:34:01"
	vmLANMAC = "52:54:00:12:34:02"
)

// imageConfig is the appliance's config on the test image: the WAN on
// DHCP from the lab's ISP, one LAN with DHCP, everything else defaults
// (state_dir and socket where the image puts them).
const imageConfig = `hostname = "gw"

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

// buildImage runs mkimage with cfg on the data partition.
func buildImage(t *testing.T, dir, cfg string) string {
	t.Helper()
	bin := os.Getenv("ROUTERD_BIN_DIR")
	if bin == "" {
		t.Fatal("ROUTERD_BIN_DIR is not set: run through make image-test or make test")
	}
	cfgFile := filepath.Join(dir, "routerd.toml")
	os.WriteFile(cfgFile, []byte(cfg), 0o644)
	if out, err := exec.Command(filepath.Join(bin, "routerd"), "--config", cfgFile, "--check").CombinedOutput(); err != nil {
		t.Fatalf("the test config does not check: %v\n%s", err, out)
	}
	img := filepath.Join(dir, "routerd.img")
	start := time.Now()
	args := []string{"run", "./mkimage", "-routerd", filepath.Join(bin, "routerd"), "-config", cfgFile, "-out", img, "-cache", "build/cache"}
	if os.Getenv("IMAGE_DEBUG") != "" {
		args = append(args, "-cmdline", "console=ttyS0,115200n8 routerd.log_level=debug")
	}
	cmd := exec.Command("go", args...)
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
func TestImageBoots(t *testing.T) {
	lab.Require(t, "qemu-system-x86_64", "sgdisk", "mformat", "mtype", "objcopy", "apt-get", "dpkg-deb", "udhcpc", "curl", "dnsmasq")
	ovmfCode, ovmfVars := "/usr/share/OVMF/OVMF_CODE_4M.fd", "/usr/share/OVMF/OVMF_VARS_4M.fd"
	if _, err := os.Stat(ovmfCode); err != nil {
		lab.Require(t, "OVMF (package ovmf)")
	}
	l := lab.New(t)
	img := buildImage(t, l.Dir, imageConfig)
	fi, _ := os.Stat(img)

	isp := l.NewISP(lab.ISPOptions{})
	host := l.NewRouter(isp) // the namespace qemu runs in: eth0 on the ISP, eth1 to the LAN switch
	lan := host.AddLAN()
	client := lan.AddClient()
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
	vars := filepath.Join(l.Dir, "OVMF_VARS.fd")
	b, _ := os.ReadFile(ovmfVars)
	os.WriteFile(vars, b, 0o644)
	qmpSock := filepath.Join(l.Dir, "qmp.sock")
	boot := time.Now()
	vm := host.NS.StartNet("qemu", "qemu-system-x86_64", "-machine", "q35", "-accel", "tcg", "-m", "512", "-smp", "1",
		"-display", "none", "-monitor", "none", "-chardev", "stdio,id=con,signal=off", "-serial", "chardev:con",
		"-drive", "if=pflash,format=raw,readonly=on,file="+ovmfCode, "-drive", "if=pflash,format=raw,file="+vars,
		"-drive", "file="+img+",format=raw,if=virtio", "-device", "virtio-rng-pci",
		"-netdev", "tap,id=wan,ifname=tapw,script=no,downscript=no", "-device", "virtio-net-pci,netdev=wan,mac="+vmWANMAC,
		"-netdev", "tap,id=lan,ifname=tapl,script=no,downscript=no", "-device", "virtio-net-pci,netdev=lan,mac="+vmLANMAC,
		"-qmp", "unix:"+qmpSock+",server=on,wait=off", "-no-reboot")
	console := func() string { return vm.Log.String() }

	var ready time.Duration
	l.Eventually(180*time.Second, "the ready line on the serial console", func() error {
		if done, err := vm.Exited(); done {
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
	if strings.Contains(console(), `msg="start failed"`) {
		t.Errorf("a component failed to start on the image:\n%s", console())
	}

	// The ACPI power button: a clean stop, then poweroff.
	qmp(t, qmpSock, "system_powerdown")
	select {
	case <-vm.Done():
	case <-time.After(90 * time.Second):
		t.Fatalf("still running 90s after the power button:\n%s", console())
	}
	if _, err := vm.Exited(); err != nil {
		t.Errorf("qemu: %v", err)
	}
	for _, want := range []string{"power button pressed", `msg="routerd stopped"`, "routerd: powering off"} {
		if !strings.Contains(console(), want) {
			t.Errorf("console lacks %q:\n%s", want, console())
		}
	}
	// The lease outlived the poweroff, on the data partition.
	journal, err := exec.Command("mtype", "-i", img+"@@"+dataOffset(t, img), "::/state/leases/leases.journal").CombinedOutput()
	if err != nil || !strings.Contains(strings.ToLower(string(journal)), strings.ToLower(client.MAC)) {
		t.Errorf("the lease journal on the data partition lacks the client %s: %v\n%s", client.MAC, err, journal)
	}
}

// dataOffset is the byte offset of partition 2 (routerd-data).
func dataOffset(t *testing.T, img string) string {
	out, err := exec.Command("sgdisk", "-i", "2", img).CombinedOutput()
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
