package lowprio

import (
	"testing"

	"golang.org/x/sys/unix"
)

// TestRun: f runs at priority Nice; the caller's thread keeps its own.
func TestRun(t *testing.T) {
	before, err := unix.Getpriority(unix.PRIO_PROCESS, unix.Gettid())
	if err != nil {
		t.Fatal(err)
	}
	var got int
	Run(func() {
		got, err = unix.Getpriority(unix.PRIO_PROCESS, unix.Gettid())
	})
	if err != nil {
		t.Fatal(err)
	}
	// getpriority(2) returns 20 - nice.
	if got != 20-Nice {
		t.Errorf("f ran at nice %d, want %d", 20-got, Nice)
	}
	if after, _ := unix.Getpriority(unix.PRIO_PROCESS, unix.Gettid()); after != before {
		t.Errorf("the caller's priority changed: %d, was %d", after, before)
	}
}
