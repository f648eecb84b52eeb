// Package cgroup finds cgroup v2 groups as nftables's "socket cgroupv2"
// matches them: by the id of the group's directory (its inode on cgroupfs)
// at its depth below the root. A group's id changes when it is removed and
// made again (a service restarted), so callers look them up again.
package cgroup

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// Root returns where the cgroup v2 hierarchy is mounted: /sys/fs/cgroup on
// a unified system, /sys/fs/cgroup/unified on a hybrid one.
func Root() (string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return "", err
	}
	defer f.Close()
	return rootFrom(bufio.NewScanner(f))
}

func rootFrom(sc *bufio.Scanner) (string, error) {
	for sc.Scan() {
		// 41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
		fields := strings.Fields(sc.Text())
		for i, f := range fields {
			if f == "-" && i+1 < len(fields) && fields[i+1] == "cgroup2" && len(fields) > 4 {
				return unescape(fields[4]), nil
			}
		}
	}
	if err := sc.Err(); err != nil {
		return "", err
	}
	return "", errors.New("no cgroup v2 hierarchy is mounted")
}

// unescape undoes mountinfo's octal escapes (\040 for a space).
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			var n int
			if _, err := fmt.Sscanf(s[i+1:i+4], "%03o", &n); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// Group is a cgroup as the kernel identifies it.
type Group struct {
	Path  string // below the root, as configured
	ID    uint64
	Level uint32 // its depth: 1 for "system.slice"
}

// Lookup finds the group at path (relative to root).
func Lookup(root, path string) (Group, error) {
	clean := filepath.Clean(strings.Trim(path, "/"))
	var st syscall.Stat_t
	if err := syscall.Stat(filepath.Join(root, clean), &st); err != nil {
		return Group{}, fmt.Errorf("cgroup %s: %w", path, err)
	}
	if st.Mode&syscall.S_IFMT != syscall.S_IFDIR {
		return Group{}, fmt.Errorf("cgroup %s: not a directory", path)
	}
	return Group{Path: path, ID: st.Ino, Level: uint32(strings.Count(clean, "/") + 1)}, nil
}
