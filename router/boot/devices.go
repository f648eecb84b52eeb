package boot

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// loadModules loads the image's modules in the listed order (each after
// its dependencies) with finit_module. A module already loaded is fine; a
// module that fails (a driver for hardware that is not there may refuse)
// is reported and skipped.
func loadModules(list, dir string) (loaded int, failed []string) {
	f, err := os.Open(list)
	if err != nil {
		return 0, []string{"(" + err.Error() + ")"}
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name := strings.TrimSpace(sc.Text())
		if name == "" {
			continue
		}
		if err := loadModule(filepath.Join(dir, name+".ko")); err != nil {
			failed = append(failed, fmt.Sprintf("%s(%v)", name, err))
			continue
		}
		loaded++
	}
	return loaded, failed
}

func loadModule(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := unix.FinitModule(int(f.Fd()), "", 0); err != nil && !errors.Is(err, unix.EEXIST) {
		return err
	}
	return nil
}

// partitionByName finds the block device of the GPT partition with the
// given name, from the PARTNAME the kernel puts in each partition's
// uevent file under sys (/sys/class/block).
func partitionByName(sys, name string) (string, bool) {
	entries, _ := os.ReadDir(sys)
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(sys, e.Name(), "uevent"))
		if err != nil {
			continue
		}
		var dev, part string
		for _, l := range strings.Split(string(b), "\n") {
			k, v, _ := strings.Cut(l, "=")
			switch k {
			case "DEVNAME":
				dev = v
			case "PARTNAME":
				part = v
			}
		}
		if part == name && dev != "" {
			return "/dev/" + dev, true
		}
	}
	return "", false
}

// waitPartition waits for the named partition to appear: USB storage is
// enumerated after the modules load, seconds into the boot. It listens to
// the kernel's uevents and looks again whenever a block device comes.
func waitPartition(ctx context.Context, name string, timeout time.Duration) (string, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.NETLINK_KOBJECT_UEVENT)
	if err != nil {
		return "", fmt.Errorf("uevent socket: %w", err)
	}
	defer unix.Close(fd)
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: 1}); err != nil {
		return "", fmt.Errorf("bind uevent socket: %w", err)
	}
	deadline := time.Now().Add(timeout)
	buf := make([]byte, 8192)
	for {
		// Subscribed first, then looked: nothing that appears in between
		// is missed.
		if dev, ok := partitionByName("/sys/class/block", name); ok {
			return dev, nil
		}
		left := time.Until(deadline)
		if left <= 0 {
			return "", fmt.Errorf("no partition named %q after %s", name, timeout)
		}
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		tv := unix.NsecToTimeval(min(left, time.Second).Nanoseconds())
		if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
			return "", fmt.Errorf("uevent socket timeout: %w", err)
		}
		_, _ = unix.Read(fd, buf) // any event, the timeout or an error: look again
	}
}

// mountData waits for the routerd-data partition and mounts it on
// DataDir, with the state directory in it.
func mountData(ctx context.Context, log *slog.Logger) error {
	dev, err := waitPartition(ctx, DataName, 30*time.Second)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(DataDir, 0o755); err != nil {
		return err
	}
	// Files private to root: the partition holds the WireGuard key.
	if err := unix.Mount(dev, DataDir, "vfat", unix.MS_NOATIME|unix.MS_NOSUID|unix.MS_NODEV,
		"utf8,umask=0077,errors=remount-ro"); err != nil && !errors.Is(err, unix.EBUSY) {
		return fmt.Errorf("mount %s (vfat) on %s: %w", dev, DataDir, err)
	}
	if err := os.MkdirAll(filepath.Join(DataDir, "state"), 0o700); err != nil {
		return err
	}
	log.Info("config partition mounted", "device", dev, "on", DataDir)
	return nil
}

// watchPowerButton turns a press of the ACPI power button (an input
// device named "Power Button", from the button driver) into a poweroff.
func watchPowerButton(log *slog.Logger, power chan<- struct{}) {
	for _, dev := range powerButtons("/proc/bus/input/devices") {
		f, err := os.Open(dev)
		if err != nil {
			log.Warn("open the power button", "device", dev, "err", err)
			continue
		}
		log.Info("watching the power button", "device", dev)
		go func() {
			defer f.Close()
			// struct input_event on 64-bit: timeval (16), type, code
			// (2 each), value (4).
			ev := make([]byte, 24)
			for {
				if _, err := f.Read(ev); err != nil {
					return
				}
				typ, code, val := binary.NativeEndian.Uint16(ev[16:]), binary.NativeEndian.Uint16(ev[18:]), int32(binary.NativeEndian.Uint32(ev[20:]))
				if typ == unix.EV_KEY && code == keyPower && val == 1 {
					select {
					case power <- struct{}{}:
					default:
					}
				}
			}
		}()
	}
}

// powerButtons lists the event devices of input devices named "Power
// Button" in /proc/bus/input/devices.
func powerButtons(devices string) []string {
	b, err := os.ReadFile(devices)
	if err != nil {
		return nil
	}
	var out []string
	for _, block := range strings.Split(string(b), "\n\n") {
		if !strings.Contains(block, `Name="Power Button"`) {
			continue
		}
		for _, l := range strings.Split(block, "\n") {
			if h, ok := strings.CutPrefix(l, "H: Handlers="); ok {
				for _, f := range strings.Fields(h) {
					if strings.HasPrefix(f, "event") {
						out = append(out, "/dev/input/"+f)
					}
				}
			}
		}
	}
	return out
}

// keyPower is KEY_POWER of linux/input-event-codes.h.
const keyPower = 116
