// Package boot is routerd's init mode: what it does as PID 1 on the image.
//
// It mounts the kernel's filesystems, loads the modules the image ships,
// mounts the config and state partition, and runs the appliance as a child
// process, so that a crash in the appliance restarts it instead of killing
// PID 1 (which would panic the kernel). It reaps orphans, and on SIGTERM,
// the ACPI power button or routerctl poweroff it stops the appliance,
// unmounts and powers off; on Ctrl-Alt-Del or routerctl reboot it reboots.
//
// Nothing here runs outside PID 1 on the image: it mounts over / and
// powers the machine off.
package boot

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/routerd/routerd/router/config"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Layout of the image.
const (
	ModuleDir  = "/lib/modules"
	ModuleList = "/lib/modules/routerd.list"
	DataName   = "routerd-data" // GPT partition name of the config/state partition
	DataDir    = "/data"
	ConfigPath = "/etc/routerd/routerd.toml" // /etc/routerd is DataDir
	// EnvChild tells the appliance it runs under this init, which makes
	// routerctl poweroff and reboot available.
	EnvChild = "ROUTERD_INIT"
)

// The signals PID 1 takes, as busybox init does, plus SIGTERM for poweroff.
var (
	PoweroffSignals = []os.Signal{syscall.SIGTERM, syscall.SIGUSR2, syscall.SIGPWR}
	RebootSignal    = syscall.SIGINT // also what the kernel sends on Ctrl-Alt-Del
)

type action int

const (
	poweroff action = iota
	reboot
)

// Main is PID 1. It returns only if it is not PID 1; otherwise the machine
// powers off or reboots at the end.
func Main(self string) error {
	if os.Getpid() != 1 {
		return errors.New("init mode runs only as PID 1 (the image's /init)")
	}
	console := openConsole()
	log := slog.New(slog.NewTextHandler(console, nil)).With("init", "routerd")
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, append(PoweroffSignals, RebootSignal, syscall.SIGCHLD)...)
	// Ctrl-Alt-Del becomes SIGINT to init instead of an immediate reboot.
	if err := unix.Reboot(unix.LINUX_REBOOT_CMD_CAD_OFF); err != nil {
		log.Warn("Ctrl-Alt-Del stays an immediate reboot", "err", err)
	}

	if err := mountBase(); err != nil {
		log.Error("mount the kernel filesystems", "err", err)
	}
	console = openConsole() // /dev is devtmpfs now: the screen too
	keep := &tail{max: bootLogMax}
	screen := newLossyWriter(console, 4096)
	console = io.MultiWriter(screen, keep)
	log = slog.New(slog.NewTextHandler(console, nil)).With("init", "routerd")
	log.Info("routerd init starting")
	if err := loopbackUp(); err != nil {
		log.Error("loopback down: the appliance's own services are unreachable", "err", err)
	}
	loaded, failed := loadModules(ModuleList, ModuleDir)
	log.Info("kernel modules loaded", "loaded", loaded, "failed", strings.Join(failed, " "))
	if _, err := unix.Getrandom(make([]byte, 1), unix.GRND_NONBLOCK); errors.Is(err, unix.EAGAIN) {
		log.Warn("the kernel's random number generator is not seeded yet: DHCP and WireGuard wait for it (no RDRAND or hardware RNG?)")
	}
	if err := os.WriteFile("/etc/resolv.conf", []byte("nameserver 127.0.0.1\nnameserver ::1\n"), 0o644); err != nil {
		log.Error("the appliance's own names will not resolve", "err", err)
	}
	power := make(chan struct{}, 1)
	go watchPowerButton(log, power)

	i := &initProc{self: self, log: log, console: console, screen: screen, keep: keep, sigs: sigs, power: power}
	return i.run()
}

type initProc struct {
	self    string
	log     *slog.Logger
	console io.Writer // the console, and keep
	screen  *lossyWriter
	keep    *tail // this boot's output, for the data partition
	dataOK  bool  // the data partition is mounted
	sigs    chan os.Signal
	power   chan struct{}
	child   *os.Process
	// probation is a new boot slot proving itself (A/B updates); nil
	// when none is.
	probation *probation
}

