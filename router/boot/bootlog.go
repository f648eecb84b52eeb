package boot

import (
	"bufio"
	"io"
	"os"
	"path/filepath"
	"sync"

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
func rotateBootLog(dir string) {
	os.MkdirAll(filepath.Join(dir, "log"), 0o700)
	atomicfile.Rename(filepath.Join(dir, bootLog), filepath.Join(dir, previousLog))
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
		w.Write(append(sc.Bytes(), '\n'))
	}
}
