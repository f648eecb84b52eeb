package boot

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/routerd/routerd/router/config"
	"github.com/routerd/routerd/router/control"
	"github.com/routerd/routerd/router/status"
	"github.com/routerd/routerd/router/update"
	"golang.org/x/sys/unix"
)

// The EFI system partition, which holds the boot slots.
const (
	ESPName = "EFI system partition" // its GPT name, as mkimage writes it
	ESPDir  = "/boot/efi"
)

// mountESP mounts the EFI system partition and efivarfs, which updates
// and the probation of a new slot need.
func mountESP(ctx context.Context) error {
	if _, err := os.Stat("/sys/firmware/efi"); err != nil {
		return errors.New("not booted by UEFI: no A/B updates")
	}
	var errs []error
	if err := unix.Mount("efivarfs", "/sys/firmware/efi/efivars", "efivarfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil && !errors.Is(err, unix.EBUSY) {
		errs = append(errs, fmt.Errorf("mount efivarfs: %w", err))
	}
	dev, err := waitPartition(ctx, ESPName, 10*time.Second)
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	if err := os.MkdirAll(ESPDir, 0o755); err != nil {
		return errors.Join(append(errs, err)...)
	}
	if err := unix.Mount(dev, ESPDir, "vfat", unix.MS_NOATIME|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC,
		"umask=0077,errors=remount-ro"); err != nil && !errors.Is(err, unix.EBUSY) {
		errs = append(errs, fmt.Errorf("mount %s (vfat) on %s: %w", dev, ESPDir, err))
	}
	return errors.Join(errs...)
}

// Slots returns the boot slots of this machine: the ESP mounted on ESPDir,
// its GPT entry read from its disk, the update record in stateDir.
func Slots(stateDir string) (*update.Slots, error) {
	dev, ok := partitionByName("/sys/class/block", ESPName)
	if !ok {
		return nil, fmt.Errorf("no partition named %q", ESPName)
	}
	// /sys/class/block/vda1 links into .../block/vda/vda1: the disk is
	// the parent directory.
	target, err := filepath.EvalSymlinks(filepath.Join("/sys/class/block", filepath.Base(dev)))
	if err != nil {
		return nil, err
	}
	disk := "/dev/" + filepath.Base(filepath.Dir(target))
	part, err := update.FindPartitionOn(disk, ESPName)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", disk, err)
	}
	return &update.Slots{ESP: ESPDir, Part: part, State: stateDir}, nil
}

// probation is a new slot proving itself.
type probation struct {
	slots    *update.Slots
	attempt  *update.Attempt
	deadline time.Time
	socket   string
	dog      *os.File // the watchdog, nil without one
}

// probationCheck is how often init asks the appliance how it is.
const probationCheck = 2 * time.Second

// watchdogTimeout reboots the box if init itself stops petting the
// watchdog while a new slot is on probation (a hung kernel or init).
const watchdogTimeout = 60

// startProbation looks at the update record once the data partition is
// up. A slot that booted from an update starts its probation; an old slot
// that booted instead records the rollback.
func (i *initProc) startProbation(ctx context.Context) {
	if err := mountESP(ctx); err != nil {
		i.log.Warn("no boot slots", "err", err)
		return
	}
	stateDir := filepath.Join(DataDir, "state")
	slots, err := Slots(stateDir)
	if err != nil {
		i.log.Warn("no boot slots", "err", err)
		return
	}
	rec, err := update.Load(stateDir)
	if err != nil {
		i.log.Error("read the update record: no probation this boot", "err", err)
		return
	}
	if rec.Attempt == nil {
		return
	}
	a := rec.Attempt
	running := slots.Running()
	if running != a.Slot {
		// The new slot booted and gave up (its reason is recorded), or it
		// never got that far: it hung, crashed, or did not boot.
		if rec.Last == nil || rec.Last.At.Before(a.At) {
			if err := slots.RolledBack(fmt.Sprintf("slot %s never reported: it did not boot, or it hung (watchdog)", a.Slot)); err != nil {
				i.log.Error("record the rollback", "err", err)
			}
			if r, err := update.Load(stateDir); err != nil {
				i.log.Error("read the update record", "err", err)
			} else {
				rec = r
			}
		}
		rec.Attempt = nil
		if err := rec.Save(stateDir); err != nil {
			i.log.Error("save the update record", "err", err)
		}
		reason := "unknown: the update record has none"
		if rec.Last != nil {
			reason = rec.Last.Reason
		}
		i.log.Error("update rolled back", "to", running, "version", a.Version, "reason", reason)
		return
	}
	limit, socket := 3*time.Minute, config.DefaultSocket
	// The config may not load in this version: then it never commits.
	if cfg, _, err := config.Load(ConfigPath); err == nil {
		limit, socket = cfg.Update.Probation, cfg.Status.Socket
	}
	a.Probation = time.Now()
	if err := rec.Save(stateDir); err != nil {
		i.log.Error("save the update record", "err", err)
	}
	i.probation = &probation{slots: slots, attempt: a, deadline: time.Now().Add(limit), socket: socket, dog: armWatchdog(i)}
	i.log.Info("new version on probation", "slot", a.Slot, "version", a.Version, "until", i.probation.deadline.Format(time.TimeOnly))
}

