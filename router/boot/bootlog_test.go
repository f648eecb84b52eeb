package boot

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestTailKeepsWholeLastLines(t *testing.T) {
	tl := &tail{max: 100}
	for i := 0; i < 40; i++ {
		fmt.Fprintf(tl, "line %02d of the boot\n", i)
	}
	got := string(tl.bytes())
	if len(got) > 100 || !strings.HasPrefix(got, "line ") || !strings.HasSuffix(got, "line 39 of the boot\n") {
		t.Errorf("tail = %q", got)
	}
}

func TestBootLogRotation(t *testing.T) {
	dir := t.TempDir()
	first := &tail{max: 1 << 10}
	fmt.Fprintln(first, "routerd ready (first boot)")
	if err := rotateBootLog(dir); err != nil {
		t.Fatal(err)
	}
	if err := saveBootLog(dir, first); err != nil {
		t.Fatal(err)
	}
	if err := rotateBootLog(dir); err != nil { // the next boot
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, previousLog))
	if err != nil || !strings.Contains(string(b), "first boot") {
		t.Errorf("previous boot's log = %q, %v", b, err)
	}
	if _, err := os.Stat(filepath.Join(dir, bootLog)); err == nil {
		t.Error("this boot's log exists before anything was saved")
	}
}