// run mounts the data partition, checks the config and keeps the
// appliance running until asked to stop. Every failure on the way is told
// on the console and retried; none of them ends PID 1.
func (i *initProc) run() error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	data := make(chan error, 1)
	go func() { data <- mountData(ctx, i.log) }()
	var (
		dataReady bool
		restart   = time.NewTimer(time.Hour)
		backoff   = time.Second
		started   time.Time
		health    = time.NewTicker(probationCheck)
	)
	defer health.Stop()
	restart.Stop()
	for {
		select {
		case err := <-data:
			if err != nil {
				i.log.Error("no config partition; retrying in 30s", "err", err)
				go func() {
					select {
					case <-time.After(30 * time.Second):
						data <- mountData(ctx, i.log)
					case <-ctx.Done():
					}
				}()
				continue
			}
			dataReady = true
			i.dataOK = true
			if err := rotateBootLog(DataDir); err != nil {
				i.log.Warn("the last boot's log not kept as the previous one", "err", err)
			}
			i.startProbation(ctx)
			restart.Reset(0)
		case <-health.C:
			i.checkProbation()
		case <-restart.C:
			if !dataReady || i.child != nil {
				continue
			}
			if err := i.checkConfig(); err != nil {
				i.log.Error("the config is not usable; fix routerd.toml on the routerd-data partition (or power off); retrying in 30s", "err", err)
				restart.Reset(30 * time.Second)
				continue
			}
			if err := i.startChild(); err != nil {
				i.log.Error("start the appliance", "err", err, "retry_in", backoff)
				restart.Reset(backoff)
				backoff = min(backoff*2, 30*time.Second)
				continue
			}
			started = time.Now()
		case <-i.power:
			i.log.Info("power button pressed")
			i.shutdown(poweroff)
		case s := <-i.sigs:
			switch s {
			case syscall.SIGCHLD:
				if i.reap() {
					if time.Since(started) > time.Minute {
						backoff = time.Second
					}
					i.log.Error("the appliance exited; restarting", "in", backoff)
					i.saveLog() // its last lines survive a power cut now
					restart.Reset(backoff)
					backoff = min(backoff*2, 30*time.Second)
				}
			case RebootSignal:
				i.shutdown(reboot)
			default:
				i.shutdown(poweroff)
			}
		}
	}
}

// checkConfig validates the config as routerd --check would, printing
// every error, and sets the host name from it.
func (i *initProc) checkConfig() error {
	cfg, _, err := config.Load(ConfigPath)
	if err != nil {
		var errs config.Errors
		if errors.As(err, &errs) {
			for _, e := range errs {
				fmt.Fprintf(i.console, "routerd.toml: %v\n", e)
			}
		}
		return err
	}
	if err := unix.Sethostname([]byte(cfg.Hostname)); err != nil {
		i.log.Warn("hostname not set", "hostname", cfg.Hostname, "err", err)
	}
	return nil
}

// startChild runs the appliance: this same binary in its normal mode, its
// output on the console.
func (i *initProc) startChild() error {
	args := []string{"routerd", "--config", ConfigPath}
	if lvl := cmdlineParam("/proc/cmdline", "routerd.log_level"); lvl != "" {
		args = append(args, "--log-level", lvl)
	}
	// Its output goes to the console through init, which keeps the tail.
	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	p, err := os.StartProcess(i.self, args, &os.ProcAttr{
		Env:   []string{EnvChild + "=1", "PATH=/", "HOME=/"},
		Files: []*os.File{nil, w, w},
	})
	w.Close()
	if err != nil {
		r.Close()
		return err
	}
	go func() {
		copyLines(i.console, r)
		r.Close()
	}()
	i.child = p
	i.log.Info("appliance started", "pid", p.Pid)
	return nil
}

// reap collects every exited process (PID 1 inherits orphans) and reports
// whether the appliance was among them. It waits with wait4 directly, not
// os.Process.Wait, which would wait for one process only.
func (i *initProc) reap() (applianceExited bool) {
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		if pid <= 0 || err != nil {
			return applianceExited
		}
		if i.child != nil && pid == i.child.Pid {
			i.log.Warn("appliance exited", "status", describe(ws))
			i.child = nil
			applianceExited = true
		}
	}
}

func describe(ws unix.WaitStatus) string {
	if ws.Signaled() {
		return "killed by " + ws.Signal().String()
	}
	return fmt.Sprintf("exit %d", ws.ExitStatus())
}

