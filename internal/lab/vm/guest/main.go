// Command guest is the VM lab's /init: it mounts the host's root file
// system (9p, read-only) under a tmpfs overlay, so that the guest runs the
// very programs and test binaries the host has and may write anywhere
// without touching the host; mounts the Debian kernel's modules where
// modprobe looks for them; then serves the host's commands on a
// virtio-serial port (vm.Serve) while reaping orphans as PID 1 must. When
// the agent ends (the host closed the port), the guest powers off.
//
// The kernel command line carries what the host shares:
//
//	routerd.modules=/host/path/lib/modules/VERSION
//	routerd.rw=TAG:/host/path[,TAG:/host/path]   read-write 9p shares
package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/routerd/routerd/internal/lab/vm"
	"golang.org/x/sys/unix"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "agent" {
		if err := agent(); err != nil {
			fmt.Fprintln(os.Stderr, "vm agent:", err)
			os.Exit(1)
		}
		return
	}
	if err := setup(); err != nil {
		fmt.Fprintln(os.Stderr, "vm init:", err)
		poweroff()
	}
	cmd := exec.Command("/proc/self/exe", "agent")
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "vm init: start agent:", err)
		poweroff()
	}
	// PID 1 reaps every orphan; the agent's end ends the guest.
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, 0, nil)
		if err == nil && pid == cmd.Process.Pid {
			break
		}
		if errors.Is(err, unix.ECHILD) {
			break
		}
	}
	poweroff()
}

func poweroff() {
	unix.Sync()
	unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
	select {}
}

type mount struct {
	src, target, fstype string
	flags               uintptr
	data                string
}

func (m mount) do() error {
	if err := os.MkdirAll(m.target, 0o755); err != nil {
		return err
	}
	if err := unix.Mount(m.src, m.target, m.fstype, m.flags, m.data); err != nil {
		return fmt.Errorf("mount %s on %s (%s): %w", m.src, m.target, m.fstype, err)
	}
	return nil
}

func setup() error {
	for _, m := range []mount{
		{"proc", "/proc", "proc", 0, ""},
		{"sysfs", "/sys", "sysfs", 0, ""},
		{"devtmpfs", "/dev", "devtmpfs", 0, ""},
	} {
		if err := m.do(); err != nil {
			return err
		}
	}
	if err := loadModules("/lib/modules/list"); err != nil {
		return err
	}
	params := cmdline()
	// The host's root, read-only, under a tmpfs the guest writes to.
	const p9 = "trans=virtio,version=9p2000.L,msize=524288,cache=loose"
	for _, m := range []mount{
		{"hostroot", "/lower", "9p", unix.MS_RDONLY, p9},
		{"rw", "/rw", "tmpfs", 0, "mode=0755"},
	} {
		if err := m.do(); err != nil {
			return err
		}
	}
	os.MkdirAll("/rw/upper", 0o755)
	os.MkdirAll("/rw/work", 0o755)
	if err := (mount{"overlay", "/root", "overlay", 0, "lowerdir=/lower,upperdir=/rw/upper,workdir=/rw/work"}).do(); err != nil {
		return err
	}
	const root = "/root"
	mounts := []mount{
		{"proc", root + "/proc", "proc", 0, ""},
		{"sysfs", root + "/sys", "sysfs", 0, ""},
		{"devtmpfs", root + "/dev", "devtmpfs", 0, ""},
		{"devpts", root + "/dev/pts", "devpts", 0, "newinstance,ptmxmode=0666"},
		{"shm", root + "/dev/shm", "tmpfs", 0, ""},
		{"cgroup2", root + "/sys/fs/cgroup", "cgroup2", 0, ""},
		{"bpf", root + "/sys/fs/bpf", "bpf", 0, ""},
		{"run", root + "/run", "tmpfs", 0, "mode=0755"},
	}
	if mods := params["routerd.modules"]; mods != "" {
		ver := filepath.Base(mods)
		mounts = append(mounts, mount{filepath.Join(root, mods), root + "/lib/modules/" + ver, "", unix.MS_BIND, ""})
	}
	for _, share := range strings.Split(params["routerd.rw"], ",") {
		tag, path, ok := strings.Cut(share, ":")
		if !ok {
			continue
		}
		mounts = append(mounts, mount{tag, root + path, "9p", 0, "trans=virtio,version=9p2000.L,msize=524288"})
	}
	for _, m := range mounts {
		if err := m.do(); err != nil {
			return err
		}
	}
	// Into the new root, as switch_root does: the initramfs cannot be
	// pivoted away from.
	if err := unix.Chdir(root); err != nil {
		return err
	}
	if err := unix.Mount(".", "/", "", unix.MS_MOVE, ""); err != nil {
		return fmt.Errorf("move the new root: %w", err)
	}
	if err := unix.Chroot("."); err != nil {
		return err
	}
	if err := unix.Chdir("/"); err != nil {
		return err
	}
	if mods := params["routerd.modules"]; mods != "" {
		if err := staticNodes("/lib/modules/" + filepath.Base(mods) + "/modules.devname"); err != nil {
			return err
		}
	}
	unix.Sethostname([]byte("routerd-vmlab"))
	os.Setenv("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
	return loUp()
}

// loadModules loads what mounting the host's root needs, in order.
func loadModules(list string) error {
	b, err := os.ReadFile(list)
	if err != nil {
		return err
	}
	for _, name := range strings.Fields(string(b)) {
		f, err := os.Open("/lib/modules/" + name + ".ko")
		if err != nil {
			return err
		}
		err = unix.FinitModule(int(f.Fd()), "", 0)
		f.Close()
		if err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("load module %s: %w", name, err)
		}
	}
	return nil
}

// staticNodes creates the device nodes whose first open loads their
// module (/dev/net/tun, /dev/ppp), as kmod static-nodes does for udev.
func staticNodes(devname string) error {
	b, err := os.ReadFile(devname)
	if err != nil {
		return err
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) != 3 || strings.HasPrefix(f[0], "#") || f[2][0] != 'c' {
			continue
		}
		var major, minor uint32
		if _, err := fmt.Sscanf(f[2], "c%d:%d", &major, &minor); err != nil {
			continue
		}
		path := "/dev/" + f[1]
		os.MkdirAll(filepath.Dir(path), 0o755)
		if err := unix.Mknod(path, unix.S_IFCHR|0o600, int(unix.Mkdev(major, minor))); err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("mknod %s: %w", path, err)
		}
	}
	return nil
}

func cmdline() map[string]string {
	b, _ := os.ReadFile("/proc/cmdline")
	m := map[string]string{}
	for _, f := range strings.Fields(string(b)) {
		k, v, _ := strings.Cut(f, "=")
		m[k] = v
	}
	return m
}

// loUp brings the initial namespace's loopback up.
func loUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("lo flags: %w", err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("lo up: %w", err)
	}
	return nil
}

// agent serves the host on the virtio-serial port named vm.PortName.
func agent() error {
	dev, err := findPort(vm.PortName)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(dev, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	return vm.Serve(f)
}

func findPort(name string) (string, error) {
	ports, _ := filepath.Glob("/sys/class/virtio-ports/*/name")
	for _, p := range ports {
		b, err := os.ReadFile(p)
		if err == nil && strings.TrimSpace(string(b)) == name {
			return "/dev/" + filepath.Base(filepath.Dir(p)), nil
		}
	}
	return "", fmt.Errorf("no virtio-serial port named %s", name)
}
