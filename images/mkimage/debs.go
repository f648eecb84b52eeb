package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
)

// run runs a build tool, saying which and why when it fails.
func run(dir string, env []string, name string, args ...string) ([]byte, error) {
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

// kernelPackage resolves the metapackage linux-image-amd64 to the versioned
// package it stands for today (e.g. linux-image-6.1.0-56-amd64).
func kernelPackage() (string, error) {
	out, err := run("", nil, "apt-cache", "depends", "linux-image-amd64")
	if err != nil {
		return "", err
	}
	m := dependsRE.FindSubmatch(out)
	if m == nil {
		return "", fmt.Errorf("apt-cache depends linux-image-amd64: no versioned kernel in:\n%s", out)
	}
	return string(m[1]), nil
}

// fetch downloads a package into cache (once: a .deb of the same name is
// kept) and unpacks it into cache/<package>/, without root.
func fetch(cache, pkg string) (string, error) {
	if err := os.MkdirAll(cache, 0o755); err != nil {
		return "", err
	}
	root := filepath.Join(cache, pkg)
	if _, err := os.Stat(filepath.Join(root, ".unpacked")); err == nil {
		return root, nil
	}
	debs, _ := filepath.Glob(filepath.Join(cache, pkg+"_*.deb"))
	if len(debs) == 0 {
		if _, err := run(cache, nil, "apt-get", "download", "-q", pkg); err != nil {
			return "", err
		}
		debs, _ = filepath.Glob(filepath.Join(cache, pkg+"_*.deb"))
		if len(debs) == 0 {
			return "", fmt.Errorf("apt-get download %s left no .deb in %s", pkg, cache)
		}
	}
	os.RemoveAll(root)
	if _, err := run("", nil, "dpkg-deb", "-x", debs[len(debs)-1], root); err != nil {
		return "", err
	}
	return root, os.WriteFile(filepath.Join(root, ".unpacked"), nil, 0o644)
}

// caBundle concatenates the Mozilla CA certificates of ca-certificates,
// for https blocklist downloads.
func caBundle(root string) ([]byte, error) {
	crts, err := filepath.Glob(filepath.Join(root, "usr/share/ca-certificates/mozilla/*.crt"))
	if err != nil || len(crts) == 0 {
		return nil, fmt.Errorf("no certificates in %s", root)
	}
	var b bytes.Buffer
	for _, c := range crts {
		data, err := os.ReadFile(c)
		if err != nil {
			return nil, err
		}
		b.Write(data)
		if !bytes.HasSuffix(data, []byte("\n")) {
			b.WriteByte('\n')
		}
	}
	return b.Bytes(), nil
}