// shutdown stops the appliance (it leaves the network as it is, which
// does not matter now), ends every other process, unmounts the data
// partition and powers off or reboots. It never returns.
func (i *initProc) shutdown(a action) {
	what := map[action]string{poweroff: "powering off", reboot: "rebooting"}[a]
	i.log.Info("stopping the appliance before " + what)
	if i.child != nil {
		if err := i.child.Signal(syscall.SIGTERM); err != nil {
			i.log.Warn("signal the appliance", "err", err) // it exited already: the wait below reaps it
		}
		deadline := time.After(20 * time.Second)
	wait:
		for i.child != nil {
			select {
			case s := <-i.sigs:
				if s == syscall.SIGCHLD {
					i.reap()
				}
			case <-deadline:
				i.log.Warn("the appliance did not stop in 20s; killing it")
				break wait
			}
		}
	}
	// ESRCH: no process was left to signal.
	_ = unix.Kill(-1, unix.SIGTERM)
	time.Sleep(500 * time.Millisecond) // what is left gets a moment to exit before SIGKILL
	_ = unix.Kill(-1, unix.SIGKILL)
	i.reap()
	i.log.Info("saving this boot's log", "file", filepath.Join(DataDir, bootLog))
	i.saveLog()
	unix.Sync()
	if err := unix.Unmount(DataDir, 0); err != nil {
		i.log.Warn("unmount the data partition; remounting it read-only", "err", err)
		if err := unix.Mount("", DataDir, "", unix.MS_REMOUNT|unix.MS_RDONLY, ""); err != nil {
			i.log.Error("the data partition stays writable: its file system may need a check at the next boot", "err", err)
		}
	}
	unix.Sync()
	i.log.Info("routerd: " + what)
	i.screen.Flush(5 * time.Second)
	cmd := unix.LINUX_REBOOT_CMD_POWER_OFF
	if a == reboot {
		cmd = unix.LINUX_REBOOT_CMD_RESTART
	}
	for {
		if err := unix.Reboot(cmd); err != nil {
			i.log.Error(what, "err", err)
		}
		time.Sleep(time.Second)
	}
}

// openConsole returns where init writes: /dev/console, and the screen
// (tty1) as well when the console is the serial port, so that a box with a
// monitor shows routerd's messages too.
func openConsole() io.Writer {
	var ws []io.Writer
	if c, err := os.OpenFile("/dev/console", os.O_WRONLY|unix.O_NOCTTY, 0); err == nil {
		ws = append(ws, c)
		os.Stdout, os.Stderr = c, c
	} else {
		ws = append(ws, os.Stdout)
	}
	if t, err := os.OpenFile("/dev/tty1", os.O_WRONLY|unix.O_NOCTTY, 0); err == nil {
		ws = append(ws, t)
	}
	return io.MultiWriter(ws...)
}

// mountBase mounts /proc, /sys, /dev, /run and /tmp, and makes the paths
// routerd uses point at the data partition.
func mountBase() error {
	var errs []error
	for _, m := range []struct {
		src, dst, fstype string
		flags            uintptr
		data             string
	}{
		{"proc", "/proc", "proc", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, ""},
		{"sysfs", "/sys", "sysfs", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, ""},
		{"devtmpfs", "/dev", "devtmpfs", unix.MS_NOSUID, "mode=0755"},
		{"tmpfs", "/run", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=0755"},
		{"tmpfs", "/tmp", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=1777"},
	} {
		if err := os.MkdirAll(m.dst, 0o755); err != nil {
			errs = append(errs, err)
			continue
		}
		if err := unix.Mount(m.src, m.dst, m.fstype, m.flags, m.data); err != nil && !errors.Is(err, unix.EBUSY) {
			errs = append(errs, fmt.Errorf("mount %s on %s: %w", m.fstype, m.dst, err))
		}
	}
	if err := os.MkdirAll("/var/lib", 0o755); err != nil {
		errs = append(errs, err)
	}
	for link, target := range map[string]string{
		"/var/run":         "/run",
		"/etc/routerd":     DataDir,
		"/var/lib/routerd": filepath.Join(DataDir, "state"),
		"/etc/mtab":        "/proc/self/mounts",
		"/dev/fd":          "/proc/self/fd",
	} {
		if err := os.Symlink(target, link); err != nil && !errors.Is(err, os.ErrExist) {
			errs = append(errs, fmt.Errorf("link %s: %w", link, err))
		}
	}
	return errors.Join(errs...)
}

// cmdlineParam returns the value of key=value on the kernel command line:
// routerd.log_level=debug turns on the appliance's debug logs.
func cmdlineParam(path, key string) string {
	b, _ := os.ReadFile(path)
	for _, f := range strings.Fields(string(b)) {
		if v, ok := strings.CutPrefix(f, key+"="); ok {
			return v
		}
	}
	return ""
}

// saveLog writes this boot's output so far to the data partition.
func (i *initProc) saveLog() {
	if !i.dataOK {
		return
	}
	if err := saveBootLog(DataDir, i.keep); err != nil {
		i.log.Warn("save this boot's log", "err", err)
	}
}

func loopbackUp() error {
	lo, err := netlink.LinkByName("lo")
	if err != nil {
		return err
	}
	return netlink.LinkSetUp(lo)
}
