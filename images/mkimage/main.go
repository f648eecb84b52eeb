// Command mkimage builds routerd's bootable disk image from Debian's own
// parts, without root, loop devices or any network but the package
// registries:
//
//   - the current linux-image-amd64 kernel, fetched with apt-get download;
//   - an initramfs (newc cpio, gzip) whose /init is the static routerd
//     binary (init mode), with the closure of the modules in modules.txt and
//     the Mozilla CA bundle;
//   - a unified kernel image (systemd's EFI stub + kernel + initramfs +
//     command line) as \EFI\BOOT\BOOTX64.EFI on a FAT EFI system partition;
//   - a FAT partition named "routerd-data" holding routerd.toml and the
//     state directory, editable from any computer after flashing.
//
// Usage: mkimage -routerd bin/routerd [-config routerd.toml] -out routerd.img
package main

import (
	"compress/gzip"
	"crypto/sha256"
	_ "embed"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/routerd/routerd/images/debian"
	"github.com/routerd/routerd/images/initramfs"
	"github.com/routerd/routerd/router/update"
)

// defaultModules is modules.txt: what the image loads at boot.
//
//go:embed modules.txt
var defaultModules string

func main() {
	if err := build(); err != nil {
		fmt.Fprintln(os.Stderr, "mkimage:", err)
		os.Exit(1)
	}
}

const dataREADME = `This is routerd's config and state partition.

routerd.toml   the config (see docs/config.md); edit it here and reboot the router.
state/         leases, the WireGuard key, last good blocklists, NIC records.

routerd reads /etc/routerd/routerd.toml, which on the image is this
partition's routerd.toml; relative file names in the config (keys,
blocklist files) can live here too, as /etc/routerd/NAME.
`

func build() error {
	routerd := flag.String("routerd", "bin/routerd", "the static routerd binary (becomes /init)")
	cfgPath := flag.String("config", "", "routerd.toml to put on the data partition")
	dataDir := flag.String("data-dir", "", "a directory whose contents go onto the data partition too (keys, blocklist files, state/)")
	out := flag.String("out", "images/build/routerd.img", "the disk image to write")
	cache := flag.String("cache", "images/build/cache", "where downloaded packages are kept")
	modList := flag.String("modules", "", "file listing the modules the image loads (default: the built-in modules.txt)")
	cmdline := flag.String("cmdline", "console=tty0 console=ttyS0,115200n8 loglevel=4 panic=10", "kernel command line")
	dataMiB := flag.Int64("data-size", 32, "size of the data partition in MiB")
	ukiOnly := flag.Bool("uki-only", false, "write only the update artifact (routerd.efi beside -out), not the disk image")
	signingKey := flag.String("signing-key", "", "an ed25519 private key (PEM, PKCS #8: openssl genpkey -algorithm ed25519) to sign the update with")
	flag.Parse()

	work, err := os.MkdirTemp("", "mkimage-")
	if err != nil {
		return err
	}
	defer func() { _ = os.RemoveAll(work) }() // a leftover in the temp dir is no reason to fail a built image

	// The version is the binary's own, so that what an update says of
	// itself is what it runs.
	info, err := binaryInfo(*routerd)
	if err != nil {
		return err
	}
	version := &info.Version

	k, err := debian.FetchKernel(*cache)
	if err != nil {
		return err
	}
	kver, kernel := k.Version, k.Image()
	caRoot, err := debian.Fetch(*cache, "ca-certificates")
	if err != nil {
		return err
	}
	stubRoot, err := debian.Fetch(*cache, "systemd-boot-efi")
	if err != nil {
		return err
	}
	stub := filepath.Join(stubRoot, "usr/lib/systemd/boot/efi/linuxx64.efi.stub")

	// The initramfs.
	idx, err := debian.IndexModules(k.ModulesDir())
	if err != nil {
		return err
	}
	list := defaultModules
	if *modList != "" {
		b, err := os.ReadFile(*modList)
		if err != nil {
			return fmt.Errorf("read module list: %w", err)
		}
		list = string(b)
	}
	wanted := debian.ParseModuleList(list)
	order, err := idx.Closure(wanted)
	if err != nil {
		return err
	}
	bin, err := os.ReadFile(*routerd)
	if err != nil {
		return err
	}
	ca, err := caBundle(caRoot)
	if err != nil {
		return err
	}
	files := []initramfs.File{
		{Name: "init", Perm: 0o755, Data: bin},
		{Name: "etc/ssl/certs/ca-certificates.crt", Perm: 0o644, Data: ca},
		{Name: "etc/os-release", Perm: 0o644, Data: []byte(osRelease(*version, kver))},
	}
	var loadList strings.Builder
	for _, m := range order {
		data, err := os.ReadFile(idx.Path(m))
		if err != nil {
			return err
		}
		files = append(files, initramfs.File{Name: "lib/modules/" + m + ".ko", Perm: 0o644, Data: data})
		fmt.Fprintf(&loadList, "%s\n", m)
	}
	files = append(files, initramfs.File{Name: "lib/modules/routerd.list", Perm: 0o644, Data: []byte(loadList.String())})
	initrd := filepath.Join(work, "initrd.img")
	f, err := os.Create(initrd)
	if err != nil {
		return err
	}
	zw, _ := gzip.NewWriterLevel(f, gzip.BestCompression)
	err = initramfs.Write(zw, []string{"proc", "sys", "dev", "run", "tmp", "data", "etc", "var/lib"}, files, nil)
	if err == nil {
		err = zw.Close()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write initramfs: %w", err)
	}

	// The unified kernel image on the EFI system partition.
	osrel, cmd := filepath.Join(work, "os-release"), filepath.Join(work, "cmdline")
	infoFile := filepath.Join(work, "routerd-info.json")
	ib, err := json.Marshal(info)
	if err != nil {
		return err
	}
	if err := errors.Join(os.WriteFile(osrel, []byte(osRelease(*version, kver)), 0o644),
		os.WriteFile(cmd, []byte(*cmdline+"\n"), 0o644), os.WriteFile(infoFile, ib, 0o644)); err != nil {
		return err
	}
	efi := filepath.Join(work, "BOOTX64.EFI")
	if err := uki(stub, kernel, initrd, osrel, cmd, infoFile, efi); err != nil {
		return err
	}
	fi, err := os.Stat(efi)
	if err != nil {
		return err
	}
	if *ukiOnly {
		fmt.Printf("%s: routerd %s, built %s\n", filepath.Join(filepath.Dir(*out), "routerd.efi"), info.Version, info.BuildTime.Format(time.RFC3339))
		return writeArtifact(efi, filepath.Join(filepath.Dir(*out), "routerd.efi"), *signingKey)
	}
	// Room for the two slots and the fallback copy, with headroom for
	// bigger kernels; FAT32 needs at least 65525 clusters: 34 MiB of
	// 512-byte ones.
	espSize := max(roundMiB(fi.Size()*4+fi.Size()/2), 34<<20)
	esp := filepath.Join(work, "esp.img")
	if err := fatImage(esp, "ROUTERD-EFI", espSize, []string{"/EFI", "/EFI/BOOT", "/EFI/routerd"},
		map[string]string{"/EFI/BOOT/BOOTX64.EFI": efi, "/" + update.SlotFile(update.SlotA): efi}); err != nil {
		return err
	}
	if err := writeArtifact(efi, filepath.Join(filepath.Dir(*out), "routerd.efi"), *signingKey); err != nil {
		return err
	}

	// The data partition.
	readme := filepath.Join(work, "README.txt")
	if err := os.WriteFile(readme, []byte(strings.ReplaceAll(dataREADME, "\n", "\r\n")), 0o644); err != nil {
		return err
	}
	dataFiles := map[string]string{"/README.txt": readme}
	if *cfgPath != "" {
		dataFiles["/routerd.toml"] = *cfgPath
	}
	data := filepath.Join(work, "data.img")
	var trees []string
	dirs := []string{"/state"}
	if *dataDir != "" {
		trees = append(trees, *dataDir)
		if fi, err := os.Stat(filepath.Join(*dataDir, "state")); err == nil && fi.IsDir() {
			dirs = nil
		}
	}
	if err := fatImage(data, "ROUTERD", *dataMiB<<20, dirs, dataFiles, trees...); err != nil {
		return err
	}

	if err := os.MkdirAll(filepath.Dir(*out), 0o755); err != nil {
		return err
	}
	if err := gptDisk(*out, []partition{
		{name: "EFI system partition", typ: "ef00", image: esp, size: espSize},
		{name: "routerd-data", typ: "0700", image: data, size: *dataMiB << 20},
	}); err != nil {
		return err
	}
	dfi, _ := os.Stat(*out)
	fmt.Printf("%s: routerd %s, built %s\n", filepath.Join(filepath.Dir(*out), "routerd.efi"), info.Version, info.BuildTime.Format(time.RFC3339))
	ifi, _ := os.Stat(initrd)
	fmt.Printf("%s: %d MiB (kernel %s, %d modules, initramfs %.1f MiB, UKI %.1f MiB)\n",
		*out, dfi.Size()>>20, kver, len(order), float64(ifi.Size())/(1<<20), float64(fi.Size())/(1<<20))
	return nil
}

