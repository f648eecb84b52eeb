// Package debian fetches Debian packages into a local cache without root
// (apt-get download, dpkg-deb -x) and reads what a kernel package holds:
// its version, its boot image and the dependencies of its modules. The
// image build (images/mkimage) and the VM lab (internal/lab/vm) boot the
// same Debian kernel through it.
package debian

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"

	"golang.org/x/sys/unix"
)

// Run runs a build tool, saying which and why when it fails.
func Run(dir string, env []string, name string, args ...string) ([]byte, error) {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

var dependsRE = regexp.MustCompile(`(?m)^\s*Depends:\s*(linux-image-[0-9][^\s]*)\s*$`)

// KernelPackage resolves the metapackage linux-image-amd64 to the versioned
// package it stands for today (e.g. linux-image-6.1.0-56-amd64).
func KernelPackage() (string, error) {
	out, err := Run("", nil, "apt-cache", "depends", "linux-image-amd64")
	if err != nil {
		return "", err
	}
	m := dependsRE.FindSubmatch(out)
	if m == nil {
		return "", fmt.Errorf("apt-cache depends linux-image-amd64: no versioned kernel in:\n%s", out)
	}
	return string(m[1]), nil
}

// Kernel is an unpacked Debian kernel package.
type Kernel struct {
	Package string // linux-image-6.1.0-56-amd64
	Version string // 6.1.0-56-amd64
	Root    string // where it is unpacked
}

// FetchKernel fetches and unpacks today's linux-image-amd64 into cache.
func FetchKernel(cache string) (*Kernel, error) {
	pkg, err := KernelPackage()
	if err != nil {
		return nil, err
	}
	root, err := Fetch(cache, pkg)
	if err != nil {
		return nil, err
	}
	return &Kernel{Package: pkg, Version: strings.TrimPrefix(pkg, "linux-image-"), Root: root}, nil
}

// Image is the kernel's boot image (bzImage).
func (k *Kernel) Image() string { return filepath.Join(k.Root, "boot", "vmlinuz-"+k.Version) }

// ModulesDir is lib/modules/VERSION in the unpacked package.
func (k *Kernel) ModulesDir() string { return filepath.Join(k.Root, "lib/modules", k.Version) }

// Fetch downloads a package into cache (once: a .deb of the same name is
// kept) and unpacks it into cache/<package>/, without root. Concurrent
// callers (two test binaries sharing the cache) take turns on a lock file.
func Fetch(cache, pkg string) (string, error) {
	if err := os.MkdirAll(cache, 0o755); err != nil {
		return "", err
	}
	unlock, err := lockDir(cache)
	if err != nil {
		return "", err
	}
	defer unlock()
	root := filepath.Join(cache, pkg)
	if _, err := os.Stat(filepath.Join(root, ".unpacked")); err == nil {
		return root, nil
	}
	debs, _ := filepath.Glob(filepath.Join(cache, pkg+"_*.deb"))
	if len(debs) == 0 {
		if _, err := Run(cache, nil, "apt-get", "download", "-q", pkg); err != nil {
			return "", err
		}
		debs, _ = filepath.Glob(filepath.Join(cache, pkg+"_*.deb"))
		if len(debs) == 0 {
			return "", fmt.Errorf("apt-get download %s left no .deb in %s", pkg, cache)
		}
	}
	if err := os.RemoveAll(root); err != nil {
		return "", err
	}
	if _, err := Run("", nil, "dpkg-deb", "-x", debs[len(debs)-1], root); err != nil {
		return "", err
	}
	return root, os.WriteFile(filepath.Join(root, ".unpacked"), nil, 0o644)
}

// lockDir takes an exclusive lock on dir/.lock until the returned func.
func lockDir(dir string) (func(), error) {
	f, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", dir, err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", dir, err)
	}
	return func() { f.Close() }, nil
}
