package timesync

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"time"

	"github.com/routerd/routerd/internal/atomicfile"
	"golang.org/x/sys/unix"
)

// Clock is the clock being disciplined.
type Clock interface {
	Now() time.Time
	// Step moves the clock by d at once.
	Step(d time.Duration) error
	// Slew moves the clock by d gradually (the kernel speeds it up or
	// slows it down by 500 ppm until the offset is gone), so that nothing
	// sees time jump or run backwards.
	Slew(d time.Duration) error
}

// SystemClock is the kernel's CLOCK_REALTIME. Setting it needs
// CAP_SYS_TIME.
type SystemClock struct{}

func (SystemClock) Now() time.Time { return time.Now() }

func (SystemClock) Step(d time.Duration) error {
	// ADJ_SETOFFSET adds d in the kernel: no read-modify-write race.
	sec, nsec := int64(d/time.Second), int64(d%time.Second)
	if nsec < 0 {
		sec, nsec = sec-1, nsec+int64(time.Second)
	}
	tx := unix.Timex{Modes: unix.ADJ_SETOFFSET | unix.ADJ_NANO, Time: unix.Timeval{Sec: sec, Usec: nsec}}
	if _, err := unix.Adjtimex(&tx); err != nil {
		return fmt.Errorf("step the clock by %s: %w", d, err)
	}
	return nil
}

func (SystemClock) Slew(d time.Duration) error {
	// adjtime(3)'s single-shot offset, in microseconds.
	tx := unix.Timex{Modes: unix.ADJ_OFFSET_SINGLESHOT, Offset: d.Microseconds()}
	if _, err := unix.Adjtimex(&tx); err != nil {
		return fmt.Errorf("slew the clock by %s: %w", d, err)
	}
	return nil
}

// readClockFile returns the time saved in path: its content (RFC 3339),
// or its modification time when the content is not a time (a file touched
// by hand, or systemd-timesyncd's empty one). A missing file is the zero
// time and no error.
func readClockFile(path string) (time.Time, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, err
	}
	if t, err := time.Parse(time.RFC3339Nano, strings.TrimSpace(string(b))); err == nil {
		return t, nil
	}
	fi, err := os.Stat(path)
	if err != nil {
		return time.Time{}, err
	}
	return fi.ModTime(), nil
}

// writeClockFile saves t to path, durably (it is read after a power cut).
func writeClockFile(path string, t time.Time) error {
	return atomicfile.WriteFile(path, []byte(t.UTC().Format(time.RFC3339Nano)+"\n"), 0o644)
}
