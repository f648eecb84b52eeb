package cgroup

import (
	"bufio"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestRootFrom(t *testing.T) {
	for _, tc := range []struct{ mountinfo, want string }{
		{"35 24 0:30 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n", "/sys/fs/cgroup"},
		{"30 24 0:26 / /sys/fs/cgroup ro - tmpfs tmpfs ro\n41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n", "/sys/fs/cgroup/unified"},
		{"41 31 0:38 / /mnt/my\\040groups rw shared:5 - cgroup2 none rw\n", "/mnt/my groups"},
	} {
		got, err := rootFrom(bufio.NewScanner(strings.NewReader(tc.mountinfo)))
		if err != nil || got != tc.want {
			t.Errorf("rootFrom(%q) = %q, %v; want %q", tc.mountinfo, got, err, tc.want)
		}
	}
	if _, err := rootFrom(bufio.NewScanner(strings.NewReader("30 24 0:26 / /sys/fs/cgroup ro - tmpfs tmpfs ro\n"))); err == nil {
		t.Error("no cgroup2 line: no error")
	}
}

func TestLookup(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "system.slice", "transmission.service")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	var st syscall.Stat_t
	syscall.Stat(dir, &st)
	got, err := Lookup(root, "/system.slice/transmission.service/")
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != st.Ino || got.Level != 2 {
		t.Errorf("Lookup = %+v, want id %d level 2", got, st.Ino)
	}
	if _, err := Lookup(root, "system.slice/absent.service"); err == nil {
		t.Error("a missing group: no error")
	}
}
