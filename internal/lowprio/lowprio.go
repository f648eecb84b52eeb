// Package lowprio runs bulk work at a low CPU priority: a block list of a
// million names parsed and saved, which on a two-core box would otherwise
// take a core from the resolver's answers for the while.
package lowprio

import (
	"runtime"

	"golang.org/x/sys/unix"
)

// Nice is the priority the work runs at (nice(1)'s scale: 19 is lowest).
const Nice = 10

// Run runs f on an OS thread of its own at priority Nice and waits for it.
// The thread is never handed back to the runtime: it ends with f's
// goroutine, its priority with it. A thread may always lower its own
// priority; if it cannot, f runs all the same.
func Run(f func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread() // not unlocked on purpose: see above
		_ = unix.Setpriority(unix.PRIO_PROCESS, unix.Gettid(), Nice)
		f()
	}()
	<-done
}
