package blocklist

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
)

// TestListLimits: a list of more entries than max_entries is refused
// whole; a saved copy that would fill state_dir's file system is not
// written.
func TestListLimits(t *testing.T) {
	var b strings.Builder
	for i := range 1001 {
		fmt.Fprintf(&b, "203.0.%d.%d\n", i/256, i%256)
	}
	if _, err := ParseMax(strings.NewReader(b.String()), "lines", NewProtected(), 1000); err == nil || !strings.Contains(err.Error(), "max_entries") {
		t.Errorf("1001 entries with max_entries 1000: %v, want refused", err)
	}
	if p, err := ParseMax(strings.NewReader(b.String()), "lines", NewProtected(), 1001); err != nil || p.Entries != 1001 {
		t.Errorf("1001 entries with max_entries 1001: %v", err)
	}
	dir := t.TempDir()
	if err := fits(dir, filepath.Join(dir, "x.list"), 1<<62); err == nil || !strings.Contains(err.Error(), "not kept") {
		t.Errorf("a copy larger than the disk: %v, want not kept", err)
	}
	if err := fits(dir, filepath.Join(dir, "x.list"), 4096); err != nil {
		t.Errorf("a small copy: %v", err)
	}
}
