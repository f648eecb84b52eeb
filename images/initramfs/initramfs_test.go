package initramfs

import (
	"bytes"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// The archive is what cpio itself reads back: names, types, owners and
// contents, parents before children.
func TestInitramfsReadsBack(t *testing.T) {
	if _, err := exec.LookPath("cpio"); err != nil {
		t.Skip("needs cpio")
	}
	var buf bytes.Buffer
	err := Write(&buf, []string{"proc", "var/lib"}, []File{
		{"lib/modules/veth.ko", 0o644, []byte("module")},
		{"init", 0o755, []byte("#!binary")},
	}, map[string]string{"etc/mtab": "/proc/self/mounts"})
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("cpio", "-t", "-v", "--quiet")
	cmd.Stdin = bytes.NewReader(buf.Bytes())
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("cpio -t: %v", err)
	}
	var names []string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(l)
		if f[2] != "root" || f[3] != "root" {
			t.Errorf("not owned by root: %s", l)
		}
		_, name, _ := strings.Cut(l, " 1970 ")
		names = append(names, f[0][:1]+" "+name)
	}
	// Parents come first: the kernel does not create directories.
	pos := map[string]int{}
	for i, n := range names {
		pos[strings.Fields(n)[1]] = i
	}
	for _, pc := range [][2]string{{"dev", "dev/console"}, {"lib/modules", "lib/modules/veth.ko"}, {"etc", "etc/mtab"}} {
		if pos[pc[0]] > pos[pc[1]] {
			t.Errorf("%s comes after %s", pc[0], pc[1])
		}
	}
	want := []string{"c dev/console", "d dev", "d proc", "d var", "d var/lib", "- init", "d lib", "d lib/modules",
		"- lib/modules/veth.ko", "d etc", "l etc/mtab -> /proc/self/mounts"}
	slices.Sort(names)
	slices.Sort(want)
	if !slices.Equal(names, want) {
		t.Errorf("archive:\ngot  %q\nwant %q\n%s", names, want, out)
	}
}