// checkProbation commits the slot once the appliance is healthy, and
// rolls back (reboots into the committed slot) at the deadline.
func (i *initProc) checkProbation() {
	p := i.probation
	if p == nil {
		return
	}
	if p.dog != nil {
		if _, err := p.dog.Write([]byte{0}); err != nil {
			i.log.Warn("the watchdog is not fed: it may reset the machine before the deadline", "err", err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), probationCheck)
	defer cancel()
	var st status.Status
	healthy, why := false, "the appliance is not running"
	if err := control.NewClient(p.socket).Do(ctx, control.Status.Method, control.Status.URL(nil), &st, nil); err == nil {
		healthy, why = update.Healthy(&st, p.attempt.WANWasUp)
	} else if i.child != nil {
		why = "the appliance does not answer: " + err.Error()
	}
	if healthy {
		if err := p.slots.Commit(p.attempt.Slot); err != nil {
			i.log.Error("commit the new slot", "err", err)
			return // try again at the next check, until the deadline
		}
		disarmWatchdog(p.dog)
		i.probation = nil
		i.log.Info("update committed", "slot", p.attempt.Slot, "version", p.attempt.Version)
		return
	}
	if time.Now().Before(p.deadline) {
		return
	}
	reason := fmt.Sprintf("not healthy within %s: %s", p.deadline.Sub(p.attempt.Probation).Round(time.Second), why)
	i.log.Error("the new version is not healthy; rolling back", "slot", p.attempt.Slot, "version", p.attempt.Version, "reason", reason)
	if err := p.slots.RolledBack(reason); err != nil {
		i.log.Error("record the rollback", "err", err)
	}
	i.probation = nil
	i.shutdown(reboot) // BootNext is spent: the firmware boots the committed slot
}

// armWatchdog opens the watchdog (a hardware one, or softdog) with a
// minute's timeout; nil when there is none.
func armWatchdog(i *initProc) *os.File {
	f, err := os.OpenFile("/dev/watchdog", os.O_WRONLY, 0)
	if err != nil {
		i.log.Warn("no watchdog: a hang on probation needs a power cycle to roll back", "err", err)
		return nil
	}
	t := watchdogTimeout
	if err := unix.IoctlSetPointerInt(int(f.Fd()), unix.WDIOC_SETTIMEOUT, t); err != nil {
		i.log.Warn("the watchdog keeps its own timeout", "err", err)
	}
	ident, _ := os.ReadFile("/sys/class/watchdog/watchdog0/identity")
	i.log.Info("watchdog armed", "device", strings.TrimSpace(string(ident)), "timeout_s", t)
	return f
}

// disarmWatchdog stops it with the magic close.
func disarmWatchdog(f *os.File) {
	if f == nil {
		return
	}
	// Without the magic character the close leaves it running (nowayout):
	// the machine then resets within the timeout, and boots the
	// committed slot, which is this one.
	_, _ = f.Write([]byte("V"))
	f.Close()
}