// binaryInfo asks the routerd binary for its version and build time.
func binaryInfo(bin string) (update.Info, error) {
	out, err := exec.Command(bin, "--version").Output()
	if err != nil {
		return update.Info{}, fmt.Errorf("%s --version: %w", bin, err)
	}
	// "routerd VERSION built TIME"
	f := strings.Fields(string(out))
	if len(f) != 4 || f[0] != "routerd" || f[2] != "built" {
		return update.Info{}, fmt.Errorf("%s --version: unexpected %q", bin, out)
	}
	t, err := time.Parse(time.RFC3339, f[3])
	if err != nil {
		return update.Info{}, fmt.Errorf("%s --version: %w", bin, err)
	}
	return update.Info{Version: f[1], BuildTime: t}, nil
}

// writeArtifact copies the UKI to dst as the update artifact, with its
// SHA-256 (dst.sha256, as sha256sum writes it) and, given a key, its
// signature (dst.sig: base64 of the ed25519 signature of the SHA-256).
func writeArtifact(efi, dst, keyFile string) error {
	b, err := os.ReadFile(efi)
	if err != nil {
		return err
	}
	if err := os.WriteFile(dst, b, 0o644); err != nil {
		return err
	}
	sum := sha256.Sum256(b)
	if err := os.WriteFile(dst+".sha256", []byte(fmt.Sprintf("%x  %s\n", sum, filepath.Base(dst))), 0o644); err != nil {
		return err
	}
	// An older signature must not vouch for this image.
	if err := os.Remove(dst + ".sig"); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if keyFile == "" {
		return nil
	}
	sig, err := update.SignFile(keyFile, sum[:])
	if err != nil {
		return err
	}
	return os.WriteFile(dst+".sig", []byte(sig+"\n"), 0o644)
}

func roundMiB(n int64) int64 { return (n + 1<<20 - 1) &^ (1<<20 - 1) }

func osRelease(version, kver string) string {
	return fmt.Sprintf("NAME=routerd\nID=routerd\nVERSION_ID=%s\nPRETTY_NAME=\"routerd %s (Linux %s)\"\n", version, version, kver)
}
