// Package initramfs writes the "newc" cpio archives the kernel unpacks
// into its initial root file system: the image's (routerd as /init) and the
// VM lab's (a small init that mounts the host's root over 9p).
package initramfs

import (
	"bufio"
	"fmt"
	"io"
	"io/fs"
	"path"
	"sort"
)

// cpioWriter writes a "newc" cpio archive, the format the kernel unpacks
// into its initial root filesystem. Every entry belongs to root and has
// mtime 0, so an image is a function of its inputs; entries are written
// in path order with their parents first, since the kernel does not create
// missing directories.
type cpioWriter struct {
	w    *bufio.Writer
	ino  uint32
	dirs map[string]bool
}

func newCPIO(w io.Writer) *cpioWriter {
	return &cpioWriter{w: bufio.NewWriterSize(w, 1<<20), ino: 1, dirs: map[string]bool{"": true, ".": true, "/": true}}
}

const (
	modeDir  = 0o040000
	modeFile = 0o100000
	modeLink = 0o120000
	modeChar = 0o020000
)

func (c *cpioWriter) header(name string, mode uint32, size int, rmajor, rminor uint32) error {
	c.ino++
	_, err := fmt.Fprintf(c.w, "070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		c.ino, mode, 0, 0, 1, 0, size, 0, 0, rmajor, rminor, len(name)+1, 0)
	if err != nil {
		return err
	}
	c.w.WriteString(name)
	c.w.WriteByte(0)
	c.pad(110 + len(name) + 1)
	return nil
}

func (c *cpioWriter) pad(n int) {
	for ; n%4 != 0; n++ {
		c.w.WriteByte(0)
	}
}

// mkdirAll writes the directory and its missing parents.
func (c *cpioWriter) mkdirAll(dir string) error {
	dir = path.Clean(dir)
	if c.dirs[dir] {
		return nil
	}
	if err := c.mkdirAll(path.Dir(dir)); err != nil {
		return err
	}
	c.dirs[dir] = true
	return c.header(dir, modeDir|0o755, 0, 0, 0)
}

// file writes a regular file.
func (c *cpioWriter) file(name string, perm fs.FileMode, data []byte) error {
	if err := c.mkdirAll(path.Dir(name)); err != nil {
		return err
	}
	if err := c.header(name, modeFile|uint32(perm.Perm()), len(data), 0, 0); err != nil {
		return err
	}
	c.w.Write(data)
	c.pad(len(data))
	return nil
}

// symlink writes a symbolic link.
func (c *cpioWriter) symlink(name, target string) error {
	if err := c.mkdirAll(path.Dir(name)); err != nil {
		return err
	}
	if err := c.header(name, modeLink|0o777, len(target), 0, 0); err != nil {
		return err
	}
	c.w.WriteString(target)
	c.pad(len(target))
	return nil
}

// charDev writes a character device node: the kernel opens /dev/console
// for init's standard streams before anything is mounted.
func (c *cpioWriter) charDev(name string, perm fs.FileMode, major, minor uint32) error {
	if err := c.mkdirAll(path.Dir(name)); err != nil {
		return err
	}
	return c.header(name, modeChar|uint32(perm.Perm()), 0, major, minor)
}

// close writes the trailer and flushes.
func (c *cpioWriter) close() error {
	if err := c.header("TRAILER!!!", 0, 0, 0, 0); err != nil {
		return err
	}
	return c.w.Flush()
}

// File is one regular file of an initramfs.
type File struct {
	Name string
	Perm fs.FileMode
	Data []byte
}

// Write writes dirs, files (sorted by name) and links.
func Write(w io.Writer, dirs []string, files []File, links map[string]string) error {
	c := newCPIO(w)
	if err := c.charDev("dev/console", 0o600, 5, 1); err != nil {
		return err
	}
	for _, d := range dirs {
		if err := c.mkdirAll(d); err != nil {
			return err
		}
	}
	sort.Slice(files, func(i, j int) bool { return files[i].Name < files[j].Name })
	for _, f := range files {
		if err := c.file(f.Name, f.Perm, f.Data); err != nil {
			return err
		}
	}
	names := make([]string, 0, len(links))
	for n := range links {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if err := c.symlink(n, links[n]); err != nil {
			return err
		}
	}
	return c.close()
}
