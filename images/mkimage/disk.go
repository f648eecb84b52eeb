package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
)

// uki joins the EFI stub, kernel, initramfs and command line into one EFI
// executable (a unified kernel image) that firmware boots directly from
// the removable-media path, with no boot loader. The section addresses
// are the ones systemd's stub expects; the kernel must stay under 16 MiB
// to fit between .linux and .initrd.
func uki(stub, kernel, initrd, osrel, cmdline, info, out string) error {
	if fi, err := os.Stat(kernel); err != nil {
		return err
	} else if fi.Size() >= 0x1000000 {
		return fmt.Errorf("kernel %s is %d bytes, more than the 16 MiB the UKI layout leaves", kernel, fi.Size())
	}
	_, err := run("", nil, "objcopy",
		"--add-section", ".osrel="+osrel, "--change-section-vma", ".osrel=0x20000",
		"--add-section", ".cmdline="+cmdline, "--change-section-vma", ".cmdline=0x30000",
		"--add-section", ".routerd="+info, "--change-section-vma", ".routerd=0x40000",
		"--add-section", ".linux="+kernel, "--change-section-vma", ".linux=0x2000000",
		"--add-section", ".initrd="+initrd, "--change-section-vma", ".initrd=0x3000000",
		stub, out)
	return err
}

const sector = 512

// fatImage makes a FAT filesystem of size bytes in file with mtools (no
// loop device, no root), makes dirs, copies files into it (dest path ->
// source) and then the trees: directories whose contents go to the root.
func fatImage(file, label string, size int64, dirs []string, files map[string]string, trees ...string) error {
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if err := f.Truncate(size); err != nil {
		f.Close()
		return err
	}
	f.Close()
	env := []string{"MTOOLS_SKIP_CHECK=1"}
	if _, err := run("", env, "mformat", "-i", file, "-T", strconv.FormatInt(size/sector, 10), "-h", "64", "-s", "32", "-v", label, "::"); err != nil {
		return err
	}
	for _, d := range dirs {
		if _, err := run("", env, "mmd", "-i", file, "::"+d); err != nil {
			return err
		}
	}
	for dest, src := range files {
		if _, err := run("", env, "mcopy", "-i", file, src, "::"+dest); err != nil {
			return err
		}
	}
	for _, tree := range trees {
		entries, err := os.ReadDir(tree)
		if err != nil {
			return err
		}
		for _, e := range entries {
			// -s: recursively; -o: over what is there; -Q: stop at the
			// first error.
			if _, err := run("", env, "mcopy", "-s", "-o", "-Q", "-i", file, filepath.Join(tree, e.Name()), "::/"); err != nil {
				return err
			}
		}
	}
	return nil
}

// partition is one GPT partition of the disk.
type partition struct {
	name, typ string // GPT name and sgdisk type code
	image     string // filesystem image to copy in
	size      int64  // bytes, a multiple of 1 MiB
}

// gptDisk lays the partitions out 1 MiB-aligned on a new disk image,
// writes the partition table with sgdisk and copies each filesystem into
// place.
func gptDisk(out string, parts []partition) error {
	const align = 1 << 20
	offsets := make([]int64, len(parts))
	next := int64(align)
	for i, p := range parts {
		offsets[i] = next
		next += p.size
	}
	total := next + align // room for the backup GPT
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Truncate(total); err != nil {
		return err
	}
	args := []string{"--clear"}
	for i, p := range parts {
		n := strconv.Itoa(i + 1)
		first, last := offsets[i]/sector, (offsets[i]+p.size)/sector-1
		args = append(args, "--new", fmt.Sprintf("%s:%d:%d", n, first, last), "--typecode", n+":"+p.typ, "--change-name", n+":"+p.name)
	}
	if _, err := run("", nil, "sgdisk", append(args, out)...); err != nil {
		return err
	}
	for i, p := range parts {
		src, err := os.Open(p.image)
		if err != nil {
			return err
		}
		_, err = io.Copy(io.NewOffsetWriter(f, offsets[i]), src)
		src.Close()
		if err != nil {
			return fmt.Errorf("copy %s into %s: %w", filepath.Base(p.image), out, err)
		}
	}
	return f.Sync()
}
