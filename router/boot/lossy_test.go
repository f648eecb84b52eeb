package boot

import (
	"bytes"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// gate is a writer stuck (a serial port far slower than the log) until
// opened.
type gate struct {
	open    chan struct{}
	entered chan struct{} // a write is waiting at the gate
	once    sync.Once
	mu      sync.Mutex
	buf     bytes.Buffer
}

func (g *gate) Write(b []byte) (int, error) {
	g.once.Do(func() { close(g.entered) })
	<-g.open
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.buf.Write(b)
}

// TestLossyConsole: writing to a console that does not keep up never
// blocks; what did not fit is dropped and said, and a flush brings the
// rest out in order.
func TestLossyConsole(t *testing.T) {
	g := &gate{open: make(chan struct{}), entered: make(chan struct{})}
	l := newLossyWriter(g, 16)
	// The first line is taken by the console writer before the burst
	// starts (as on a running appliance); otherwise how many lines fit
	// before it first runs is up to the scheduler.
	fmt.Fprintf(l, "line %d\n", 0)
	select {
	case <-g.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the console writer never wrote the first line")
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 1; i < 1000; i++ {
			fmt.Fprintf(l, "line %d\n", i)
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("writing 1000 lines to a stuck console blocked")
	}
	close(g.open)
	l.Flush(10 * time.Second)
	fmt.Fprintln(l, "the last line")
	l.Flush(10 * time.Second)
	g.mu.Lock()
	out := g.buf.String()
	g.mu.Unlock()
	// The lines that fitted, in order, then the note of exactly how many
	// did not, then what came after.
	m := regexp.MustCompile(`line (\d+)\n\[routerd: (\d+) console lines dropped`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("console output:\n%s\nwant a note of the lines dropped", out)
	}
	last, _ := strconv.Atoi(m[1])
	n, _ := strconv.Atoi(m[2])
	if last+1+n != 1000 || !strings.HasSuffix(out, "the last line\n") || !strings.HasPrefix(out, "line 0\n") ||
		strings.Count(out, "\n") != last+3 {
		t.Errorf("console output:\n%s\nwant the first lines, a note of those dropped, and the last line", out)
	}
}
