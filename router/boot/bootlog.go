package boot

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/routerd/routerd/internal/atomicfile"
)

// The boot's log on the data partition: init keeps the last lines of its
// own and the appliance's output, and writes them at a clean shutdown and
// when the appliance dies, so that the next boot (routerctl logs
// --previous) can tell what happened. A power cut loses only what came
// after the last of those.
const (
	bootLog     = "log/boot.log"
	previousLog = "log/previous-boot.log" // router.PreviousBootLog
	bootLogMax  = 512 << 10
)

// tail keeps the last max bytes written to it, cut at a line start.
type tail struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.max; over > 0 {
		cut := over
		for cut < len(t.buf) && t.buf[cut-1] != '\n' {
			cut++
		}
		t.buf = append(t.buf[:0], t.buf[cut:]...)
	}
	return len(p), nil
}

func (t *tail) bytes() []byte {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]byte(nil), t.buf...)
}

// rotateBootLog makes the last boot's log the previous one; called once
// the data partition is mounted.
func rotateBootLog(dir string) error {
	if err := os.MkdirAll(filepath.Join(dir, "log"), 0o700); err != nil {
		return err
	}
	err := atomicfile.Rename(filepath.Join(dir, bootLog), filepath.Join(dir, previousLog))
	if errors.Is(err, fs.ErrNotExist) {
		return nil // the first boot
	}
	return err
}

// saveBootLog writes what t holds as this boot's log.
func saveBootLog(dir string, t *tail) error {
	path := filepath.Join(dir, bootLog)
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := f.Write(t.bytes()); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// copyLines copies r to w line by line until r ends: the appliance's
// output on its way to the console and the tail.
func copyLines(w io.Writer, r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		_, _ = w.Write(append(sc.Bytes(), '\n')) // the console and the tail: nowhere to report to
	}
}

// lossyWriter hands writes to a slow writer (the serial console: 115200
// baud is about 11 KiB/s) through a bounded queue. When the queue is full
// a write is dropped and counted, and the count is told once the writer
// catches up: a log burst must not stall every goroutine of the appliance
// behind the serial port. The tail (keep) gets every line regardless.
type lossyWriter struct {
	ch      chan lossyItem
	dropped atomic.Int64
}

type lossyItem struct {
	b       []byte
	done    chan struct{} // a flush mark
	dropped int64         // lines dropped just before this one
}

func newLossyWriter(w io.Writer, queue int) *lossyWriter {
	l := &lossyWriter{ch: make(chan lossyItem, queue)}
	go func() { // PID 1's: it lives as long as init
		for it := range l.ch {
			if it.dropped > 0 {
				fmt.Fprintf(w, "[routerd: %d console lines dropped: the console is slower than the log; the boot log on the data partition has them]\n", it.dropped)
			}
			if it.done != nil {
				close(it.done)
				continue
			}
			_, _ = w.Write(it.b) // a console that fails to show a line: nowhere to report to
		}
	}()
	return l
}

func (l *lossyWriter) Write(b []byte) (int, error) {
	it := lossyItem{b: bytes.Clone(b), dropped: l.dropped.Swap(0)}
	select {
	case l.ch <- it:
	default:
		l.dropped.Add(it.dropped + 1)
	}
	return len(b), nil
}

// Flush waits until what was written before reached the console, for at
// most d: the last lines before a reboot are the ones a person reads.
func (l *lossyWriter) Flush(d time.Duration) {
	done := make(chan struct{})
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case l.ch <- lossyItem{done: done, dropped: l.dropped.Swap(0)}:
	case <-t.C:
		return
	}
	select {
	case <-done:
	case <-t.C:
	}
}
